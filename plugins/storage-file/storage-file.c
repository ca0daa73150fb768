/* storage-file.c — the "file" storage pool driver: volumes as image files.
 *
 * Layout of a pool directory:
 *
 *   .qube-pool                    the pool's copy-on-write mode, fixed at creation
 *   <qube>/<volume>/volume.conf   metadata (sf-meta.h), replaced atomically
 *   <qube>/<volume>/rev-<N>.img   committed revisions (raw; .qcow2 in qcow2
 *                                 mode), never modified once committed
 *   <qube>/<volume>/work.*        the image a started volume is attached as
 *   <qube>/<volume>/base.qcow2    qcow2 snapshot: hard link to the source's
 *                                 revision, so pruning the source never
 *                                 pulls the backing file from a running qube
 *   <qube>/<volume>/import.img, export.img, *.part   transfers and temporaries
 *   <qube>/.<volume>.creating, .<volume>.removing    volume being made/removed
 *
 * Copy-on-write: FICLONE reflinks (mode "reflink"), qcow2 overlays made by
 * qemu-img (mode "qcow2"), or full copies (mode "copy", only on request).
 * Every change is made under a temporary name, flushed, then renamed; the
 * metadata file says what is committed and whether the volume is started,
 * and anything else found in a volume directory is a leftover that the next
 * operation on the volume (or pool_open) removes.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "abi/qube-plugin.h"
#include "abi/qube-storage.h"
#include "sf-fs.h"
#include "sf-meta.h"

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

static const char *const cow_names[] = { "reflink", "qcow2", "copy" };

struct QubePool
{
  const QubeHost *host;
  char *name;
  char *dir;           /* real path of the pool directory */
  int dir_fd;
  SfCow cow;
  GHashTable *transfers; /* vid -> IMPORT_FILE or EXPORT_FILE */
};

/* One volume while an operation runs on it. */
typedef struct
{
  QubePool *pool;
  const char *vid;
  char *qube;
  char *name;
  int qube_fd;
  int fd;              /* volume directory, -1 when the volume does not exist */
  SfMeta *meta;
} SfVolume;

static void
sf_volume_free (SfVolume *v)
{
  if (v->fd >= 0)
    close (v->fd);
  if (v->qube_fd >= 0)
    close (v->qube_fd);
  g_free (v->qube);
  g_free (v->name);
  sf_meta_free (v->meta);
  g_free (v);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SfVolume, sf_volume_free)

static const char *
image_ext (SfCow cow)
{
  return cow == SF_COW_QCOW2 ? ".qcow2" : ".img";
}

static const char *
image_format (SfCow cow)
{
  return cow == SF_COW_QCOW2 ? "qcow2" : "raw";
}

static char *
rev_file (QubePool *pool, const char *rev)
{
  return g_strconcat ("rev-", rev, image_ext (pool->cow), NULL);
}

static char *
work_file (QubePool *pool)
{
  return g_strconcat ("work", image_ext (pool->cow), NULL);
}

/* Hands an error back through the ABI. */
static int
report (QubePool *pool, const char *op, const char *vid, GError *error)
{
  int code = error->domain == SF_ERROR ? error->code : QUBE_ABI_E_FAILED;

  /* A space refusal reads "... volume 'work/private' of 2048 MiB: ...". */
  if (vid != NULL)
    pool->host->set_error (pool->host, (QubeAbiError) code,
                           "pool '%s': cannot %s volume '%s'%s%s", pool->name,
                           op, vid,
                           g_str_has_prefix (error->message, "of ") ? " "
                                                                    : ": ",
                           error->message);
  else
    pool->host->set_error (pool->host, (QubeAbiError) code, "pool '%s': %s",
                           pool->name, error->message);
  return code;
}

static gboolean
run_qemu_img (QubePool *pool, const char *const *argv, GError **error)
{
  QubeRunResult result = { 0 };
  int rc = pool->host->run (pool->host, argv, NULL, 0, &result);
  gboolean ok = TRUE;

  if (rc != 0)
    {
      g_set_error (error, SF_ERROR, QUBE_ABI_E_UNAVAILABLE,
                   "cannot run %s (install the package qemu-utils)", argv[0]);
      ok = FALSE;
    }
  else if (result.exit_status != 0)
    {
      const char *err = result.err ? g_strstrip (result.err) : "";

      g_set_error (error, SF_ERROR,
                   strstr (err, "No space left") ? QUBE_ABI_E_NO_SPACE
                                                 : QUBE_ABI_E_IO,
                   "%s %s failed (exit status %d): %s", argv[0], argv[1],
                   result.exit_status, err);
      ok = FALSE;
    }
  free (result.out);
  free (result.err);
  return ok;
}

/* Refuses early, with the figures, what would run the pool out of space.
 * With `what` NULL, `need` is the size of the volume itself. */
static gboolean
require_space (QubePool *pool, int dir_fd, const char *what, guint64 need,
               GError **error)
{
  guint64 free_bytes;

  if (!sf_fs_space (dir_fd, &free_bytes, NULL, NULL, error))
    return FALSE;
  if (need > free_bytes)
    {
      g_autofree char *need_s = sf_format_mib (need, TRUE);
      g_autofree char *free_s = sf_format_mib (free_bytes, FALSE);

      if (what == NULL)
        g_set_error (error, SF_ERROR, QUBE_ABI_E_NO_SPACE, "of %s: %s free",
                     need_s, free_s);
      else
        g_set_error (error, SF_ERROR, QUBE_ABI_E_NO_SPACE,
                     "%s needs %s, the pool has %s free", what, need_s,
                     free_s);
      return FALSE;
    }
  return TRUE;
}

/* --- copy-on-write primitives ------------------------------------------ */

/* A new image `dst` with the data of the committed image `src` of the same
 * directory, `size` bytes long, cheap where the pool's mode allows. */
static gboolean
cow_view (QubePool *pool, int fd, const char *src, const char *dst,
          guint64 size, GError **error)
{
  switch (pool->cow)
    {
    case SF_COW_REFLINK:
      if (!sf_reflink (fd, src, fd, dst, error))
        return FALSE;
      break;
    case SF_COW_COPY:
      {
        guint64 src_size, src_alloc;

        sf_file_sizes (fd, src, &src_size, &src_alloc);
        if (!require_space (pool, fd, "a full copy", src_alloc, error) ||
            !sf_copy_sparse (fd, src, fd, dst, error))
          return FALSE;
        break;
      }
    case SF_COW_QCOW2:
      {
        g_autofree char *path = sf_fd_path (fd, dst);
        g_autofree char *size_s = g_strdup_printf ("%" G_GUINT64_FORMAT, size);
        /* The backing file is named relative to the overlay (same
         * directory), and -u skips opening it: the size is given. */
        const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                               "-F", "qcow2", "-u", "-b", src, path, size_s,
                               NULL };

        return run_qemu_img (pool, argv, error);
      }
    }
  if (!sf_grow (fd, dst, size, error))
    {
      sf_unlink (fd, dst);
      return FALSE;
    }
  return TRUE;
}

/* A new empty image of `size` bytes in the pool's format. */
static gboolean
cow_empty (QubePool *pool, int fd, const char *dst, guint64 size,
           GError **error)
{
  if (pool->cow == SF_COW_QCOW2)
    {
      g_autofree char *path = sf_fd_path (fd, dst);
      g_autofree char *size_s = g_strdup_printf ("%" G_GUINT64_FORMAT, size);
      const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", path,
                             size_s, NULL };

      return run_qemu_img (pool, argv, error);
    }
  return sf_create_sparse (fd, dst, size, error);
}

