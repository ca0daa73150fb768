/* sf-volume.c — volumes of the storage-file driver: the Qubes flag matrix
 * at start and stop, revisions, import and export, clone, and cleaning up
 * after interrupted operations.
 *
 * volume.conf (sf-meta.h) is the single source of truth: a volume is
 * started when it says so, and its committed data is the revision file it
 * names.  Every change is made under a temporary name, flushed, then
 * committed by replacing volume.conf; any file volume.conf does not account
 * for is a leftover that the next operation on the volume removes.
 *
 * Several processes use a pool at once (each `qube` command, the qrexec
 * daemon, qubed), and each tidies what it opens: an operation holds an
 * flock() on the volume's directory while it runs, and only the holder
 * tidies, so that nobody removes the files of an operation in progress in
 * another process.  A volume being made (.NAME.creating) is locked by its
 * maker likewise.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "sf-fs.h"
#include "sf-meta.h"
#include "sf-pool.h"
#include "sf-volume.h"

/* One volume while an operation runs on it. */
typedef struct
{
  QubePool *pool;
  const char *vid;
  char *qube;
  char *name;
  int qube_fd;
  int fd;              /* volume directory, -1 when the volume does not exist */
  gboolean locked;     /* fd is flock()ed: no other process works on it */
  SfMeta *meta;
} SfVolume;

/* How long an operation waits for another process's one on the same
 * volume (a tidy takes milliseconds) before going on without tidying. */
#define VOLUME_LOCK_WAIT_MS 2000

static gboolean
lock_dir (int fd, int wait_ms)
{
  for (int waited = 0;; waited += 10)
    {
      if (flock (fd, LOCK_EX | LOCK_NB) == 0)
        return TRUE;
      if (errno != EWOULDBLOCK || waited >= wait_ms)
        return FALSE;
      g_usleep (10 * 1000);
    }
}

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

  /* Another process's operation may be making these files. */
  if (!v->locked)
    return;
  g_hash_table_add (keep, g_strdup (SF_META_FILE));
  if (meta->current != NULL)
    g_hash_table_add (keep, sf_rev_file (pool, meta->current));
  for (guint i = 0; i < meta->kept->len; i++)
    g_hash_table_add (keep, sf_rev_file (pool, meta->kept->pdata[i]));
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
volume_open_full (QubePool *pool, const char *vid, gboolean must_exist,
                  int lock_wait_ms, GError **error)
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
  v->locked = lock_dir (v->fd, lock_wait_ms);
  volume_tidy (v);
  return g_steal_pointer (&v);
}

static SfVolume *
volume_open (QubePool *pool, const char *vid, gboolean must_exist,
             GError **error)
{
  return volume_open_full (pool, vid, must_exist, VOLUME_LOCK_WAIT_MS, error);
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
  g_autofree char *file = sf_rev_file (pool, rev);
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
          g_autofree char *cur = sf_rev_file (pool, v->meta->current);

          sf_file_sizes (v->fd, cur, &size, &alloc);
        }
      else
        alloc = 0;
      need += alloc;
      if (!sf_require_space (pool, v->fd, "saving its data", need, error) ||
          !sf_cow_convert (pool, v->fd, src, src_format, v->fd, part,
                           sf_image_format (pool->cow), error))
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
      g_autofree char *old = sf_rev_file (pool, dropped->pdata[i]);

      sf_unlink (v->fd, old);
    }
  fsync (v->fd);
  return TRUE;

fail:
  sf_unlink (v->fd, part);
  return FALSE;
}

void
sf_volume_tidy_vid (QubePool *pool, const char *vid)
{
  /* Opening a volume tidies it, unless another process works on it. */
  g_autoptr (SfVolume) v = volume_open_full (pool, vid, FALSE, 0, NULL);

  (void) v;
}

/* An ABI entry point (whose parameters include `pool`) that runs `call`,
 * a do_*() function taking &error, and reports its error as "cannot <verb>
 * volume '<vid of spec>'". */
#define SF_VOLUME_OP(name, verb, spec, params, call)                     \
  int name params                                                        \
  {                                                                      \
    g_autoptr (GError) error = NULL;                                     \
                                                                         \
    if (!(call))                                                         \
      return sf_report (pool, verb, (spec)->vid, error);                 \
    return 0;                                                            \
  }

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
      !sf_require_space (pool, pool->dir_fd, NULL, spec->size_bytes, error))
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
  if (fd >= 0)
    (void) flock (fd, LOCK_EX | LOCK_NB);
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
      g_autofree char *file = sf_rev_file (pool, rev);

      ok = sf_cow_empty (pool, fd, file, spec->size_bytes, error);
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

