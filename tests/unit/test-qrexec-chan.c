/* test-qrexec-chan.c — tests of a qrexec channel over a local socket (the
 * data channel the qrexec daemon relays for dom0 programs): bytes go both
 * ways intact, the peer's end is seen once everything it sent was read,
 * the channel keeps one main-loop source for its whole life instead of
 * making one per event, and bytes looked at in place are taken only when
 * consumed.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qube-plugin-private.h"
#include "qube-qrexec-chan.h"
#include "state-fixture.h"

typedef struct {
  GByteArray *got;
  guint events;
} Echo;

/* Sends back whatever arrives. */
static void
echo_cb (QubeQrexecChan *chan, gpointer user_data)
{
  Echo *echo = user_data;
  guint8 buf[4096];
  gsize n;

  echo->events++;
  while ((n = _qube_qrexec_chan_read (chan, buf, sizeof buf)) > 0)
    {
      g_byte_array_append (echo->got, buf, (guint) n);
      _qube_qrexec_chan_send (chan, buf, n);
    }
}

/* The id the next source attached to `context` gets: ids are handed out
 * in order, so the difference between two probes counts the sources
 * attached in between. */
static guint
next_source_id (GMainContext *context)
{
  GSource *probe = g_idle_source_new ();
  guint id = g_source_attach (probe, context);

  g_source_destroy (probe);
  g_source_unref (probe);
  return id;
}

/* Runs `context` until `peer` has `len` bytes to read, and reads them. */
static void
read_from_peer (GMainContext *context, int peer, guint8 *buf, gsize len)
{
  gsize have = 0;

  while (have < len)
    {
      gssize n = recv (peer, buf + have, len - have, MSG_DONTWAIT);

      if (n > 0)
        have += (gsize) n;
      else
        {
          ck_assert_msg (n < 0 && errno == EAGAIN, "the channel's socket ended early");
          g_main_context_iteration (context, TRUE);
        }
    }
}

START_TEST (test_echo_keeps_one_source)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Echo echo = { g_byte_array_new (), 0 };
  int sv[2];
  QubeQrexecChan *chan;
  guint first, last;
  const guint rounds = 200;

  ck_assert_int_eq (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  chan = _qube_qrexec_chan_new_fd (sv[0], context);
  _qube_qrexec_chan_set_callback (chan, echo_cb, &echo);
  first = next_source_id (context);
  for (guint i = 0; i < rounds; i++)
    {
      char msg[64], back[64];
      gsize len = (gsize) g_snprintf (msg, sizeof msg, "message %u", i);

      ck_assert_int_eq (send (sv[1], msg, len, MSG_NOSIGNAL), (gssize) len);
      read_from_peer (context, sv[1], (guint8 *) back, len);
      ck_assert_mem_eq (back, msg, len);
    }
  last = next_source_id (context);
  ck_assert_uint_ge (echo.events, rounds);
  /* Only the probe itself: no source was made for an event. */
  ck_assert_msg (last - first == 1, "%u sources were attached for %u events",
                 last - first - 1, echo.events);
  _qube_qrexec_chan_free (chan);
  close (sv[0]);
  close (sv[1]);
  g_byte_array_unref (echo.got);
}
END_TEST

static void
count_cb (QubeQrexecChan *chan, gpointer user_data)
{
  (void) chan;
  (*(guint *) user_data)++;
}

START_TEST (test_peer_end_after_its_data)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  int sv[2];
  QubeQrexecChan *chan;
  guint events = 0;
  char buf[16];

  ck_assert_int_eq (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  chan = _qube_qrexec_chan_new_fd (sv[0], context);
  _qube_qrexec_chan_set_callback (chan, count_cb, &events);
  ck_assert_int_eq (send (sv[1], "last", 4, MSG_NOSIGNAL), 4);
  close (sv[1]);
  while (!_qube_qrexec_chan_is_closed (chan, NULL) && _qube_qrexec_chan_data_ready (chan) < 4)
    g_main_context_iteration (context, TRUE);
  /* What the peer sent before it left is still there to read. */
  ck_assert (!_qube_qrexec_chan_is_closed (chan, NULL));
  ck_assert_uint_eq (_qube_qrexec_chan_read (chan, buf, sizeof buf), 4);
  ck_assert_mem_eq (buf, "last", 4);
  ck_assert (_qube_qrexec_chan_is_closed (chan, NULL));
  /* Ended and drained, the channel waits for nothing: the hang-up does
   * not keep waking the loop. */
  events = 0;
  while (g_main_context_iteration (context, FALSE))
    ;
  ck_assert_uint_eq (events, 0);
  _qube_qrexec_chan_free (chan);
  close (sv[0]);
}
END_TEST

