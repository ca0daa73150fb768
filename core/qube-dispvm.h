/* qube-dispvm.h — disposables: unnamed DispVMs made for one call and
 * destroyed after it, and the queues of preloaded disposables that make
 * such a call fast.
 */
#pragma once

#include <gio/gio.h>

#include "qube-manager.h"
#include "qube-vm.h"

G_BEGIN_DECLS

char *qube_dispvm_template_for (QubeManager *manager, const char *qube, GError **error);
QubeVm *qube_dispvm_new (QubeManager *manager, const char *dvm_template, gboolean use_preload,
                         gboolean *preloaded, GError **error);
gboolean qube_dispvm_destroy (QubeVm *vm, GError **error);
gboolean qube_dispvm_destroy_detached (QubeManager *manager, const char *name, GError **error);
gboolean qube_dispvm_destroy_at_exit (QubeManager *manager, const char *name, GError **error);
char *qube_dispvm_take_preloaded (QubeManager *manager, const char *dvm_template, GError **error);

QubeVm *qube_dispvm_preload_take (QubeManager *manager, const char *dvm_template,
                                  GError **error);
void qube_dispvm_preload_take_async (QubeManager *manager, const char *dvm_template,
                                     GCancellable *cancellable, GAsyncReadyCallback callback,
                                     gpointer user_data);
char *qube_dispvm_preload_take_finish (QubeManager *manager, GAsyncResult *result,
                                       GError **error);
gboolean qube_dispvm_preload_fill (QubeManager *manager, GError **error);
gboolean qube_dispvm_preload_fill_detached (QubeManager *manager, GError **error);
gboolean qube_dispvm_preload_wanted (QubeManager *manager);
char **qube_dispvm_preload_list (QubeManager *manager, const char *dvm_template);
char *qube_dispvm_events_path (QubeManager *manager);

G_END_DECLS
