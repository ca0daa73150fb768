/* sf-image.c — naming and making images in a pool's copy-on-write mode
 * (reflink, qcow2 through qemu-img, or full copies), and the error and
 * space checks every operation shares.  See sf-pool.h. */
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

#include "sf-fs.h"
#include "sf-meta.h"
#include "sf-pool.h"

const char *const sf_cow_names[SF_COW_COPY + 1] = { "reflink", "qcow2", "copy" };

const char *
sf_image_ext (SfCow cow)
{
  return cow == SF_COW_QCOW2 ? ".qcow2" : ".img";
}

const char *
sf_image_format (SfCow cow)
{
  return cow == SF_COW_QCOW2 ? "qcow2" : "raw";
}

char *
sf_rev_file (QubePool *pool, const char *rev)
{
  return g_strconcat ("rev-", rev, sf_image_ext (pool->cow), NULL);
}

char *
sf_work_file (QubePool *pool)
{
  return g_strconcat ("work", sf_image_ext (pool->cow), NULL);
}

/* Hands an error back through the ABI. */
int
sf_report (QubePool *pool, const char *op, const char *vid, GError *error)
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

gboolean
sf_run_qemu_img (QubePool *pool, const char *const *argv, GError **error)
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
gboolean
sf_require_space (QubePool *pool, int dir_fd, const char *what, guint64 need,
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

/* A new image `dst` with the data of the committed image `src` of the same
 * directory, `size` bytes long, cheap where the pool's mode allows. */
gboolean
sf_cow_view (QubePool *pool, int fd, const char *src, const char *dst,
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
        if (!sf_require_space (pool, fd, "a full copy", src_alloc, error) ||
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

        return sf_run_qemu_img (pool, argv, error);
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
gboolean
sf_cow_empty (QubePool *pool, int fd, const char *dst, guint64 size,
              GError **error)
{
  if (pool->cow == SF_COW_QCOW2)
    {
      g_autofree char *path = sf_fd_path (fd, dst);
      g_autofree char *size_s = g_strdup_printf ("%" G_GUINT64_FORMAT, size);
      const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", path,
                             size_s, NULL };

      return sf_run_qemu_img (pool, argv, error);
    }
  return sf_create_sparse (fd, dst, size, error);
}

/* A self-contained copy of `src` (format src_format, possibly an overlay)
 * as the new file `dst` in the pool's format, via qemu-img convert. */
gboolean
sf_cow_convert (QubePool *pool, int src_fd, const char *src,
                const char *src_format, int dst_fd, const char *dst,
                const char *dst_format, GError **error)
{
  g_autofree char *src_path = sf_fd_path (src_fd, src);
  g_autofree char *dst_path = sf_fd_path (dst_fd, dst);
  const char *argv[] = { "qemu-img", "convert", "-q", "-f", src_format,
                         "-O", dst_format, src_path, dst_path, NULL };

  if (!sf_run_qemu_img (pool, argv, error) ||
      !sf_fsync_file (dst_fd, dst, error))
    {
      sf_unlink (dst_fd, dst);
      return FALSE;
    }
  return TRUE;
}

QubeBlockFormat
sf_pool_block_format (QubePool *pool)
{
  return pool->cow == SF_COW_QCOW2 ? QUBE_BLOCK_QCOW2 : QUBE_BLOCK_RAW;
}

