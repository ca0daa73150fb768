/* qube-lifecycle.h — starting and stopping qubes on their isolation
 * backend: volumes, the compartment, the qrexec daemon that serves it.
 *
 * A started qube outlives the process that started it.  Everything about
 * it lives in its runtime directory (qube_qrexec_qube_runtime_dir()), so
 * any later process finds it again from there.
 */
#pragma once

#include <glib-object.h>

#include "qube-vm.h"

G_BEGIN_DECLS

/**
 * QUBE_QREXEC_DAEMON_PROGRAM:
 *
 * The program of the qrexec daemon: one process serving every running qube
 * of a state directory (it holds their vchan links, so it can join calls
 * between qubes), started by the first qube_vm_start() that needs it;
 * `$QUBE_QREXEC_DAEMON` overrides where it is looked for.
 */
#define QUBE_QREXEC_DAEMON_PROGRAM "qube-qrexec-daemon"

/**
 * QUBE_QREXEC_DAEMON_SOCKET:
 *
 * The file name, in the runtime directory, of the socket where the qrexec
 * daemon serving the running qubes takes their starts and stops.
 */
#define QUBE_QREXEC_DAEMON_SOCKET "qrexec-daemon.sock"

gboolean qube_vm_start (QubeVm *vm, GError **error);
gboolean qube_vm_shutdown (QubeVm *vm, gboolean wait, GError **error);
gboolean qube_vm_kill (QubeVm *vm, GError **error);
gboolean qube_vm_pause (QubeVm *vm, GError **error);
gboolean qube_vm_unpause (QubeVm *vm, GError **error);
char *qube_vm_get_accel (QubeVm *vm);

G_END_DECLS
