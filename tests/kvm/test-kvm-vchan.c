/* test-kvm-vchan.c — the vchan conformance cases against the kvm transport,
 * with one end in a real qube: the kvm plugin (loaded through the core's
 * registry) boots a qube under QEMU (TCG here) whose initramfs carries
 * tests/kvm/vchan-peer, the guest end built on agent/transport-virtio.c.
 * The host end is the plugin's vchan operations, as the qrexec daemon uses
 * them.  The peer obeys commands sent on vchan port 1 (vchan-peer.c).
 *
 * One qube serves every case (tests run in this process, one after the
 * other); whatever happens, it is killed at the end.
 */
#include "config.h"

#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "kvm-vchan-fixture.h"
#include "vchan-peer-proto.h"

#define EVENT_TIMEOUT_S 120
#define RING ((size_t) 256 * 1024)   /* the rings a server gets for read_min 0 */

static KvmTestQube q;
static const QubeVchanOps *ops;
static void *plugin;
static QubeVchanPeer peer;
static QubeVchan *ctrl;

static const char *
plugin_error (int rc)
{
  static char *message;

  g_free (message);
  message = kvm_test_plugin_error (&q, rc);
  return message;
}

/* ---- the guest peer's commands ---- */

static void
command (uint32_t op, uint32_t port, uint32_t count, uint32_t size)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg (kvm_test_peer_command (&q, ctrl, op, port, count, size, &error), "%s",
                 error ? error->message : "");
}

static uint64_t
reply (void)
{
  g_autoptr(GError) error = NULL;
  guint64 value = 0;

  ck_assert_msg (kvm_test_peer_reply (&q, ctrl, &value, &error), "%s",
                 error ? error->message : "");
  return value;
}

/* Waits on the channel's event fd until `done` says so. */
static void
wait_until (QubeVchan *chan, gboolean (*done) (QubeVchan *, gsize), gsize arg, const char *what)
{
  gint64 deadline = g_get_monotonic_time () + EVENT_TIMEOUT_S * G_USEC_PER_SEC;

  while (!done (chan, arg))
    {
      struct pollfd pfd = { .fd = ops->fd (chan), .events = POLLIN };

      ck_assert_msg (g_get_monotonic_time () < deadline, "timed out waiting: %s", what);
      poll (&pfd, 1, 200);
      ck_assert_int_eq (ops->ack (chan), 0);
    }
}

static gboolean
is_state (QubeVchan *chan, gsize state)
{
  return ops->is_open (chan) == (int) state;
}

static gboolean
has_ready (QubeVchan *chan, gsize n)
{
  return ops->data_ready (chan) >= n;
}

static QubeVchan *
connect_port (uint32_t port)
{
  QubeVchan *chan = ops->client_init (plugin, &peer, port);

  ck_assert_msg (chan != NULL, "client_init on port %u: %s", port, plugin_error (0));
  ck_assert_int_eq (ops->is_open (chan), QUBE_VCHAN_CONNECTED);
  return chan;
}

static void
read_all (QubeVchan *chan, void *buf, size_t len)
{
  size_t have = 0;

  while (have < len)
    {
      long n = ops->read (chan, (char *) buf + have, len - have);

      ck_assert_msg (n > 0, "read: %s", plugin_error (0));
      have += (size_t) n;
    }
}

static void
write_all (QubeVchan *chan, const void *buf, size_t len)
{
  size_t done = 0;

  while (done < len)
    {
      long n = ops->write (chan, (const char *) buf + done, len - done);

      ck_assert_msg (n > 0, "write: %s", plugin_error (0));
      done += (size_t) n;
    }
}

/* ---- cases ---- */

