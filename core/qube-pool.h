/* qube-pool.h — storage pools: where the volumes of qubes live.
 *
 * A pool is a named instance of a storage driver ("file", "lvm") with its
 * options (e.g. dir_path=/var/lib/qube/pools/fast), recorded in the state
 * store and opened on demand through the plugin that provides the driver.
 * A pool named `default`, of driver `file` under STATE_DIR/pools/default,
 * is made on first use; the global property default_pool says where new
 * qubes' own volumes go.
 */
#pragma once


#include <glib-object.h>

#include "qube-manager.h"

G_BEGIN_DECLS

#define QUBE_TYPE_STORAGE_POOL (qube_storage_pool_get_type ())
G_DECLARE_FINAL_TYPE (QubeStoragePool, qube_storage_pool, QUBE, STORAGE_POOL, GObject)

const char *qube_storage_pool_get_name (QubeStoragePool *self);
const char *qube_storage_pool_get_driver (QubeStoragePool *self);
char **qube_storage_pool_get_options (QubeStoragePool *self);
gboolean qube_storage_pool_query (QubeStoragePool *self, guint64 *size_bytes,
                                  guint64 *usage_bytes, char **mode,
                                  char **location, char ***formats,
                                  GError **error);
char **qube_storage_pool_list_volumes (QubeStoragePool *self, GError **error);

QubeStoragePool *qube_manager_add_pool (QubeManager *self, const char *name,
                                        const char *driver,
                                        const char *const *options,
                                        GError **error);
QubeStoragePool *qube_manager_lookup_pool (QubeManager *self, const char *name,
                                           GError **error);
GPtrArray *qube_manager_list_pools (QubeManager *self, GError **error);
gboolean qube_manager_remove_pool (QubeManager *self, const char *name,
                                   GError **error);

G_END_DECLS