/* A self-contained copy of `src` (format src_format, possibly an overlay)
 * as the new file `dst` in the pool's format, via qemu-img convert. */
static gboolean
cow_convert (QubePool *pool, int src_fd, const char *src,
             const char *src_format, int dst_fd, const char *dst,
             const char *dst_format, GError **error)
{
  g_autofree char *src_path = sf_fd_path (src_fd, src);
  g_autofree char *dst_path = sf_fd_path (dst_fd, dst);
  const char *argv[] = { "qemu-img", "convert", "-q", "-f", src_format,
                         "-O", dst_format, src_path, dst_path, NULL };

  if (!run_qemu_img (pool, argv, error) ||
      !sf_fsync_file (dst_fd, dst, error))
    {
      sf_unlink (dst_fd, dst);
      return FALSE;
    }
  return TRUE;
}

/* --- volumes ------------------------------------------------------------ */

/* Removes whatever the metadata does not account for: temporaries and
 * images of interrupted operations. */
static void
volume_tidy (SfVolume *v)
{
  QubePool *pool = v->pool;
  const SfMeta *meta = v->meta;
  const char *transfer = g_hash_table_lookup (pool->transfers, v->vid);
  g_autoptr (GHashTable) keep = g_hash_table_new_full (g_str_hash,
                                                       g_str_equal, g_free,
                                                       NULL);
  DIR *dir;
  struct dirent *de;

  g_hash_table_add (keep, g_strdup (SF_META_FILE));
  if (meta->current != NULL)
    g_hash_table_add (keep, rev_file (pool, meta->current));
  for (guint i = 0; i < meta->kept->len; i++)
    g_hash_table_add (keep, rev_file (pool, meta->kept->pdata[i]));
  if (meta->started && meta->working != NULL)
    g_hash_table_add (keep, g_strdup (meta->working));
  if (meta->started && meta->base != NULL)
    g_hash_table_add (keep, g_strdup (meta->base));
  if (transfer != NULL)
    g_hash_table_add (keep, g_strdup (transfer));

  dir = sf_opendir (v->fd);
  if (dir == NULL)
    return;
  while ((de = readdir (dir)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0 ||
          g_hash_table_contains (keep, de->d_name))
        continue;
      pool->host->log (pool->host, QUBE_LOG_INFO,
                       "pool '%s': removing leftover '%s' of volume '%s'",
                       pool->name, de->d_name, v->vid);
      sf_remove_tree (v->fd, de->d_name);
    }
  closedir (dir);
  fsync (v->fd);
}

/* Opens the volume named by `vid`.  When it does not exist: with
 * `must_exist` an error, otherwise a volume with fd == -1. */
static SfVolume *
volume_open (QubePool *pool, const char *vid, gboolean must_exist,
             GError **error)
{
  g_autoptr (SfVolume) v = g_new0 (SfVolume, 1);

  v->pool = pool;
  v->vid = vid;
  v->qube_fd = -1;
  v->fd = -1;
  if (!sf_vid_split (vid, &v->qube, &v->name, error))
    return NULL;
  v->qube_fd = sf_open_dir (pool->dir_fd, v->qube, FALSE);
  if (v->qube_fd >= 0)
    v->fd = sf_open_dir (v->qube_fd, v->name, FALSE);
  if (v->fd < 0)
    {
      if (errno == ELOOP || errno == ENOTDIR)
        {
          g_set_error (error, SF_ERROR, QUBE_ABI_E_INVALID,
                       "'%s' in the pool is not a directory (a symlink?)",
                       vid);
          return NULL;
        }
      if (errno != ENOENT)
        {
          g_set_error (error, SF_ERROR, sf_error_from_errno (errno),
                       "cannot open its directory: %s", g_strerror (errno));
          return NULL;
        }
      if (must_exist)
        {
          g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_NOT_FOUND,
                               "no such volume");
          return NULL;
        }
      return g_steal_pointer (&v);
    }
  v->meta = sf_meta_load (v->fd, vid, error);
  if (v->meta == NULL)
    return NULL;
  volume_tidy (v);
  return g_steal_pointer (&v);
}

static gboolean
volume_save (SfVolume *v, GError **error)
{
  return sf_meta_save (v->meta, v->fd, error);
}

static char *
volume_path (SfVolume *v, const char *file)
{
  return g_build_filename (v->pool->dir, v->qube, v->name, file, NULL);
}

static gboolean
fill_dev (SfVolume *v, const char *file, QubeBlockFormat format,
          QubeBlockDev *dev, GError **error)
{
  g_autofree char *path = volume_path (v, file);

  if (dev == NULL || dev->size < sizeof (QubeBlockDev) ||
      strlen (path) >= sizeof dev->path)
    {
      g_set_error (error, SF_ERROR, QUBE_ABI_E_INVALID,
                   "the block device path '%s' does not fit", path);
      return FALSE;
    }
  g_strlcpy (dev->path, path, sizeof dev->path);
  dev->format = format;
  return TRUE;
}

static QubeBlockFormat
pool_block_format (QubePool *pool)
{
  return pool->cow == SF_COW_QCOW2 ? QUBE_BLOCK_QCOW2 : QUBE_BLOCK_RAW;
}

static gboolean
check_size (guint64 size, GError **error)
{
  if (size == 0 || size % 512 != 0)
    {
      g_set_error (error, SF_ERROR, QUBE_ABI_E_INVALID,
                   "size %" G_GUINT64_FORMAT " is not a positive multiple of "
                   "512 bytes", size);
      return FALSE;
    }
  return TRUE;
}

static gboolean
require_stopped (SfVolume *v, GError **error)
{
  const char *transfer = g_hash_table_lookup (v->pool->transfers, v->vid);

  if (v->meta->started)
    {
      g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_BUSY,
                           "it is in use (started)");
      return FALSE;
    }
  if (transfer != NULL)
    {
      g_set_error (error, SF_ERROR, QUBE_ABI_E_BUSY, "an %s is in progress",
                   strcmp (transfer, IMPORT_FILE) == 0 ? "import" : "export");
      return FALSE;
    }
  return TRUE;
}

static gboolean
require_committed (SfVolume *v, GError **error)
{
  if (v->meta->current == NULL)
    {
      g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_NOT_FOUND,
                           "it has no committed data");
      return FALSE;
    }
  return TRUE;
}

/* Makes `src` (an image in the volume directory, format `src_format`) the
 * volume's new committed revision and marks the volume stopped.  A crash at
 * any step leaves either the old revision or the new one committed. */
