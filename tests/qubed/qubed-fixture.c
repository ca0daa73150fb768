/* qubed-fixture.c — see qubed-fixture.h. */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qubed-fixture.h"

/* Tries before a daemon that does not come up counts as failed. */
#define SPAWN_TRIES 3000
#define SPAWN_POLL_US 10000

int
qubed_fixture_connect (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd;

  if (strlen (path) >= sizeof addr.sun_path)
    return -1;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  strcpy (addr.sun_path, path);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0)
    {
      close (fd);
      return -1;
    }
  return fd;
}

gboolean
qubed_fixture_write_all (int fd, const void *data, gsize len)
{
  const char *p = data;

  while (len > 0)
    {
      ssize_t n = send (fd, p, len, MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      p += n;
      len -= (gsize) n;
    }
  return TRUE;
}

GByteArray *
qubed_fixture_read_all (int fd)
{
  GByteArray *out = g_byte_array_new ();
  guint8 buf[65536];

  for (;;)
    {
      ssize_t n = recv (fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      g_byte_array_append (out, buf, n);
    }
  return out;
}

GSubprocess *
qubed_fixture_spawn (const char *qubed, const char *state_dir, const char *policy_dir,
                     const char *socket, const char *qrexec_socket, const char *log,
                     const char *notify_socket, const char *const *extra, GError **error)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (log != NULL ? G_SUBPROCESS_FLAGS_NONE
                                           : G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_autoptr(GSubprocess) daemon = NULL;
  const char *fixed[] = { qubed, "--foreground", "--socket", socket, "--qrexec-socket",
                          qrexec_socket, "--state-dir", state_dir, "--policy-dir", policy_dir };

  for (guint i = 0; i < G_N_ELEMENTS (fixed); i++)
    g_ptr_array_add (argv, (gpointer) fixed[i]);
  for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) extra[i]);
  g_ptr_array_add (argv, NULL);

  if (log != NULL)
    g_subprocess_launcher_set_stderr_file_path (launcher, log);
  /* The policy only as the option says: qubed passes it on to the qrexec
   * daemon a start spawns. */
  g_subprocess_launcher_unsetenv (launcher, "QUBE_POLICY_DIR");
  if (notify_socket != NULL)
    g_subprocess_launcher_setenv (launcher, "NOTIFY_SOCKET", notify_socket, TRUE);
  else
    g_subprocess_launcher_unsetenv (launcher, "NOTIFY_SOCKET");
  daemon = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, error);
  if (daemon == NULL)
    return NULL;
  for (guint tries = 0;; tries++)
    {
      int fd = qubed_fixture_connect (qrexec_socket);

      if (fd >= 0)
        {
          close (fd);
          return g_steal_pointer (&daemon);
        }
      if (tries >= SPAWN_TRIES)
        break;
      g_usleep (SPAWN_POLL_US);
    }
  g_subprocess_force_exit (daemon);
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "%s did not come up on %s",
               qubed, qrexec_socket);
  return NULL;
}

void
qubed_fixture_remove_tree (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        qubed_fixture_remove_tree (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}
