/* test-vchan.c — the conformance suite every vchan transport plugin passes.
 *
 * It checks the libvchan semantics of abi/qube-vchan.h through the plugin's
 * operation table only: connect/accept, the three is_open states, both
 * directions at once, short stream reads and writes, all-or-nothing
 * send/recv, back-pressure, a peer leaving in the middle, a GLib main
 * loop driven by fd()/ack(), async client init, many ports at once,
 * reads larger than many messages after the writer left, writes that need
 * credit while the peer's message waits unread, reading in place
 * (peek/consume) where the plugin offers it, and 1 GiB streamed with a
 * SHA-256 check.
 *
 * The two ends run in two processes (the test and a fork()ed child), as
 * two qubes would; in split mode (QUBE_VCHAN_SPLIT) in two programs, which
 * may run in two domains.  Parameters (environment):
 *   QUBE_VCHAN_PLUGIN   plugin name (default "socket"; argv[1] also works)
 *   QUBE_VCHAN_ADDRESS  peer address handed to the plugin (e.g. tcp:HOST:PORT)
 *   QUBE_VCHAN_CONFIG   plugin configuration, "key=value,key=value"
 *   QUBE_PLUGIN_PATH    where plugins are (default: plugins/NAME/.libs in the build tree)
 *   QUBE_VCHAN_STREAM_MIB  size of the stream test (default 1024)
 *   QUBE_VCHAN_SPLIT    "a" or "b": this program is one end of a split run
 *                       (see split_peer())
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <glib-unix.h>

#include "qube-plugin-private.h"

/* ---- loading the plugin -------------------------------------------------- */

static const char *plugin_name;
static const QubeVchanOps *ops;
static void *plugin_data;
static char *tmp_dir;
static QubePluginRegistry *registry;
static QubePluginInfo *plugin_info;
static __thread char *last_error;
/* Split mode: this program's role ("a", "b" or NULL), the number of
 * checks with a peer begun so far (shared by the fork()ed checks), and the
 * side channel of the current check. */
static const char *split_role;
static guint *split_seq;
static QubeVchan *side_chan;

/* The message the plugin gave for its last failure on this thread. */
static const char *
plugin_error (void)
{
  g_autoptr(GError) error = NULL;

  _qube_plugin_take_error (plugin_info, QUBE_ABI_E_FAILED, NULL, &error);
  g_free (last_error);
  last_error = g_strdup (error->message);
  return last_error;
}

/* The plugin through the core's registry, as the daemon gets it: found
 * on QUBE_PLUGIN_PATH (default: the plugin's build directory), configured
 * from <state dir>/plugins.conf, written here from QUBE_VCHAN_CONFIG. */
static void
load_plugin (void)
{
  g_autofree char *default_path = g_strdup_printf ("%s/plugins/%s/.libs",
                                                   g_getenv ("QUBE_TEST_BUILDDIR") ?: ".",
                                                   plugin_name);
  g_auto(GStrv) pairs = g_strsplit (g_getenv ("QUBE_VCHAN_CONFIG") ?: "", ",", -1);
  g_autoptr(GString) conf = g_string_new (NULL);
  g_autofree char *conf_path = g_build_filename (tmp_dir, "plugins.conf", NULL);
  g_autoptr(GError) error = NULL;

  /* The plugin under test first, then whatever the environment adds (the
   * test environment names the file pool). */
  {
    const char *env = g_getenv ("QUBE_PLUGIN_PATH");
    g_autofree char *path = env != NULL && *env != '\0'
                            ? g_strconcat (default_path, ":", env, NULL) : g_strdup (default_path);

    g_setenv ("QUBE_PLUGIN_PATH", path, TRUE);
  }
  g_string_append_printf (conf, "[%s]\n", plugin_name);
  for (char **p = pairs; *p != NULL; p++)
    if (**p != '\0')
      g_string_append_printf (conf, "%s\n", *p);
  ck_assert (g_file_set_contents (conf_path, conf->str, -1, &error));

  registry = qube_plugin_registry_new (tmp_dir, tmp_dir);
  plugin_info = _qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_VCHAN, plugin_name, &error);
  ck_assert_msg (plugin_info != NULL, "%s", error ? error->message : "");
  ops = _qube_plugin_info_get_desc (plugin_info)->vchan;
  plugin_data = _qube_plugin_info_get_data (plugin_info);
}

/* ---- fixtures and helpers ------------------------------------------------ */

static void
setup (void)
{
  g_autoptr(GError) error = NULL;

  tmp_dir = g_dir_make_tmp ("qube-vchan-XXXXXX", &error);
  g_assert_no_error (error);
  load_plugin ();
}

static void
teardown (void)
{
  GDir *dir = g_dir_open (tmp_dir, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (tmp_dir, name, NULL);

      (void) g_unlink (path);
    }
  g_clear_pointer (&dir, g_dir_close);
  (void) g_rmdir (tmp_dir);
  g_clear_object (&registry);
  g_clear_pointer (&tmp_dir, g_free);
}

/* The address of the other end.  Both ends name the same meeting place: a
 * host<->qube channel lives in the qube's runtime directory. */
static QubeVchanPeer
peer_named (const char *name)
{
  QubeVchanPeer peer = {
    .size = sizeof (QubeVchanPeer),
    .name = name,
    .domid = -1,
    .runtime_dir = tmp_dir,
    .address = g_getenv ("QUBE_VCHAN_ADDRESS"),
  };

  return peer;
}

static QubeVchan *
server (uint32_t port, size_t read_min, size_t write_min)
{
  QubeVchanPeer peer = peer_named ("qube-b");
  QubeVchan *chan = ops->server_init (plugin_data, &peer, port, read_min, write_min);

  ck_assert_msg (chan != NULL, "server_init on port %u failed: %s", port, plugin_error ());
  return chan;
}

/* Connect as a client, waiting for the server to appear (up to `seconds`). */
static QubeVchan *
client_within (uint32_t port, int seconds)
{
  QubeVchanPeer peer = peer_named ("qube-a");
  gint64 deadline = g_get_monotonic_time () + seconds * G_TIME_SPAN_SECOND;

  if (ops->client_init_async != NULL)
    {
      QubeVchan *chan = ops->client_init_async (plugin_data, &peer, port);
      int rc;

      ck_assert_msg (chan != NULL, "client_init_async on port %u failed: %s", port, plugin_error ());
      while ((rc = ops->client_init_async_finish (chan)) == QUBE_ABI_E_TIMEOUT)
        {
          struct pollfd pfd = { .fd = ops->fd (chan), .events = POLLIN };

          ck_assert_msg (g_get_monotonic_time () < deadline, "port %u: no server after %d s",
                         port, seconds);
          (void) poll (&pfd, 1, 1000);
          ops->ack (chan);
        }
      ck_assert_msg (rc == 0, "connecting to port %u failed: %s", port, plugin_error ());
      return chan;
    }
  for (;;)
    {
      QubeVchan *chan = ops->client_init (plugin_data, &peer, port);

      if (chan != NULL)
        return chan;
      ck_assert_msg (g_get_monotonic_time () < deadline, "client_init on port %u: %s", port, plugin_error ());
      g_usleep (20000);
    }
}

static QubeVchan *
client (uint32_t port)
{
  return client_within (port, 30);
}