static gboolean
volume_commit (SfVolume *v, const char *src, const char *src_format,
               guint32 keep, GError **error)
{
  QubePool *pool = v->pool;
  g_autofree char *rev = sf_meta_new_revision_name (v->meta);
  g_autofree char *file = rev_file (pool, rev);
  g_autofree char *part = g_strconcat (file, ".part", NULL);
  g_autoptr (GPtrArray) dropped = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *base = g_steal_pointer (&v->meta->base);

  sf_fault_point ("commit-begin");
  if (pool->cow == SF_COW_QCOW2)
    {
      /* The new revision must stand alone: the overlay's backing file is
       * an older revision that may be pruned. */
      guint64 size, need, alloc;

      sf_file_sizes (v->fd, src, &size, &need);
      if (base != NULL)
        sf_file_sizes (v->fd, base, &size, &alloc);
      else if (v->meta->current != NULL)
        {
          g_autofree char *cur = rev_file (pool, v->meta->current);

          sf_file_sizes (v->fd, cur, &size, &alloc);
        }
      else
        alloc = 0;
      need += alloc;
      if (!require_space (pool, v->fd, "saving its data", need, error) ||
          !cow_convert (pool, v->fd, src, src_format, v->fd, part,
                        image_format (pool->cow), error))
        goto fail;
      sf_fault_point ("commit-written");
      if (!sf_rename (v->fd, part, v->fd, file, error))
        goto fail;
    }
  else
    {
      /* A second name for the same data: until the metadata names it, the
       * working image stays as it was. */
      if (!sf_fsync_file (v->fd, src, error))
        goto fail;
      sf_fault_point ("commit-written");
      if (linkat (v->fd, src, v->fd, file, 0) < 0)
        {
          g_set_error (error, SF_ERROR, sf_error_from_errno (errno),
                       "cannot link '%s' to '%s': %s", src, file,
                       g_strerror (errno));
          goto fail;
        }
      if (!sf_fsync_dir (v->fd, file, error))
        goto fail;
    }
  sf_fault_point ("commit-renamed");

  sf_meta_push_revision (v->meta, rev, keep, dropped);
  v->meta->started = FALSE;
  g_clear_pointer (&v->meta->working, g_free);
  if (!volume_save (v, error))
    {
      sf_unlink (v->fd, file);
      goto fail;
    }
  sf_fault_point ("commit-saved");
  /* Everything below is now a leftover; removing it is only tidying. */
  sf_unlink (v->fd, src);
  if (base != NULL)
    sf_unlink (v->fd, base);
  for (guint i = 0; i < dropped->len; i++)
    {
      g_autofree char *old = rev_file (pool, dropped->pdata[i]);

      sf_unlink (v->fd, old);
    }
  fsync (v->fd);
  return TRUE;

fail:
  sf_unlink (v->fd, part);
  return FALSE;
}

/* --- pool operations ---------------------------------------------------- */

static gboolean
probe_reflink (int dir_fd)
{
  g_autofree char *clone = g_strconcat (PROBE_FILE, ".clone", NULL);
  gboolean ok;

  sf_unlink (dir_fd, PROBE_FILE);
  sf_unlink (dir_fd, clone);
  if (!sf_write_atomic (dir_fd, PROBE_FILE, "reflink probe\n", 14, NULL))
    return FALSE;
  ok = sf_reflink (dir_fd, PROBE_FILE, dir_fd, clone, NULL);
  sf_unlink (dir_fd, PROBE_FILE);
  sf_unlink (dir_fd, clone);
  return ok;
}

static gboolean
have_qemu_img (QubePool *pool)
{
  const char *argv[] = { "qemu-img", "--version", NULL };

  return run_qemu_img (pool, argv, NULL);
}

static gboolean
choose_cow (QubePool *pool, const char *wanted, GError **error)
{
  if (g_strcmp0 (wanted, "copy") == 0)
    pool->cow = SF_COW_COPY;
  else if (g_strcmp0 (wanted, "reflink") == 0)
    {
      if (!probe_reflink (pool->dir_fd))
        {
          g_set_error (error, SF_ERROR, QUBE_ABI_E_UNAVAILABLE,
                       "cow=reflink asked, but the filesystem of '%s' cannot "
                       "make reflinks (use XFS with reflink=1 or btrfs)",
                       pool->dir);
          return FALSE;
        }
      pool->cow = SF_COW_REFLINK;
    }
  else if (g_strcmp0 (wanted, "qcow2") == 0)
    {
      if (!have_qemu_img (pool))
        {
          g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_UNAVAILABLE,
                               "cow=qcow2 needs qemu-img (install the "
                               "package qemu-utils)");
          return FALSE;
        }
      pool->cow = SF_COW_QCOW2;
    }
  else if (probe_reflink (pool->dir_fd))
    pool->cow = SF_COW_REFLINK;
  else if (have_qemu_img (pool))
    pool->cow = SF_COW_QCOW2;
  else
    {
      g_set_error (error, SF_ERROR, QUBE_ABI_E_UNAVAILABLE,
                   "the filesystem of '%s' cannot make reflinks and qemu-img "
                   "is not installed: install qemu-utils, or set cow=copy "
                   "for full copies", pool->dir);
      return FALSE;
    }
  return TRUE;
}

/* The mode is chosen once, when the pool is made, and kept: images written
 * in one mode cannot be read in another. */
static gboolean
load_or_choose_cow (QubePool *pool, const char *wanted, GError **error)
{
  g_autofree char *path = sf_fd_path (pool->dir_fd, POOL_FILE);
  g_autofree char *data = NULL;
  g_autofree char *line = NULL;

  if (g_file_get_contents (path, &data, NULL, NULL))
    {
      g_autofree char *stored = NULL;

      g_strstrip (data);
      if (g_str_has_prefix (data, "mode="))
        stored = g_strdup (data + 5);
      for (guint i = 0; i < G_N_ELEMENTS (cow_names); i++)
        if (g_strcmp0 (stored, cow_names[i]) == 0)
          {
            pool->cow = (SfCow) i;
            if (wanted != NULL && strcmp (wanted, "auto") != 0 &&
                strcmp (wanted, stored) != 0)
              {
                g_set_error (error, SF_ERROR, QUBE_ABI_E_INVALID,
                             "cow=%s asked, but the pool at '%s' was made "
                             "in mode %s", wanted, pool->dir, stored);
                return FALSE;
              }
            return TRUE;
          }
      g_set_error (error, SF_ERROR, QUBE_ABI_E_IO,
                   "'%s/%s' is corrupt", pool->dir, POOL_FILE);
      return FALSE;
    }
  if (!choose_cow (pool, wanted, error))
    return FALSE;
  line = g_strdup_printf ("mode=%s\n", cow_names[pool->cow]);
  return sf_write_atomic (pool->dir_fd, POOL_FILE, line, strlen (line),
                          error);
}

/* Finishes what a crash interrupted anywhere in the pool. */
static void
pool_tidy (QubePool *pool)
{
  DIR *top = sf_opendir (pool->dir_fd);
  struct dirent *de;

  if (top == NULL)
    return;
  while ((de = readdir (top)) != NULL)
    {
      int qube_fd;
      DIR *qdir;
      struct dirent *ve;

      if (g_str_has_prefix (de->d_name, PROBE_FILE) ||
          strcmp (de->d_name, POOL_FILE ".part") == 0)
        {
          sf_unlink (pool->dir_fd, de->d_name);
          continue;
        }
      if (!sf_name_is_valid (de->d_name))
        continue;
      qube_fd = sf_open_dir (pool->dir_fd, de->d_name, FALSE);
      if (qube_fd < 0)
        continue;
      qdir = fdopendir (qube_fd);
      if (qdir == NULL)
        {
          close (qube_fd);
          continue;
        }
      while ((ve = readdir (qdir)) != NULL)
        {
          if (ve->d_name[0] == '.' &&
              (g_str_has_suffix (ve->d_name, ".creating") ||
               g_str_has_suffix (ve->d_name, ".removing")))
            {
              sf_remove_tree (qube_fd, ve->d_name);
              continue;
            }
          if (sf_name_is_valid (ve->d_name))
            {
              g_autofree char *vid = g_strdup_printf ("%s/%s", de->d_name,
                                                      ve->d_name);
              g_autoptr (SfVolume) v = volume_open (pool, vid, FALSE, NULL);

              (void) v; /* opening tidies it */
            }
        }
      closedir (qdir);
    }
  closedir (top);
}

