/* qube-vm.h — one qube: its class, properties, features and tags.
 *
 * A QubeVm is a view of one qube in the state store of its QubeManager.
 * Every change is written through at once, as one transaction.
 */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

#define QUBE_TYPE_VM (qube_vm_get_type ())
G_DECLARE_FINAL_TYPE (QubeVm, qube_vm, QUBE, VM, GObject)

/**
 * QubePropertyType:
 * @QUBE_PROPERTY_TYPE_STR: a string
 * @QUBE_PROPERTY_TYPE_INT: an integer
 * @QUBE_PROPERTY_TYPE_BOOL: "True" or "False"
 * @QUBE_PROPERTY_TYPE_VM: the name of a qube, or "" for none
 * @QUBE_PROPERTY_TYPE_LABEL: a label colour name
 *
 * Property types, named as in the Qubes Admin API.
 */
typedef enum {
  QUBE_PROPERTY_TYPE_STR,
  QUBE_PROPERTY_TYPE_INT,
  QUBE_PROPERTY_TYPE_BOOL,
  QUBE_PROPERTY_TYPE_VM,
  QUBE_PROPERTY_TYPE_LABEL,
} QubePropertyType;

const char *qube_vm_get_name (QubeVm *self);
const char *qube_vm_get_uuid (QubeVm *self);
const char *qube_vm_get_klass (QubeVm *self);
const char *qube_vm_get_state (QubeVm *self);

char **qube_vm_list_properties (QubeVm *self);
char *qube_vm_get_property (QubeVm *self, const char *name,
                            gboolean *is_default, QubePropertyType *type,
                            GError **error);
gboolean qube_vm_set_property (QubeVm *self, const char *name,
                               const char *value, GError **error);
gboolean qube_vm_reset_property (QubeVm *self, const char *name,
                                 GError **error);

char **qube_vm_list_features (QubeVm *self);
char *qube_vm_get_feature (QubeVm *self, const char *key);
gboolean qube_vm_set_feature (QubeVm *self, const char *key,
                              const char *value, GError **error);
gboolean qube_vm_remove_feature (QubeVm *self, const char *key,
                                 GError **error);

char **qube_vm_list_tags (QubeVm *self);
gboolean qube_vm_has_tag (QubeVm *self, const char *tag);
gboolean qube_vm_add_tag (QubeVm *self, const char *tag, GError **error);
gboolean qube_vm_remove_tag (QubeVm *self, const char *tag, GError **error);

G_END_DECLS
