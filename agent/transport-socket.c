/* transport-socket.c — the guest end of the "socket" vchan transport.
 *
 * Speaks the framing of plugins/socket (see its README.md): a channel is a
 * unix socket DIR/vchan-PORT.sock, the server holds DIR/vchan-PORT.lock and
 * greets the client with a 16-byte hello (magic "QVCH", version 1, its read
 * ring, its write ring); then both send 8-byte frames {type, value} in
 * network byte order, DATA (value bytes follow, never more than the credit
 * the reader gave) and CREDIT (bytes the reader consumed).  A peer that
 * sends more than its credit, returns more credit than it was given or an
 * unknown frame is cut off.  Plain C and libc only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

#define HELLO_MAGIC 0x51564348u
#define HELLO_VERSION 1u
#define FRAME_DATA 1u
#define FRAME_CREDIT 2u
#define RING_MIN ((size_t) 64 * 1024)
#define RING_MAX ((size_t) 64 * 1024 * 1024)

struct AgentChan {
  int sock;
  int listen_fd;
  int lock_fd;
  char path[sizeof ((struct sockaddr_un *) 0)->sun_path];
  size_t read_ring, write_ring;   /* server: announced in the hello */
  unsigned char *rx;
  size_t rx_size;                 /* a power of two */
  uint64_t rx_head, rx_tail;
  size_t unreported;              /* consumed, credit not yet returned */
  size_t credit, peer_ring;
  unsigned char hdr[8];
  size_t hdr_have;
  size_t payload_left;
  int gone;
  int write_broken;               /* a send failed: nothing more goes out */
  int via[2];                     /* a pipe that pages from a socket pass through */
  char err[256];
};

static int
ring_size_valid (uint32_t size)
{
  return size >= RING_MIN && size <= RING_MAX && (size & (size - 1)) == 0;
}

static size_t
ring_round (size_t min)
{
  size_t size = RING_MIN;

  while (size < min && size < RING_MAX)
    size <<= 1;
  return size;
}

static AgentChan *
chan_new (void)
{
  AgentChan *chan = calloc (1, sizeof *chan);

  if (chan != NULL)
    chan->sock = chan->listen_fd = chan->lock_fd = chan->via[0] = chan->via[1] = -1;
  return chan;
}

static int
chan_set_rings (AgentChan *chan, size_t rx_size, size_t peer_ring)
{
  /* A send buffer that holds the peer's whole ring, so that a writer
   * with credit never waits for the kernel. */
  agent_size_send_buffer (chan->sock, peer_ring);
  chan->rx = malloc (rx_size);
  if (chan->rx == NULL)
    return -1;
  chan->rx_size = rx_size;
  chan->credit = chan->peer_ring = peer_ring;
  return 0;
}

static int
make_path (AgentChan *chan, const char *dir, uint32_t port, char *err, size_t errlen)
{
  int n = snprintf (chan->path, sizeof chan->path, "%s/vchan-%u.sock", dir, (unsigned) port);

  if (n < 0 || (size_t) n >= sizeof chan->path)
    {
      agent_set_error (err, errlen, "socket path for port %u in '%s' is too long", (unsigned) port, dir);
      return -1;
    }
  return 0;
}

static void
socket_close (AgentChan *chan)
{
  if (chan == NULL)
    return;
  if (chan->listen_fd >= 0)
    {
      close (chan->listen_fd);
      unlink (chan->path);
    }
  if (chan->sock >= 0)
    close (chan->sock);
  if (chan->lock_fd >= 0)
    close (chan->lock_fd);
  if (chan->via[0] >= 0)
    {
      close (chan->via[0]);
      close (chan->via[1]);
    }
  free (chan->rx);
  free (chan);
}

