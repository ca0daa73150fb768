/* qube-property.h — the property table and the rules it drives.
 *
 * Internal to libqube.  One row per property (per qube, and global) says
 * its type, which classes have it, its default (a constant, a global
 * property, or the template's value) and how values are checked.  Reading,
 * setting and resetting any property goes through the functions here, so
 * every rule lives in one place.  Writers must run inside a store
 * transaction: checks that involve other qubes (loops, users) are made
 * after the write and make the caller roll back when they fail.
 */
#pragma once

#include <glib.h>

#include "qube-store.h"
#include "qube-vm.h"

G_BEGIN_DECLS

/* Qube classes, as flags so that a row can name a set of them. */
typedef enum {
  QUBE_CLASS_NONE = 0,
  QUBE_CLASS_ADMIN = 1 << 0,
  QUBE_CLASS_TEMPLATE = 1 << 1,
  QUBE_CLASS_APP = 1 << 2,
  QUBE_CLASS_STANDALONE = 1 << 3,
  QUBE_CLASS_DISP = 1 << 4,
} QubeClass;

#define QUBE_CLASS_ANY (QUBE_CLASS_ADMIN | QUBE_CLASS_TEMPLATE | QUBE_CLASS_APP \
                        | QUBE_CLASS_STANDALONE | QUBE_CLASS_DISP)
#define QUBE_CLASS_DOMU (QUBE_CLASS_ANY & ~QUBE_CLASS_ADMIN)

QubeClass _qube_class_from_name (const char *name);
const char *_qube_class_to_name (QubeClass klass);
/* "a TemplateVM or an AppVM" for a set of classes. */
char *_qube_class_describe (QubeClass classes);

const char *_qube_property_type_to_name (QubePropertyType type);

/* Per-qube properties. */
char **_qube_property_list (QubeClass klass);
gboolean _qube_property_get (QubeStore *store, const QubeStoreQube *qube,
                             const char *name, char **value,
                             gboolean *is_default, QubePropertyType *type,
                             GError **error);
gboolean _qube_property_set (QubeStore *store, const QubeStoreQube *qube,
                             const char *name, const char *value,
                             GError **error);
gboolean _qube_property_reset (QubeStore *store, const QubeStoreQube *qube,
                               const char *name, GError **error);
/* Whether the property cannot change while the qube runs (its template,
 * its backend: the running compartment was made from them). */
gboolean _qube_property_needs_halted (QubeClass klass, const char *name);

/* Global properties. */
char **_qube_global_list (void);
gboolean _qube_global_get (QubeStore *store, const char *name, char **value,
                           gboolean *is_default, QubePropertyType *type,
                           GError **error);
gboolean _qube_global_set (QubeStore *store, const char *name,
                           const char *value, GError **error);
gboolean _qube_global_reset (QubeStore *store, const char *name,
                             GError **error);

/* Why `qube` may not be removed: every property (of a qube, or global)
 * that refers to it, as "it is the template of 'a', 'b'; it is the global
 * default_netvm".  *reasons is NULL when nothing refers to it. */
gboolean _qube_property_find_users (QubeStore *store, const char *qube_name,
                                    char **reasons, GError **error);

/* Checks that `value` may be the template of a new qube of class `klass`
 * (exists, right class, flags). */
gboolean _qube_property_check_template (QubeStore *store, QubeClass klass,
                                        const char *value, GError **error);

G_END_DECLS