/* Bytes looked at in place stay there until consumed, and the next look
 * goes on after them. */
START_TEST (test_peek_then_consume)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  int sv[2];
  QubeQrexecChan *chan;
  guint events = 0;
  struct iovec iov[2];
  char buf[16];

  ck_assert_int_eq (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  chan = _qube_qrexec_chan_new_fd (sv[0], context);
  _qube_qrexec_chan_set_callback (chan, count_cb, &events);
  ck_assert_int_eq (_qube_qrexec_chan_peek (chan, iov, 100), 0);
  ck_assert_int_eq (send (sv[1], "abcdefgh", 8, MSG_NOSIGNAL), 8);
  while (_qube_qrexec_chan_data_ready (chan) < 8)
    g_main_context_iteration (context, TRUE);

  ck_assert_int_eq (_qube_qrexec_chan_peek (chan, iov, 3), 1);
  ck_assert_uint_eq (iov[0].iov_len, 3);
  ck_assert_mem_eq (iov[0].iov_base, "abc", 3);
  ck_assert_uint_eq (_qube_qrexec_chan_data_ready (chan), 8);
  _qube_qrexec_chan_consume (chan);
  ck_assert_uint_eq (_qube_qrexec_chan_data_ready (chan), 5);
  ck_assert_int_eq (_qube_qrexec_chan_peek (chan, iov, 100), 1);
  ck_assert_uint_eq (iov[0].iov_len, 5);
  ck_assert_mem_eq (iov[0].iov_base, "defgh", 5);
  _qube_qrexec_chan_consume (chan);
  ck_assert_uint_eq (_qube_qrexec_chan_data_ready (chan), 0);
  /* Reads go on where the looks ended. */
  ck_assert_int_eq (send (sv[1], "ij", 2, MSG_NOSIGNAL), 2);
  while (_qube_qrexec_chan_data_ready (chan) < 2)
    g_main_context_iteration (context, TRUE);
  ck_assert_uint_eq (_qube_qrexec_chan_read (chan, buf, sizeof buf), 2);
  ck_assert_mem_eq (buf, "ij", 2);
  _qube_qrexec_chan_free (chan);
  close (sv[0]);
  close (sv[1]);
}
END_TEST

/* ---- over a vchan transport ----------------------------------------------- */

#define STREAM_BYTES (3 * 1024 * 1024 + 17)
/* Not a divisor of the ring: the looks end all over it. */
#define LOOK_BYTES 100003

/* The transport the data channel is read through: the socket plugin, which
 * shows bytes in its ring, and the same plugin through an ABI 1.1 table
 * (tests/plugins/test-vchan-v11.c), which the core reads from into a
 * buffer of its own. */
static const char *const reader_plugins[] = { "socket", "test-vchan-v11" };

static guint8
pattern_byte (gsize i)
{
  return (guint8) ((i * 2654435761u) >> 11) ^ (guint8) (i >> 16);
}