static void
pool_free (QubePool *pool)
{
  if (pool->dir_fd >= 0)
    close (pool->dir_fd);
  g_free (pool->name);
  g_free (pool->dir);
  g_hash_table_unref (pool->transfers);
  g_free (pool);
}

static int
sf_pool_open (void *plugin, const char *pool_name,
              const QubeKeyValue *options, uint32_t n_options, int create,
              QubePool **out)
{
  const QubeHost *host = plugin;
  QubePool *pool = g_new0 (QubePool, 1);
  g_autoptr (GError) error = NULL;
  const char *dir = NULL, *cow = NULL;
  g_autofree char *default_dir = NULL;
  struct stat st;

  pool->host = host;
  pool->name = g_strdup (pool_name);
  pool->dir_fd = -1;
  pool->transfers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           NULL);
  for (uint32_t i = 0; i < n_options; i++)
    {
      if (strcmp (options[i].key, "dir_path") == 0)
        dir = options[i].value;
      else if (strcmp (options[i].key, "cow") == 0)
        cow = options[i].value;
      else
        {
          g_set_error (&error, SF_ERROR, QUBE_ABI_E_INVALID,
                       "unknown option '%s' (known: dir_path, cow)",
                       options[i].key);
          goto fail;
        }
    }
  if (cow != NULL && !g_strv_contains ((const char *const[]){ "auto",
                                         "reflink", "qcow2", "copy", NULL },
                                       cow))
    {
      g_set_error (&error, SF_ERROR, QUBE_ABI_E_INVALID,
                   "cow=%s is not one of auto, reflink, qcow2, copy", cow);
      goto fail;
    }
  if (dir == NULL && g_strcmp0 (pool_name, "default") == 0 &&
      host->state_dir != NULL)
    dir = default_dir = g_build_filename (host->state_dir, "pools", "default",
                                          NULL);
  if (dir == NULL || !g_path_is_absolute (dir))
    {
      g_set_error_literal (&error, SF_ERROR, QUBE_ABI_E_INVALID,
                           "option dir_path (an absolute directory) is "
                           "required");
      goto fail;
    }
  if (create && g_mkdir_with_parents (dir, 0750) < 0)
    {
      g_set_error (&error, SF_ERROR, sf_error_from_errno (errno),
                   "cannot make directory '%s': %s", dir, g_strerror (errno));
      goto fail;
    }
  pool->dir_fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  pool->dir = realpath (dir, NULL);
  if (pool->dir_fd < 0 || pool->dir == NULL)
    {
      g_set_error (&error, SF_ERROR, sf_error_from_errno (errno),
                   "cannot open directory '%s': %s", dir, g_strerror (errno));
      goto fail;
    }
  if (!create && fstatat (pool->dir_fd, POOL_FILE, &st,
                          AT_SYMLINK_NOFOLLOW) < 0)
    {
      g_set_error (&error, SF_ERROR, QUBE_ABI_E_NOT_FOUND,
                   "'%s' is not a file pool (no %s there)", dir, POOL_FILE);
      goto fail;
    }
  if (!load_or_choose_cow (pool, cow, &error))
    goto fail;
  pool_tidy (pool);
  host->log (host, QUBE_LOG_DEBUG, "pool '%s' at '%s' in mode %s", pool_name,
             pool->dir, cow_names[pool->cow]);
  *out = pool;
  return 0;

fail:
  {
    int rc = report (pool, NULL, NULL, error);

    pool_free (pool);
    return rc;
  }
}

static int
sf_pool_destroy (QubePool *pool)
{
  g_autoptr (GError) error = NULL;
  DIR *dir = sf_opendir (pool->dir_fd);
  struct dirent *de;
  gboolean busy = FALSE;

  while (dir != NULL && (de = readdir (dir)) != NULL)
    if (sf_name_is_valid (de->d_name) &&
        unlinkat (pool->dir_fd, de->d_name, AT_REMOVEDIR) < 0 &&
        errno == ENOTEMPTY)
      busy = TRUE;
  if (dir != NULL)
    closedir (dir);
  if (busy)
    {
      g_set_error (&error, SF_ERROR, QUBE_ABI_E_BUSY,
                   "cannot remove the pool at '%s': it holds volumes",
                   pool->dir);
      return report (pool, NULL, NULL, error);
    }
  sf_unlink (pool->dir_fd, POOL_FILE);
  /* The directory itself goes if nothing else lives there. */
  rmdir (pool->dir);
  return 0;
}

static void
sf_pool_close (QubePool *pool)
{
  pool_free (pool);
}

static int
sf_pool_info (QubePool *pool, QubePoolInfo *info)
{
  g_autoptr (GError) error = NULL;
  guint64 capacity, used;

  if (!sf_fs_space (pool->dir_fd, NULL, &capacity, &used, &error))
    return report (pool, NULL, NULL, error);
  info->size_bytes = capacity;
  info->usage_bytes = used;
  g_strlcpy (info->mode, cow_names[pool->cow], sizeof info->mode);
  g_strlcpy (info->location, pool->dir, sizeof info->location);
  if (QUBE_ABI_HAS (QubePoolInfo, info, block_formats))
    info->block_formats = pool_block_format (pool);
  return 0;
}

/* --- volume operations --------------------------------------------------- */

static gboolean
do_create (QubePool *pool, const QubeVolumeSpec *spec, GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, FALSE, error);
  g_autoptr (SfMeta) meta = NULL;
  g_autofree char *creating = NULL;
  int fd;
  gboolean ok;

  if (v == NULL || !check_size (spec->size_bytes, error))
    return FALSE;
  if (v->fd >= 0)
    {
      g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_EXISTS,
                           "it already exists");
      return FALSE;
    }
  if ((spec->flags & QUBE_VOLUME_SNAP_ON_START) && spec->source == NULL)
    {
      g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_INVALID,
                           "a snap_on_start volume needs a source volume");
      return FALSE;
    }
  /* Images are sparse, but a volume the pool could never hold is refused
   * now rather than failing a qube later. */
  if ((spec->flags & QUBE_VOLUME_SAVE_ON_STOP) &&
      !require_space (pool, pool->dir_fd, NULL, spec->size_bytes, error))
    return FALSE;
  if (v->qube_fd < 0)
    v->qube_fd = sf_open_dir (pool->dir_fd, v->qube, TRUE);
  if (v->qube_fd < 0)
    {
      g_set_error (error, SF_ERROR, sf_error_from_errno (errno),
                   "cannot make the directory of qube '%s': %s", v->qube,
                   g_strerror (errno));
      return FALSE;
    }
  creating = g_strdup_printf (".%s.creating", v->name);
  sf_remove_tree (v->qube_fd, creating);
  fd = sf_open_dir (v->qube_fd, creating, TRUE);
  if (fd < 0)
    {
      g_set_error (error, SF_ERROR, sf_error_from_errno (errno),
                   "cannot make its directory: %s", g_strerror (errno));
      return FALSE;
    }
  meta = sf_meta_new ();
  meta->size = spec->size_bytes;
  meta->flags = spec->flags;
  ok = TRUE;
  /* An origin starts with an empty committed revision; a snapshot gets
   * its data from the source at start. */
  if ((spec->flags & QUBE_VOLUME_SAVE_ON_STOP) &&
      !(spec->flags & QUBE_VOLUME_SNAP_ON_START))
    {
      g_autofree char *rev = sf_meta_new_revision_name (meta);
      g_autofree char *file = rev_file (pool, rev);

      ok = cow_empty (pool, fd, file, spec->size_bytes, error);
      meta->current = g_steal_pointer (&rev);
    }
  ok = ok && sf_meta_save (meta, fd, error) && sf_fsync_dir (fd, "it", error);
  close (fd);
  sf_fault_point ("create-made");
  if (ok)
    ok = sf_rename (v->qube_fd, creating, v->qube_fd, v->name, error);
  if (!ok)
    sf_remove_tree (v->qube_fd, creating);
  return ok;
}