static void
write_all (QubeVchan *chan, const void *buf, size_t len)
{
  for (size_t done = 0; done < len;)
    {
      long n = ops->write (chan, (const guint8 *) buf + done, len - done);

      ck_assert_msg (n > 0, "write failed: %s", plugin_error ());
      done += (size_t) n;
    }
}

static void
read_all (QubeVchan *chan, void *buf, size_t len)
{
  for (size_t done = 0; done < len;)
    {
      long n = ops->read (chan, (guint8 *) buf + done, len - done);

      ck_assert_msg (n > 0, "read failed: %s", plugin_error ());
      done += (size_t) n;
    }
}

/* Block until `cond` holds, using the channel's own wait(). */
#define WAIT_FOR(chan, cond)                                  \
  G_STMT_START {                                              \
    while (!(cond))                                           \
      ck_assert_msg (ops->wait (chan) == 0, "wait failed: %s", plugin_error ()); \
  } G_STMT_END

/* A deterministic pattern, different per stream and offset. */
static void
fill_pattern (guint8 *buf, size_t len, guint32 seed, guint64 offset)
{
  for (size_t i = 0; i < len; i++)
    {
      guint64 x = offset + i;

      buf[i] = (guint8) ((x * 2654435761u) >> 13) ^ (guint8) (x >> 8) ^ (guint8) seed;
    }
}

/* The other qube: a fork()ed child running `body`.  A pipe lets the two
 * sides say "go" to each other outside the channel under test.  Fork
 * before opening channels: a child of a process with running threads
 * inherits their locks in whatever state they were. */
typedef struct {
  pid_t pid;
  int to_child;
  int from_child;
} Peer;

static int child_in = -1;
static int child_out = -1;

/* Bytes between the two ends outside the channel under test: the pipe to
 * or from the fork()ed child, or in split mode the side channel. */
static void
side_write (int fd, const void *buf, size_t len)
{
  if (side_chan != NULL)
    ck_assert_msg (ops->send (side_chan, buf, len) == (long) len,
                   "the side channel to the other end failed: %s", plugin_error ());
  else
    ck_assert_int_eq (write (fd, buf, len), len);
}

static void
side_read (int fd, void *buf, size_t len)
{
  if (side_chan != NULL)
    ck_assert_msg (ops->recv (side_chan, buf, len) == (long) len,
                   "the side channel from the other end failed: %s", plugin_error ());
  else
    ck_assert_int_eq (read (fd, buf, len), len);
}

/* Split mode: two programs run the suite side by side, each given the
 * other as its peer address (e.g. two domains).  Role "a" runs every check
 * as usual, except that the peer's part runs in role "b", whose checks run
 * only their peers' parts (checks without a peer run whole in both).  The
 * Nth check with a peer meets on side channel port SIDE_PORT_BASE + N, a
 * vchan of the plugin under test beside the channels the check opens; role
 * "b" reports the end of its part there, where join_peer() waits for it. */
#define SIDE_PORT_BASE 5000

static Peer
split_peer (void (*body) (gpointer), gpointer arg)
{
  Peer peer = { .pid = -1, .to_child = -1, .from_child = -1 };
  uint32_t port = SIDE_PORT_BASE + (*split_seq)++;

  if (strcmp (split_role, "a") == 0)
    {
      side_chan = server (port, 0, 0);
      WAIT_FOR (side_chan, ops->is_open (side_chan) != QUBE_VCHAN_WAITING);
      ck_assert_msg (ops->is_open (side_chan) == QUBE_VCHAN_CONNECTED,
                     "the other end left side channel port %u", port);
      return peer;
    }
  /* Role "b" may reach a check long before "a" is done with the last. */
  side_chan = client_within (port, 300);
  body (arg);
  side_write (-1, "", 1);
  ops->close (side_chan);
  _exit (0);
}

static Peer
fork_peer (void (*body) (gpointer), gpointer arg)
{
  int down[2], up[2];
  Peer peer;

  if (split_role != NULL)
    return split_peer (body, arg);
  ck_assert_int_eq (pipe (down), 0);
  ck_assert_int_eq (pipe (up), 0);
  peer.pid = fork ();
  ck_assert_int_ge (peer.pid, 0);
  if (peer.pid == 0)
    {
      close (down[1]);
      close (up[0]);
      child_in = down[0];
      child_out = up[1];
      body (arg);
      _exit (0);
    }
  close (down[0]);
  close (up[1]);
  peer.to_child = down[1];
  peer.from_child = up[0];
  return peer;
}

static void
join_peer (Peer *peer)
{
  int status = 0;

  if (side_chan != NULL)
    {
      char done;

      ck_assert_msg (ops->recv (side_chan, &done, 1) == 1,
                     "the other end left before its part was done (see its own report): %s",
                     plugin_error ());
      ops->close (side_chan);
      side_chan = NULL;
      return;
    }
  ck_assert_int_eq (waitpid (peer->pid, &status, 0), peer->pid);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                 "the peer process failed (status %d)", status);
  close (peer->to_child);
  close (peer->from_child);
}

static void
signal_fd (int fd)
{
  side_write (fd, "g", 1);
}

static void
await_fd (int fd)
{
  char c;

  side_read (fd, &c, 1);
}

/* In the child, a failed ck_assert ends the child with a failure status
 * that join_peer() reports. */
#define CHILD_PORT 7

/* ---- connect/accept and the three states -------------------------------- */

static void
child_ping_pong (gpointer arg)
{
  QubeVchan *chan;
  char buf[5] = "";

  await_fd (child_in);
  chan = client (GPOINTER_TO_UINT (arg));

  ck_assert_int_eq (ops->is_open (chan), QUBE_VCHAN_CONNECTED);
  ck_assert_int_eq (ops->recv (chan, buf, 4), 4);
  ck_assert_str_eq (buf, "ping");
  ck_assert_int_eq (ops->send (chan, "pong", 4), 4);
  await_fd (child_in);
  ops->close (chan);
}

START_TEST (test_connect_accept_states)
{
  Peer peer = fork_peer (child_ping_pong, GUINT_TO_POINTER (CHILD_PORT));
  QubeVchan *chan = server (CHILD_PORT, 0, 0);
  char buf[5] = "";

  /* The child only connects once told to: until then the server waits. */
  ck_assert_int_eq (ops->is_open (chan), QUBE_VCHAN_WAITING);
  ck_assert_uint_eq (ops->data_ready (chan), 0);
  signal_fd (peer.to_child);

  WAIT_FOR (chan, ops->is_open (chan) != QUBE_VCHAN_WAITING);
  ck_assert_int_eq (ops->is_open (chan), QUBE_VCHAN_CONNECTED);
  ck_assert_int_eq (ops->send (chan, "ping", 4), 4);
  ck_assert_int_eq (ops->recv (chan, buf, 4), 4);
  ck_assert_str_eq (buf, "pong");

  signal_fd (peer.to_child);
  join_peer (&peer);
  WAIT_FOR (chan, ops->is_open (chan) == QUBE_VCHAN_DISCONNECTED);
  ck_assert_int_eq (ops->read (chan, buf, 1), -1);
  ops->close (chan);
}
END_TEST