static AgentChan *
socket_listen (const char *dir, uint32_t port, size_t read_ring, size_t write_ring,
               char *err, size_t errlen)
{
  AgentChan *chan = chan_new ();
  char lock_path[sizeof chan->path + 8];
  struct sockaddr_un sun = { .sun_family = AF_UNIX };

  if (chan == NULL)
    {
      agent_set_error (err, errlen, "out of memory");
      return NULL;
    }
  if (make_path (chan, dir, port, err, errlen) < 0)
    goto fail;
  snprintf (lock_path, sizeof lock_path, "%s/vchan-%u.lock", dir, (unsigned) port);
  chan->lock_fd = open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (chan->lock_fd < 0)
    {
      agent_set_error (err, errlen, "cannot open '%s': %s", lock_path, strerror (errno));
      goto fail;
    }
  if (flock (chan->lock_fd, LOCK_EX | LOCK_NB) < 0)
    {
      agent_set_error (err, errlen, "port %u is already offered ('%s' is locked)", (unsigned) port, lock_path);
      goto fail;
    }
  unlink (chan->path);
  strcpy (sun.sun_path, chan->path);
  chan->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (chan->listen_fd < 0 || bind (chan->listen_fd, (struct sockaddr *) &sun, sizeof sun) < 0 ||
      listen (chan->listen_fd, 1) < 0)
    {
      agent_set_error (err, errlen, "cannot listen on '%s': %s", chan->path, strerror (errno));
      goto fail;
    }
  chan->read_ring = ring_round (read_ring);
  chan->write_ring = ring_round (write_ring);
  return chan;

fail:
  if (chan->listen_fd >= 0)
    {
      close (chan->listen_fd);
      chan->listen_fd = -1;
    }
  socket_close (chan);
  return NULL;
}

static int
send_all (int fd, struct iovec *iov, int iovcnt)
{
  struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t) iovcnt };

  for (;;)
    {
      ssize_t n = sendmsg (fd, &msg, MSG_NOSIGNAL);

      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return -1;
        }
      while (msg.msg_iovlen > 0 && (size_t) n >= msg.msg_iov[0].iov_len)
        {
          n -= (ssize_t) msg.msg_iov[0].iov_len;
          msg.msg_iov++;
          msg.msg_iovlen--;
        }
      if (msg.msg_iovlen == 0)
        return 0;
      msg.msg_iov[0].iov_base = (char *) msg.msg_iov[0].iov_base + n;
      msg.msg_iov[0].iov_len -= (size_t) n;
    }
}

