/* qube-vm-private.h — what QubeVm, QubeManager and the property table
 * share inside libqube and do not export. */
#pragma once

#include <gio/gio.h>

#include "qube-manager.h"
#include "qube-plugin-registry.h"
#include "qube-qrexec-client.h"
#include "qube-store.h"
#include "qube-vm.h"

G_BEGIN_DECLS

/* A view of the qube in `row`, holding a reference on `manager`. */
QubeVm *_qube_vm_new (QubeManager *manager, const QubeStoreQube *row);
gint64 _qube_vm_get_id (QubeVm *self);
/* The manager the qube belongs to. (transfer none) */
QubeManager *_qube_vm_get_manager (QubeVm *self);

/* Whether the qube runs: the admin qube (the host) always does; for the
 * others the manager's running function answers (the isolation backend),
 * and without one they are halted. */
gboolean _qube_vm_is_running (QubeVm *self);

typedef gboolean (*QubeRunningFunc) (QubeVm *vm, gpointer user_data);

QubeStore *_qube_manager_get_store (QubeManager *self);
QubeVm *_qube_manager_create_vm_in_pools (QubeManager *self, const char *klass,
                                          const char *name, const char *template_name,
                                          const char *label, const char *const *pools,
                                          GError **error);
/* Installs what tells whether a qube runs (NULL: none runs). */
void _qube_manager_set_running_func (QubeManager *self, QubeRunningFunc func,
                                     gpointer user_data);
gboolean _qube_manager_is_running (QubeManager *self, QubeVm *vm);
/* Whether the running function is the isolation backends' (not one a
 * caller installed). */
gboolean _qube_manager_states_from_backend (QubeManager *self);

/* Feature keys, tags, pool and plugin names: [A-Za-z0-9_.-]+, at most
 * 255 bytes; `what` names the kind in the error ("feature name", "tag"). */
gboolean _qube_key_is_valid (const char *what, const char *key, GError **error);

/* The form of a qube name: a letter, then [A-Za-z0-9_.-], at most 31
 * characters.  qube_name_is_valid() also refuses reserved words; the
 * qrexec policy, which only matches names, checks just the form. */
gboolean _qube_name_form_is_valid (const char *name, GError **error);

/* A copy of `text` that is safe to show in a message: as is when it is
 * printable UTF-8, else escaped. */
char *_qube_printable (const char *text);

/* qube-lifecycle.c: the power state as the Admin API names it (Running,
 * Paused, Transient, Halting, Halted), cleaning up a qube found stopped;
 * and the manager's default running function. */
const char *_qube_vm_power_state (QubeVm *vm);
gboolean _qube_vm_running_func (QubeVm *vm, gpointer user_data);
/* qube-lifecycle.c: the qrexec daemon program in a worker MODE
 * (--discard-dispvm, --shutdown-qube, ...), detached, stdout a pipe for
 * the caller with `pipe_stdout`; its messages go to RUNTIME/worker.log. */
GSubprocess *_qube_spawn_worker (QubeManager *manager, const char *mode, const char *arg,
                                 gboolean pipe_stdout, GError **error);
/* qube-qrexec-client.c: qube_qrexec_run() without a manager, for a caller
 * that may outlive its own: `runtime_dir` is the qube's runtime directory
 * (where the daemon's socket for it is), `plugins` finds the transport. */
gboolean _qube_qrexec_run_at (QubePluginRegistry *plugins, const char *runtime_dir,
                              const char *qube, const char *user, const char *command,
                              QubeQrexecRunFlags flags, int stdin_fd, int stdout_fd,
                              int stderr_fd, int *exit_code, GError **error);
/* qube-lifecycle.c: sends one request line to the qrexec daemon (see
 * cli/qube-qrexec-daemon.c), starting it when `spawn` and it is not
 * running; the connection, for the answer, or -1 (with `error` set only
 * when `spawn`). */
int _qube_qrexec_daemon_request (QubeManager *manager, const char *line, gboolean spawn,
                                 GError **error);

G_END_DECLS