START_TEST (test_port_taken)
{
  QubeVchanPeer peer = peer_named ("qube-b");
  QubeVchan *chan = server (CHILD_PORT, 0, 0);

  /* A port can be offered once at a time; the error names it. */
  ck_assert_ptr_null (ops->server_init (plugin_data, &peer, CHILD_PORT, 0, 0));
  ck_assert_msg (strstr (plugin_error (), "port 7") != NULL, "%s", last_error);
  ops->close (chan);
}
END_TEST

START_TEST (test_client_without_server)
{
  QubeVchanPeer peer = peer_named ("qube-a");

  ck_assert_ptr_null (ops->client_init (plugin_data, &peer, 99));
  ck_assert_msg (strstr (plugin_error (), "99") != NULL, "the error does not name the port: %s",
                 last_error);
}
END_TEST

/* ---- both directions at once -------------------------------------------- */

#define ECHO_BYTES (8 * 1024 * 1024)

/* Echo everything back, driven by data_ready/buffer_space and the fd. */
static void
child_echo (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));
  g_autofree guint8 *buf = g_malloc (ECHO_BYTES);
  size_t got = 0, sent = 0;

  while (sent < ECHO_BYTES)
    {
      struct pollfd pfd = { .fd = ops->fd (chan), .events = POLLIN };
      gboolean progress = FALSE;
      size_t n;

      ops->ack (chan);
      if ((n = ops->data_ready (chan)) > 0)
        {
          ck_assert_int_eq (ops->read (chan, buf + got, MIN (n, ECHO_BYTES - got)), MIN (n, ECHO_BYTES - got));
          got += MIN (n, ECHO_BYTES - got);
          progress = TRUE;
        }
      if (sent < got && (n = ops->buffer_space (chan)) > 0)
        {
          ck_assert_int_eq (ops->write (chan, buf + sent, MIN (n, got - sent)), MIN (n, got - sent));
          sent += MIN (n, got - sent);
          progress = TRUE;
        }
      if (!progress)
        ck_assert_int_eq (poll (&pfd, 1, 30000), 1);
    }
  await_fd (child_in);
  ops->close (chan);
}

START_TEST (test_both_directions)
{
  Peer peer = fork_peer (child_echo, GUINT_TO_POINTER (CHILD_PORT));
  QubeVchan *chan = server (CHILD_PORT, 65536, 65536);
  g_autofree guint8 *out = g_malloc (ECHO_BYTES);
  g_autofree guint8 *in = g_malloc (ECHO_BYTES);
  size_t sent = 0, got = 0;

  fill_pattern (out, ECHO_BYTES, 1, 0);
  WAIT_FOR (chan, ops->is_open (chan) == QUBE_VCHAN_CONNECTED);
  while (got < ECHO_BYTES)
    {
      struct pollfd pfd = { .fd = ops->fd (chan), .events = POLLIN };
      gboolean progress = FALSE;
      size_t n;

      ops->ack (chan);
      if (sent < ECHO_BYTES && (n = ops->buffer_space (chan)) > 0)
        {
          /* A stream write moves what fits, never more than asked. */
          long w = ops->write (chan, out + sent, MIN (n, ECHO_BYTES - sent));

          ck_assert_int_eq (w, MIN (n, ECHO_BYTES - sent));
          sent += (size_t) w;
          progress = TRUE;
        }
      if ((n = ops->data_ready (chan)) > 0)
        {
          long r = ops->read (chan, in + got, ECHO_BYTES - got);

          ck_assert_int_gt (r, 0);
          ck_assert_int_le (r, ECHO_BYTES - got);
          got += (size_t) r;
          progress = TRUE;
        }
      if (!progress)
        ck_assert_int_eq (poll (&pfd, 1, 30000), 1);
    }
  ck_assert_msg (memcmp (in, out, ECHO_BYTES) == 0, "the echo differs from what was sent");
  signal_fd (peer.to_child);
  join_peer (&peer);
  ops->close (chan);
}
END_TEST

/* ---- short reads and writes ---------------------------------------------- */

static void
child_send_ten_then_wait (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));

  ck_assert_int_eq (ops->send (chan, "0123456789", 10), 10);
  await_fd (child_in);
  ops->close (chan);
}

START_TEST (test_short_read)
{
  Peer peer = fork_peer (child_send_ten_then_wait, GUINT_TO_POINTER (CHILD_PORT));
  QubeVchan *chan = server (CHILD_PORT, 0, 0);
  char buf[100] = "";

  WAIT_FOR (chan, ops->data_ready (chan) == 10);
  /* Asking for more than is there returns what is there, without blocking. */
  ck_assert_int_eq (ops->read (chan, buf, sizeof buf), 10);
  ck_assert_str_eq (buf, "0123456789");
  ck_assert_uint_eq (ops->data_ready (chan), 0);
  signal_fd (peer.to_child);
  join_peer (&peer);
  ops->close (chan);
}
END_TEST

static void
child_idle_then_drain (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));
  guint8 buf[4096];

  await_fd (child_in);
  while (ops->read (chan, buf, sizeof buf) > 0)
    ;
  ops->close (chan);
}

START_TEST (test_short_write)
{
  Peer peer = fork_peer (child_idle_then_drain, GUINT_TO_POINTER (CHILD_PORT));
  QubeVchan *chan = server (CHILD_PORT, 0, 65536);
  g_autofree guint8 *buf = NULL;
  size_t space;

  WAIT_FOR (chan, ops->is_open (chan) == QUBE_VCHAN_CONNECTED);
  space = ops->buffer_space (chan);
  ck_assert_uint_ge (space, 65536);
  /* More than fits: the write is short and does not block. */
  buf = g_malloc0 (2 * space);
  ck_assert_int_eq (ops->write (chan, buf, 2 * space), space);
  ck_assert_uint_eq (ops->buffer_space (chan), 0);
  signal_fd (peer.to_child);
  ops->close (chan);
  join_peer (&peer);
}
END_TEST

/* ---- all-or-nothing ------------------------------------------------------- */

static void
child_send_in_halves (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));
  guint8 msg[1000];

  fill_pattern (msg, sizeof msg, 3, 0);
  ck_assert_int_eq (ops->send (chan, msg, 500), 500);
  await_fd (child_in);
  g_usleep (100000); /* let the reader sit in recv() with half a message */
  ck_assert_int_eq (ops->send (chan, msg + 500, 500), 500);
  /* The oversized send failed on the other side: the next message is
   * exactly this one. */
  ck_assert_int_eq (ops->recv (chan, msg, 4), 4);
  ck_assert_int_eq (memcmp (msg, "next", 4), 0);
  ck_assert_uint_eq (ops->data_ready (chan), 0);
  ops->close (chan);
}