static int
sf_volume_create (QubePool *pool, const QubeVolumeSpec *spec)
{
  g_autoptr (GError) error = NULL;

  if (!do_create (pool, spec, &error))
    return report (pool, "create", spec->vid, error);
  return 0;
}

static gboolean
do_remove (QubePool *pool, const QubeVolumeSpec *spec, GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, error);
  g_autofree char *removing = NULL;

  if (v == NULL || !require_stopped (v, error))
    return FALSE;
  removing = g_strdup_printf (".%s.removing", v->name);
  sf_remove_tree (v->qube_fd, removing);
  if (!sf_rename (v->qube_fd, v->name, v->qube_fd, removing, error))
    return FALSE;
  sf_remove_tree (v->qube_fd, removing);
  fsync (v->qube_fd);
  /* The qube's directory goes with its last volume. */
  unlinkat (pool->dir_fd, v->qube, AT_REMOVEDIR);
  return TRUE;
}

static int
sf_volume_remove (QubePool *pool, const QubeVolumeSpec *spec)
{
  g_autoptr (GError) error = NULL;

  if (!do_remove (pool, spec, &error))
    return report (pool, "remove", spec->vid, error);
  return 0;
}

/* A fresh working image from the source's committed data. */
static gboolean
start_snapshot (SfVolume *v, const QubeVolumeSpec *spec, const char *work,
                const char *part, GError **error)
{
  QubePool *pool = v->pool;
  g_autoptr (GError) local = NULL;
  g_autoptr (SfVolume) src = NULL;
  g_autofree char *src_file = NULL;
  guint64 size = v->meta->size;

  if (spec->source == NULL)
    {
      g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_INVALID,
                           "a snap_on_start volume needs a source volume");
      return FALSE;
    }
  src = volume_open (pool, spec->source, TRUE, &local);
  if (src == NULL || !require_committed (src, &local))
    {
      g_set_error (error, SF_ERROR, local->code, "source volume '%s': %s",
                   spec->source, local->message);
      return FALSE;
    }
  size = MAX (size, src->meta->size);
  src_file = rev_file (pool, src->meta->current);
  if (pool->cow == SF_COW_QCOW2)
    {
      g_autofree char *base_part = g_strconcat (BASE_FILE, ".part", NULL);

      /* A hard link keeps this revision alive for us even if the source
       * prunes it while the qube runs. */
      if (linkat (src->fd, src_file, v->fd, base_part, 0) < 0)
        {
          g_set_error (error, SF_ERROR, sf_error_from_errno (errno),
                       "cannot link the source's revision: %s",
                       g_strerror (errno));
          return FALSE;
        }
      if (!sf_rename (v->fd, base_part, v->fd, BASE_FILE, error) ||
          !cow_view (pool, v->fd, BASE_FILE, part, size, error))
        {
          sf_unlink (v->fd, BASE_FILE);
          return FALSE;
        }
      v->meta->base = g_strdup (BASE_FILE);
    }
  else
    {
      if (pool->cow == SF_COW_REFLINK)
        {
          if (!sf_reflink (src->fd, src_file, v->fd, part, error))
            return FALSE;
        }
      else
        {
          guint64 src_size, src_alloc;

          sf_file_sizes (src->fd, src_file, &src_size, &src_alloc);
          if (!require_space (pool, v->fd, "a full copy of the source",
                              src_alloc, error) ||
              !sf_copy_sparse (src->fd, src_file, v->fd, part, error))
            return FALSE;
        }
      if (!sf_grow (v->fd, part, size, error))
        return FALSE;
    }
  g_free (v->meta->snapshot_of);
  v->meta->snapshot_of = g_strdup (spec->source);
  g_free (v->meta->snapshot_rev);
  v->meta->snapshot_rev = g_strdup (src->meta->current);
  return TRUE;
}

static gboolean
do_start (QubePool *pool, const QubeVolumeSpec *spec, QubeBlockDev *dev,
          GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, error);
  g_autofree char *work = work_file (pool);
  g_autofree char *part = NULL;
  gboolean ok;

  if (v == NULL)
    return FALSE;
  if (g_hash_table_contains (pool->transfers, spec->vid))
    return require_stopped (v, error);
  if (v->meta->started)
    {
      /* Started already, e.g. the host went down with the qube running:
       * keep what an origin holds (it is committed at the next stop). */
      if (spec->flags & QUBE_VOLUME_SAVE_ON_STOP)
        return fill_dev (v, v->meta->working, pool_block_format (pool), dev,
                         error);
      v->meta->started = FALSE;
      g_clear_pointer (&v->meta->base, g_free);
      if (!volume_save (v, error))
        return FALSE;
      volume_tidy (v);
    }
  part = g_strconcat (work, ".part", NULL);
  if (spec->flags & QUBE_VOLUME_SNAP_ON_START)
    ok = start_snapshot (v, spec, work, part, error);
  else if (spec->flags & QUBE_VOLUME_SAVE_ON_STOP)
    {
      g_autofree char *cur = NULL;

      ok = require_committed (v, error);
      if (ok)
        {
          cur = rev_file (pool, v->meta->current);
          ok = cow_view (pool, v->fd, cur, part, v->meta->size, error);
        }
    }
  else
    /* Volatile: made empty; it may fill up, so it must fit. */
    ok = require_space (pool, v->fd, NULL, v->meta->size, error) &&
         cow_empty (pool, v->fd, part, v->meta->size, error);
  if (!ok)
    {
      sf_unlink (v->fd, part);
      return FALSE;
    }
  if (!sf_fsync_file (v->fd, part, error) ||
      !sf_rename (v->fd, part, v->fd, work, error))
    return FALSE;
  v->meta->started = TRUE;
  g_free (v->meta->working);
  v->meta->working = g_strdup (work);
  if (!volume_save (v, error))
    return FALSE;
  return fill_dev (v, work, pool_block_format (pool), dev, error);
}

static int
sf_volume_start (QubePool *pool, const QubeVolumeSpec *spec,
                 QubeBlockDev *dev)
{
  g_autoptr (GError) error = NULL;

  if (!do_start (pool, spec, dev, &error))
    return report (pool, "start", spec->vid, error);
  return 0;
}

