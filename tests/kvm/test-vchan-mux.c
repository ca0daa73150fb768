/* test-vchan-mux.c — unit tests of common/vchan-mux.c, the channel
 * multiplexer the kvm vchan transport runs on both sides of a qube's
 * virtio-serial port: two multiplexers wired back to back, and a peer that
 * breaks the protocol in every way the parser must catch.
 */
#include "config.h"

#include <check.h>
#include <string.h>

#include "common/vchan-mux.h"

/* Moves everything queued on each side to the other until both are quiet;
 * returns -1 as soon as a side rejects what it got. */
static int
shuttle (Vmux *a, Vmux *b)
{
  for (int moved = 1; moved;)
    {
      Vmux *from[2] = { a, b }, *to[2] = { b, a };

      moved = 0;
      for (int i = 0; i < 2; i++)
        {
          const void *buf;
          size_t len;

          vmux_out_peek (from[i], &buf, &len);
          if (len == 0)
            continue;
          moved = 1;
          if (vmux_feed (to[i], buf, len) < 0)
            return -1;
          vmux_out_consumed (from[i], len);
        }
    }
  return 0;
}

static Vmux host, guest;

static void
setup (void)
{
  vmux_init (&host, NULL, NULL);
  vmux_init (&guest, NULL, NULL);
  ck_assert_int_eq (vmux_link_up (&host), 0);
  ck_assert_int_eq (vmux_link_up (&guest), 0);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert (host.peer_up && guest.peer_up);
}

static void
teardown (void)
{
  vmux_clear (&host);
  vmux_clear (&guest);
}

/* A raw frame from a misbehaving peer. */
static int
feed_frame (Vmux *mux, uint16_t type, uint16_t flags, uint32_t port, uint32_t a, uint32_t b)
{
  unsigned char h[16] = { (unsigned char) type, (unsigned char) (type >> 8),
                          (unsigned char) flags, (unsigned char) (flags >> 8) };

  for (int i = 0; i < 4; i++)
    {
      h[4 + i] = (unsigned char) (port >> (8 * i));
      h[8 + i] = (unsigned char) (a >> (8 * i));
      h[12 + i] = (unsigned char) (b >> (8 * i));
    }
  return vmux_feed (mux, h, sizeof h);
}

START_TEST (test_offer_connect_exchange_close)
{
  VmuxChan *srv = vmux_offer (&guest, 512, 65536, 65536);
  VmuxChan *cli;
  char buf[300000];

  ck_assert_ptr_nonnull (srv);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert (vmux_peer_offers (&host, 512));
  ck_assert_ptr_null (vmux_connect (&host, 513));
  cli = vmux_connect (&host, 512);
  ck_assert_ptr_nonnull (cli);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_int_eq (srv->state, VMUX_CHAN_CONNECTED);
  /* Credit is exactly the reader's ring: a writer can never overrun it. */
  ck_assert_uint_eq (vmux_chan_space (cli), VMUX_RING_DEFAULT_MIN);
  memset (buf, 'x', sizeof buf);
  ck_assert_uint_eq (vmux_chan_write (cli, buf, sizeof buf), VMUX_RING_DEFAULT_MIN);
  ck_assert_uint_eq (vmux_chan_write (cli, buf, 1), 0);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_uint_eq (vmux_chan_ready (srv), VMUX_RING_DEFAULT_MIN);
  /* Reading returns the credit. */
  ck_assert_uint_eq (vmux_chan_read (srv, buf, sizeof buf), VMUX_RING_DEFAULT_MIN);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_uint_eq (vmux_chan_space (cli), VMUX_RING_DEFAULT_MIN);
  /* The same port number served from the other side is another channel. */
  ck_assert_ptr_nonnull (vmux_offer (&host, 512, 0, 0));
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert (vmux_peer_offers (&guest, 512));
  /* Closing is seen by the other end; what was sent still arrives. */
  ck_assert_uint_eq (vmux_chan_write (srv, "bye", 3), 3);
  vmux_chan_close (srv);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_int_eq (cli->state, VMUX_CHAN_GONE);
  ck_assert_uint_eq (vmux_chan_read (cli, buf, sizeof buf), 3);
  ck_assert_uint_eq (vmux_chan_space (cli), 0);
}
END_TEST

/* Delivers what `from` queued to `to`, one way only. */
static int
deliver (Vmux *from, Vmux *to)
{
  const void *buf;
  size_t len;

  vmux_out_peek (from, &buf, &len);
  if (len > 0 && vmux_feed (to, buf, len) < 0)
    return -1;
  vmux_out_consumed (from, len);
  return 0;
}

/* The server closes a connected channel and offers the port again while
 * the client, not knowing yet, still sends on the old channel: the old
 * channel's frames are dropped, the link stays up, and the new channel
 * carries only its own bytes. */