START_TEST (test_all_or_nothing)
{
  Peer peer = fork_peer (child_send_in_halves, GUINT_TO_POINTER (CHILD_PORT));
  QubeVchan *chan = server (CHILD_PORT, 65536, 65536);
  guint8 expected[1000], got[1000];
  size_t ring;
  g_autofree guint8 *huge = NULL;

  fill_pattern (expected, sizeof expected, 3, 0);
  WAIT_FOR (chan, ops->data_ready (chan) >= 500);
  /* recv() of more than the ring can ever hold fails at once. */
  ck_assert_int_eq (ops->recv (chan, got, 0), 0);
  huge = g_malloc0 (64 * 1024 * 1024 + 1);
  ck_assert_int_eq (ops->recv (chan, huge, 64 * 1024 * 1024 + 1), -1);
  signal_fd (peer.to_child);
  /* recv() waits for the whole message, never returns half. */
  ck_assert_int_eq (ops->recv (chan, got, sizeof got), sizeof got);
  ck_assert_int_eq (memcmp (got, expected, sizeof got), 0);

  /* send() of more than the ring fails and moves nothing. */
  ring = ops->buffer_space (chan);
  ck_assert_uint_ge (ring, 65536);
  ck_assert_int_eq (ops->send (chan, huge, 64 * 1024 * 1024 + 1), -1);
  ck_assert_uint_eq (ops->buffer_space (chan), ring);
  ck_assert_int_eq (ops->send (chan, "next", 4), 4);
  join_peer (&peer);
  ops->close (chan);
}
END_TEST

/* ---- back-pressure -------------------------------------------------------- */

#define PRESSURE_READ 20000

static void
child_slow_reader (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));
  g_autofree guint8 *buf = g_malloc (4 * 1024 * 1024);
  size_t total = 0;
  long n;

  await_fd (child_in);   /* the writer has filled the ring */
  read_all (chan, buf, PRESSURE_READ);
  total = PRESSURE_READ;
  while ((n = ops->read (chan, buf + total, 4 * 1024 * 1024 - total)) > 0)
    total += (size_t) n;
  /* Everything written arrived, in order. */
  {
    g_autofree guint8 *expected = g_malloc (total);

    fill_pattern (expected, total, 5, 0);
    ck_assert_int_eq (memcmp (buf, expected, total), 0);
  }
  side_write (child_out, &total, sizeof total);
  ops->close (chan);
}

START_TEST (test_back_pressure)
{
  Peer peer = fork_peer (child_slow_reader, GUINT_TO_POINTER (CHILD_PORT));
  QubeVchan *chan = server (CHILD_PORT, 0, 65536);
  g_autofree guint8 *data = g_malloc (4 * 1024 * 1024);
  size_t written = 0, space, reported = 0;

  fill_pattern (data, 4 * 1024 * 1024, 5, 0);
  WAIT_FOR (chan, ops->is_open (chan) == QUBE_VCHAN_CONNECTED);
  /* Fill the ring while nobody reads: space runs out and stays out. */
  while ((space = ops->buffer_space (chan)) > 0)
    {
      long n = ops->write (chan, data + written, MIN (space, 4096));

      ck_assert_int_gt (n, 0);
      written += (size_t) n;
    }
  ck_assert_uint_ge (written, 65536);
  ck_assert_uint_lt (written, 4 * 1024 * 1024 - PRESSURE_READ - 1000);
  ck_assert_uint_eq (ops->buffer_space (chan), 0);

  /* The reader drains some: space comes back, and a blocking write
   * that had to wait goes through. */
  signal_fd (peer.to_child);
  WAIT_FOR (chan, ops->buffer_space (chan) > 0);
  write_all (chan, data + written, PRESSURE_READ + 1000);
  written += PRESSURE_READ + 1000;
  ops->close (chan);

  side_read (peer.from_child, &reported, sizeof reported);
  ck_assert_uint_eq (reported, written);
  join_peer (&peer);
}
END_TEST

/* ---- the peer leaving in the middle -------------------------------------- */

static void
child_write_and_leave (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));

  ck_assert_int_eq (ops->send (chan, "last words", 10), 10);
  ops->close (chan);
}

START_TEST (test_peer_leaves)
{
  Peer peer = fork_peer (child_write_and_leave, GUINT_TO_POINTER (CHILD_PORT));
  QubeVchan *chan = server (CHILD_PORT, 0, 0);
  char buf[20] = "";

  join_peer (&peer);
  WAIT_FOR (chan, ops->data_ready (chan) == 10 || ops->is_open (chan) == QUBE_VCHAN_DISCONNECTED);
  /* A message that can never complete fails instead of returning part. */
  ck_assert_int_eq (ops->recv (chan, buf, 20), -1);
  /* What the peer sent before leaving is still delivered... */
  ck_assert_int_eq (ops->read (chan, buf, sizeof buf), 10);
  ck_assert_int_eq (memcmp (buf, "last words", 10), 0);
  /* ...then the channel is disconnected, reads and writes fail. */
  WAIT_FOR (chan, ops->is_open (chan) == QUBE_VCHAN_DISCONNECTED);
  ck_assert_int_eq (ops->read (chan, buf, 1), -1);
  ck_assert_int_eq (ops->write (chan, "x", 1), -1);
  ck_assert_int_eq (ops->send (chan, "x", 1), -1);
  ck_assert_msg (strstr (plugin_error (), "closed") != NULL,
                 "the error does not say the peer closed: %s", last_error);
  ops->close (chan);
}
END_TEST

static void
child_read_some_and_leave (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));
  guint8 buf[1000];

  read_all (chan, buf, sizeof buf);
  ops->close (chan);
}

START_TEST (test_writer_sees_error)
{
  Peer peer = fork_peer (child_read_some_and_leave, GUINT_TO_POINTER (CHILD_PORT));
  QubeVchan *chan = server (CHILD_PORT, 0, 0);
  g_autofree guint8 *data = g_malloc0 (1024 * 1024);
  long n = 0;

  /* The writer keeps writing; once the reader is gone, it gets an error
   * rather than blocking forever. */
  for (int i = 0; i < 1000000 && n >= 0; i++)
    n = ops->write (chan, data, 1024 * 1024);
  ck_assert_int_eq (n, -1);
  join_peer (&peer);
  ck_assert_int_eq (ops->is_open (chan), QUBE_VCHAN_DISCONNECTED);
  ops->close (chan);
}
END_TEST

/* ---- from a GLib main loop ------------------------------------------------ */

#define LOOP_BYTES (3 * 1024 * 1024 + 17)

static void
child_send_pattern_and_leave (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));
  g_autofree guint8 *data = g_malloc (LOOP_BYTES);

  fill_pattern (data, LOOP_BYTES, 11, 0);
  for (size_t off = 0; off < LOOP_BYTES; off += 4000)
    write_all (chan, data + off, MIN (4000, LOOP_BYTES - off));
  ops->close (chan);
}

typedef struct {
  QubeVchan *chan;
  GMainLoop *loop;
  guint8 *got;
  size_t len;
  gboolean timed_out;
} LoopState;