static gboolean
do_stop (QubePool *pool, const QubeVolumeSpec *spec, GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, error);
  guint64 size, alloc;

  if (v == NULL)
    return FALSE;
  if (!v->meta->started)
    return TRUE;
  sf_file_sizes (v->fd, v->meta->working, &size, &alloc);
  if ((spec->flags & QUBE_VOLUME_SAVE_ON_STOP) && size > 0)
    {
      g_autofree char *work = g_strdup (v->meta->working);

      return volume_commit (v, work, image_format (pool->cow),
                           spec->revisions_to_keep, error);
    }
  if (spec->flags & QUBE_VOLUME_SAVE_ON_STOP)
    pool->host->log (pool->host, QUBE_LOG_WARNING,
                     "pool '%s': volume '%s' lost its working image; "
                     "nothing to save", pool->name, spec->vid);
  /* Discard: once the metadata says stopped, the images are leftovers. */
  v->meta->started = FALSE;
  g_clear_pointer (&v->meta->working, g_free);
  g_clear_pointer (&v->meta->base, g_free);
  if (!(spec->flags & QUBE_VOLUME_SAVE_ON_STOP))
    g_clear_pointer (&v->meta->snapshot_rev, g_free);
  if (!volume_save (v, error))
    return FALSE;
  volume_tidy (v);
  return TRUE;
}

static int
sf_volume_stop (QubePool *pool, const QubeVolumeSpec *spec)
{
  g_autoptr (GError) error = NULL;

  if (!do_stop (pool, spec, &error))
    return report (pool, "stop", spec->vid, error);
  return 0;
}

/* True when the volume's snapshot was made from an older revision than the
 * source's committed one. */
static gboolean
volume_is_outdated (SfVolume *v)
{
  g_autoptr (SfVolume) src = NULL;

  if (v->meta->snapshot_of == NULL || v->meta->snapshot_rev == NULL)
    return FALSE;
  src = volume_open (v->pool, v->meta->snapshot_of, TRUE, NULL);
  return src == NULL ||
         g_strcmp0 (src->meta->current, v->meta->snapshot_rev) != 0;
}

static gboolean
do_info (QubePool *pool, const QubeVolumeSpec *spec, QubeVolumeInfo *info,
         GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, FALSE, error);
  DIR *dir;
  struct dirent *de;

  if (v == NULL)
    return FALSE;
  info->size_bytes = 0;
  info->usage_bytes = 0;
  info->exists = v->fd >= 0;
  info->started = 0;
  info->outdated = 0;
  info->n_revisions = 0;
  info->created = 0;
  if (v->fd < 0)
    return TRUE;
  info->size_bytes = v->meta->size;
  info->started = v->meta->started;
  info->outdated = volume_is_outdated (v);
  info->n_revisions = v->meta->kept->len;
  if (v->meta->current != NULL)
    info->created = sf_meta_revision_created (v->meta->current);
  dir = sf_opendir (v->fd);
  while (dir != NULL && (de = readdir (dir)) != NULL)
    {
      guint64 size, alloc;

      sf_file_sizes (v->fd, de->d_name, &size, &alloc);
      info->usage_bytes += alloc;
    }
  if (dir != NULL)
    closedir (dir);
  return TRUE;
}

static int
sf_volume_info (QubePool *pool, const QubeVolumeSpec *spec,
                QubeVolumeInfo *info)
{
  g_autoptr (GError) error = NULL;

  if (!do_info (pool, spec, info, &error))
    return report (pool, "inspect", spec->vid, error);
  return 0;
}

/* The committed image is there, a regular file, and readable (qcow2: its
 * structure checked by qemu-img). */
static gboolean
verify_revision (SfVolume *v, const char *rev, GError **error)
{
  QubePool *pool = v->pool;
  g_autofree char *file = rev_file (pool, rev);
  char byte;
  struct stat st;
  int fd = openat (v->fd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

  if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) ||
      (st.st_size > 0 && pread (fd, &byte, 1, st.st_size - 1) != 1))
    {
      g_set_error (error, SF_ERROR, QUBE_ABI_E_IO,
                   "its committed image '%s' is missing or unreadable: %s",
                   file, g_strerror (errno));
      if (fd >= 0)
        close (fd);
      return FALSE;
    }
  close (fd);
  if (pool->cow == SF_COW_QCOW2)
    {
      g_autofree char *path = sf_fd_path (v->fd, file);
      const char *argv[] = { "qemu-img", "check", "-q", "-f", "qcow2", path,
                             NULL };

      return run_qemu_img (pool, argv, error);
    }
  return TRUE;
}

static gboolean
do_verify (QubePool *pool, const QubeVolumeSpec *spec, GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, error);

  if (v == NULL)
    return FALSE;
  if (v->meta->current != NULL)
    return verify_revision (v, v->meta->current, error);
  if (spec->flags & QUBE_VOLUME_SNAP_ON_START)
    {
      g_autoptr (GError) local = NULL;
      g_autoptr (SfVolume) src = volume_open (pool, spec->source, TRUE,
                                              &local);

      if (src == NULL || !require_committed (src, &local) ||
          !verify_revision (src, src->meta->current, &local))
        {
          g_set_error (error, SF_ERROR, local->code, "source volume '%s': %s",
                       spec->source, local->message);
          return FALSE;
        }
      return TRUE;
    }
  if (spec->flags & QUBE_VOLUME_SAVE_ON_STOP)
    return require_committed (v, error);
  return TRUE; /* volatile: nothing is kept */
}

static int
sf_volume_verify (QubePool *pool, const QubeVolumeSpec *spec)
{
  g_autoptr (GError) error = NULL;

  if (!do_verify (pool, spec, &error))
    return report (pool, "verify", spec->vid, error);
  return 0;
}

static gboolean
do_resize (QubePool *pool, const QubeVolumeSpec *spec, guint64 new_size,
           GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, error);

  if (v == NULL || !check_size (new_size, error))
    return FALSE;
  if (new_size < v->meta->size)
    {
      g_autofree char *from = sf_format_mib (v->meta->size, FALSE);
      g_autofree char *to = sf_format_mib (new_size, FALSE);

      g_set_error (error, SF_ERROR, QUBE_ABI_E_INVALID,
                   "shrinking from %s to %s is refused (it would cut off "
                   "data); only growing is possible", from, to);
      return FALSE;
    }
  if (new_size == v->meta->size)
    return TRUE;
  if (!require_space (pool, v->fd, "growing it",
                      new_size - v->meta->size, error))
    return FALSE;
  /* Committed revisions stay as they are (they may be shared); images are
   * grown to the nominal size when they are next made from them. */
  if (v->meta->started && v->meta->working != NULL)
    {
      if (pool->cow == SF_COW_QCOW2)
        {
          g_autofree char *path = sf_fd_path (v->fd, v->meta->working);
          g_autofree char *size_s = g_strdup_printf ("%" G_GUINT64_FORMAT,
                                                     new_size);
          const char *argv[] = { "qemu-img", "resize", "-q", "-f", "qcow2",
                                 path, size_s, NULL };

          if (!run_qemu_img (pool, argv, error))
            return FALSE;
        }
      else if (!sf_grow (v->fd, v->meta->working, new_size, error))
        return FALSE;
    }
  v->meta->size = new_size;
  return volume_save (v, error);
}

static int
sf_volume_resize (QubePool *pool, const QubeVolumeSpec *spec,
                  uint64_t new_size)
{
  g_autoptr (GError) error = NULL;

  if (!do_resize (pool, spec, new_size, &error))
    return report (pool, "resize", spec->vid, error);
  return 0;
}

