/* qube-dispvm-private.h — what the disposables (qube-dispvm.c) and their
 * preload queues (qube-dispvm-preload.c) share. */
#pragma once

#include <gio/gio.h>

#include "qube-manager.h"
#include "qube-vm.h"

G_BEGIN_DECLS

/* Whether the qube is a disposable template (template_for_dispvms). */
gboolean _qube_dispvm_is_template (QubeVm *vm);
/* A new unnamed DispVM record of `dvm` (not started), auto_cleanup, with
 * the template's features; `internal`: hidden (a preload). */
QubeVm *_qube_dispvm_create (QubeManager *manager, const char *dvm, gboolean internal,
                             GError **error);
/* A worker starting a disposable of `dvm`; it prints the disposable's
 * name once it runs (for the qrexec daemon, which must not block). */
GSubprocess *_qube_dispvm_spawn_start (QubeManager *manager, const char *dvm, GError **error);
/* Appends " (its console log: PATH)" to `error` once the console of the
 * disposable `name` is kept (RUNTIME/qubes/NAME.failed-console.log; the
 * newest QUBE_DISPVM_KEPT_CONSOLES_MAX are kept). */
#define QUBE_DISPVM_KEPT_CONSOLES_MAX 16
void _qube_dispvm_error_keep_console (QubeManager *manager, const char *name, GError *error);
/* How long qube_dispvm_take_preloaded() waits for the qrexec daemon's
 * answer, in seconds (30; tests shorten it). */
extern guint _qube_dispvm_take_timeout_s;

G_END_DECLS