/* What a daemon does: on the fd, ack, then take what is there. */
static gboolean
loop_on_event (int fd, GIOCondition condition, gpointer data)
{
  LoopState *st = data;
  size_t n;

  ck_assert_int_eq (ops->ack (st->chan), 0);
  while ((n = ops->data_ready (st->chan)) > 0)
    {
      ck_assert_uint_le (st->len + n, LOOP_BYTES);
      ck_assert_int_eq (ops->read (st->chan, st->got + st->len, n), n);
      st->len += n;
    }
  if (ops->is_open (st->chan) == QUBE_VCHAN_DISCONNECTED)
    {
      g_main_loop_quit (st->loop);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
loop_timeout (gpointer data)
{
  LoopState *st = data;

  st->timed_out = TRUE;
  g_main_loop_quit (st->loop);
  return G_SOURCE_REMOVE;
}

START_TEST (test_main_loop)
{
  Peer peer = fork_peer (child_send_pattern_and_leave, GUINT_TO_POINTER (CHILD_PORT));
  g_autoptr(GMainContext) ctx = g_main_context_new ();
  g_autoptr(GMainLoop) loop = g_main_loop_new (ctx, FALSE);
  g_autofree guint8 *expected = g_malloc (LOOP_BYTES);
  LoopState st = { .loop = loop, .got = g_malloc (LOOP_BYTES) };
  GSource *watch, *timer;

  st.chan = server (CHILD_PORT, 0, 0);
  watch = g_unix_fd_source_new (ops->fd (st.chan), G_IO_IN);
  g_source_set_callback (watch, G_SOURCE_FUNC (loop_on_event), &st, NULL);
  g_source_attach (watch, ctx);
  timer = g_timeout_source_new_seconds (30);
  g_source_set_callback (timer, loop_timeout, &st, NULL);
  g_source_attach (timer, ctx);
  g_main_loop_run (loop);
  g_source_destroy (watch);
  g_source_unref (watch);
  g_source_destroy (timer);
  g_source_unref (timer);

  ck_assert_msg (!st.timed_out, "the main loop saw %zu of %d bytes in 30 s", st.len, LOOP_BYTES);
  ck_assert_uint_eq (st.len, LOOP_BYTES);
  fill_pattern (expected, LOOP_BYTES, 11, 0);
  ck_assert_int_eq (memcmp (st.got, expected, LOOP_BYTES), 0);
  g_free (st.got);
  join_peer (&peer);
  ops->close (st.chan);
}
END_TEST

/* ---- async client init ---------------------------------------------------- */

static void
child_late_server (gpointer arg)
{
  QubeVchan *chan;

  await_fd (child_in);
  chan = server (GPOINTER_TO_UINT (arg), 0, 0);
  ck_assert_int_eq (ops->send (chan, "hello", 5), 5);
  await_fd (child_in);
  ops->close (chan);
}

START_TEST (test_async_client_init)
{
  QubeVchanPeer peer_desc = peer_named ("qube-a");
  QubeVchan *chan;
  Peer peer;
  char buf[6] = "";
  int rc;

  if (ops->client_init_async == NULL)
    {
      fprintf (stderr, "plugin '%s' has no async client init; nothing to check\n", plugin_name);
      return;
    }
  peer = fork_peer (child_late_server, GUINT_TO_POINTER (CHILD_PORT));
  /* Started before the server exists: not connected, not failed. */
  chan = ops->client_init_async (plugin_data, &peer_desc, CHILD_PORT);
  ck_assert_msg (chan != NULL, "client_init_async failed: %s", plugin_error ());
  ck_assert_int_eq (ops->client_init_async_finish (chan), QUBE_ABI_E_TIMEOUT);
  ck_assert_int_ne (ops->is_open (chan), QUBE_VCHAN_CONNECTED);

  signal_fd (peer.to_child);
  while ((rc = ops->client_init_async_finish (chan)) == QUBE_ABI_E_TIMEOUT)
    {
      struct pollfd pfd = { .fd = ops->fd (chan), .events = POLLIN };

      ck_assert_int_eq (poll (&pfd, 1, 30000), 1);
      ck_assert_int_eq (ops->ack (chan), 0);
    }
  ck_assert_msg (rc == 0, "async connect failed: %s", plugin_error ());
  ck_assert_int_eq (ops->is_open (chan), QUBE_VCHAN_CONNECTED);
  ck_assert_int_eq (ops->recv (chan, buf, 5), 5);
  ck_assert_str_eq (buf, "hello");
  signal_fd (peer.to_child);
  join_peer (&peer);
  ops->close (chan);
}
END_TEST

/* ---- many ports at once ---------------------------------------------------- */

#define N_PORTS 64
#define PORT_BASE 1000
#define PER_PORT (256 * 1024)

typedef struct {
  QubeVchan *chan;
  size_t sent;
  size_t got;
} PortState;

/* Serve N_PORTS echo channels from one poll() loop. */
static void
child_many_echo (gpointer arg)
{
  PortState ports[N_PORTS] = { { 0 } };
  struct pollfd pfds[N_PORTS];
  g_autofree guint8 *buf = g_malloc ((size_t) N_PORTS * PER_PORT);
  size_t done = 0;

  for (int i = 0; i < N_PORTS; i++)
    ports[i].chan = client (PORT_BASE + (uint32_t) i);
  while (done < N_PORTS)
    {
      gboolean progress = FALSE;

      done = 0;
      for (int i = 0; i < N_PORTS; i++)
        {
          PortState *p = &ports[i];
          guint8 *mine = buf + (size_t) i * PER_PORT;
          size_t n;

          ops->ack (p->chan);
          if (p->got < PER_PORT && (n = ops->data_ready (p->chan)) > 0)
            {
              ck_assert_int_gt (ops->read (p->chan, mine + p->got, MIN (n, PER_PORT - p->got)), 0);
              p->got += MIN (n, PER_PORT - p->got);
              progress = TRUE;
            }
          if (p->sent < p->got && (n = ops->buffer_space (p->chan)) > 0)
            {
              long w = ops->write (p->chan, mine + p->sent, MIN (n, p->got - p->sent));

              ck_assert_int_gt (w, 0);
              p->sent += (size_t) w;
              progress = TRUE;
            }
          done += p->sent == PER_PORT;
          pfds[i].fd = ops->fd (p->chan);
          pfds[i].events = POLLIN;
        }
      if (!progress && done < N_PORTS)
        ck_assert_int_gt (poll (pfds, N_PORTS, 30000), 0);
    }
  await_fd (child_in);
  for (int i = 0; i < N_PORTS; i++)
    ops->close (ports[i].chan);
}

START_TEST (test_many_ports)
{
  PortState ports[N_PORTS] = { { 0 } };
  struct pollfd pfds[N_PORTS];
  g_autofree guint8 *out = g_malloc ((size_t) N_PORTS * PER_PORT);
  g_autofree guint8 *in = g_malloc ((size_t) N_PORTS * PER_PORT);
  Peer peer = fork_peer (child_many_echo, NULL);
  size_t done = 0;

  for (int i = 0; i < N_PORTS; i++)
    {
      ports[i].chan = server (PORT_BASE + (uint32_t) i, 0, 0);
      fill_pattern (out + (size_t) i * PER_PORT, PER_PORT, (guint32) i, 0);
    }
  while (done < N_PORTS)
    {
      gboolean progress = FALSE;

      done = 0;
      for (int i = 0; i < N_PORTS; i++)
        {
          PortState *p = &ports[i];
          size_t n;

          ops->ack (p->chan);
          if (p->sent < PER_PORT && (n = ops->buffer_space (p->chan)) > 0)
            {
              long w = ops->write (p->chan, out + (size_t) i * PER_PORT + p->sent,
                                   MIN (n, PER_PORT - p->sent));

              ck_assert_int_gt (w, 0);
              p->sent += (size_t) w;
              progress = TRUE;
            }
          if ((n = ops->data_ready (p->chan)) > 0)
            {
              long r = ops->read (p->chan, in + (size_t) i * PER_PORT + p->got, PER_PORT - p->got);

              ck_assert_int_gt (r, 0);
              p->got += (size_t) r;
              progress = TRUE;
            }
          done += p->got == PER_PORT;
          pfds[i].fd = ops->fd (p->chan);
          pfds[i].events = POLLIN;
        }
      if (!progress && done < N_PORTS)
        ck_assert_int_gt (poll (pfds, N_PORTS, 30000), 0);
    }
  for (int i = 0; i < N_PORTS; i++)
    ck_assert_msg (memcmp (in + (size_t) i * PER_PORT, out + (size_t) i * PER_PORT, PER_PORT) == 0,
                   "port %d: the echo differs (crossed channels?)", PORT_BASE + i);
  signal_fd (peer.to_child);
  join_peer (&peer);
  for (int i = 0; i < N_PORTS; i++)
    ops->close (ports[i].chan);
}
END_TEST

/* ---- reads larger than a message, and writes behind unread data ---------- */

/* Several messages of different sizes, written one by one, then gone:
 * few enough bytes to be in flight at once, so that the writer is gone
 * before anything is read. */
static const size_t piece_sizes[] = { 100 * 1024, 100, 64 * 1024, 5000, 40 * 1024 + 7 };
#define PIECES_SEED 5

static size_t
pieces_total (void)
{
  size_t total = 0;

  for (size_t i = 0; i < G_N_ELEMENTS (piece_sizes); i++)
    total += piece_sizes[i];
  return total;
}

static void
child_write_pieces_and_leave (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));
  g_autofree guint8 *data = g_malloc (pieces_total ());
  size_t off = 0;

  fill_pattern (data, pieces_total (), PIECES_SEED, 0);
  for (size_t i = 0; i < G_N_ELEMENTS (piece_sizes); i++)
    {
      write_all (chan, data + off, piece_sizes[i]);
      off += piece_sizes[i];
    }
  ops->close (chan);
}