static gboolean
do_revert (QubePool *pool, const QubeVolumeSpec *spec, const char *revision,
           GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, error);
  g_autoptr (GPtrArray) dropped = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *target = NULL;

  if (v == NULL || !require_stopped (v, error))
    return FALSE;
  if (revision == NULL)
    {
      if (v->meta->kept->len == 0)
        {
          g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_NOT_FOUND,
                               "it keeps no older revision to revert to");
          return FALSE;
        }
      target = g_strdup (v->meta->kept->pdata[0]);
    }
  else
    {
      for (guint i = 0; i < v->meta->kept->len; i++)
        if (strcmp (v->meta->kept->pdata[i], revision) == 0)
          target = g_strdup (revision);
      if (target == NULL)
        {
          g_autofree char *list = NULL;

          g_ptr_array_add (v->meta->kept, NULL);
          list = g_strjoinv (", ", (char **) v->meta->kept->pdata);
          g_ptr_array_remove_index (v->meta->kept, v->meta->kept->len - 1);
          g_set_error (error, SF_ERROR, QUBE_ABI_E_NOT_FOUND,
                       "it has no revision '%s' (kept: %s)", revision,
                       list[0] ? list : "none");
          return FALSE;
        }
    }
  /* The replaced data stays as the newest kept revision (within
   * revisions_to_keep), so a revert can itself be undone. */
  sf_meta_push_revision (v->meta, target, spec->revisions_to_keep, dropped);
  if (!volume_save (v, error))
    return FALSE;
  volume_tidy (v);
  return TRUE;
}

static int
sf_volume_revert (QubePool *pool, const QubeVolumeSpec *spec,
                  const char *revision)
{
  g_autoptr (GError) error = NULL;

  if (!do_revert (pool, spec, revision, &error))
    return report (pool, "revert", spec->vid, error);
  return 0;
}

static int
sf_volume_revisions (QubePool *pool, const QubeVolumeSpec *spec,
                     QubeRevision **revisions, uint32_t *n_revisions)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, &error);
  QubeRevision *list;
  guint n;

  if (v == NULL)
    return report (pool, "list the revisions of", spec->vid, error);
  n = v->meta->kept->len;
  list = calloc (n > 0 ? n : 1, sizeof *list);
  if (list == NULL)
    {
      g_set_error_literal (&error, SF_ERROR, QUBE_ABI_E_NO_MEMORY,
                           "out of memory");
      return report (pool, "list the revisions of", spec->vid, error);
    }
  for (guint i = 0; i < n; i++)
    {
      g_strlcpy (list[i].name, v->meta->kept->pdata[i], sizeof list[i].name);
      list[i].created = sf_meta_revision_created (v->meta->kept->pdata[i]);
    }
  *revisions = list;
  *n_revisions = n;
  return 0;
}

static gboolean
do_import_begin (QubePool *pool, const QubeVolumeSpec *spec,
                 guint64 size_bytes, QubeBlockDev *dev, GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, error);
  guint64 need;

  if (v == NULL || !require_stopped (v, error))
    return FALSE;
  if (!(spec->flags & QUBE_VOLUME_SAVE_ON_STOP))
    {
      g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_INVALID,
                           "it keeps no data of its own (not save_on_stop)");
      return FALSE;
    }
  if (size_bytes > v->meta->size)
    {
      g_autofree char *data_s = sf_format_mib (size_bytes, TRUE);
      g_autofree char *size_s = sf_format_mib (v->meta->size, FALSE);

      g_set_error (error, SF_ERROR, QUBE_ABI_E_INVALID,
                   "%s of data (%" G_GUINT64_FORMAT " bytes) does not fit in "
                   "its %s (%" G_GUINT64_FORMAT " bytes); resize it first",
                   data_s, size_bytes, size_s, v->meta->size);
      return FALSE;
    }
  /* qcow2 mode converts the raw data once more at the end. */
  need = pool->cow == SF_COW_QCOW2 ? 2 * size_bytes : size_bytes;
  if (!require_space (pool, v->fd, "the import", need, error) ||
      !sf_create_sparse (v->fd, IMPORT_FILE, size_bytes, error))
    return FALSE;
  if (!fill_dev (v, IMPORT_FILE, QUBE_BLOCK_RAW, dev, error))
    {
      sf_unlink (v->fd, IMPORT_FILE);
      return FALSE;
    }
  g_hash_table_insert (pool->transfers, g_strdup (spec->vid), IMPORT_FILE);
  return TRUE;
}

static int
sf_volume_import_begin (QubePool *pool, const QubeVolumeSpec *spec,
                        uint64_t size_bytes, QubeBlockDev *dev)
{
  g_autoptr (GError) error = NULL;

  if (!do_import_begin (pool, spec, size_bytes, dev, &error))
    return report (pool, "import into", spec->vid, error);
  return 0;
}

static gboolean
do_import_end (QubePool *pool, const QubeVolumeSpec *spec, int commit,
               GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, error);
  guint64 size, alloc;

  if (v == NULL)
    return FALSE;
  if (g_strcmp0 (g_hash_table_lookup (pool->transfers, spec->vid),
                 IMPORT_FILE) != 0)
    {
      g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_INVALID,
                           "no import is in progress");
      return FALSE;
    }
  g_hash_table_remove (pool->transfers, spec->vid);
  if (!commit)
    {
      sf_unlink (v->fd, IMPORT_FILE);
      return TRUE;
    }
  sf_file_sizes (v->fd, IMPORT_FILE, &size, &alloc);
  if (size > v->meta->size)
    {
      g_autofree char *data_s = sf_format_mib (size, TRUE);
      g_autofree char *size_s = sf_format_mib (v->meta->size, FALSE);

      sf_unlink (v->fd, IMPORT_FILE);
      g_set_error (error, SF_ERROR, QUBE_ABI_E_INVALID,
                   "%s of data (%" G_GUINT64_FORMAT " bytes) was written, "
                   "more than its %s (%" G_GUINT64_FORMAT " bytes); the "
                   "import is discarded", data_s, size, size_s,
                   v->meta->size);
      return FALSE;
    }
  if (!sf_grow (v->fd, IMPORT_FILE, v->meta->size, error) ||
      !volume_commit (v, IMPORT_FILE, "raw", spec->revisions_to_keep, error))
    {
      sf_unlink (v->fd, IMPORT_FILE);
      return FALSE;
    }
  return TRUE;
}

static int
sf_volume_import_end (QubePool *pool, const QubeVolumeSpec *spec, int commit)
{
  g_autoptr (GError) error = NULL;

  if (!do_import_end (pool, spec, commit, &error))
    return report (pool, "import into", spec->vid, error);
  return 0;
}

