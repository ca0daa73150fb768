/* transport-virtio.c — the guest end of the kvm vchan transport.
 *
 * Every channel of the qube travels over one virtio-serial port (the
 * spec's argument: a port name found in /sys/class/virtio-ports/NAME/name,
 * e.g. "virtio:org.qubes.vchan", or a device path), multiplexed with the
 * protocol of common/vchan-mux.c, which the host side (plugins/kvm)
 * shares.  Only one process can open the port, so one process owns it
 * (virtio-link.c, started by the first process that needs it) and every
 * channel here is a local socket to that process: bytes flow through it
 * as far as the host's credit allows.  Plain C and libc only.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"
#include "virtio-link.h"

#define RX_MAX ((size_t) 256 * 1024)

struct AgentChan {
  int fd;
  uint32_t port;
  unsigned char *rx;
  size_t rx_off, rx_len;
  int eof;
  char err[256];
};

int
vlink_find_port (const char *name, char *path, size_t pathlen)
{
  DIR *dir;
  struct dirent *e;
  int found = 0;

  if (name[0] == '/')
    return snprintf (path, pathlen, "%s", name) < (int) pathlen ? 0 : -1;
  dir = opendir ("/sys/class/virtio-ports");
  if (dir == NULL)
    return -1;
  while (!found && (e = readdir (dir)) != NULL)
    {
      char file[512], buf[128];
      FILE *f;

      if (e->d_name[0] == '.')
        continue;
      snprintf (file, sizeof file, "/sys/class/virtio-ports/%s/name", e->d_name);
      f = fopen (file, "re");
      if (f == NULL)
        continue;
      if (fgets (buf, sizeof buf, f) != NULL)
        {
          buf[strcspn (buf, "\n")] = '\0';
          if (strcmp (buf, name) == 0)
            found = snprintf (path, pathlen, "/dev/%s", e->d_name) < (int) pathlen;
        }
      fclose (f);
    }
  closedir (dir);
  return found ? 0 : -1;
}

static void
put32 (unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char) v;
  p[1] = (unsigned char) (v >> 8);
  p[2] = (unsigned char) (v >> 16);
  p[3] = (unsigned char) (v >> 24);
}

/* A connection to the port's link process, starting it if need be. */
static int
link_connect (const char *name, char *err, size_t errlen)
{
  struct sockaddr_un sun;
  socklen_t len = vlink_address (name, &sun);

  if (len == 0)
    {
      agent_set_error (err, errlen, "virtio-serial port name '%s' is too long", name);
      return -1;
    }
  for (int attempt = 0; attempt < 2; attempt++)
    {
      int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

      if (fd < 0)
        {
          agent_set_error (err, errlen, "cannot create a socket: %s", strerror (errno));
          return -1;
        }
      if (connect (fd, (struct sockaddr *) &sun, len) == 0)
        return fd;
      close (fd);
      if (attempt == 0 && vlink_start (name, err, errlen) < 0)
        return -1;
    }
  agent_set_error (err, errlen, "cannot reach the vchan link of port %s: %s", name,
                   strerror (errno));
  return -1;
}

static int
read_reply (AgentChan *chan, char *err, size_t errlen)
{
  unsigned char buf[VLINK_REPLY_SIZE];
  size_t have = 0;

  while (have < sizeof buf)
    {
      ssize_t n = recv (chan->fd, buf + have, sizeof buf - have, 0);

      if (n == 0 || (n < 0 && errno != EINTR))
        {
          agent_set_error (err, errlen, "vchan port %u: the link process went away",
                           (unsigned) chan->port);
          return -1;
        }
      if (n > 0)
        have += (size_t) n;
    }
  if (buf[0] != 0)
    {
      buf[sizeof buf - 1] = '\0';
      agent_set_error (err, errlen, "vchan port %u: %s", (unsigned) chan->port, (char *) buf + 4);
      return -1;
    }
  return 0;
}

static void
virtio_close (AgentChan *chan)
{
  if (chan == NULL)
    return;
  if (chan->fd >= 0)
    close (chan->fd);
  free (chan->rx);
  free (chan);
}