static int
socket_accept (AgentChan *chan, char *err, size_t errlen)
{
  uint32_t hello[4] = { htonl (HELLO_MAGIC), htonl (HELLO_VERSION),
                        htonl ((uint32_t) chan->read_ring), htonl ((uint32_t) chan->write_ring) };
  struct iovec iov = { hello, sizeof hello };
  int sock;

  do
    sock = accept4 (chan->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  while (sock < 0 && (errno == EINTR || errno == ECONNABORTED));
  if (sock < 0)
    {
      agent_set_error (err, errlen, "cannot accept on '%s': %s", chan->path, strerror (errno));
      return -1;
    }
  /* One client per channel, as with libvchan. */
  close (chan->listen_fd);
  chan->listen_fd = -1;
  unlink (chan->path);
  chan->sock = sock;
  if (chan_set_rings (chan, chan->read_ring, chan->write_ring) < 0 || send_all (sock, &iov, 1) < 0)
    {
      agent_set_error (err, errlen, "cannot greet the peer on '%s': %s", chan->path, strerror (errno));
      return -1;
    }
  return 0;
}

static AgentChan *
socket_connect (const char *dir, uint32_t port, int timeout_ms, char *err, size_t errlen)
{
  AgentChan *chan = chan_new ();
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  long deadline = agent_now_ms () + timeout_ms;
  uint32_t hello[4];
  size_t have = 0;

  if (chan == NULL)
    {
      agent_set_error (err, errlen, "out of memory");
      return NULL;
    }
  if (make_path (chan, dir, port, err, errlen) < 0)
    goto fail;
  strcpy (sun.sun_path, chan->path);
  /* The server may not be there yet: like libvchan's client, wait for it. */
  for (;;)
    {
      chan->sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (chan->sock < 0)
        {
          agent_set_error (err, errlen, "cannot create a socket: %s", strerror (errno));
          goto fail;
        }
      if (connect (chan->sock, (struct sockaddr *) &sun, sizeof sun) == 0)
        break;
      if ((errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN) || agent_now_ms () >= deadline)
        {
          agent_set_error (err, errlen, "cannot connect to '%s': %s", chan->path, strerror (errno));
          goto fail;
        }
      close (chan->sock);
      chan->sock = -1;
      usleep (5000);
    }
  while (have < sizeof hello)
    {
      struct pollfd pfd = { .fd = chan->sock, .events = POLLIN };
      long left = deadline - agent_now_ms ();
      ssize_t n;

      if (left <= 0 || poll (&pfd, 1, (int) left) == 0)
        {
          agent_set_error (err, errlen, "no hello from '%s' in time", chan->path);
          goto fail;
        }
      n = recv (chan->sock, (char *) hello + have, sizeof hello - have, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        {
          agent_set_error (err, errlen, "'%s' closed before its hello", chan->path);
          goto fail;
        }
      if (n > 0)
        have += (size_t) n;
    }
  if (ntohl (hello[0]) != HELLO_MAGIC || ntohl (hello[1]) != HELLO_VERSION ||
      !ring_size_valid (ntohl (hello[2])) || !ring_size_valid (ntohl (hello[3])))
    {
      agent_set_error (err, errlen, "'%s' sent a hello that is not a socket vchan hello", chan->path);
      goto fail;
    }
  if (chan_set_rings (chan, ntohl (hello[3]), ntohl (hello[2])) < 0)
    {
      agent_set_error (err, errlen, "out of memory");
      goto fail;
    }
  return chan;

fail:
  socket_close (chan);
  return NULL;
}

static int
socket_fd (AgentChan *chan)
{
  return chan->sock;
}

static int
cut_off (AgentChan *chan, const char *reason)
{
  snprintf (chan->err, sizeof chan->err, "%s", reason);
  chan->gone = 1;
  return -1;
}

/* A send failed.  When the peer closed, the channel is not marked gone:
 * the pump marks it once it has read everything the peer sent, which may
 * still be in the socket (a qrexec exit code). */
static int
write_failed (AgentChan *chan)
{
  int err = errno;

  chan->write_broken = 1;
  if (err == EPIPE || err == ECONNRESET)
    {
      snprintf (chan->err, sizeof chan->err, "%s", strerror (err));
      return -1;
    }
  return cut_off (chan, strerror (err));
}

static int
socket_pump (AgentChan *chan)
{
  if (chan->gone)
    return -1;
  for (int round = 0; round < 64; round++)
    {
      ssize_t n;

      if (chan->payload_left > 0)
        {
          size_t off = (size_t) (chan->rx_tail & (chan->rx_size - 1));
          size_t room = chan->rx_size - off;

          if (room > chan->payload_left)
            room = chan->payload_left;
          n = recv (chan->sock, chan->rx + off, room, MSG_DONTWAIT);
          if (n > 0)
            {
              chan->rx_tail += (uint64_t) n;
              chan->payload_left -= (size_t) n;
              continue;
            }
        }
      else
        {
          n = recv (chan->sock, chan->hdr + chan->hdr_have, 8 - chan->hdr_have, MSG_DONTWAIT);
          if (n > 0)
            {
              uint32_t v[2];

              chan->hdr_have += (size_t) n;
              if (chan->hdr_have < 8)
                continue;
              chan->hdr_have = 0;
              memcpy (v, chan->hdr, 8);
              v[0] = ntohl (v[0]);
              v[1] = ntohl (v[1]);
              if (v[0] == FRAME_DATA)
                {
                  if (v[1] == 0 || v[1] > chan->rx_size - (size_t) (chan->rx_tail - chan->rx_head))
                    return cut_off (chan, "the peer sent more than the space it was given");
                  chan->payload_left = v[1];
                }
              else if (v[0] == FRAME_CREDIT)
                {
                  if (v[1] == 0 || v[1] > chan->peer_ring - chan->credit)
                    return cut_off (chan, "the peer returned credit beyond its ring");
                  chan->credit += v[1];
                }
              else
                return cut_off (chan, "the peer sent an unknown frame type");
              continue;
            }
        }
      if (n == 0)
        return cut_off (chan, "the peer closed the channel");
      if (errno == EAGAIN || errno == EINTR)
        return 0;
      return cut_off (chan, strerror (errno));
    }
  return 0;
}

static size_t
socket_ready (AgentChan *chan)
{
  return (size_t) (chan->rx_tail - chan->rx_head);
}

static size_t
socket_take (AgentChan *chan, void *buf, size_t len)
{
  size_t fill = socket_ready (chan);
  size_t n = len < fill ? len : fill;
  size_t off = (size_t) (chan->rx_head & (chan->rx_size - 1));
  size_t first = chan->rx_size - off < n ? chan->rx_size - off : n;

  if (n == 0)
    return 0;
  memcpy (buf, chan->rx + off, first);
  memcpy ((char *) buf + first, chan->rx, n - first);
  chan->rx_head += n;
  chan->unreported += n;
  /* Return credit in batches, and always once the buffer is empty so that
   * a peer waiting to send a whole message sees all the room there is. */
  if (!chan->gone && (chan->unreported >= chan->rx_size / 4 || chan->rx_head == chan->rx_tail))
    {
      uint32_t frame[2] = { htonl (FRAME_CREDIT), htonl ((uint32_t) chan->unreported) };
      struct iovec iov = { frame, sizeof frame };

      chan->unreported = 0;
      if (!chan->write_broken && send_all (chan->sock, &iov, 1) < 0)
        write_failed (chan);
    }
  return n;
}

static size_t
socket_space (AgentChan *chan)
{
  return chan->gone || chan->write_broken ? 0 : chan->credit;
}

static long
socket_write_some (AgentChan *chan, const void *buf, size_t len)
{
  size_t n = len < chan->credit ? len : chan->credit;
  uint32_t frame[2] = { htonl (FRAME_DATA), htonl ((uint32_t) n) };
  struct iovec iov[2] = { { frame, sizeof frame }, { (void *) buf, n } };

  if (chan->write_broken || chan->gone)
    return -1;
  if (n == 0)
    return 0;
  if (send_all (chan->sock, iov, 2) < 0)
    return write_failed (chan);
  chan->credit -= n;
  return (long) n;
}

/* How many messages one data frame may carry. */
#define SPLICE_FRAME_MSGS 16

/* Moves `len` bytes, which the pipe `fd` holds, into the channel's socket. */
static int
splice_all (AgentChan *chan, int fd, size_t len)
{
  while (len > 0)
    {
      ssize_t n = splice (fd, NULL, chan->sock, NULL, len, SPLICE_F_MORE);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
        return write_failed (chan);
      if (n <= 0)
        return cut_off (chan, n < 0 ? strerror (errno) : "the pipe ended inside a message");
      len -= (size_t) n;
    }
  return 0;
}

static long
socket_splice_from_pipe (AgentChan *chan, int fd, int from_socket, size_t max, size_t chunk,
                         size_t header_len,
                         void (*make_header) (void *header, size_t len, void *data), void *data)
{
  int avail = 0;
  size_t moved = 0;

  if (header_len > 64)
    return cut_off (chan, "a message header longer than 64 bytes");
  if (chan->write_broken || chan->gone)
    return -1;
  if (ioctl (fd, FIONREAD, &avail) < 0 || avail <= 0)
    return 0;
  if (from_socket && chan->via[0] < 0)
    {
      if (pipe2 (chan->via, O_CLOEXEC) < 0)
        {
          char reason[128];

          snprintf (reason, sizeof reason, "cannot make a pipe to splice through: %s", strerror (errno));
          return cut_off (chan, reason);
        }
      /* Room for a whole message's pages whatever sizes they come in. */
      (void) fcntl (chan->via[1], F_SETPIPE_SZ, 1024 * 1024);
    }
  /* As far as the credit goes: more comes as frames the caller's loop
   * takes in, while it keeps serving the other direction. */
  while (moved < (size_t) avail && moved < max && chan->credit > header_len)
    {
      size_t lens[SPLICE_FRAME_MSGS];
      size_t left, room, total = 0;
      size_t frame_left, in_pipe;   /* payload not yet in the pipe; in it */
      int n_msgs = 0;

      /* One frame carries as many messages as the pipe holds and the
       * credit allows: the host takes a frame's payload in one receive. */
      left = ((size_t) avail < max ? (size_t) avail : max) - moved;
      room = chan->credit;
      while (left > 0 && room > header_len && n_msgs < SPLICE_FRAME_MSGS)
        {
          size_t len = left < chunk ? left : chunk;

          if (len > room - header_len)
            len = room - header_len;
          lens[n_msgs++] = len;
          total += header_len + len;
          room -= header_len + len;
          left -= len;
        }
      frame_left = total - (size_t) n_msgs * header_len;
      in_pipe = 0;
      for (int i = 0; i < n_msgs; i++)
        {
          unsigned char hdr[8 + 64];
          size_t hdr_len = header_len;
          struct iovec iov[1];

          /* The frame header before the first message's; then each
           * message's header with its payload spliced behind it: the
           * pages go from the pipe to the socket. */
          if (i == 0)
            {
              uint32_t frame[2] = { htonl (FRAME_DATA), htonl ((uint32_t) total) };

              memcpy (hdr, frame, sizeof frame);
              hdr_len += sizeof frame;
            }
          make_header (hdr + hdr_len - header_len, lens[i], data);
          iov[0] = (struct iovec) { hdr, hdr_len };
          if (send_all (chan->sock, iov, 1) < 0)
            return write_failed (chan);
          if (from_socket)
            {
              /* splice() needs a pipe on one side: the socket's pages
               * pass through ours.  It is filled with as much of the
               * frame as it takes at once (one call for many messages)
               * and only when empty, so that filling never waits. */
              for (size_t rest = lens[i]; rest > 0;)
                {
                  size_t step;

                  if (in_pipe == 0)
                    {
                      ssize_t n = splice (fd, NULL, chan->via[1], NULL, frame_left, SPLICE_F_MOVE);

                      if (n < 0 && errno == EINTR)
                        continue;
                      if (n <= 0)
                        return cut_off (chan, n < 0 ? strerror (errno) : "the output ended inside a message");
                      in_pipe = (size_t) n;
                      frame_left -= (size_t) n;
                    }
                  step = rest < in_pipe ? rest : in_pipe;
                  if (splice_all (chan, chan->via[0], step) < 0)
                    return -1;
                  in_pipe -= step;
                  rest -= step;
                }
            }
          else if (splice_all (chan, fd, lens[i]) < 0)
            return -1;
          moved += lens[i];
        }
      chan->credit -= total;
    }
  return (long) moved;
}

static const char *
socket_error (AgentChan *chan)
{
  return chan->err[0] != '\0' ? chan->err : "no error";
}

static int
socket_gone (AgentChan *chan)
{
  return chan->gone && socket_ready (chan) == 0;
}

const AgentTransport agent_transport_socket = {
  .name = "socket",
  .listen = socket_listen,
  .accept = socket_accept,
  .connect = socket_connect,
  .fd = socket_fd,
  .pump = socket_pump,
  .ready = socket_ready,
  .take = socket_take,
  .space = socket_space,
  .write_some = socket_write_some,
  .room_events = POLLIN,
  .close = socket_close,
  .error = socket_error,
  .gone = socket_gone,
  .splice_from_pipe = socket_splice_from_pipe,
};
