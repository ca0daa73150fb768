/* sf-pool.h — what the files of the storage-file driver share: the pool
 * instance, the names of files in a volume directory, and making images in
 * the pool's copy-on-write mode (sf-image.c).
 *
 * See storage-file.c for the layout of a pool directory.
 */
#pragma once

#include <glib.h>

#include "abi/qube-plugin.h"
#include "abi/qube-storage.h"

G_BEGIN_DECLS

#define POOL_FILE ".qube-pool"
#define PROBE_FILE ".reflink-probe"
#define IMPORT_FILE "import.img"
#define EXPORT_FILE "export.img"
#define BASE_FILE "base.qcow2"

typedef enum
{
  SF_COW_REFLINK,
  SF_COW_QCOW2,
  SF_COW_COPY,
} SfCow;

/* Mode names, indexed by SfCow. */
extern const char *const sf_cow_names[SF_COW_COPY + 1];

struct QubePool
{
  const QubeHost *host;
  char *name;
  char *dir;           /* real path of the pool directory */
  int dir_fd;
  SfCow cow;
  GHashTable *transfers; /* vid -> IMPORT_FILE or EXPORT_FILE */
};

/* File names of images: "rev-<name>.img" (or .qcow2), "work.img"... */
const char *sf_image_ext (SfCow cow);
const char *sf_image_format (SfCow cow);
char *sf_rev_file (QubePool *pool, const char *rev);
char *sf_work_file (QubePool *pool);
QubeBlockFormat sf_pool_block_format (QubePool *pool);

/* Hands `error` back through the ABI as "pool 'P': cannot <op> volume
 * '<vid>': ..." (vid NULL: "pool 'P': ..."); returns its code. */
int sf_report (QubePool *pool, const char *op, const char *vid,
               GError *error);
/* Runs qemu-img through host->run(); a non-zero exit is an error with its
 * standard error text. */
gboolean sf_run_qemu_img (QubePool *pool, const char *const *argv,
                          GError **error);
/* Refuses, with the figures, what would run the pool out of space.  With
 * `what` NULL, `need` is the size of the volume itself. */
gboolean sf_require_space (QubePool *pool, int dir_fd, const char *what,
                           guint64 need, GError **error);

/* A new image `dst` holding the data of the committed image `src` of the
 * same directory, `size` bytes long, cheap where the mode allows. */
gboolean sf_cow_view (QubePool *pool, int fd, const char *src,
                      const char *dst, guint64 size, GError **error);
/* A new empty image of `size` bytes in the pool's format. */
gboolean sf_cow_empty (QubePool *pool, int fd, const char *dst, guint64 size,
                       GError **error);
/* A self-contained copy of `src` (possibly an overlay) as the new file
 * `dst`, through qemu-img convert; flushed. */
gboolean sf_cow_convert (QubePool *pool, int src_fd, const char *src,
                         const char *src_format, int dst_fd, const char *dst,
                         const char *dst_format, GError **error);

G_END_DECLS
