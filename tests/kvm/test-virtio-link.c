/* test-virtio-link.c — the guest's vchan link process (agent/virtio-link.c)
 * run on the host: its "virtio-serial port" is one end of a socket pair,
 * the host is a multiplexer in the test on the other end, and a guest
 * process is a local socket speaking the link's request protocol.
 */
#include "config.h"

#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/vchan-mux.h"
#include "agent/virtio-link.h"

#define DATA_PORT 514

static Vmux host;
static int port_host = -1;    /* the host's end of the port */
static pid_t link_pid = -1;
static char name[64];

static long
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Writes all the host queued to the port. */
static void
host_flush (void)
{
  const void *out;
  size_t len;

  for (vmux_out_peek (&host, &out, &len); len > 0; vmux_out_peek (&host, &out, &len))
    {
      ssize_t n = send (port_host, out, len, MSG_NOSIGNAL);

      ck_assert_msg (n > 0, "writing to the link's port: %s", strerror (errno));
      vmux_out_consumed (&host, (size_t) n);
    }
}

typedef int (*Done) (void *data);

/* Runs the host's side of the port until `done` holds; 0 when it did not
 * within 10 s. */
static int
host_run_until (Done done, void *data)
{
  long deadline = now_ms () + 10000;
  char buf[65536];

  while (!done (data))
    {
      struct pollfd p = { .fd = port_host, .events = POLLIN };
      ssize_t n;

      if (now_ms () > deadline)
        return 0;
      host_flush ();
      if (poll (&p, 1, 50) <= 0)
        continue;
      n = read (port_host, buf, sizeof buf);
      ck_assert_msg (n > 0, "the link closed its port");
      ck_assert_msg (vmux_feed (&host, buf, (size_t) n) == 0, "the link broke the protocol: %s",
                     host.error);
    }
  return 1;
}

static int
peer_up (void *data)
{
  (void) data;
  return host.peer_up;
}

static int
readable (void *data)
{
  struct pollfd p = { .fd = *(int *) data, .events = POLLIN };

  return poll (&p, 1, 0) > 0;
}

static int
chan_connected (void *data)
{
  return ((VmuxChan *) data)->state == VMUX_CHAN_CONNECTED;
}

static int
chan_gone (void *data)
{
  return ((VmuxChan *) data)->state == VMUX_CHAN_GONE;
}

