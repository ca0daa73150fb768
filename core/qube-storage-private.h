/* qube-storage-private.h — what the manager, the qube view and the
 * isolation backends' glue share about pools and volumes, not exported.
 *
 * Pool instances are opened on demand through the plugin of their driver
 * and kept open for the life of the manager (an import or export spans two
 * calls on one instance).  Every call into a storage plugin holds the
 * plugin's lock.  Functions taking a QubeStore run inside the caller's
 * store transaction.
 */
#pragma once

#include "qube-plugin-private.h"
#include "qube-pool.h"
#include "qube-property.h"
#include "qube-store.h"
#include "qube-volume.h"

G_BEGIN_DECLS

typedef struct _QubePoolCache QubePoolCache;

QubePoolCache *_qube_pool_cache_new (void);
void _qube_pool_cache_free (QubePoolCache *cache);

QubePoolCache *_qube_manager_get_pool_cache (QubeManager *self);

/* An open pool instance. */
typedef struct {
  char *name;
  char *signature;          /* driver and options it was opened with */
  QubePluginInfo *info;
  const QubeStorageOps *ops;
  QubePool *pool;
} QubePoolHandle;

QubePoolHandle *_qube_pool_handle_ref (QubePoolHandle *handle);
void _qube_pool_handle_unref (QubePoolHandle *handle);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubePoolHandle, _qube_pool_handle_unref)

/* The open instance of pool `name` as recorded in `store`.  (transfer full) */
QubePoolHandle *_qube_pool_open (QubeManager *manager, QubeStore *store,
                                 const char *name, GError **error);

/* The block formats (QubeBlockFormat bits) the pool makes. */
gboolean _qube_pool_handle_formats (QubePoolHandle *handle, guint32 *formats,
                                    GError **error);

/* Records pool `default` (driver file, STATE_DIR/pools/default) unless it
 * exists, when default_pool names it; runs its own transaction, so never
 * inside one. */
gboolean _qube_pool_ensure_default (QubeManager *manager, GError **error);

/* The layout of `klass` made for the new qube `qube` (template: the
 * template's name, or NULL): rows recorded and volumes made in their pools
 * (default_pool, or what `pools` says: "VOLUME=POOL", "*=POOL").
 * Inside a store transaction: the volumes made are removed again when it
 * rolls back, as the caller does on failure. */
gboolean _qube_volumes_create (QubeManager *manager, QubeStore *store,
                               const QubeStoreQube *qube, QubeClass klass,
                               const char *template_name, const char *const *pools,
                               GError **error);
/* Removes the qube's volumes from their pools (refused while any is
 * started); the rows go with the qube's row. */
gboolean _qube_volumes_remove (QubeManager *manager, QubeStore *store,
                               const QubeStoreQube *qube, GError **error);
/* Gives `dst` copies of the volumes of `src`: data of its own copied
 * (copy-on-write where the pool can), snapshots and volatile volumes
 * made anew with the same source; removed again as _qube_volumes_create()
 * says. */
gboolean _qube_volumes_clone (QubeManager *manager, QubeStore *store,
                              const QubeStoreQube *src, const QubeStoreQube *dst,
                              GError **error);
/* After the template of `qube` changed: its snapshots follow the new one. */
gboolean _qube_volumes_follow_template (QubeManager *manager, QubeStore *store,
                                        const QubeStoreQube *qube, GError **error);

/* For an isolation backend at start: FALSE, with an error such as "qube
 * 'work': backend 'xen' accepts raw volumes only, pool 'default' makes
 * qcow2 volumes", when a pool holding a volume of `vm` makes a block format
 * outside `accepted` (QubeBlockFormat bits). */
gboolean _qube_volumes_check_formats (QubeVm *vm, const char *backend,
                                      guint32 accepted, GError **error);

/* ---- qube-volume-call.c: calls into a pool's plugin ---- */

/* Holds the plugin's lock to the end of the enclosing block. */
#define QUBE_POOL_LOCK(handle) \
  g_autoptr(GRecMutexLocker) G_PASTE (qube_pool_locker_, __LINE__) = \
    g_rec_mutex_locker_new (_qube_plugin_info_get_lock ((handle)->info))

/* "<qube>/<volume>", the volume's id in its pool. */
char *_qube_volume_vid (const char *qube, const char *volume);
/* What the plugin is told about a volume; valid while `row` and `vid` are. */
void _qube_volume_fill_spec (QubeVolumeSpec *spec, const QubeStoreVolume *row,
                             const char *vid);
/* A plugin call's failure as an error; `qube` (nullable) prefixes it.
 * Always FALSE. */
gboolean _qube_volume_fail (QubePoolHandle *handle, int rc, const char *qube,
                            GError **error);
/* FALSE with "not supported" when the plugin lacks the slot. */
gboolean _qube_volume_require_slot (QubePoolHandle *handle, gboolean present,
                                    const char *operation, GError **error);
/* For a qube being created or cloned only: a volume already there under
 * its vid belongs to no qube (an interrupted creation) and is replaced. */
gboolean _qube_pool_volume_create (QubePoolHandle *handle, const QubeStoreVolume *row,
                                   const char *qube, GError **error);
/* A volume already gone counts as removed. */
gboolean _qube_pool_volume_remove (QubePoolHandle *handle, const QubeStoreVolume *row,
                                   const char *qube, GError **error);
gboolean _qube_pool_volume_info (QubePoolHandle *handle, const QubeStoreVolume *row,
                                 const char *qube, QubeVolumeInfo *info, GError **error);
gboolean _qube_pool_volume_stop (QubePoolHandle *handle, const QubeStoreVolume *row,
                                 const char *qube, GError **error);

/* "raw", "qcow2" for one QubeBlockFormat bit. */
const char *_qube_block_format_name (guint32 format);

/* What the isolation backend is given to attach a started volume; the
 * strings are borrowed from `device`. */
void _qube_block_device_to_disk (const QubeBlockDevice *device, QubeDiskSpec *disk);

G_END_DECLS
