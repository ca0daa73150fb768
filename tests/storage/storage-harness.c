/* storage-harness.c — see storage-harness.h. */
#include "config.h"

#include "storage-harness.h"

#include <errno.h>
#include <gio/gio.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

StorageDriver *
storage_driver_load (const char *state_dir, GError **error)
{
  g_autoptr (StorageDriver) driver = g_new0 (StorageDriver, 1);
  const char *builddir = g_getenv ("QUBE_TEST_BUILDDIR");
  g_autofree char *plugin_dir = NULL;
  const QubePluginDesc *desc;

  if (builddir == NULL)
    builddir = QUBE_BUILDDIR;
  plugin_dir = g_build_filename (builddir, "plugins", "storage-file", ".libs",
                                 NULL);
  g_setenv ("QUBE_PLUGIN_PATH", plugin_dir, TRUE);
  driver->registry = qube_plugin_registry_new (state_dir, state_dir);
  driver->info = _qube_plugin_registry_find (driver->registry,
                                             QUBE_PLUGIN_KIND_STORAGE, "file",
                                             error);
  if (driver->info == NULL)
    return NULL;
  desc = _qube_plugin_info_get_desc (driver->info);
  driver->ops = desc->storage;
  driver->data = _qube_plugin_info_get_data (driver->info);
  return g_steal_pointer (&driver);
}

void
storage_driver_free (StorageDriver *driver)
{
  g_clear_object (&driver->registry);
  g_free (driver);
}

gboolean
storage_driver_ok (StorageDriver *driver, int rc, const char *what,
                   GError **error)
{
  if (rc == 0)
    return TRUE;
  return _qube_plugin_take_error (driver->info, rc, what, error);
}

QubePool *
storage_pool_open (StorageDriver *driver, const char *name, const char *dir,
                   const char *cow, GError **error)
{
  QubeKeyValue options[] = { { "dir_path", dir }, { "cow", cow } };
  QubePool *pool = NULL;
  int rc = driver->ops->pool_open (driver->data, name, options,
                                   cow != NULL ? 2 : 1, TRUE, &pool);

  if (!storage_driver_ok (driver, rc, "cannot open pool", error))
    return NULL;
  return pool;
}

static gboolean
qemu_io (const QubeBlockDev *dev, const char *command, GError **error)
{
  const char *argv[] = { "qemu-io", "-f", "qcow2", "-c", command, dev->path,
                         NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                     NULL, &out, &err, &status, error))
    return FALSE;
  /* qemu-io exits 0 even when a pattern does not match. */
  if (!g_spawn_check_wait_status (status, NULL) || strstr (out, "failed") ||
      strstr (err, "failed") || err[0] != '\0')
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "qemu-io '%s' on %s: %s%s", command, dev->path, out, err);
      return FALSE;
    }
  return TRUE;
}

static gboolean
raw_io (const QubeBlockDev *dev, guint64 offset, guint64 len, guint8 byte,
        gboolean write, GError **error)
{
  const gsize chunk = 4 * 1024 * 1024;
  g_autofree guint8 *want = g_malloc (chunk);
  g_autofree guint8 *got = g_malloc (chunk);
  int fd = open (dev->path, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
  gboolean ok = fd >= 0;

  memset (want, byte, chunk);
  for (guint64 done = 0; ok && done < len;)
    {
      gsize n = (gsize) MIN (chunk, len - done);
      ssize_t r = write ? pwrite (fd, want, n, (off_t) (offset + done))
                        : pread (fd, got, n, (off_t) (offset + done));

      if (r != (ssize_t) n)
        ok = FALSE;
      else if (!write && memcmp (want, got, n) != 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       "%s does not hold 0x%02x at %" G_GUINT64_FORMAT
                       "..+%zu", dev->path, byte, offset + done, n);
          close (fd);
          return FALSE;
        }
      done += n;
    }
  if (ok && write && fsync (fd) < 0)
    ok = FALSE;
  if (!ok)
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                 "cannot %s %s: %s", write ? "write" : "read", dev->path,
                 g_strerror (errno));
  if (fd >= 0)
    close (fd);
  return ok;
}

/* One pattern write or check on an image of either format. */
static gboolean
image_io (const QubeBlockDev *dev, guint64 offset, guint64 len, guint8 byte,
          gboolean write, GError **error)
{
  if (dev->format == QUBE_BLOCK_QCOW2)
    {
      g_autofree char *cmd = g_strdup_printf (
        "%s -P 0x%02x %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
        write ? "write" : "read", byte, offset, len);

      return qemu_io (dev, cmd, error);
    }
  return raw_io (dev, offset, len, byte, write, error);
}

gboolean
storage_image_fill (const QubeBlockDev *dev, guint64 offset, guint64 len,
                    guint8 byte, GError **error)
{
  return image_io (dev, offset, len, byte, TRUE, error);
}

gboolean
storage_image_check (const QubeBlockDev *dev, guint64 offset, guint64 len,
                     guint8 byte, GError **error)
{
  return image_io (dev, offset, len, byte, FALSE, error);
}
