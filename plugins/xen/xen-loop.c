/* xen-loop.c — turns a raw file into a loop device for blkback, with the
 * kernel's loop-control and LOOP_CONFIGURE ioctls instead of Xen's `block`
 * hotplug script (a shell script run once per disk, which costs seconds
 * apiece on a slow dom0).  The device is made to clear itself on its last
 * close, so no path (a failed start, a killed process, a domain destroyed
 * by another toolstack) can leave it behind. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <linux/loop.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "xen-loop.h"

#define LOOP_CONTROL "/dev/loop-control"
/* Another process may take the free device between asking and binding. */
#define LOOP_ATTEMPTS 16

void
xen_loop_free (XenLoop *loop)
{
  if (loop == NULL)
    return;
  if (loop->fd >= 0)
    close (loop->fd);
  g_free (loop->path);
  g_free (loop);
}

static gboolean
set_errno_error (GError **error, int saved_errno, const char *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
set_errno_error (GError **error, int saved_errno, const char *format, ...)
{
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "%s: %s",
               text, g_strerror (saved_errno));
  return FALSE;
}

XenLoop *
xen_loop_attach (int backing, const char *file, gboolean readonly, GError **error)
{
  int mode = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  int control;
  struct loop_config config;

  control = open (LOOP_CONTROL, O_RDWR | O_CLOEXEC);
  if (control < 0)
    {
      set_errno_error (error, errno, "cannot open %s", LOOP_CONTROL);
      return NULL;
    }

  memset (&config, 0, sizeof config);
  config.fd = (uint32_t) backing;
  config.info.lo_flags = LO_FLAGS_AUTOCLEAR | (readonly ? LO_FLAGS_READ_ONLY : 0);
  g_strlcpy ((char *) config.info.lo_file_name, file, sizeof config.info.lo_file_name);

  for (int attempt = 0; attempt < LOOP_ATTEMPTS; attempt++)
    {
      g_autofree char *path = NULL;
      int number = ioctl (control, LOOP_CTL_GET_FREE);
      int fd;

      if (number < 0)
        {
          set_errno_error (error, errno, "cannot get a free loop device for %s", file);
          break;
        }
      path = g_strdup_printf ("/dev/loop%d", number);
      fd = open (path, mode);
      if (fd < 0)
        {
          set_errno_error (error, errno, "cannot open %s for %s", path, file);
          break;
        }
      if (ioctl (fd, LOOP_CONFIGURE, &config) == 0)
        {
          XenLoop *loop = g_new0 (XenLoop, 1);

          loop->fd = fd;
          loop->path = g_steal_pointer (&path);
          close (control);
          return loop;
        }
      if (errno != EBUSY)
        {
          set_errno_error (error, errno, "cannot bind %s to %s", path, file);
          close (fd);
          break;
        }
      close (fd);
    }
  if (error != NULL && *error == NULL)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                 "cannot bind a loop device to %s: every free one was taken "
                 "by others meanwhile", file);
  close (control);
  return NULL;
}
