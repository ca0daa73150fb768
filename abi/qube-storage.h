/* qube-storage.h — the storage pool ABI.
 *
 * A storage plugin is a pool *driver* ("file", "lvm"); each configured pool
 * is an instance opened with pool_open().  Volumes follow Qubes' semantics,
 * decided by two flags:
 *
 *   neither flag           volatile: made empty at start, discarded at stop
 *   snap_on_start          snapshot: at every start a fresh copy-on-write
 *                          view of `source`; writes discarded at stop
 *   save_on_stop           origin: persistent; at stop the state becomes the
 *                          new committed revision, older ones kept up to
 *                          revisions_to_keep and restorable with revert
 *   both                   a snapshot of source that is kept at stop
 *
 * A volume is named by its vid, unique in the pool: "<qube>/<volume>"
 * (e.g. "work/private").  A vid never contains "..", never starts with "/",
 * and is made only of [A-Za-z0-9_.-] and one '/': the core checks this
 * before any call, and a plugin must never let it reach outside the pool.
 *
 * Every operation is atomic: it either completes or leaves the volume as it
 * was; a crash in the middle leaves the last committed revision intact, and
 * the next operation on the volume cleans up leftovers.
 */
#ifndef QUBE_ABI_STORAGE_H
#define QUBE_ABI_STORAGE_H

#include "qube-plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A pool instance.  Its layout belongs to the plugin. */
typedef struct QubePool QubePool;

/* Volume flags. */
#define QUBE_VOLUME_RW            (1u << 0)
#define QUBE_VOLUME_SNAP_ON_START (1u << 1)
#define QUBE_VOLUME_SAVE_ON_STOP  (1u << 2)

/* Describes a volume in every volume operation. */
typedef struct QubeVolumeSpec {
  uint32_t size;            /* sizeof(QubeVolumeSpec) */
  /* --- ABI 1.0 --- */
  const char *vid;          /* "<qube>/<volume>" */
  uint32_t flags;           /* QUBE_VOLUME_* */
  uint64_t size_bytes;      /* nominal size */
  const char *source;       /* vid of the source volume (same pool), or NULL */
  uint32_t revisions_to_keep;
} QubeVolumeSpec;

/* A block image the backend can attach, or the core can read or write. */
typedef struct QubeBlockDev {
  uint32_t size;            /* sizeof(QubeBlockDev) as the core built it */
  /* --- ABI 1.0 --- */
  char path[4096];          /* file or device node */
  uint32_t format;          /* one QubeBlockFormat bit */
} QubeBlockDev;

/* Pool-wide figures. */
typedef struct QubePoolInfo {
  uint32_t size;            /* sizeof(QubePoolInfo) as the core built it */
  /* --- ABI 1.0 --- */
  uint64_t size_bytes;      /* capacity */
  uint64_t usage_bytes;     /* space in use */
  char mode[32];            /* how copy-on-write is done: "reflink", "qcow2",
                               "copy", "thin", ... */
  char location[4096];      /* directory, volume group, ... for a person */
  /* The block formats this pool's started volumes come in (QubeBlockFormat
   * bits): a driver may produce several (QubeStorageOps.block_formats), a
   * pool in one mode usually one.  Check with QUBE_ABI_HAS first. */
  uint32_t block_formats;
} QubePoolInfo;

/* Facts about one volume. */
typedef struct QubeVolumeInfo {
  uint32_t size;            /* sizeof(QubeVolumeInfo) as the core built it */
  /* --- ABI 1.0 --- */
  uint64_t size_bytes;      /* nominal size */
  uint64_t usage_bytes;     /* space actually used */
  uint32_t exists;          /* non-zero when the volume has been created */
  uint32_t started;         /* non-zero between volume_start and _stop */
  uint32_t outdated;        /* snapshot older than its source's revision */
  uint32_t n_revisions;     /* committed revisions kept for revert */
  int64_t created;          /* Unix time the current revision was made */
} QubeVolumeInfo;