START_TEST (test_large_reads_after_close)
{
  Peer peer = fork_peer (child_write_pieces_and_leave, GUINT_TO_POINTER (CHILD_PORT));
  /* A ring that holds everything: the writer is gone before we read. */
  QubeVchan *chan = server (CHILD_PORT, 256 * 1024, 0);
  size_t total = pieces_total ();
  g_autofree guint8 *want = g_malloc (total);
  g_autofree guint8 *got = g_malloc (2 * total);
  size_t have = 0;
  long n;

  fill_pattern (want, total, PIECES_SEED, 0);
  join_peer (&peer);
  WAIT_FOR (chan, ops->data_ready (chan) > 0);
  /* A short read first, then reads far larger than any one message. */
  n = ops->read (chan, got, 1000);
  ck_assert_msg (n > 0 && n <= 1000, "a read of 1000 bytes returned %ld: %s", n, plugin_error ());
  have += (size_t) n;
  while (have < total)
    {
      n = ops->read (chan, got + have, 2 * total - have);
      ck_assert_msg (n > 0, "read failed after %zu of %zu bytes: %s", have, total, plugin_error ());
      have += (size_t) n;
    }
  ck_assert_uint_eq (have, total);
  ck_assert_msg (memcmp (got, want, total) == 0, "the bytes read differ from those written");
  /* Nothing more: the channel ends. */
  WAIT_FOR (chan, ops->is_open (chan) == QUBE_VCHAN_DISCONNECTED);
  ck_assert_uint_eq (ops->data_ready (chan), 0);
  ck_assert_int_eq (ops->read (chan, got, 1), -1);
  ops->close (chan);
}
END_TEST

#define UNREAD_BYTES (200 * 1024)
#define BEHIND_BYTES (4 * 1024 * 1024)

/* Sends a large message, then reads what the other end writes meanwhile. */
static void
child_send_then_drain (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));
  g_autofree guint8 *data = g_malloc (MAX (UNREAD_BYTES, BEHIND_BYTES));
  g_autofree guint8 *want = g_malloc (BEHIND_BYTES);

  fill_pattern (data, UNREAD_BYTES, 6, 0);
  write_all (chan, data, UNREAD_BYTES);
  read_all (chan, data, BEHIND_BYTES);
  fill_pattern (want, BEHIND_BYTES, 7, 0);
  ck_assert_msg (memcmp (data, want, BEHIND_BYTES) == 0, "the bytes read differ from those written");
  await_fd (child_in);
  ops->close (chan);
}

START_TEST (test_write_behind_unread)
{
  Peer peer = fork_peer (child_send_then_drain, GUINT_TO_POINTER (CHILD_PORT));
  QubeVchan *chan = server (CHILD_PORT, 256 * 1024, 0);
  g_autofree guint8 *data = g_malloc (BEHIND_BYTES);
  g_autofree guint8 *want = g_malloc (UNREAD_BYTES);

  /* The peer's message waits unread while we write more than our ring
   * to it holds: the room it makes by reading must still reach us. */
  WAIT_FOR (chan, ops->data_ready (chan) > 0);
  fill_pattern (data, BEHIND_BYTES, 7, 0);
  write_all (chan, data, BEHIND_BYTES);
  read_all (chan, data, UNREAD_BYTES);
  fill_pattern (want, UNREAD_BYTES, 6, 0);
  ck_assert_msg (memcmp (data, want, UNREAD_BYTES) == 0, "the bytes read differ from those written");
  signal_fd (peer.to_child);
  join_peer (&peer);
  ops->close (chan);
}
END_TEST

/* ---- reading in place (peek/consume, optional) ---------------------------- */

/* Whether the plugin offers reading in place; one of the two slots
 * without the other is a broken table. */
static gboolean
has_peek (void)
{
  if (!QUBE_ABI_HAS (QubeVchanOps, ops, consume) || (ops->peek == NULL && ops->consume == NULL))
    return FALSE;
  ck_assert_msg (ops->peek != NULL && ops->consume != NULL,
                 "plugin '%s' offers only one of peek() and consume()", plugin_name);
  return TRUE;
}

/* The bytes peek() shows, gathered; `want` of them must be shown. */
static void
peek_expect (QubeVchan *chan, size_t len, size_t want, guint32 seed, guint64 offset)
{
  struct iovec iov[2] = { { NULL, 0 }, { NULL, 0 } };
  int n = ops->peek (chan, iov, len);
  g_autofree guint8 *got = g_malloc (want + 1);
  g_autofree guint8 *expected = g_malloc (want + 1);
  size_t have = 0;

  ck_assert_msg (n >= 0 && n <= 2, "peek returned %d: %s", n, plugin_error ());
  for (int i = 0; i < n; i++)
    {
      ck_assert_msg (have + iov[i].iov_len <= want, "peek of %zu showed more than the %zu there are",
                     len, want);
      memcpy (got + have, iov[i].iov_base, iov[i].iov_len);
      have += iov[i].iov_len;
    }
  ck_assert_msg (have == want, "peek of %zu showed %zu bytes, not %zu", len, have, want);
  fill_pattern (expected, want, seed, offset);
  ck_assert_msg (memcmp (got, expected, want) == 0, "peek showed other bytes than were written");
}

#define PEEK_SEED 11
#define PEEK_FIRST 100