START_TEST (test_connect_accept_states)
{
  QubeVchan *srv;
  PeerSum sum;

  /* Offered here, taken by the guest. */
  srv = ops->server_init (plugin, &peer, 7, 0, 0);
  ck_assert_msg (srv != NULL, "server_init: %s", plugin_error (0));
  ck_assert_int_eq (ops->is_open (srv), QUBE_VCHAN_WAITING);
  /* A second offer of a port in use is refused. */
  ck_assert_ptr_null (ops->server_init (plugin, &peer, 7, 0, 0));
  /* A port the guest does not offer: refused, as libvchan's client is. */
  ck_assert_ptr_null (ops->client_init (plugin, &peer, 99));
  ck_assert_msg (strstr (plugin_error (0), "does not offer") != NULL, "%s", plugin_error (0));

  command (PEER_SINK, 7, 0, 0);
  wait_until (srv, is_state, QUBE_VCHAN_CONNECTED, "the guest connecting");
  write_all (srv, "hello", 5);
  ops->close (srv);
  peer_sum_init (&sum);
  peer_sum_add (&sum, (const unsigned char *) "hello", 5);
  ck_assert_uint_eq (reply (), peer_sum_end (&sum));
  ck_assert_uint_eq (reply (), 5);
}
END_TEST

START_TEST (test_both_directions)
{
  const size_t total = 4 * 1024 * 1024;
  g_autofree unsigned char *out = g_malloc (total);
  g_autofree unsigned char *in = g_malloc (total);
  uint64_t state = peer_seed (10);
  size_t sent = 0, got = 0;
  QubeVchan *chan;

  peer_pattern (&state, out, total);
  command (PEER_ECHO, 10, 1, 0);
  ck_assert_uint_eq (reply (), 1);
  chan = connect_port (10);
  /* Both ways at once, driven by buffer_space/data_ready and the fd. */
  while (got < total)
    {
      size_t space = ops->buffer_space (chan), ready = ops->data_ready (chan);
      struct pollfd pfd = { .fd = ops->fd (chan), .events = POLLIN };

      if (sent < total && space > 0)
        {
          long n = ops->write (chan, out + sent, MIN (space, total - sent));

          ck_assert_int_eq (n, (long) MIN (space, total - sent));
          sent += (size_t) n;
        }
      if (ready > 0)
        {
          long n = ops->read (chan, in + got, MIN (ready, total - got));

          ck_assert_int_eq (n, (long) MIN (ready, total - got));
          got += (size_t) n;
        }
      if (space == 0 && ready == 0)
        {
          ck_assert_int_gt (poll (&pfd, 1, EVENT_TIMEOUT_S * 1000), 0);
          ops->ack (chan);
        }
    }
  ck_assert_int_eq (memcmp (in, out, total), 0);
  ops->close (chan);
  reply ();
}
END_TEST

START_TEST (test_short_read_and_all_or_nothing)
{
  char buf[1000], back[1000];
  QubeVchan *chan;

  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (char) (i * 7);
  command (PEER_ECHO, 11, 1, 0);
  reply ();
  chan = connect_port (11);
  ck_assert_int_eq (ops->send (chan, buf, 100), 100);
  wait_until (chan, has_ready, 100, "the echo");
  /* A stream read moves what is asked for when more is there... */
  ck_assert_int_eq (ops->read (chan, back, 10), 10);
  ck_assert_uint_eq (ops->data_ready (chan), 90);
  /* ...and what is there when less is: never blocks for the rest. */
  ck_assert_int_eq (ops->read (chan, back + 10, sizeof back), 90);
  ck_assert_int_eq (memcmp (back, buf, 100), 0);
  /* recv waits for the whole message, however the echo splits it. */
  ck_assert_int_eq (ops->send (chan, buf, sizeof buf), (long) sizeof buf);
  ck_assert_int_eq (ops->recv (chan, back, sizeof back), (long) sizeof back);
  ck_assert_int_eq (memcmp (back, buf, sizeof buf), 0);
  /* A message larger than the peer's ring can never be sent: refused. */
  {
    g_autofree char *big = g_malloc0 (RING + 1);

    ck_assert_uint_eq (ops->buffer_space (chan), RING);
    ck_assert_int_eq (ops->send (chan, big, RING + 1), -1);
    ck_assert_int_eq (ops->recv (chan, big, RING + 1), -1);
    /* Exactly the ring fits. */
    ck_assert_int_eq (ops->send (chan, big, RING), (long) RING);
    ck_assert_int_eq (ops->recv (chan, big, RING), (long) RING);
  }
  ops->close (chan);
  reply ();
}
END_TEST

