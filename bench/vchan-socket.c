/* vchan-socket.c — throughput of the socket vchan plugin, beside a raw
 * unix socket pair moving the same bytes in the same run.
 *
 * Two processes (the bench and a fork()ed child) connected by one vchan
 * with 64 KiB rings, as qrexec uses them; BENCH_MIB (default 1024) MiB
 * each way.  Prints
 *   bench vchan-socket: MBps_a_to_b=<n> MBps_b_to_a=<n> raw_MBps=<n>
 */
#include "config.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include "qube-plugin-private.h"

#define CHUNK (64 * 1024)
#define PORT 1

static const QubeVchanOps *ops;
static void *plugin_data;
static QubePluginInfo *plugin_info;

static void G_GNUC_NORETURN
die (const char *what)
{
  g_autoptr(GError) error = NULL;

  _qube_plugin_take_error (plugin_info, QUBE_ABI_E_FAILED, what, &error);
  fprintf (stderr, "bench vchan-socket: %s\n", error->message);
  exit (1);
}

static void
load_plugin (const char *dir)
{
  g_autoptr(GError) error = NULL;
  QubePluginRegistry *registry;

  if (g_getenv ("QUBE_PLUGIN_PATH") == NULL)
    g_setenv ("QUBE_PLUGIN_PATH", QUBE_BENCH_PLUGIN_DIR, TRUE);
  registry = qube_plugin_registry_new (dir, dir);
  plugin_info = _qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_VCHAN, "socket", &error);
  if (plugin_info == NULL)
    {
      fprintf (stderr, "bench vchan-socket: %s\n", error->message);
      exit (1);
    }
  ops = _qube_plugin_info_get_desc (plugin_info)->vchan;
  plugin_data = _qube_plugin_info_get_data (plugin_info);
}

static void
vchan_write_all (QubeVchan *chan, const guint8 *buf, size_t len)
{
  for (size_t done = 0; done < len;)
    {
      long n = ops->write (chan, buf + done, len - done);

      if (n <= 0)
        die ("write");
      done += (size_t) n;
    }
}

static void
vchan_stream_out (QubeVchan *chan, const guint8 *chunk, size_t total)
{
  for (size_t off = 0; off < total; off += CHUNK)
    vchan_write_all (chan, chunk, CHUNK);
}

static void
vchan_stream_in (QubeVchan *chan, guint8 *buf, size_t total)
{
  for (size_t got = 0; got < total;)
    {
      long n = ops->read (chan, buf, MIN ((size_t) CHUNK, total - got));

      if (n <= 0)
        die ("read");
      got += (size_t) n;
    }
}

static void
fd_write_all (int fd, const guint8 *buf, size_t len)
{
  for (size_t done = 0; done < len;)
    {
      ssize_t n = write (fd, buf + done, len - done);

      if (n <= 0)
        {
          perror ("bench vchan-socket: raw write");
          exit (1);
        }
      done += (size_t) n;
    }
}

static void
fd_stream (int fd, guint8 *buf, size_t total, gboolean out)
{
  for (size_t done = 0; done < total;)
    {
      ssize_t n = out ? write (fd, buf, MIN ((size_t) CHUNK, total - done))
                      : read (fd, buf, MIN ((size_t) CHUNK, total - done));

      if (n <= 0)
        {
          perror ("bench vchan-socket: raw stream");
          exit (1);
        }
      done += (size_t) n;
    }
}

static double
mbps (size_t bytes, gint64 usec)
{
  return (double) bytes / (double) MAX (usec, 1);   /* bytes per µs = MB/s */
}

int
main (void)
{
  size_t total = (size_t) g_ascii_strtoull (g_getenv ("BENCH_MIB") ?: "1024", NULL, 10) * 1024 * 1024;
  g_autofree char *dir = g_dir_make_tmp ("qube-bench-XXXXXX", NULL);
  g_autofree guint8 *buf = g_malloc0 (CHUNK);
  QubeVchanPeer peer = { .size = sizeof peer, .name = "bench", .domid = -1, .runtime_dir = dir };
  int raw[2];
  guint8 token = 1;
  pid_t pid;
  gint64 t0, t1, t2, t3, t4;
  int status;

  signal (SIGPIPE, SIG_IGN);
  if (dir == NULL || socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, raw) < 0)
    {
      perror ("bench vchan-socket: setup");
      return 1;
    }
  memset (buf, 0x5a, CHUNK);
  total -= total % CHUNK;

  /* Fork before any thread exists; each side loads the plugin itself. */
  pid = fork ();
  if (pid == 0)
    {
      QubeVchan *chan;
      int rc;

      load_plugin (dir);
      chan = ops->client_init_async (plugin_data, &peer, PORT);
      if (chan == NULL)
        die ("client_init_async");
      while ((rc = ops->client_init_async_finish (chan)) == QUBE_ABI_E_TIMEOUT)
        {
          struct pollfd pfd = { .fd = ops->fd (chan), .events = POLLIN };

          (void) poll (&pfd, 1, 1000);
          ops->ack (chan);
        }
      if (rc != 0)
        die ("connect");
      vchan_stream_in (chan, buf, total);            /* a -> b */
      if (ops->send (chan, &token, 1) != 1 || ops->recv (chan, &token, 1) != 1)
        die ("handshake");
      vchan_stream_out (chan, buf, total);           /* b -> a */
      ops->close (chan);

      close (raw[0]);
      fd_stream (raw[1], buf, total, FALSE);
      fd_write_all (raw[1], &token, 1);
      _exit (0);
    }

  load_plugin (dir);
  {
    QubeVchan *chan = ops->server_init (plugin_data, &peer, PORT, CHUNK, CHUNK);

    if (chan == NULL)
      die ("server_init");
    while (ops->is_open (chan) == QUBE_VCHAN_WAITING)
      ops->wait (chan);
    t0 = g_get_monotonic_time ();
    vchan_stream_out (chan, buf, total);
    if (ops->recv (chan, &token, 1) != 1)
      die ("recv");
    t1 = g_get_monotonic_time ();
    if (ops->send (chan, &token, 1) != 1)
      die ("send");
    vchan_stream_in (chan, buf, total);
    t2 = g_get_monotonic_time ();
    ops->close (chan);
  }

  close (raw[1]);
  t3 = g_get_monotonic_time ();
  fd_stream (raw[0], buf, total, TRUE);
  if (read (raw[0], &token, 1) != 1)
    {
      perror ("bench vchan-socket: raw ack");
      return 1;
    }
  t4 = g_get_monotonic_time ();
  if (waitpid (pid, &status, 0) != pid || !WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      fprintf (stderr, "bench vchan-socket: the peer process failed\n");
      return 1;
    }
  {
    g_autofree char *sock = g_strdup_printf ("%s/vchan-%d.sock", dir, PORT);
    g_autofree char *lock = g_strdup_printf ("%s/vchan-%d.lock", dir, PORT);
    g_autofree char *conf = g_build_filename (dir, "plugins.conf", NULL);

    (void) unlink (sock);
    (void) unlink (lock);
    (void) unlink (conf);
    (void) rmdir (dir);
  }
  printf ("bench vchan-socket: MBps_a_to_b=%.0f MBps_b_to_a=%.0f raw_MBps=%.0f\n",
          mbps (total, t1 - t0), mbps (total, t2 - t1), mbps (total, t4 - t3));
  return 0;
}