static AgentChan *
request (const char *name, uint32_t op, uint32_t port, uint32_t a, uint32_t b,
         char *err, size_t errlen)
{
  AgentChan *chan = calloc (1, sizeof *chan);
  unsigned char req[VLINK_REQUEST_SIZE];

  if (chan == NULL || (chan->rx = malloc (RX_MAX)) == NULL)
    {
      agent_set_error (err, errlen, "out of memory");
      free (chan);
      return NULL;
    }
  chan->port = port;
  chan->fd = link_connect (name, err, errlen);
  if (chan->fd < 0)
    {
      virtio_close (chan);
      return NULL;
    }
  put32 (req, op);
  put32 (req + 4, port);
  put32 (req + 8, a);
  put32 (req + 12, b);
  if (send (chan->fd, req, sizeof req, MSG_NOSIGNAL) != (ssize_t) sizeof req ||
      read_reply (chan, err, errlen) < 0)
    {
      if (err != NULL && err[0] == '\0')
        agent_set_error (err, errlen, "vchan port %u: %s", (unsigned) port, strerror (errno));
      virtio_close (chan);
      return NULL;
    }
  return chan;
}

static AgentChan *
virtio_listen (const char *arg, uint32_t port, size_t read_ring, size_t write_ring,
               char *err, size_t errlen)
{
  return request (arg, VLINK_OP_LISTEN, port, (uint32_t) read_ring, (uint32_t) write_ring,
                  err, errlen);
}

static int
virtio_accept (AgentChan *chan, char *err, size_t errlen)
{
  return read_reply (chan, err, errlen);
}

static AgentChan *
virtio_connect (const char *arg, uint32_t port, int timeout_ms, char *err, size_t errlen)
{
  return request (arg, VLINK_OP_CONNECT, port, (uint32_t) (timeout_ms > 0 ? timeout_ms : 0), 0,
                  err, errlen);
}

static int
virtio_fd (AgentChan *chan)
{
  return chan->fd;
}

static size_t
virtio_ready (AgentChan *chan)
{
  return chan->rx_len;
}

static int
virtio_pump (AgentChan *chan)
{
  while (!chan->eof && chan->rx_len < RX_MAX)
    {
      ssize_t n;

      if (chan->rx_off > 0)
        {
          memmove (chan->rx, chan->rx + chan->rx_off, chan->rx_len);
          chan->rx_off = 0;
        }
      n = recv (chan->fd, chan->rx + chan->rx_len, RX_MAX - chan->rx_len, MSG_DONTWAIT);
      if (n > 0)
        {
          chan->rx_len += (size_t) n;
          continue;
        }
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        break;
      chan->eof = 1;
      snprintf (chan->err, sizeof chan->err, "the host closed vchan port %u",
                (unsigned) chan->port);
    }
  return chan->eof ? -1 : 0;
}

static size_t
virtio_take (AgentChan *chan, void *buf, size_t len)
{
  size_t n = len < chan->rx_len ? len : chan->rx_len;

  memcpy (buf, chan->rx + chan->rx_off, n);
  chan->rx_off += n;
  chan->rx_len -= n;
  if (chan->rx_len == 0)
    chan->rx_off = 0;
  return n;
}

/* The link process takes what the host has credit for: how much that is
 * does not show here, and a write moves what the socket takes. */
static size_t
virtio_space (AgentChan *chan)
{
  (void) chan;
  return (size_t) -1;
}

static long
virtio_write_some (AgentChan *chan, const void *buf, size_t len)
{
  ssize_t n;

  do
    n = send (chan->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n >= 0)
    return (long) n;
  if (errno == EAGAIN || errno == EWOULDBLOCK)
    return 0;
  snprintf (chan->err, sizeof chan->err, "vchan port %u: %s", (unsigned) chan->port,
            errno == EPIPE ? "the host closed the channel" : strerror (errno));
  return -1;
}

static const char *
virtio_error (AgentChan *chan)
{
  return chan->err[0] != '\0' ? chan->err : "no error";
}

static int
virtio_gone (AgentChan *chan)
{
  return chan->eof && chan->rx_len == 0;
}

const AgentTransport agent_transport_virtio = {
  .name = "virtio",
  .listen = virtio_listen,
  .accept = virtio_accept,
  .connect = virtio_connect,
  .fd = virtio_fd,
  .pump = virtio_pump,
  .ready = virtio_ready,
  .take = virtio_take,
  .space = virtio_space,
  .write_some = virtio_write_some,
  .room_events = POLLOUT,
  .close = virtio_close,
  .error = virtio_error,
  .gone = virtio_gone,
};
