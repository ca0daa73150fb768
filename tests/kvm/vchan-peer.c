/* vchan-peer.c — the guest end of the kvm vchan conformance test
 * (test-kvm-vchan.c): a static program in the test qube's initramfs that
 * obeys commands from the host over vchan port 1, using the guest
 * transport (agent/transport-virtio.c) exactly as qube-agent does.
 *
 * A command is four little-endian u32 {op, port, count, size}; every reply
 * is {u32 status, u32 zero, u64 value}.  Ops:
 *   ECHO    offer `count` ports from `port` (rings of `size`, 0: default),
 *           reply (offered), echo all of them until the host closes each,
 *           reply (done)
 *   SOURCE  connect to `port`, write count<<32|size bytes of the test
 *           pattern, close, reply (done)
 *   SINK    connect to `port`, read until the host closes, reply with the
 *           checksum of what came (value) ...
 * Plain C and libc only.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport.h"
#include "vchan-peer-proto.h"

#define CONTROL_PORT 1
#define MAX_ECHO 128

static const AgentTransport *t;
static const char *arg;

static void
reply (AgentChan *ctrl, uint32_t status, uint64_t value)
{
  unsigned char buf[16];

  peer_put32 (buf, status);
  peer_put32 (buf + 4, 0);
  peer_put32 (buf + 8, (uint32_t) value);
  peer_put32 (buf + 12, (uint32_t) (value >> 32));
  if (agent_chan_write_all (t, ctrl, buf, sizeof buf) < 0)
    fprintf (stderr, "vchan-peer: cannot reply: %s\n", t->error (ctrl));
}

static int
do_echo (AgentChan *ctrl, uint32_t port, uint32_t count, uint32_t size)
{
  AgentChan *chans[MAX_ECHO];
  int open_chans;
  static char buf[65536];
  char err[256];

  if (count == 0 || count > MAX_ECHO)
    return -1;
  for (uint32_t i = 0; i < count; i++)
    {
      chans[i] = t->listen (arg, port + i, size, size, err, sizeof err);
      if (chans[i] == NULL)
        {
          fprintf (stderr, "vchan-peer: %s\n", err);
          return -1;
        }
    }
  reply (ctrl, 0, count);
  for (uint32_t i = 0; i < count; i++)
    if (t->accept (chans[i], err, sizeof err) < 0)
      {
        fprintf (stderr, "vchan-peer: accept port %u: %s\n", port + i, err);
        return -1;
      }
  open_chans = (int) count;
  while (open_chans > 0)
    {
      int moved = 0;

      for (uint32_t i = 0; i < count; i++)
        {
          size_t n;

          if (chans[i] == NULL)
            continue;
          t->pump (chans[i]);
          n = t->take (chans[i], buf, sizeof buf);
          if (n > 0)
            {
              moved = 1;
              if (agent_chan_write_all (t, chans[i], buf, n) < 0)
                fprintf (stderr, "vchan-peer: echo on port %u: %s\n", port + i, t->error (chans[i]));
            }
          else if (t->gone (chans[i]))
            {
              t->close (chans[i]);
              chans[i] = NULL;
              open_chans--;
            }
        }
      if (!moved && open_chans > 0)
        {
          struct pollfd pfd = { .fd = t->fd (ctrl), .events = POLLIN };

          poll (&pfd, 1, 100);
        }
    }
  return 0;
}

static int
do_source (uint64_t bytes, uint32_t port)
{
  static unsigned char buf[65536];
  uint64_t state = peer_seed (port);
  char err[256];
  AgentChan *chan = t->connect (arg, port, 10000, err, sizeof err);

  if (chan == NULL)
    {
      fprintf (stderr, "vchan-peer: %s\n", err);
      return -1;
    }
  while (bytes > 0)
    {
      size_t n = bytes < sizeof buf ? (size_t) bytes : sizeof buf;

      peer_pattern (&state, buf, n);
      if (agent_chan_write_all (t, chan, buf, n) < 0)
        {
          fprintf (stderr, "vchan-peer: source: %s\n", t->error (chan));
          t->close (chan);
          return -1;
        }
      bytes -= n;
    }
  t->close (chan);
  return 0;
}

static int
do_sink (uint32_t port, uint64_t *sum, uint64_t *total)
{
  static unsigned char buf[65536];
  char err[256];
  AgentChan *chan = t->connect (arg, port, 10000, err, sizeof err);
  PeerSum ps;

  if (chan == NULL)
    {
      fprintf (stderr, "vchan-peer: %s\n", err);
      return -1;
    }
  peer_sum_init (&ps);
  for (;;)
    {
      size_t n = t->take (chan, buf, sizeof buf);

      if (n > 0)
        {
          peer_sum_add (&ps, buf, n);
          continue;
        }
      if (t->gone (chan))
        break;
      {
        struct pollfd pfd = { .fd = t->fd (chan), .events = POLLIN };

        poll (&pfd, 1, 1000);
      }
      t->pump (chan);
    }
  t->close (chan);
  *sum = peer_sum_end (&ps);
  *total = ps.total;
  return 0;
}

int
main (int argc, char **argv)
{
  const char *spec = argc > 1 ? argv[1] : "virtio:org.qubes.vchan";
  char err[256];

  setvbuf (stderr, NULL, _IONBF, 0);
  t = agent_transport_find (spec, &arg);
  if (t == NULL)
    {
      fprintf (stderr, "vchan-peer: unknown transport %s\n", spec);
      return 2;
    }
  for (;;)
    {
      AgentChan *ctrl = t->listen (arg, CONTROL_PORT, 0, 0, err, sizeof err);

      if (ctrl == NULL || t->accept (ctrl, err, sizeof err) < 0)
        {
          fprintf (stderr, "vchan-peer: control port: %s\n", err);
          t->close (ctrl);
          sleep (1);
          continue;
        }
      fprintf (stderr, "vchan-peer: host connected\n");
      for (;;)
        {
          unsigned char cmd[16];
          uint32_t op, port, count, size;
          uint64_t sum = 0, total = 0;
          int rc = -1;

          if (agent_chan_read_exact (t, ctrl, cmd, sizeof cmd) < 0)
            break;
          op = peer_get32 (cmd);
          port = peer_get32 (cmd + 4);
          count = peer_get32 (cmd + 8);
          size = peer_get32 (cmd + 12);
          switch (op)
            {
            case PEER_ECHO:
              rc = do_echo (ctrl, port, count, size);
              break;
            case PEER_SOURCE:
              rc = do_source ((uint64_t) count << 32 | size, port);
              break;
            case PEER_SINK:
              rc = do_sink (port, &sum, &total);
              break;
            default:
              break;
            }
          reply (ctrl, rc == 0 ? 0 : 1, op == PEER_SINK ? sum : total);
          if (op == PEER_SINK)
            reply (ctrl, 0, total);
        }
      fprintf (stderr, "vchan-peer: host left: %s\n", t->error (ctrl));
      t->close (ctrl);
    }
}