START_TEST (test_back_pressure)
{
  const size_t total = 1024 * 1024;
  g_autofree unsigned char *want = g_malloc (total);
  g_autofree unsigned char *got = g_malloc (total);
  uint64_t state = peer_seed (13);
  QubeVchan *srv = ops->server_init (plugin, &peer, 13, 0, 0);

  ck_assert_ptr_nonnull (srv);
  peer_pattern (&state, want, total);
  command (PEER_SOURCE, 13, 0, (uint32_t) total);
  /* The guest writes more than the ring holds; nothing is read here, so
   * it stops exactly when the ring is full. */
  wait_until (srv, has_ready, RING, "the ring to fill");
  g_usleep (300 * 1000);
  ck_assert_uint_eq (ops->data_ready (srv), RING);
  read_all (srv, got, total);
  ck_assert_int_eq (memcmp (got, want, total), 0);
  reply ();
  /* The guest closed after writing: the channel ends once drained. */
  wait_until (srv, is_state, QUBE_VCHAN_DISCONNECTED, "the guest closing");
  ck_assert_int_eq (ops->read (srv, got, 1), -1);
  ck_assert_int_eq (ops->write (srv, got, 1), -1);
  ops->close (srv);
}
END_TEST

START_TEST (test_peer_leaves)
{
  unsigned char want[3000], got[3000];
  uint64_t state = peer_seed (14);
  QubeVchan *srv = ops->server_init (plugin, &peer, 14, 0, 0);

  ck_assert_ptr_nonnull (srv);
  peer_pattern (&state, want, sizeof want);
  command (PEER_SOURCE, 14, 0, sizeof want);
  reply ();
  /* Gone, but what it sent before leaving still arrives. */
  ck_assert_int_eq (ops->is_open (srv), QUBE_VCHAN_CONNECTED);
  read_all (srv, got, sizeof got);
  ck_assert_int_eq (memcmp (got, want, sizeof want), 0);
  ck_assert_int_eq (ops->is_open (srv), QUBE_VCHAN_DISCONNECTED);
  ck_assert_int_eq (ops->read (srv, got, 1), -1);
  ck_assert_int_eq (ops->send (srv, got, 1), -1);
  ck_assert_int_eq (ops->wait (srv), 0);   /* returns at once */
  ops->close (srv);
}
END_TEST

START_TEST (test_async_client_init)
{
  QubeVchan *chan = ops->client_init_async (plugin, &peer, 20);
  char buf[64];
  int rc;

  ck_assert_msg (chan != NULL, "client_init_async: %s", plugin_error (0));
  ck_assert_int_eq (ops->client_init_async_finish (chan), QUBE_ABI_E_TIMEOUT);
  ck_assert_int_eq (ops->is_open (chan), QUBE_VCHAN_WAITING);
  command (PEER_ECHO, 20, 1, 0);
  while ((rc = ops->client_init_async_finish (chan)) == QUBE_ABI_E_TIMEOUT)
    {
      struct pollfd pfd = { .fd = ops->fd (chan), .events = POLLIN };

      ck_assert_int_gt (poll (&pfd, 1, EVENT_TIMEOUT_S * 1000), 0);
      ops->ack (chan);
    }
  ck_assert_msg (rc == 0, "client_init_async_finish: %s", plugin_error (rc));
  reply ();
  ck_assert_int_eq (ops->send (chan, "async", 5), 5);
  ck_assert_int_eq (ops->recv (chan, buf, 5), 5);
  ck_assert_int_eq (memcmp (buf, "async", 5), 0);
  ops->close (chan);
  reply ();
}
END_TEST

#define MANY 64

START_TEST (test_many_ports)
{
  QubeVchan *chans[MANY];
  char out[MANY][4096], in[4096];

  command (PEER_ECHO, 100, MANY, 0);
  ck_assert_uint_eq (reply (), MANY);
  for (int i = 0; i < MANY; i++)
    {
      chans[i] = connect_port (100 + (uint32_t) i);
      memset (out[i], 'a' + i % 26, sizeof out[i]);
      snprintf (out[i], 16, "port %u", 100u + (unsigned) i);
      ck_assert_int_eq (ops->send (chans[i], out[i], sizeof out[i]), (long) sizeof out[i]);
    }
  /* Each channel gets back its own bytes, none of another's. */
  for (int i = MANY - 1; i >= 0; i--)
    {
      ck_assert_int_eq (ops->recv (chans[i], in, sizeof in), (long) sizeof in);
      ck_assert_int_eq (memcmp (in, out[i], sizeof in), 0);
      ops->close (chans[i]);
    }
  reply ();
}
END_TEST