static gboolean
do_export_begin (QubePool *pool, const QubeVolumeSpec *spec,
                 QubeBlockDev *dev, GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, error);
  g_autofree char *file = NULL;
  g_autofree char *part = g_strconcat (EXPORT_FILE, ".part", NULL);
  guint64 size, alloc;
  gboolean ok;

  if (v == NULL || !require_committed (v, error))
    return FALSE;
  if (g_hash_table_contains (pool->transfers, spec->vid))
    return require_stopped (v, error);
  file = rev_file (pool, v->meta->current);
  sf_file_sizes (v->fd, file, &size, &alloc);
  if (pool->cow == SF_COW_QCOW2)
    ok = require_space (pool, v->fd, "a raw copy", size, error) &&
         cow_convert (pool, v->fd, file, "qcow2", v->fd, part, "raw", error);
  else if (size == v->meta->size)
    {
      /* Revisions are never modified: a second name is a stable copy. */
      ok = linkat (v->fd, file, v->fd, part, 0) == 0;
      if (!ok)
        g_set_error (error, SF_ERROR, sf_error_from_errno (errno),
                     "cannot link '%s': %s", file, g_strerror (errno));
    }
  else
    ok = cow_view (pool, v->fd, file, part, v->meta->size, error);
  if (ok)
    ok = sf_grow (v->fd, part, v->meta->size, error) &&
         sf_rename (v->fd, part, v->fd, EXPORT_FILE, error) &&
         fill_dev (v, EXPORT_FILE, QUBE_BLOCK_RAW, dev, error);
  if (!ok)
    {
      sf_unlink (v->fd, part);
      sf_unlink (v->fd, EXPORT_FILE);
      return FALSE;
    }
  g_hash_table_insert (pool->transfers, g_strdup (spec->vid), EXPORT_FILE);
  return TRUE;
}

static int
sf_volume_export_begin (QubePool *pool, const QubeVolumeSpec *spec,
                        QubeBlockDev *dev)
{
  g_autoptr (GError) error = NULL;

  if (!do_export_begin (pool, spec, dev, &error))
    return report (pool, "export", spec->vid, error);
  return 0;
}

static int
sf_volume_export_end (QubePool *pool, const QubeVolumeSpec *spec)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, &error);

  if (v == NULL)
    return report (pool, "export", spec->vid, error);
  if (g_strcmp0 (g_hash_table_lookup (pool->transfers, spec->vid),
                 EXPORT_FILE) != 0)
    {
      g_set_error_literal (&error, SF_ERROR, QUBE_ABI_E_INVALID,
                           "no export is in progress");
      return report (pool, "export", spec->vid, error);
    }
  g_hash_table_remove (pool->transfers, spec->vid);
  sf_unlink (v->fd, EXPORT_FILE);
  fsync (v->fd);
  return 0;
}

/* Puts src's committed image into the new volume's directory as `dst`. */
static gboolean
clone_revision (QubePool *pool, SfVolume *src, int dst_fd, const char *dst,
                GError **error)
{
  g_autofree char *src_file = rev_file (src->pool, src->meta->current);
  g_autoptr (GError) local = NULL;
  guint64 size, alloc;

  if (src->pool->cow != pool->cow &&
      (src->pool->cow == SF_COW_QCOW2 || pool->cow == SF_COW_QCOW2))
    return cow_convert (pool, src->fd, src_file,
                        image_format (src->pool->cow), dst_fd, dst,
                        image_format (pool->cow), error);
  if (pool->cow == SF_COW_REFLINK &&
      sf_reflink (src->fd, src_file, dst_fd, dst, &local))
    return TRUE;
  /* qcow2 revisions stand alone and are never modified: sharing the file
   * is copy-on-write by construction. */
  if (pool->cow == SF_COW_QCOW2 &&
      linkat (src->fd, src_file, dst_fd, dst, 0) == 0)
    return TRUE;
  sf_file_sizes (src->fd, src_file, &size, &alloc);
  return require_space (pool, dst_fd, "a full copy", alloc, error) &&
         sf_copy_sparse (src->fd, src_file, dst_fd, dst, error);
}

static gboolean
do_clone (QubePool *pool, const QubeVolumeSpec *dst, QubePool *src_pool,
          const QubeVolumeSpec *src, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (SfVolume) s = volume_open (src_pool, src->vid, TRUE, &local);
  g_autoptr (SfVolume) v = NULL;
  g_autoptr (SfMeta) meta = NULL;
  g_autofree char *creating = NULL;
  g_autofree char *rev = NULL;
  g_autofree char *file = NULL;
  gboolean ok;
  int fd;

  if (s == NULL || !require_committed (s, &local))
    {
      g_set_error (error, SF_ERROR, local->code,
                   "source volume '%s' of pool '%s': %s", src->vid,
                   src_pool->name, local->message);
      return FALSE;
    }
  v = volume_open (pool, dst->vid, FALSE, error);
  if (v == NULL)
    return FALSE;
  if (v->fd >= 0)
    {
      g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_EXISTS,
                           "it already exists");
      return FALSE;
    }
  if (v->qube_fd < 0)
    v->qube_fd = sf_open_dir (pool->dir_fd, v->qube, TRUE);
  creating = g_strdup_printf (".%s.creating", v->name);
  if (v->qube_fd >= 0)
    {
      sf_remove_tree (v->qube_fd, creating);
      fd = sf_open_dir (v->qube_fd, creating, TRUE);
    }
  else
    fd = -1;
  if (fd < 0)
    {
      g_set_error (error, SF_ERROR, sf_error_from_errno (errno),
                   "cannot make its directory: %s", g_strerror (errno));
      return FALSE;
    }
  meta = sf_meta_new ();
  meta->size = MAX (dst->size_bytes, s->meta->size);
  meta->flags = dst->flags;
  rev = sf_meta_new_revision_name (meta);
  file = rev_file (pool, rev);
  meta->current = g_strdup (rev);
  ok = clone_revision (pool, s, fd, file, error) &&
       sf_meta_save (meta, fd, error) && sf_fsync_dir (fd, "it", error);
  close (fd);
  if (ok)
    ok = sf_rename (v->qube_fd, creating, v->qube_fd, v->name, error);
  if (!ok)
    sf_remove_tree (v->qube_fd, creating);
  return ok;
}

static int
sf_volume_clone (QubePool *pool, const QubeVolumeSpec *dst,
                 QubePool *src_pool, const QubeVolumeSpec *src)
{
  g_autoptr (GError) error = NULL;

  if (!do_clone (pool, dst, src_pool, src, &error))
    return report (pool, "clone into", dst->vid, error);
  return 0;
}

static int
sf_init (const QubeHost *host, void **plugin_data)
{
  *plugin_data = (void *) host;
  return 0;
}

static const QubeStorageOps sf_storage_ops = {
  .size = sizeof (QubeStorageOps),
  .driver = "file",
  .block_formats = QUBE_BLOCK_RAW | QUBE_BLOCK_QCOW2,
  .pool_open = sf_pool_open,
  .pool_destroy = sf_pool_destroy,
  .pool_close = sf_pool_close,
  .pool_info = sf_pool_info,
  .volume_create = sf_volume_create,
  .volume_remove = sf_volume_remove,
  .volume_start = sf_volume_start,
  .volume_stop = sf_volume_stop,
  .volume_info = sf_volume_info,
  .volume_verify = sf_volume_verify,
  .volume_resize = sf_volume_resize,
  .volume_revert = sf_volume_revert,
  .volume_revisions = sf_volume_revisions,
  .volume_import_begin = sf_volume_import_begin,
  .volume_import_end = sf_volume_import_end,
  .volume_export_begin = sf_volume_export_begin,
  .volume_export_end = sf_volume_export_end,
  .volume_clone = sf_volume_clone,
};

QUBE_PLUGIN_DEFINE (.name = "storage-file",
                    .description = "storage pools of image files (reflink, "
                                   "qcow2 or copy)",
                    .version = PACKAGE_VERSION,
                    .license = "LGPL-2.1-or-later",
                    .source = PACKAGE_NAME,
                    .init = sf_init,
                    .storage = &sf_storage_ops);
