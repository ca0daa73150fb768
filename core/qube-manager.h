/* qube-manager.h — the collection of qubes kept in one state directory.
 *
 * A QubeManager owns the state store (SQLite, <state_dir>/qubes.db) and
 * the global properties (default_template,
 * default_netvm, default_dispvm, default_kernel, default_backend,
 * default_pool).  It enforces the rules between qubes: an AppVM needs an
 * existing template, a template in use cannot be removed, a netvm must
 * provide network and must not form a loop, a running qube cannot be
 * removed.
 */
#pragma once

#include <glib-object.h>

#include "qube-plugin-registry.h"
#include "qube-vm.h"

G_BEGIN_DECLS

#define QUBE_TYPE_MANAGER (qube_manager_get_type ())
G_DECLARE_FINAL_TYPE (QubeManager, qube_manager, QUBE, MANAGER, GObject)

QubeManager *qube_manager_new (const char *state_dir, GError **error);
char *qube_manager_default_state_dir (void);
const char *qube_manager_get_state_dir (QubeManager *self);
char *qube_manager_default_runtime_dir (const char *state_dir);
const char *qube_manager_get_runtime_dir (QubeManager *self);
QubePluginRegistry *qube_manager_get_plugins (QubeManager *self);

QubeVm *qube_manager_create_vm (QubeManager *self, const char *klass,
                                const char *name, const char *template_name,
                                const char *label, GError **error);
QubeVm *qube_manager_lookup (QubeManager *self, const char *name,
                             GError **error);
GPtrArray *qube_manager_list_vms (QubeManager *self);
gboolean qube_manager_remove_vm (QubeManager *self, const char *name,
                                 GError **error);
QubeVm *qube_manager_clone_vm (QubeManager *self, const char *src,
                               const char *dst, GError **error);

char **qube_manager_list_properties (QubeManager *self);
char *qube_manager_get_property (QubeManager *self, const char *name,
                                 gboolean *is_default, GError **error);
gboolean qube_manager_set_property (QubeManager *self, const char *name,
                                    const char *value, GError **error);
gboolean qube_manager_reset_property (QubeManager *self, const char *name,
                                      GError **error);
gboolean qube_manager_get_property_type (QubeManager *self, const char *name,
                                         QubePropertyType *type, GError **error);

gboolean qube_name_is_valid (const char *name, GError **error);

G_END_DECLS
