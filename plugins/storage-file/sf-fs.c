/* sf-fs.c — filesystem primitives of the storage-file pool driver: fd-relative,
 * symlink-refusing, fsync()ed.  See sf-fs.h. */
#include "config.h"

#include "sf-fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

G_DEFINE_QUARK (storage-file-error-quark, sf_error)

QubeAbiError
sf_error_from_errno (int errsv)
{
  switch (errsv)
    {
    case ENOSPC:
    case EDQUOT:
      return QUBE_ABI_E_NO_SPACE;
    case ENOENT:
      return QUBE_ABI_E_NOT_FOUND;
    case EEXIST:
      return QUBE_ABI_E_EXISTS;
    case EBUSY:
    case ETXTBSY:
      return QUBE_ABI_E_BUSY;
    case ENOMEM:
      return QUBE_ABI_E_NO_MEMORY;
    case ELOOP:
    case ENOTDIR:
    case EINVAL:
      return QUBE_ABI_E_INVALID;
    case EOPNOTSUPP:
    case EXDEV:
      return QUBE_ABI_E_NOT_SUPPORTED;
    default:
      return QUBE_ABI_E_IO;
    }
}

gboolean
sf_name_is_valid (const char *name)
{
  size_t len = strlen (name);

  if (len == 0 || len > 64 || name[0] == '.')
    return FALSE;
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_isalnum (name[i]) && name[i] != '_' && name[i] != '.' &&
        name[i] != '-')
      return FALSE;
  return TRUE;
}

gboolean
sf_vid_split (const char *vid, char **qube, char **volume, GError **error)
{
  const char *slash;

  if (vid == NULL)
    {
      g_set_error_literal (error, SF_ERROR, QUBE_ABI_E_INVALID,
                           "no volume id given");
      return FALSE;
    }
  slash = strchr (vid, '/');
  if (slash != NULL)
    {
      g_autofree char *q = g_strndup (vid, (gsize) (slash - vid));

      if (sf_name_is_valid (q) && sf_name_is_valid (slash + 1))
        {
          *qube = g_steal_pointer (&q);
          *volume = g_strdup (slash + 1);
          return TRUE;
        }
    }
  g_set_error (error, SF_ERROR, QUBE_ABI_E_INVALID,
               "invalid volume id '%s': expected '<qube>/<volume>', each made "
               "of letters, digits, '_', '.', '-' and not starting with '.'",
               vid);
  return FALSE;
}