/* Writes PEEK_FIRST bytes; checks that the reader's looking at them gave
 * no room back; once they are consumed, writes as much as the ring holds
 * and, once that is consumed, one byte more, and leaves.  The ring's size
 * is the credit the writer has before writing anything: every transport
 * so far gives the whole ring at once. */
static void
child_fill_for_peek (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));
  g_autofree guint8 *data = NULL;
  size_t ring;

  WAIT_FOR (chan, ops->buffer_space (chan) > 0);
  ring = ops->buffer_space (chan);   /* the reader's whole ring */
  data = g_malloc (ring + 1);
  fill_pattern (data, PEEK_FIRST, PEEK_SEED, 0);
  write_all (chan, data, PEEK_FIRST);
  await_fd (child_in);               /* the reader looked, did not consume */
  ck_assert_uint_eq (ops->buffer_space (chan), ring - PEEK_FIRST);
  signal_fd (child_out);
  await_fd (child_in);               /* the first bytes were consumed */
  WAIT_FOR (chan, ops->buffer_space (chan) == ring);
  fill_pattern (data, ring + 1, PEEK_SEED, PEEK_FIRST);
  write_all (chan, data, ring);
  ck_assert_uint_eq (ops->buffer_space (chan), 0);
  side_write (child_out, &ring, sizeof ring);
  /* Consumed bytes give their room back, as read() does. */
  WAIT_FOR (chan, ops->buffer_space (chan) == ring);
  write_all (chan, data + ring, 1);
  ops->close (chan);
}

START_TEST (test_peek_consume)
{
  Peer peer;
  QubeVchan *chan;
  size_t ring = 0;
  struct iovec iov[2];

  if (!has_peek ())
    return;   /* optional: the core reads with read() instead */
  peer = fork_peer (child_fill_for_peek, GUINT_TO_POINTER (CHILD_PORT));
  chan = server (CHILD_PORT, 65536, 0);
  WAIT_FOR (chan, ops->data_ready (chan) >= PEEK_FIRST);

  /* Shown, not taken: the same bytes again, and no more than asked. */
  peek_expect (chan, 1000, PEEK_FIRST, PEEK_SEED, 0);
  peek_expect (chan, 1000, PEEK_FIRST, PEEK_SEED, 0);
  peek_expect (chan, 10, 10, PEEK_SEED, 0);
  ck_assert_uint_eq (ops->data_ready (chan), PEEK_FIRST);
  /* Give the writer time to see room that looking must not give back. */
  g_usleep (100000);
  signal_fd (peer.to_child);
  await_fd (peer.from_child);
  /* Taken from the front, in order. */
  ck_assert_int_eq (ops->consume (chan, 40), 0);
  ck_assert_uint_eq (ops->data_ready (chan), PEEK_FIRST - 40);
  peek_expect (chan, 1000, PEEK_FIRST - 40, PEEK_SEED, 40);
  /* More than is there: refused, nothing lost. */
  ck_assert_int_eq (ops->consume (chan, PEEK_FIRST - 40 + 1), -1);
  ck_assert_uint_eq (ops->data_ready (chan), PEEK_FIRST - 40);
  ck_assert_int_eq (ops->consume (chan, PEEK_FIRST - 40), 0);
  /* Nothing there: it says so at once. */
  ck_assert_int_eq (ops->peek (chan, iov, 1000), 0);
  signal_fd (peer.to_child);

  /* A full ring that starts PEEK_FIRST bytes in wraps around its end: two
   * spans, in order. */
  side_read (peer.from_child, &ring, sizeof ring);
  WAIT_FOR (chan, ops->data_ready (chan) == ring);
  ck_assert_int_eq (ops->peek (chan, iov, ring), 2);
  peek_expect (chan, ring, ring, PEEK_SEED, PEEK_FIRST);
  ck_assert_int_eq (ops->consume (chan, ring), 0);
  /* The writer got its room back, wrote one byte more and left: what it
   * sent is still shown and taken. */
  join_peer (&peer);
  WAIT_FOR (chan, ops->data_ready (chan) == 1);
  peek_expect (chan, 1000, 1, PEEK_SEED, PEEK_FIRST + ring);
  ck_assert_int_eq (ops->consume (chan, 1), 0);
  WAIT_FOR (chan, ops->is_open (chan) == QUBE_VCHAN_DISCONNECTED);
  ck_assert_uint_eq (ops->data_ready (chan), 0);
  ck_assert_int_eq (ops->peek (chan, iov, 1000), 0);
  ops->close (chan);
}
END_TEST

/* ---- a long stream with a checksum ---------------------------------------- */

#define CHUNK (1024 * 1024)

static size_t
stream_bytes (void)
{
  const char *mib = g_getenv ("QUBE_VCHAN_STREAM_MIB");

  return (size_t) (mib != NULL ? g_ascii_strtoull (mib, NULL, 10) : 1024) * 1024 * 1024;
}

static void
child_stream (gpointer arg)
{
  QubeVchan *chan = client (GPOINTER_TO_UINT (arg));
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guint8 *chunk = g_malloc (CHUNK);
  size_t total = stream_bytes ();
  guint8 digest[32];
  gsize digest_len = sizeof digest;

  fill_pattern (chunk, CHUNK, 9, 0);
  for (size_t off = 0; off < total; off += CHUNK)
    {
      /* Vary every chunk cheaply so that reordering would show. */
      memcpy (chunk, &off, sizeof off);
      g_checksum_update (sum, chunk, CHUNK);
      write_all (chan, chunk, CHUNK);
    }
  g_checksum_get_digest (sum, digest, &digest_len);
  ck_assert_int_eq (ops->send (chan, digest, sizeof digest), sizeof digest);
  await_fd (child_in);
  ops->close (chan);
}

START_TEST (test_stream_checksum)
{
  Peer peer = fork_peer (child_stream, GUINT_TO_POINTER (CHILD_PORT));
  QubeVchan *chan = server (CHILD_PORT, 65536, 65536);
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guint8 *buf = g_malloc (CHUNK);
  size_t total = stream_bytes ();
  guint8 digest[32], theirs[32];
  gsize digest_len = sizeof digest;

  for (size_t got = 0; got < total;)
    {
      long n = ops->read (chan, buf, MIN (CHUNK, total - got));

      ck_assert_msg (n > 0, "stream read failed after %zu bytes: %s", got, plugin_error ());
      g_checksum_update (sum, buf, (gssize) n);
      got += (size_t) n;
    }
  g_checksum_get_digest (sum, digest, &digest_len);
  ck_assert_int_eq (ops->recv (chan, theirs, sizeof theirs), sizeof theirs);
  ck_assert_msg (memcmp (digest, theirs, sizeof digest) == 0,
                 "SHA-256 of the %zu bytes received differs from the sender's", total);
  signal_fd (peer.to_child);
  join_peer (&peer);
  ops->close (chan);
}
END_TEST

/* ---- the socket plugin's own rule: TCP only when configured --------------- */

START_TEST (test_socket_tcp_refused)
{
  QubeVchanPeer peer = peer_named ("remote");

  peer.address = "tcp:127.0.0.1:40000";
  ck_assert_ptr_null (ops->server_init (plugin_data, &peer, 1, 0, 0));
  ck_assert_msg (strstr (plugin_error (), "tcp=enabled") != NULL,
                 "the refusal does not say how to enable TCP: %s", last_error);
  ck_assert_ptr_null (ops->client_init (plugin_data, &peer, 1));
  ck_assert_msg (strstr (plugin_error (), "tcp=enabled") != NULL, "%s", last_error);
}
END_TEST