SF_VOLUME_OP (sf_volume_create, "create", spec,
              (QubePool *pool, const QubeVolumeSpec *spec),
              do_create (pool, spec, &error))

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

SF_VOLUME_OP (sf_volume_remove, "remove", spec,
              (QubePool *pool, const QubeVolumeSpec *spec),
              do_remove (pool, spec, &error))

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
  src_file = sf_rev_file (pool, src->meta->current);
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
          !sf_cow_view (pool, v->fd, BASE_FILE, part, size, error))
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
          if (!sf_require_space (pool, v->fd, "a full copy of the source",
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
  g_autofree char *work = sf_work_file (pool);
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
        return fill_dev (v, v->meta->working, sf_pool_block_format (pool), dev,
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
          cur = sf_rev_file (pool, v->meta->current);
          ok = sf_cow_view (pool, v->fd, cur, part, v->meta->size, error);
        }
    }
  else
    /* Volatile: made empty; it may fill up, so it must fit. */
    ok = sf_require_space (pool, v->fd, NULL, v->meta->size, error) &&
         sf_cow_empty (pool, v->fd, part, v->meta->size, error);
  if (!ok)
    {
      sf_unlink (v->fd, part);
      return FALSE;
    }
  if (!sf_fsync_file (v->fd, part, error) ||
      !sf_rename (v->fd, part, v->fd, work, error))
    return FALSE;
  sf_fault_point ("start-made");
  v->meta->started = TRUE;
  g_free (v->meta->working);
  v->meta->working = g_strdup (work);
  if (!volume_save (v, error))
    return FALSE;
  return fill_dev (v, work, sf_pool_block_format (pool), dev, error);
}

SF_VOLUME_OP (sf_volume_start, "start", spec,
              (QubePool *pool, const QubeVolumeSpec *spec, QubeBlockDev *dev),
              do_start (pool, spec, dev, &error))

static gboolean
do_stop (QubePool *pool, const QubeVolumeSpec *spec, GError **error)
{
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, error);
  guint64 size, alloc;

  if (v == NULL)
    return FALSE;
  if (!v->meta->started)
    return TRUE;
  size = 0;
  if (v->meta->working != NULL)
    sf_file_sizes (v->fd, v->meta->working, &size, &alloc);
  if ((spec->flags & QUBE_VOLUME_SAVE_ON_STOP) && size > 0)
    {
      g_autofree char *work = g_strdup (v->meta->working);

      return volume_commit (v, work, sf_image_format (pool->cow),
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

SF_VOLUME_OP (sf_volume_stop, "stop", spec,
              (QubePool *pool, const QubeVolumeSpec *spec),
              do_stop (pool, spec, &error))

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

      /* base.qcow2 is the source's data, counted there. */
      if (strcmp (de->d_name, BASE_FILE) == 0)
        continue;
      sf_file_sizes (v->fd, de->d_name, &size, &alloc);
      info->usage_bytes += alloc;
    }
  if (dir != NULL)
    closedir (dir);
  return TRUE;
}

SF_VOLUME_OP (sf_volume_info, "inspect", spec,
              (QubePool *pool, const QubeVolumeSpec *spec,
               QubeVolumeInfo *info),
              do_info (pool, spec, info, &error))

/* The committed image is there, a regular file, and readable (qcow2: its
 * structure checked by qemu-img). */
static gboolean
verify_revision (SfVolume *v, const char *rev, GError **error)
{
  QubePool *pool = v->pool;
  g_autofree char *file = sf_rev_file (pool, rev);
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

      return sf_run_qemu_img (pool, argv, error);
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

SF_VOLUME_OP (sf_volume_verify, "verify", spec,
              (QubePool *pool, const QubeVolumeSpec *spec),
              do_verify (pool, spec, &error))

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
  if (!sf_require_space (pool, v->fd, "growing it",
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

          if (!sf_run_qemu_img (pool, argv, error))
            return FALSE;
        }
      else if (!sf_grow (v->fd, v->meta->working, new_size, error))
        return FALSE;
    }
  v->meta->size = new_size;
  return volume_save (v, error);
}

SF_VOLUME_OP (sf_volume_resize, "resize", spec,
              (QubePool *pool, const QubeVolumeSpec *spec, uint64_t new_size),
              do_resize (pool, spec, new_size, &error))

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
          g_autoptr (GString) list = g_string_new (NULL);

          for (guint i = 0; i < v->meta->kept->len; i++)
            g_string_append_printf (list, "%s%s", i > 0 ? ", " : "",
                                    (const char *) v->meta->kept->pdata[i]);
          g_set_error (error, SF_ERROR, QUBE_ABI_E_NOT_FOUND,
                       "it has no revision '%s' (kept: %s)", revision,
                       list->len > 0 ? list->str : "none");
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