START_TEST (test_vchan_peek_keeps_order)
{
  const char *reader_name = reader_plugins[_i];
  const char *builddir = g_getenv ("QUBE_TEST_BUILDDIR") ?: ".";
  g_autofree char *socket_dir = g_build_filename (builddir, "plugins/socket/.libs", NULL);
  g_autofree char *socket_so = g_build_filename (socket_dir, "socket.so", NULL);
  g_autofree char *path = g_strdup_printf ("%s:%s/tests/plugins/.libs", socket_dir, builddir);
  g_autoptr(GError) error = NULL;
  g_autofree char *tmp = NULL;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(QubePluginRegistry) registry = NULL;
  g_autofree guint8 *data = g_malloc (STREAM_BYTES);
  g_autofree guint8 *got = g_malloc (STREAM_BYTES);
  QubePluginInfo *reader_plugin, *writer_plugin;
  QubeVchanPeer reader_peer = { .size = sizeof reader_peer, .name = "writer", .domid = -1 };
  QubeVchanPeer writer_peer = { .size = sizeof writer_peer, .name = "reader", .domid = -1 };
  QubeQrexecChan *reader, *writer;
  gsize have = 0;
  guint wrapped = 0;

  if (!g_file_test (socket_so, G_FILE_TEST_EXISTS))
    {
      fprintf (stderr, "SKIP %s: the socket plugin was not built (%s)\n", reader_name, socket_so);
      return;
    }
  tmp = fixture_make_state_dir ();
  g_setenv ("QUBE_PLUGIN_PATH", path, TRUE);
  g_setenv ("QUBE_TEST_SOCKET_PLUGIN", socket_so, TRUE);
  registry = qube_plugin_registry_new (tmp, tmp);
  reader_plugin = _qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_VCHAN, reader_name, &error);
  ck_assert_msg (reader_plugin != NULL, "%s", error ? error->message : "");
  writer_plugin = _qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_VCHAN, "socket", &error);
  ck_assert_msg (writer_plugin != NULL, "%s", error ? error->message : "");
  reader_peer.runtime_dir = writer_peer.runtime_dir = tmp;

  for (gsize i = 0; i < STREAM_BYTES; i++)
    data[i] = pattern_byte (i);
  reader = _qube_qrexec_chan_server (reader_plugin, &reader_peer, 600, 65536, 65536, context, &error);
  ck_assert_msg (reader != NULL, "%s", error ? error->message : "");
  writer = _qube_qrexec_chan_client (writer_plugin, &writer_peer, 600, context, &error);
  ck_assert_msg (writer != NULL, "%s", error ? error->message : "");
  while (!_qube_qrexec_chan_is_connected (writer))
    g_main_context_iteration (context, TRUE);
  /* Queued at once, sent as the reader's ring makes room. */
  ck_assert (_qube_qrexec_chan_send (writer, data, STREAM_BYTES));

  /* Looks of LOOK_BYTES each, once that much is there: one of them takes
   * in the end of the 1 MiB ring and its start. */
  while (have < STREAM_BYTES)
    {
      gsize want = MIN (LOOK_BYTES, STREAM_BYTES - have);
      gsize shown = 0;
      struct iovec iov[2];
      int n;

      while (_qube_qrexec_chan_data_ready (reader) < want)
        {
          ck_assert_msg (!_qube_qrexec_chan_is_closed (reader, NULL), "the channel ended after %zu bytes", have);
          g_main_context_iteration (context, TRUE);
        }
      n = _qube_qrexec_chan_peek (reader, iov, want);
      ck_assert_int_ge (n, 1);
      for (int i = 0; i < n; i++)
        {
          ck_assert_uint_le (shown + iov[i].iov_len, want);
          memcpy (got + have + shown, iov[i].iov_base, iov[i].iov_len);
          shown += iov[i].iov_len;
        }
      ck_assert_uint_eq (shown, want);
      wrapped += n == 2;
      _qube_qrexec_chan_consume (reader);
      have += shown;
    }
  ck_assert_msg (memcmp (got, data, STREAM_BYTES) == 0, "the bytes looked at differ from those sent");
  if (strcmp (reader_name, "socket") == 0)
    ck_assert_msg (wrapped > 0, "no look ever wrapped around the ring");
  else
    ck_assert_uint_eq (wrapped, 0);   /* one buffer of the core's */
  _qube_qrexec_chan_free (writer);
  _qube_qrexec_chan_free (reader);
  g_clear_object (&registry);
  fixture_remove_state_dir (tmp);
}
END_TEST

static Suite *
chan_suite (void)
{
  Suite *s = suite_create ("qrexec-chan");
  TCase *tc = tcase_create ("local socket");

  tcase_add_test (tc, test_echo_keeps_one_source);
  tcase_add_test (tc, test_peer_end_after_its_data);
  tcase_add_test (tc, test_peek_then_consume);
  suite_add_tcase (s, tc);
  tc = tcase_create ("vchan");
  tcase_add_loop_test (tc, test_vchan_peek_keeps_order, 0, G_N_ELEMENTS (reader_plugins));
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *runner = srunner_create (chan_suite ());
  int failed;

  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