/* One kept revision, newest first in volume_revisions(). */
typedef struct QubeRevision {
  char name[64];            /* opaque revision name, e.g. a timestamp */
  int64_t created;          /* Unix time */
} QubeRevision;

typedef struct QubeStorageOps {
  uint32_t size;            /* sizeof(QubeStorageOps) */
  /* --- ABI 1.0 --- */

  /* Driver name as used in `qube pool add NAME DRIVER`. */
  const char *driver;
  /* Block formats this driver's volumes come in (QubeBlockFormat bits). */
  uint32_t block_formats;

  /* Open a pool instance from its options (e.g. dir_path=...).  When
   * `create` is non-zero, set the pool up (make its directory...) first.
   * The pool instance is used from one thread at a time. */
  int (*pool_open)(void *plugin, const char *pool_name,
                   const QubeKeyValue *options, uint32_t n_options,
                   int create, QubePool **pool);
  /* Remove what pool_open(create) made; the core checks it holds no
   * volumes first. */
  int (*pool_destroy)(QubePool *pool);
  void (*pool_close)(QubePool *pool);
  int (*pool_info)(QubePool *pool, QubePoolInfo *info);

  int (*volume_create)(QubePool *pool, const QubeVolumeSpec *spec);
  /* Removes every revision too.  Refused (BUSY) while started. */
  int (*volume_remove)(QubePool *pool, const QubeVolumeSpec *spec);
  /* Apply the flag matrix for a qube start; fill *dev with what to attach. */
  int (*volume_start)(QubePool *pool, const QubeVolumeSpec *spec,
                      QubeBlockDev *dev);
  /* Apply the flag matrix for a qube stop (commit or discard). */
  int (*volume_stop)(QubePool *pool, const QubeVolumeSpec *spec);
  int (*volume_info)(QubePool *pool, const QubeVolumeSpec *spec,
                     QubeVolumeInfo *info);
  /* Check the committed data is present and readable. */
  int (*volume_verify)(QubePool *pool, const QubeVolumeSpec *spec);
  /* Grow to new_size (never shrink: INVALID). */
  int (*volume_resize)(QubePool *pool, const QubeVolumeSpec *spec,
                       uint64_t new_size);
  /* Make revision `revision` (NULL: the newest kept one) current again. */
  int (*volume_revert)(QubePool *pool, const QubeVolumeSpec *spec,
                       const char *revision);
  /* List kept revisions, newest first, into a malloc()ed array (free()). */
  int (*volume_revisions)(QubePool *pool, const QubeVolumeSpec *spec,
                          QubeRevision **revisions, uint32_t *n_revisions);

  /* Import: the plugin gives a raw file/device to write `size_bytes` into;
   * import_end(commit != 0) makes it the volume's new revision, commit == 0
   * throws it away. */
  int (*volume_import_begin)(QubePool *pool, const QubeVolumeSpec *spec,
                             uint64_t size_bytes, QubeBlockDev *dev);
  int (*volume_import_end)(QubePool *pool, const QubeVolumeSpec *spec,
                           int commit);
  /* Export: the plugin gives a raw file/device holding the committed data,
   * valid until export_end. */
  int (*volume_export_begin)(QubePool *pool, const QubeVolumeSpec *spec,
                             QubeBlockDev *dev);
  int (*volume_export_end)(QubePool *pool, const QubeVolumeSpec *spec);

  /* Copy all committed data of `src` (any pool of this driver) into a new
   * volume `dst`, copy-on-write where possible (qube clone). */
  int (*volume_clone)(QubePool *pool, const QubeVolumeSpec *dst,
                      QubePool *src_pool, const QubeVolumeSpec *src);
} QubeStorageOps;

#ifdef __cplusplus
}
#endif

#endif /* QUBE_ABI_STORAGE_H */