/* ---- the socket plugin facing a hostile peer ------------------------------ */

static int
raw_unix_socket (uint32_t port, gboolean listening)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  ck_assert_int_ge (fd, 0);
  g_snprintf (sun.sun_path, sizeof sun.sun_path, "%s/vchan-%u.sock", tmp_dir, port);
  if (listening)
    ck_assert_int_eq (bind (fd, (struct sockaddr *) &sun, sizeof sun) == 0 && listen (fd, 1) == 0, 1);
  else
    ck_assert_int_eq (connect (fd, (struct sockaddr *) &sun, sizeof sun), 0);
  return fd;
}

/* A client that breaks the framing is cut off, with a reason, and the
 * server end reports it instead of trusting it. */
START_TEST (test_socket_hostile_client)
{
  static const struct {
    guint32 type;
    gint64 value;   /* -1: one more than the server's read ring */
  } frames[] = {
    { 1, -1 },      /* data beyond the credit it was given */
    { 1, 0 },       /* an empty data frame */
    { 2, 1 },       /* credit for bytes never sent */
    { 7, 1 },       /* no such frame */
  };
  QubeVchan *chan = server (CHILD_PORT + (uint32_t) _i, 0, 0);
  int fd = raw_unix_socket (CHILD_PORT + (uint32_t) _i, FALSE);
  guint32 hello[4], frame[2];
  char c;

  ck_assert_int_eq (recv (fd, hello, sizeof hello, MSG_WAITALL), sizeof hello);
  ck_assert_uint_eq (ntohl (hello[0]), 0x51564348u);
  frame[0] = htonl (frames[_i].type);
  frame[1] = htonl (frames[_i].value < 0 ? ntohl (hello[2]) + 1 : (guint32) frames[_i].value);
  ck_assert_int_eq (send (fd, frame, sizeof frame, MSG_NOSIGNAL), sizeof frame);

  WAIT_FOR (chan, ops->is_open (chan) == QUBE_VCHAN_DISCONNECTED);
  ck_assert_int_eq (ops->read (chan, &c, 1), -1);
  ck_assert_msg (strstr (plugin_error (), "broke the vchan protocol") != NULL, "%s", last_error);
  /* The offender's connection is closed at once, not when the channel is. */
  ck_assert_int_eq (recv (fd, &c, 1, 0), 0);
  close (fd);
  ops->close (chan);
}
END_TEST

/* A server whose hello is not one fails the client's connect. */
START_TEST (test_socket_hostile_server)
{
  static const guint32 hellos[][4] = {
    { 0x12345678u, 1, 1u << 20, 1u << 20 },     /* not our magic */
    { 0x51564348u, 1, 1u << 31, 1u << 20 },     /* a 2 GiB ring */
    { 0x51564348u, 1, 100000, 1u << 20 },       /* not a power of two */
  };
  QubeVchanPeer peer = peer_named ("qube-a");
  int listener = raw_unix_socket (CHILD_PORT, TRUE);
  QubeVchan *chan = ops->client_init_async (plugin_data, &peer, CHILD_PORT);
  guint32 hello[4];
  int fd, rc;

  ck_assert_ptr_nonnull (chan);
  fd = accept (listener, NULL, NULL);
  ck_assert_int_ge (fd, 0);
  for (int i = 0; i < 4; i++)
    hello[i] = htonl (hellos[_i][i]);
  ck_assert_int_eq (send (fd, hello, sizeof hello, MSG_NOSIGNAL), sizeof hello);
  while ((rc = ops->client_init_async_finish (chan)) == QUBE_ABI_E_TIMEOUT)
    ck_assert_int_eq (ops->wait (chan), 0);
  ck_assert_int_ne (rc, 0);
  ck_assert_msg (strstr (plugin_error (), "broke the vchan protocol") != NULL, "%s", last_error);
  close (fd);
  close (listener);
  ops->close (chan);
}
END_TEST

static Suite *
vchan_suite (void)
{
  Suite *s = suite_create (plugin_name);
  TCase *tc = tcase_create ("semantics");
  TCase *tc_long = tcase_create ("stream");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_connect_accept_states);
  tcase_add_test (tc, test_port_taken);
  tcase_add_test (tc, test_client_without_server);
  tcase_add_test (tc, test_both_directions);
  tcase_add_test (tc, test_short_read);
  tcase_add_test (tc, test_short_write);
  tcase_add_test (tc, test_all_or_nothing);
  tcase_add_test (tc, test_back_pressure);
  tcase_add_test (tc, test_peer_leaves);
  tcase_add_test (tc, test_writer_sees_error);
  tcase_add_test (tc, test_main_loop);
  tcase_add_test (tc, test_async_client_init);
  tcase_add_test (tc, test_many_ports);
  tcase_add_test (tc, test_large_reads_after_close);
  tcase_add_test (tc, test_write_behind_unread);
  tcase_add_test (tc, test_peek_consume);
  suite_add_tcase (s, tc);

  /* The socket plugin's own rules, over unix sockets. */
  if (strcmp (plugin_name, "socket") == 0 && g_getenv ("QUBE_VCHAN_ADDRESS") == NULL)
    {
      TCase *tc_socket = tcase_create ("socket");

      tcase_add_checked_fixture (tc_socket, setup, teardown);
      tcase_add_test (tc_socket, test_socket_tcp_refused);
      tcase_add_loop_test (tc_socket, test_socket_hostile_client, 0, 4);
      tcase_add_loop_test (tc_socket, test_socket_hostile_server, 0, 3);
      suite_add_tcase (s, tc_socket);
    }

  tcase_add_checked_fixture (tc_long, setup, teardown);
  tcase_set_timeout (tc_long, 120);
  tcase_add_test (tc_long, test_stream_checksum);
  suite_add_tcase (s, tc_long);
  return s;
}

int
main (int argc, char **argv)
{
  SRunner *runner;
  int failed;

  plugin_name = argc > 1 ? argv[1] : g_getenv ("QUBE_VCHAN_PLUGIN") ?: "socket";
  /* A write to a vanished peer must be an error, not a signal. */
  signal (SIGPIPE, SIG_IGN);
  split_role = g_getenv ("QUBE_VCHAN_SPLIT");
  if (split_role != NULL)
    {
      if (strcmp (split_role, "a") != 0 && strcmp (split_role, "b") != 0)
        {
          fprintf (stderr, "QUBE_VCHAN_SPLIT is '%s': it must be 'a' or 'b'\n", split_role);
          return 2;
        }
      /* Counted across the checks, each in its own fork()ed process. */
      split_seq = mmap (NULL, sizeof *split_seq, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      g_assert (split_seq != MAP_FAILED);
      *split_seq = 0;
    }
  runner = srunner_create (vchan_suite ());
  if (split_role != NULL && srunner_fork_status (runner) == CK_NOFORK)
    {
      fprintf (stderr, "a split run needs each check in its own process: unset CK_FORK\n");
      srunner_free (runner);
      return 2;
    }
  srunner_run_all (runner, CK_ENV);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