START_TEST (test_port_reuse_after_server_close)
{
  VmuxChan *srv = vmux_offer (&guest, 600, 0, 0), *cli, *srv2, *cli2;
  char buf[64];

  ck_assert_int_eq (shuttle (&host, &guest), 0);
  cli = vmux_connect (&host, 600);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_int_eq (srv->state, VMUX_CHAN_CONNECTED);
  /* Crossing on the link: the host's bytes for the old channel, and the
   * guest's close and new offer of the same port. */
  ck_assert_uint_eq (vmux_chan_write (cli, "old", 3), 3);
  ck_assert_uint_eq (vmux_chan_read (cli, buf, sizeof buf), 0);
  vmux_chan_close (srv);
  srv2 = vmux_offer (&guest, 600, 0, 0);
  ck_assert_ptr_nonnull (srv2);
  ck_assert_msg (deliver (&host, &guest) == 0, "the link dropped: %s", guest.error);
  ck_assert_int_eq (srv2->state, VMUX_CHAN_WAITING);
  ck_assert_uint_eq (vmux_chan_ready (srv2), 0);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_int_eq (cli->state, VMUX_CHAN_GONE);
  vmux_chan_close (cli);
  /* The new channel, once its offer is there. */
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert (vmux_peer_offers (&host, 600));
  cli2 = vmux_connect (&host, 600);
  ck_assert_ptr_nonnull (cli2);
  ck_assert_uint_eq (vmux_chan_write (cli2, "new", 3), 3);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_int_eq (srv2->state, VMUX_CHAN_CONNECTED);
  ck_assert_uint_eq (vmux_chan_read (srv2, buf, sizeof buf), 3);
  ck_assert_mem_eq (buf, "new", 3);
}
END_TEST

/* The server withdraws an offer the client is taking at that moment, and
 * offers the port again: the old CONNECT and the bytes sent after it do
 * not make or reach the new channel. */
START_TEST (test_port_reuse_after_withdrawn_offer)
{
  VmuxChan *srv = vmux_offer (&guest, 601, 0, 0), *cli, *srv2, *cli2;
  char buf[64];

  ck_assert_int_eq (shuttle (&host, &guest), 0);
  cli = vmux_connect (&host, 601);
  ck_assert_ptr_nonnull (cli);
  ck_assert_uint_eq (vmux_chan_write (cli, "stale", 5), 5);
  vmux_chan_close (srv);
  srv2 = vmux_offer (&guest, 601, 0, 0);
  ck_assert_ptr_nonnull (srv2);
  ck_assert_msg (deliver (&host, &guest) == 0, "the link dropped: %s", guest.error);
  ck_assert_msg (srv2->state == VMUX_CHAN_WAITING && vmux_chan_ready (srv2) == 0,
                 "the old CONNECT took the new offer (%u bytes of the old channel in it)",
                 (unsigned) vmux_chan_ready (srv2));
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_int_eq (cli->state, VMUX_CHAN_GONE);
  vmux_chan_close (cli);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_int_eq (srv2->state, VMUX_CHAN_WAITING);
  cli2 = vmux_connect (&host, 601);
  ck_assert_ptr_nonnull (cli2);
  ck_assert_uint_eq (vmux_chan_write (cli2, "fresh", 5), 5);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_uint_eq (vmux_chan_read (srv2, buf, sizeof buf), 5);
  ck_assert_mem_eq (buf, "fresh", 5);
}
END_TEST

START_TEST (test_new_session_ends_channels)
{
  VmuxChan *srv = vmux_offer (&guest, 7, 0, 0), *cli;

  ck_assert_int_eq (shuttle (&host, &guest), 0);
  cli = vmux_connect (&host, 7);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  /* The host side reconnects (another process): the guest's connected
   * channel ends, and garbage left over from the old session before the
   * HELLO is skipped. */
  vmux_chan_close (cli);
  vmux_link_down (&host);
  vmux_clear (&host);
  vmux_init (&host, NULL, NULL);
  ck_assert_int_eq (vmux_link_up (&host), 0);
  ck_assert_int_eq (vmux_feed (&host, "stale bytes", 11), 0);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_int_eq (srv->state, VMUX_CHAN_GONE);
  /* The guest's side counts what the new session ended, for its message. */
  ck_assert_uint_eq (guest.reset_ended, 1);
  ck_assert (host.peer_up);
  ck_assert_uint_eq (host.skipped, 11);
}
END_TEST

/* The guest's server end of `port`, connected by the host. */
static VmuxChan *
guest_connected (uint32_t port)
{
  VmuxChan *srv = vmux_offer (&guest, port, 0, 0);

  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_ptr_nonnull (vmux_connect (&host, port));
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  ck_assert_int_eq (srv->state, VMUX_CHAN_CONNECTED);
  return srv;
}

