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
 *
 * This file: opening, describing and removing pools, and the plugin's
 * descriptor.  Volumes are in sf-volume.c, images in sf-image.c.
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

#include "abi/qube-plugin.h"
#include "abi/qube-storage.h"
#include "sf-fs.h"
#include "sf-meta.h"
#include "sf-pool.h"
#include "sf-volume.h"

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

  return sf_run_qemu_img (pool, argv, NULL);
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
      for (guint i = 0; i < G_N_ELEMENTS (sf_cow_names); i++)
        if (g_strcmp0 (stored, sf_cow_names[i]) == 0)
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
  line = g_strdup_printf ("mode=%s\n", sf_cow_names[pool->cow]);
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
              int fd = sf_open_dir (qube_fd, ve->d_name, FALSE);

              /* A volume another process is making is locked. */
              if (fd >= 0 && flock (fd, LOCK_EX | LOCK_NB) == 0)
                sf_remove_tree (qube_fd, ve->d_name);
              if (fd >= 0)
                close (fd);
              continue;
            }
          if (sf_name_is_valid (ve->d_name))
            {
              g_autofree char *vid = g_strdup_printf ("%s/%s", de->d_name,
                                                      ve->d_name);
              sf_volume_tidy_vid (pool, vid);
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
             pool->dir, sf_cow_names[pool->cow]);
  *out = pool;
  return 0;

fail:
  {
    int rc = sf_report (pool, NULL, NULL, error);

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
      return sf_report (pool, NULL, NULL, error);
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
    return sf_report (pool, NULL, NULL, error);
  info->size_bytes = capacity;
  info->usage_bytes = used;
  g_strlcpy (info->mode, sf_cow_names[pool->cow], sizeof info->mode);
  g_strlcpy (info->location, pool->dir, sizeof info->location);
  if (QUBE_ABI_HAS (QubePoolInfo, info, block_formats))
    info->block_formats = sf_pool_block_format (pool);
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