int
sf_open_dir (int parent_fd, const char *name, gboolean create)
{
  int fd = openat (parent_fd, name,
                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

  if (fd < 0 && errno == ENOENT && create)
    {
      if (mkdirat (parent_fd, name, 0750) < 0 && errno != EEXIST)
        return -1;
      fd = openat (parent_fd, name,
                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
  return fd;
}

DIR *
sf_opendir (int dir_fd)
{
  int fd = openat (dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *dir = fd >= 0 ? fdopendir (fd) : NULL;

  if (dir == NULL && fd >= 0)
    close (fd);
  return dir;
}

static gboolean
set_errno_error (GError **error, int errsv, const char *fmt, ...)
  G_GNUC_PRINTF (3, 4);

static gboolean
set_errno_error (GError **error, int errsv, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *what = NULL;

  va_start (ap, fmt);
  what = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, SF_ERROR, sf_error_from_errno (errsv), "%s: %s", what,
               g_strerror (errsv));
  return FALSE;
}

gboolean
sf_fsync_dir (int dir_fd, const char *what, GError **error)
{
  if (fsync (dir_fd) < 0)
    return set_errno_error (error, errno, "cannot flush directory of %s",
                            what);
  return TRUE;
}

gboolean
sf_fsync_file (int dir_fd, const char *name, GError **error)
{
  int fd = openat (dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  int errsv;

  if (fd < 0)
    return set_errno_error (error, errno, "cannot open '%s'", name);
  if (fsync (fd) < 0)
    {
      errsv = errno;
      close (fd);
      return set_errno_error (error, errsv, "cannot flush '%s'", name);
    }
  close (fd);
  return TRUE;
}

static gboolean
write_all (int fd, const char *data, gsize len)
{
  while (len > 0)
    {
      ssize_t n = write (fd, data, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      data += n;
      len -= (gsize) n;
    }
  return TRUE;
}

gboolean
sf_write_atomic (int dir_fd, const char *name, const char *data, gsize len,
                 GError **error)
{
  g_autofree char *part = g_strconcat (name, ".part", NULL);
  int fd, errsv;

  unlinkat (dir_fd, part, 0);
  fd = openat (dir_fd, part,
               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0)
    return set_errno_error (error, errno, "cannot create '%s'", part);
  if (!write_all (fd, data, len) || fsync (fd) < 0)
    {
      errsv = errno;
      close (fd);
      unlinkat (dir_fd, part, 0);
      return set_errno_error (error, errsv, "cannot write '%s'", part);
    }
  close (fd);
  sf_fault_point ("meta-written");
  return sf_rename (dir_fd, part, dir_fd, name, error);
}

gboolean
sf_rename (int from_dir, const char *from, int to_dir, const char *to,
           GError **error)
{
  if (renameat (from_dir, from, to_dir, to) < 0)
    return set_errno_error (error, errno, "cannot rename '%s' to '%s'", from,
                            to);
  return sf_fsync_dir (to_dir, to, error);
}

void
sf_unlink (int dir_fd, const char *name)
{
  if (unlinkat (dir_fd, name, 0) < 0 && errno != ENOENT)
    g_debug ("cannot remove '%s': %s", name, g_strerror (errno));
}

void
sf_remove_tree (int dir_fd, const char *name)
{
  int fd = sf_open_dir (dir_fd, name, FALSE);
  DIR *dir;
  struct dirent *de;

  if (fd < 0)
    {
      /* Not a directory (or a symlink to one): remove the name itself. */
      sf_unlink (dir_fd, name);
      return;
    }
  dir = fdopendir (fd);
  if (dir == NULL)
    {
      close (fd);
      return;
    }
  while ((de = readdir (dir)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (de->d_type == DT_DIR)
        sf_remove_tree (dirfd (dir), de->d_name);
      else
        sf_unlink (dirfd (dir), de->d_name);
    }
  closedir (dir);
  if (unlinkat (dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    g_debug ("cannot remove directory '%s': %s", name, g_strerror (errno));
}

static int
create_file (int dir_fd, const char *name, GError **error)
{
  int fd = openat (dir_fd, name,
                   O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);

  if (fd < 0)
    set_errno_error (error, errno, "cannot create '%s'", name);
  return fd;
}

gboolean
sf_create_sparse (int dir_fd, const char *name, guint64 size, GError **error)
{
  int fd = create_file (dir_fd, name, error);
  int errsv;

  if (fd < 0)
    return FALSE;
  if (ftruncate (fd, (off_t) size) < 0 || fsync (fd) < 0)
    {
      errsv = errno;
      close (fd);
      unlinkat (dir_fd, name, 0);
      return set_errno_error (error, errsv, "cannot size '%s'", name);
    }
  close (fd);
  return TRUE;
}

gboolean
sf_grow (int dir_fd, const char *name, guint64 size, GError **error)
{
  int fd = openat (dir_fd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  int errsv;

  if (fd < 0)
    return set_errno_error (error, errno, "cannot open '%s'", name);
  if (fstat (fd, &st) < 0 ||
      ((guint64) st.st_size < size && ftruncate (fd, (off_t) size) < 0))
    {
      errsv = errno;
      close (fd);
      return set_errno_error (error, errsv, "cannot grow '%s'", name);
    }
  close (fd);
  return TRUE;
}

/* Opens `src` for reading and creates `dst` (which must not exist). */
static gboolean
open_pair (int src_dir, const char *src, int dst_dir, const char *dst,
           int *in, int *out, GError **error)
{
  *in = openat (src_dir, src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (*in < 0)
    return set_errno_error (error, errno, "cannot open '%s'", src);
  *out = create_file (dst_dir, dst, error);
  if (*out < 0)
    {
      close (*in);
      return FALSE;
    }
  return TRUE;
}

gboolean
sf_reflink (int src_dir, const char *src, int dst_dir, const char *dst,
            GError **error)
{
  int in, out, errsv;

  if (!open_pair (src_dir, src, dst_dir, dst, &in, &out, error))
    return FALSE;
  if (ioctl (out, FICLONE, in) < 0)
    {
      errsv = errno;
      close (in);
      close (out);
      unlinkat (dst_dir, dst, 0);
      /* EINVAL/EOPNOTSUPP/EXDEV/ENOTTY: this filesystem cannot share. */
      if (errsv == EINVAL || errsv == ENOTTY || errsv == EOPNOTSUPP ||
          errsv == EXDEV)
        {
          g_set_error (error, SF_ERROR, QUBE_ABI_E_NOT_SUPPORTED,
                       "cannot reflink '%s': %s", src, g_strerror (errsv));
          return FALSE;
        }
      return set_errno_error (error, errsv, "cannot reflink '%s'", src);
    }
  close (in);
  close (out);
  return TRUE;
}

gboolean
sf_copy_sparse (int src_dir, const char *src, int dst_dir, const char *dst,
                GError **error)
{
  int in, out, errsv = 0;
  struct stat st;
  off_t data = 0;

  if (!open_pair (src_dir, src, dst_dir, dst, &in, &out, error))
    return FALSE;
  if (fstat (in, &st) < 0 || ftruncate (out, st.st_size) < 0)
    errsv = errno;
  while (errsv == 0 && data < st.st_size)
    {
      off_t hole, pos;

      data = lseek (in, data, SEEK_DATA);
      if (data < 0)
        {
          if (errno != ENXIO) /* ENXIO: only holes are left */
            errsv = errno;
          break;
        }
      hole = lseek (in, data, SEEK_HOLE);
      if (hole < 0)
        {
          errsv = errno;
          break;
        }
      pos = data;
      while (pos < hole)
        {
          off_t off_in = pos, off_out = pos;
          ssize_t n = copy_file_range (in, &off_in, out, &off_out,
                                       (size_t) (hole - pos), 0);

          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            {
              errsv = n < 0 ? errno : EIO;
              break;
            }
          pos += n;
        }
      data = hole;
    }
  if (errsv == 0 && fsync (out) < 0)
    errsv = errno;
  close (in);
  close (out);
  if (errsv != 0)
    {
      unlinkat (dst_dir, dst, 0);
      return set_errno_error (error, errsv, "cannot copy '%s' to '%s'", src,
                              dst);
    }
  return TRUE;
}

void
sf_file_sizes (int dir_fd, const char *name, guint64 *size,
               guint64 *allocated)
{
  struct stat st;

  if (fstatat (dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
      !S_ISREG (st.st_mode))
    {
      *size = 0;
      *allocated = 0;
      return;
    }
  *size = (guint64) st.st_size;
  *allocated = (guint64) st.st_blocks * 512;
}

gboolean
sf_fs_space (int dir_fd, guint64 *free_bytes, guint64 *capacity,
             guint64 *used, GError **error)
{
  struct statvfs vfs;

  if (fstatvfs (dir_fd, &vfs) < 0)
    return set_errno_error (error, errno, "cannot read filesystem figures");
  if (free_bytes)
    *free_bytes = (guint64) vfs.f_bavail * vfs.f_frsize;
  if (capacity)
    *capacity = (guint64) vfs.f_blocks * vfs.f_frsize;
  if (used)
    *used = (guint64) (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
  return TRUE;
}

char *
sf_fd_path (int dir_fd, const char *name)
{
  return g_strdup_printf ("/proc/%d/fd/%d/%s", (int) getpid (), dir_fd, name);
}

char *
sf_format_mib (guint64 bytes, gboolean up)
{
  const guint64 mib = 1024 * 1024;

  return g_strdup_printf ("%" G_GUINT64_FORMAT " MiB",
                          up ? (bytes + mib - 1) / mib : bytes / mib);
}

void
sf_fault_point (const char *step)
{
  const char *fault = g_getenv ("QUBE_STORAGE_FILE_FAULT");

  if (fault != NULL && strcmp (fault, step) == 0)
    kill (getpid (), SIGKILL);
}