static void
setup (void)
{
  int sv[2], listen_fd;

  snprintf (name, sizeof name, "test-virtio-link-%d", (int) getpid ());
  ck_assert_int_eq (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  /* The link opens its port non-blocking. */
  ck_assert_int_eq (fcntl (sv[1], F_SETFL, O_NONBLOCK), 0);
  listen_fd = vlink_listen (name);
  ck_assert_msg (listen_fd >= 0, "cannot listen as the link: %s", strerror (errno));
  link_pid = fork ();
  ck_assert_int_ge (link_pid, 0);
  if (link_pid == 0)
    {
      close (sv[0]);
      vlink_serve (name, sv[1], listen_fd, getenv ("QUBE_VCHAN_TRACE") != NULL);
    }
  close (sv[1]);
  close (listen_fd);
  port_host = sv[0];
  vmux_init (&host, NULL, NULL);
  ck_assert_int_eq (vmux_link_up (&host), 0);
  ck_assert_msg (host_run_until (peer_up, NULL), "the link never said hello");
}

static void
teardown (void)
{
  if (link_pid > 0)
    {
      kill (link_pid, SIGKILL);
      waitpid (link_pid, NULL, 0);
    }
  close (port_host);
  vmux_clear (&host);
}

/* A guest process connected to the host's offer of `port`, as a service's
 * data channel is; the host's end of the channel in *chan. */
static int
process_connect (uint32_t port, VmuxChan **chan)
{
  struct sockaddr_un sun;
  socklen_t len = vlink_address (name, &sun);
  /* {op, port, wait in ms, 0}, little-endian */
  uint32_t req[VLINK_REQUEST_SIZE / 4] = { htole32 (VLINK_OP_CONNECT), htole32 (port),
                                           htole32 (5000), 0 };
  unsigned char reply[VLINK_REPLY_SIZE];
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  *chan = vmux_offer (&host, port, 0, 0);
  ck_assert_ptr_nonnull (*chan);
  ck_assert_int_eq (connect (fd, (struct sockaddr *) &sun, len), 0);
  ck_assert_int_eq (send (fd, req, sizeof req, MSG_NOSIGNAL), sizeof req);
  ck_assert_msg (host_run_until (readable, &fd), "the link never answered the connect");
  ck_assert_int_eq (recv (fd, reply, sizeof reply, MSG_WAITALL), sizeof reply);
  reply[sizeof reply - 1] = '\0';
  ck_assert_msg (reply[0] == 0, "connect refused: %s", (char *) reply + 4);
  ck_assert_msg (host_run_until (chan_connected, *chan), "the host's channel never connected");
  return fd;
}

/* A service's process writes its last bytes (its exit code) and ends
 * while the host still sends on the channel (the caller's stdin): the
 * link cannot deliver the host's bytes any more, but the process's must
 * reach the host before the channel's close, or the caller loses the
 * exit code ("the peer closed the channel"). */
START_TEST (test_last_bytes_survive_a_process_that_ended)
{
  static const char last[] = "stdout and exit code of the service";
  static const char late[] = "the caller's stdin, late";
  VmuxChan *chan;
  int fd = process_connect (DATA_PORT, &chan);
  char got[sizeof last + 64];
  size_t have = 0;
  int status;

  /* Both arrive while the link is stopped: it sees them in one wake-up. */
  ck_assert_int_eq (kill (link_pid, SIGSTOP), 0);
  ck_assert_int_eq (waitpid (link_pid, &status, WUNTRACED), link_pid);
  ck_assert (WIFSTOPPED (status));
  ck_assert_int_eq (send (fd, last, sizeof last, MSG_NOSIGNAL), sizeof last);
  close (fd);
  ck_assert_int_eq (vmux_chan_write (chan, late, sizeof late), sizeof late);
  host_flush ();
  ck_assert_int_eq (kill (link_pid, SIGCONT), 0);

  ck_assert_msg (host_run_until (chan_gone, chan), "the link never closed the channel");
  have = vmux_chan_read (chan, got, sizeof got);
  ck_assert_msg (have == sizeof last && memcmp (got, last, sizeof last) == 0,
                 "the host got %zu of the %zu bytes the process wrote before it ended", have,
                 sizeof last);
}
END_TEST

/* The ordinary way: bytes both ways, then the process ends. */
START_TEST (test_bytes_both_ways)
{
  static const char out[] = "from the process";
  static const char in[] = "from the host";
  VmuxChan *chan;
  int fd = process_connect (DATA_PORT, &chan);
  char got[64];

  ck_assert_int_eq (vmux_chan_write (chan, in, sizeof in), sizeof in);
  ck_assert_msg (host_run_until (readable, &fd), "the host's bytes never reached the process");
  ck_assert_int_eq (recv (fd, got, sizeof got, 0), sizeof in);
  ck_assert_str_eq (got, in);
  ck_assert_int_eq (send (fd, out, sizeof out, MSG_NOSIGNAL), sizeof out);
  close (fd);
  ck_assert_msg (host_run_until (chan_gone, chan), "the link never closed the channel");
  ck_assert_int_eq (vmux_chan_read (chan, got, sizeof got), sizeof out);
  ck_assert_str_eq (got, out);
}
END_TEST

static Suite *
virtio_link_suite (void)
{
  Suite *s = suite_create ("virtio-link");
  TCase *tc = tcase_create ("link");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_bytes_both_ways);
  tcase_add_test (tc, test_last_bytes_survive_a_process_that_ended);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (virtio_link_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
