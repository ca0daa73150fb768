/* qube-xen-block.c — the block hotplug program libxl runs for the xen
 * plugin's disks, in place of Xen's `block` shell script.
 *
 * The plugin hands libxl block devices only (a raw file is already a loop
 * device the plugin configured), so all that is left for "add" is to tell
 * blkback which device it is: `physical-device` (major:minor in hex) and
 * `physical-device-path` in the backend's xenstore directory.  It then waits
 * until blkback has opened the device, so that when libxl reports the disk
 * added the plugin may drop its own hold on the loop device (which clears
 * itself when its last user closes it), and sets `hotplug-status`.
 * "remove" has nothing to undo.
 *
 *   qube-xen-block add|remove     (XENBUS_PATH=backend/vbd/DOMID/DEVID)
 *
 * Everything it reads is in dom0's part of xenstore, which the guest cannot
 * write; it still checks what it reads.
 */
#include "config.h"

#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <xenstore.h>

/* libxl gives hotplug programs 40 s; fail first, with a reason it shows. */
#define BLKBACK_WAIT_MS 30000
#define POLL_MS 5
/* XenbusStateClosing: blkback gave up on the device. */
#define XENBUS_STATE_CLOSING 5

static struct xs_handle *xs;
static const char *backend;   /* XENBUS_PATH, valid for the whole run */

static char *
read_key (const char *key)
{
  g_autofree char *path = g_strdup_printf ("%s/%s", backend, key);
  unsigned int len = 0;
  char *value = xs_read (xs, XBT_NULL, path, &len);

  if (value == NULL)
    return NULL;
  /* xenstore values are counted, not terminated: keep the text only. */
  if (strlen (value) != len)
    {
      free (value);
      return NULL;
    }
  return value;
}

static gboolean
write_key (const char *key, const char *value)
{
  g_autofree char *path = g_strdup_printf ("%s/%s", backend, key);

  return xs_write (xs, XBT_NULL, path, value, strlen (value));
}

/* Says why the device cannot be added, where libxl reads it. */
static int G_GNUC_PRINTF (1, 2)
fail (const char *format, ...)
{
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  if (xs != NULL)
    write_key ("hotplug-error", text);
  fprintf (stderr, "qube-xen-block: %s: %s\n", backend, text);
  return 1;
}

static int
add (unsigned int domid, unsigned int devid)
{
  g_autofree char *params = read_key ("params");
  g_autofree char *node = NULL;
  g_autofree char *sysfs = NULL;
  struct stat st;
  gint64 until;

  if (params == NULL || params[0] != '/')
    return fail ("no device path in params");
  if (stat (params, &st) != 0)
    return fail ("cannot use %s: %s", params, g_strerror (errno));
  if (!S_ISBLK (st.st_mode))
    return fail ("%s is not a block device", params);

  node = g_strdup_printf ("%x:%x", major (st.st_rdev), minor (st.st_rdev));
  if (!write_key ("physical-device-path", params) ||
      !write_key ("physical-device", node))
    return fail ("cannot write physical-device: %s", g_strerror (errno));

  /* blkback creates this attribute once it holds the device open. */
  sysfs = g_strdup_printf ("/sys/bus/xen-backend/devices/vbd-%u-%u/physical_device",
                           domid, devid);
  until = g_get_monotonic_time () + BLKBACK_WAIT_MS * 1000;
  for (unsigned int i = 0;; i++)
    {
      /* hotplug-status as Xen's scripts leave it, for tools that read it. */
      if (access (sysfs, F_OK) == 0)
        return write_key ("hotplug-status", "connected")
                 ? 0 : fail ("cannot write hotplug-status: %s", g_strerror (errno));
      if (g_get_monotonic_time () > until)
        return fail ("blkback did not open %s (%s) within %d s", params, node,
                     BLKBACK_WAIT_MS / 1000);
      /* Now and then, whether blkback gave up (it then closes the device). */
      if (i % 20 == 19)
        {
          g_autofree char *state = read_key ("state");

          if (state != NULL && atoi (state) >= XENBUS_STATE_CLOSING)
            return fail ("blkback refused %s (%s)", params, node);
        }
      g_usleep (POLL_MS * 1000);
    }
}

int
main (int argc, char **argv)
{
  const char *path = g_getenv ("XENBUS_PATH");
  unsigned int domid, devid;
  int consumed = 0;
  int status;

  if (argc != 2 || path == NULL ||
      sscanf (path, "backend/vbd/%u/%u%n", &domid, &devid, &consumed) != 2 ||
      (size_t) consumed != strlen (path))
    {
      fprintf (stderr, "usage: XENBUS_PATH=backend/vbd/DOMID/DEVID %s add|remove\n",
               argv[0]);
      return 2;
    }
  backend = path;
  if (strcmp (argv[1], "remove") == 0)
    return 0;
  if (strcmp (argv[1], "add") != 0)
    return fail ("unknown action '%s'", argv[1]);

  xs = xs_open (0);
  if (xs == NULL)
    return fail ("cannot connect to xenstore: %s", g_strerror (errno));
  status = add (domid, devid);
  xs_close (xs);
  return status;
}