SF_VOLUME_OP (sf_volume_revert, "revert", spec,
              (QubePool *pool, const QubeVolumeSpec *spec,
               const char *revision),
              do_revert (pool, spec, revision, &error))

int
sf_volume_revisions (QubePool *pool, const QubeVolumeSpec *spec,
                     QubeRevision **revisions, uint32_t *n_revisions)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, &error);
  QubeRevision *list;
  guint n;

  if (v == NULL)
    return sf_report (pool, "list the revisions of", spec->vid, error);
  n = v->meta->kept->len;
  list = calloc (n > 0 ? n : 1, sizeof *list);
  if (list == NULL)
    {
      g_set_error_literal (&error, SF_ERROR, QUBE_ABI_E_NO_MEMORY,
                           "out of memory");
      return sf_report (pool, "list the revisions of", spec->vid, error);
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
  if (!sf_require_space (pool, v->fd, "the import", need, error) ||
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

SF_VOLUME_OP (sf_volume_import_begin, "import into", spec,
              (QubePool *pool, const QubeVolumeSpec *spec, uint64_t size_bytes,
               QubeBlockDev *dev),
              do_import_begin (pool, spec, size_bytes, dev, &error))

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

SF_VOLUME_OP (sf_volume_import_end, "import into", spec,
              (QubePool *pool, const QubeVolumeSpec *spec, int commit),
              do_import_end (pool, spec, commit, &error))

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
  file = sf_rev_file (pool, v->meta->current);
  sf_file_sizes (v->fd, file, &size, &alloc);
  if (pool->cow == SF_COW_QCOW2)
    ok = sf_require_space (pool, v->fd, "a raw copy", size, error) &&
         sf_cow_convert (pool, v->fd, file, "qcow2", v->fd, part, "raw", error);
  else if (size == v->meta->size)
    {
      /* Revisions are never modified: a second name is a stable copy. */
      ok = linkat (v->fd, file, v->fd, part, 0) == 0;
      if (!ok)
        g_set_error (error, SF_ERROR, sf_error_from_errno (errno),
                     "cannot link '%s': %s", file, g_strerror (errno));
    }
  else
    ok = sf_cow_view (pool, v->fd, file, part, v->meta->size, error);
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

SF_VOLUME_OP (sf_volume_export_begin, "export", spec,
              (QubePool *pool, const QubeVolumeSpec *spec, QubeBlockDev *dev),
              do_export_begin (pool, spec, dev, &error))

int
sf_volume_export_end (QubePool *pool, const QubeVolumeSpec *spec)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SfVolume) v = volume_open (pool, spec->vid, TRUE, &error);

  if (v == NULL)
    return sf_report (pool, "export", spec->vid, error);
  if (g_strcmp0 (g_hash_table_lookup (pool->transfers, spec->vid),
                 EXPORT_FILE) != 0)
    {
      g_set_error_literal (&error, SF_ERROR, QUBE_ABI_E_INVALID,
                           "no export is in progress");
      return sf_report (pool, "export", spec->vid, error);
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
  g_autofree char *src_file = sf_rev_file (src->pool, src->meta->current);
  g_autoptr (GError) local = NULL;
  guint64 size, alloc;

  if (src->pool->cow != pool->cow &&
      (src->pool->cow == SF_COW_QCOW2 || pool->cow == SF_COW_QCOW2))
    return sf_cow_convert (pool, src->fd, src_file,
                           sf_image_format (src->pool->cow), dst_fd, dst,
                           sf_image_format (pool->cow), error);
  if (pool->cow == SF_COW_REFLINK &&
      sf_reflink (src->fd, src_file, dst_fd, dst, &local))
    return TRUE;
  /* qcow2 revisions stand alone and are never modified: sharing the file
   * is copy-on-write by construction. */
  if (pool->cow == SF_COW_QCOW2 &&
      linkat (src->fd, src_file, dst_fd, dst, 0) == 0)
    return TRUE;
  sf_file_sizes (src->fd, src_file, &size, &alloc);
  return sf_require_space (pool, dst_fd, "a full copy", alloc, error) &&
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
      if (fd >= 0)
        (void) flock (fd, LOCK_EX | LOCK_NB);
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
  file = sf_rev_file (pool, rev);
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

SF_VOLUME_OP (sf_volume_clone, "clone into", dst,
              (QubePool *pool, const QubeVolumeSpec *dst, QubePool *src_pool,
               const QubeVolumeSpec *src),
              do_clone (pool, dst, src_pool, src, &error))