static size_t
stream_bytes (void)
{
  const char *mib = g_getenv ("QUBE_KVM_VCHAN_STREAM_MIB");

  return (size_t) (mib != NULL ? atoi (mib) : 64) * 1024 * 1024;
}

/* A large stream each way, every byte checked (the guest checksums what it
 * gets; what it sends is compared here). */
START_TEST (test_stream_checksum)
{
  g_autoptr(GError) error = NULL;
  double h2g = 0, g2h = 0;

  ck_assert_msg (kvm_test_stream (&q, ctrl, TRUE, 30, stream_bytes (), &h2g, &error), "%s",
                 error ? error->message : "");
  ck_assert_msg (kvm_test_stream (&q, ctrl, FALSE, 31, stream_bytes (), &g2h, &error), "%s",
                 error ? error->message : "");
  printf ("kvm vchan: %zu MiB host->guest at %.1f MB/s, guest->host at %.1f MB/s\n",
          stream_bytes () >> 20, h2g, g2h);
}
END_TEST

/* ---- the qube ---- */

/* Each case runs in its own process (check forks), which holds the qube's
 * vchan link while it runs: so every case also proves that a new process
 * gets the link once the previous one let go. */
static void
setup (void)
{
  g_autoptr(GError) error = NULL;

  ctrl = kvm_test_peer_connect (&q, 60, &error);
  ck_assert_msg (ctrl != NULL, "%s", error ? error->message : "");
}

static void
teardown (void)
{
  ops->close (ctrl);
}

static gboolean
boot (void)
{
  g_autofree char *peer_prog = kvm_test_build_path ("tests/kvm/vchan-peer");
  const char *extra[] = { peer_prog, NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *runtime_dir = NULL;

  if (!kvm_test_qube_prepare (&q, extra, &error))
    {
      g_printerr ("%s\n", error->message);
      return FALSE;
    }
  ops = q.ops;
  plugin = q.plugin;
  g_assert (ops != NULL && g_strcmp0 (q.backend->vchan_transport, "kvm") == 0);
  runtime_dir = g_build_filename (q.tmp_dir, "run", "vchantest", NULL);
  if (!kvm_test_qube_boot (&q, "vchantest", runtime_dir, "qube.run=vchan-peer", &error))
    {
      g_printerr ("%s\n", error->message);
      return FALSE;
    }
  peer = q.peer;
  return TRUE;
}

int
main (void)
{
  g_autofree char *qemu = g_find_program_in_path ("qemu-system-x86_64");
  gboolean booted;
  int failed = 1;

  if (qemu == NULL)
    {
      printf ("SKIP: qemu-system-x86_64 is not installed (Debian package qemu-system-x86)\n");
      return 77;
    }
  booted = boot ();
  if (booted)
    {
      Suite *suite = suite_create ("kvm-vchan");
      TCase *tc = tcase_create ("guest");
      SRunner *runner;

      tcase_set_timeout (tc, 600);
      tcase_add_checked_fixture (tc, setup, teardown);
      tcase_add_test (tc, test_connect_accept_states);
      tcase_add_test (tc, test_both_directions);
      tcase_add_test (tc, test_short_read_and_all_or_nothing);
      tcase_add_test (tc, test_back_pressure);
      tcase_add_test (tc, test_peer_leaves);
      tcase_add_test (tc, test_async_client_init);
      tcase_add_test (tc, test_many_ports);
      tcase_add_test (tc, test_stream_checksum);
      suite_add_tcase (suite, tc);
      runner = srunner_create (suite);
      srunner_run_all (runner, CK_NORMAL);
      failed = srunner_ntests_failed (runner);
      srunner_free (runner);
    }
  kvm_test_qube_destroy (&q);
  return booted && failed == 0 ? 0 : 1;
}