START_TEST (test_hostile_peer)
{
  guest_connected (9);

  /* More data than the credit the host gave. */
  ck_assert_int_eq (feed_frame (&host, VMUX_DATA, VMUX_F_FROM_SERVER, 9,
                                VMUX_RING_DEFAULT_MIN + 1, 0), -1);
  ck_assert_msg (strstr (host.error, "more than the space") != NULL, "%s", host.error);
}
END_TEST

START_TEST (test_hostile_frames)
{
  static const struct {
    uint16_t type, flags;
    uint32_t port, a, b;
    const char *reason;
  } cases[] = {
    { 99, 0, 1, 0, 0, "unknown frame type" },
    { VMUX_CREDIT, 0x8, 1, 1, 0, "unknown frame flags" },
    { VMUX_OFFER, VMUX_F_FROM_SERVER, 1, 1000, 65536, "invalid ring sizes" },
    { VMUX_OFFER, VMUX_F_FROM_SERVER, 1, 1u << 30, 65536, "invalid ring sizes" },
    { VMUX_OFFER, 0, 1, 65536, 65536, "invalid ring sizes" },
    { VMUX_CONNECT, VMUX_F_FROM_SERVER, 1, 0, 0, "connected as a server" },
    { VMUX_HELLO, 0, VMUX_HELLO_MAGIC, 1, 0, "not a version 2 hello" },
    { VMUX_DATA, 0, 12345, 0xffffffffu, 0, "larger than any ring" },
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      Vmux mux;

      vmux_init (&mux, NULL, NULL);
      vmux_link_up (&mux);
      ck_assert_int_eq (feed_frame (&mux, VMUX_HELLO, 0, VMUX_HELLO_MAGIC, VMUX_VERSION, 1), 0);
      ck_assert_int_eq (feed_frame (&mux, cases[i].type, cases[i].flags, cases[i].port,
                                    cases[i].a, cases[i].b), -1);
      ck_assert_msg (strstr (mux.error, cases[i].reason) != NULL, "case %zu: %s", i, mux.error);
      vmux_clear (&mux);
    }
}
END_TEST

START_TEST (test_hostile_credit_and_offers)
{
  VmuxChan *cli;

  ck_assert_ptr_nonnull (vmux_offer (&guest, 3, 0, 0));
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  cli = vmux_connect (&host, 3);
  ck_assert_ptr_nonnull (cli);
  ck_assert_int_eq (shuttle (&host, &guest), 0);
  /* A second CONNECT to a port that is connected already. */
  ck_assert_int_eq (feed_frame (&guest, VMUX_CONNECT, 0, 3, 0, 0), -1);
  ck_assert_msg (strstr (guest.error, "not offered") != NULL, "%s", guest.error);
  /* Credit back beyond what was ever taken. */
  ck_assert_int_eq (feed_frame (&host, VMUX_CREDIT, VMUX_F_FROM_SERVER, 3, 1, 0), -1);
  ck_assert_msg (strstr (host.error, "credit beyond") != NULL, "%s", host.error);
  /* The same port offered twice. */
  ck_assert_int_eq (feed_frame (&guest, VMUX_OFFER, VMUX_F_FROM_SERVER, 40, 65536, 65536), 0);
  ck_assert_int_eq (feed_frame (&guest, VMUX_OFFER, VMUX_F_FROM_SERVER, 40, 65536, 65536), -1);
  ck_assert_msg (strstr (guest.error, "twice") != NULL, "%s", guest.error);
}
END_TEST

/* A peer that never answers the closes of ports it connected to after
 * they were withdrawn fills the list of closes awaiting an answer: the
 * next close cannot be recorded, which vmux_chan_close() reports (so the
 * link is dropped) while it still frees the channel. */
START_TEST (test_close_unrecorded)
{
  VmuxChan *srv = guest_connected (5);

  for (uint32_t port = 1000; port < 1000 + 4096; port++)
    ck_assert_msg (feed_frame (&guest, VMUX_CONNECT, 0, port, 0, 0) == 0, "port %u: %s",
                   (unsigned) port, guest.error);
  ck_assert_int_eq (vmux_chan_close (srv), -1);
  ck_assert_msg (strstr (guest.error, "too many closed channels") != NULL, "%s", guest.error);
  ck_assert_ptr_null (guest.chans);
}
END_TEST

int
main (void)
{
  Suite *suite = suite_create ("vchan-mux");
  TCase *tc = tcase_create ("mux");
  SRunner *runner;
  int failed;

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_offer_connect_exchange_close);
  tcase_add_test (tc, test_new_session_ends_channels);
  tcase_add_test (tc, test_port_reuse_after_server_close);
  tcase_add_test (tc, test_port_reuse_after_withdrawn_offer);
  tcase_add_test (tc, test_hostile_peer);
  tcase_add_test (tc, test_hostile_frames);
  tcase_add_test (tc, test_hostile_credit_and_offers);
  tcase_add_test (tc, test_close_unrecorded);
  suite_add_tcase (suite, tc);
  runner = srunner_create (suite);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
