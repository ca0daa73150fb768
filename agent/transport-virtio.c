/* transport-virtio.c — the guest end of the kvm vchan transport.
 *
 * Every channel of the process travels over one virtio-serial port (the
 * spec's argument: a port name found in /sys/class/virtio-ports/NAME/name,
 * e.g. "virtio:org.qubes.vchan", or a device path), multiplexed with the
 * protocol of common/vchan-mux.c, which the host side (plugins/kvm) shares.
 *
 * The host starts each session with a HELLO; the guest answers and offers
 * the ports it serves.  While the host is not connected the port reports
 * POLLHUP and writes would block, so waiting is done by short sleeps then.
 * A virtio-serial port can be opened by one process only: the process that
 * opened the link owns it, and a child it forked cannot use it (it is told
 * so).  Plain C and libc only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/vchan-mux.h"
#include "transport.h"

/* Sleep while the host is not connected to the port. */
#define HOST_ABSENT_SLEEP_MS 20

struct AgentChan {
  VmuxChan *vc;
  uint32_t port;
  char err[256];
};

static struct {
  int fd;
  pid_t owner;
  char name[128];
  Vmux mux;
  int broken;
  char err[256];
} vlink = { .fd = -1 };

static void
sleep_ms (int ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };

  nanosleep (&ts, NULL);
}

/* The /dev path of the virtio-serial port named `name`. */
static int
find_port (const char *name, char *path, size_t pathlen)
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

static int
link_open (const char *name, char *err, size_t errlen)
{
  char path[300];

  if (vlink.fd >= 0)
    {
      if (vlink.owner != getpid ())
        {
          agent_set_error (err, errlen, "the virtio-serial port %s belongs to process %d; a forked "
                   "process cannot share it", vlink.name, (int) vlink.owner);
          return -1;
        }
      if (strcmp (name, vlink.name) != 0)
        {
          agent_set_error (err, errlen, "this process already uses virtio-serial port %s, not %s",
                   vlink.name, name);
          return -1;
        }
      if (vlink.broken)
        {
          agent_set_error (err, errlen, "%s", vlink.err);
          return -1;
        }
      return 0;
    }
  if (strlen (name) >= sizeof vlink.name)
    {
      agent_set_error (err, errlen, "virtio-serial port name '%s' is too long", name);
      return -1;
    }
  if (find_port (name, path, sizeof path) < 0)
    {
      agent_set_error (err, errlen, "no virtio-serial port named '%s' in /sys/class/virtio-ports", name);
      return -1;
    }
  vlink.fd = open (path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (vlink.fd < 0)
    {
      agent_set_error (err, errlen, "cannot open %s (port %s): %s", path, name, strerror (errno));
      return -1;
    }
  vlink.owner = getpid ();
  strcpy (vlink.name, name);
  vmux_init (&vlink.mux, NULL, NULL);
  /* If the host is connected it answers; if not, the HELLO is dropped and
   * the host asks when it connects. */
  if (vmux_link_up (&vlink.mux) == 0)
    {
      const void *out;
      size_t len;

      ssize_t n;

      vmux_out_peek (&vlink.mux, &out, &len);
      n = write (vlink.fd, out, len);
      (void) n;   /* sent or dropped: nothing to keep either way */
      vmux_out_consumed (&vlink.mux, len);
    }
  return 0;
}

static void
link_down (const char *why)
{
  (void) why;
  if (vlink.mux.peer_up)
    vmux_link_down (&vlink.mux);
}

/* Reads what the host sent, without blocking.  -1 once the host broke the
 * protocol (the link is then unusable). */
static int
link_read (void)
{
  char buf[65536];

  if (vlink.broken)
    return -1;
  for (int round = 0; round < 64; round++)
    {
      ssize_t n = read (vlink.fd, buf, sizeof buf);

      if (n > 0)
        {
          if (vmux_feed (&vlink.mux, buf, (size_t) n) < 0)
            {
              snprintf (vlink.err, sizeof vlink.err, "the host broke the vchan protocol: %s",
                        vlink.mux.error);
              vlink.broken = 1;
              link_down (vlink.err);
              return -1;
            }
          continue;
        }
      if (n == 0)
        /* The host side is not connected (any more). */
        link_down ("the host closed the port");
      else if (errno != EAGAIN && errno != EINTR)
        link_down (strerror (errno));
      return 0;
    }
  return 0;
}

/* Waits up to timeout_ms (-1: forever) for bytes from the host. */
static void
link_wait (int timeout_ms)
{
  struct pollfd pfd = { .fd = vlink.fd, .events = POLLIN };
  int r = poll (&pfd, 1, timeout_ms);

  if (r > 0 && (pfd.revents & POLLHUP) && !(pfd.revents & POLLIN))
    {
      link_down ("the host is not connected");
      sleep_ms (timeout_ms >= 0 && timeout_ms < HOST_ABSENT_SLEEP_MS ? timeout_ms
                                                                     : HOST_ABSENT_SLEEP_MS);
    }
}

/* Writes everything queued, taking in what arrives meanwhile.  Output
 * queued while the host is away is dropped (the next session starts over). */
static int
link_flush (void)
{
  for (;;)
    {
      const void *out;
      size_t len;
      ssize_t n;
      struct pollfd pfd = { .fd = vlink.fd, .events = POLLIN | POLLOUT };

      vmux_out_peek (&vlink.mux, &out, &len);
      if (len == 0 || vlink.broken)
        return vlink.broken ? -1 : 0;
      if (!vlink.mux.peer_up)
        {
          vmux_out_consumed (&vlink.mux, len);
          return 0;
        }
      n = write (vlink.fd, out, len);
      if (n > 0)
        {
          vmux_out_consumed (&vlink.mux, (size_t) n);
          continue;
        }
      if (n < 0 && errno != EAGAIN && errno != EINTR)
        {
          link_down (strerror (errno));
          continue;
        }
      if (poll (&pfd, 1, -1) < 0 && errno != EINTR)
        return -1;
      if ((pfd.revents & POLLHUP) && !(pfd.revents & POLLIN))
        link_down ("the host is not connected");
      else if ((pfd.revents & POLLIN) && link_read () < 0)
        return -1;
    }
}

static AgentChan *
chan_new (uint32_t port, char *err, size_t errlen)
{
  AgentChan *chan = calloc (1, sizeof *chan);

  if (chan == NULL)
    agent_set_error (err, errlen, "out of memory");
  else
    chan->port = port;
  return chan;
}

static AgentChan *
virtio_listen (const char *arg, uint32_t port, size_t read_ring, size_t write_ring,
               char *err, size_t errlen)
{
  AgentChan *chan;

  if (link_open (arg, err, errlen) < 0 || (chan = chan_new (port, err, errlen)) == NULL)
    return NULL;
  chan->vc = vmux_offer (&vlink.mux, port, read_ring, write_ring);
  if (chan->vc == NULL)
    {
      agent_set_error (err, errlen, "cannot offer vchan port %u: %s", (unsigned) port, vlink.mux.error);
      free (chan);
      return NULL;
    }
  link_flush ();
  return chan;
}

static int
virtio_accept (AgentChan *chan, char *err, size_t errlen)
{
  while (chan->vc->state == VMUX_CHAN_WAITING)
    {
      if (link_read () < 0)
        {
          agent_set_error (err, errlen, "%s", vlink.err);
          return -1;
        }
      if (link_flush () < 0)
        {
          agent_set_error (err, errlen, "%s", vlink.err);
          return -1;
        }
      if (chan->vc->state != VMUX_CHAN_WAITING)
        break;
      link_wait (-1);
    }
  if (chan->vc->state != VMUX_CHAN_CONNECTED && vmux_chan_ready (chan->vc) == 0)
    {
      agent_set_error (err, errlen, "vchan port %u: the host went away", (unsigned) chan->port);
      return -1;
    }
  return 0;
}

static AgentChan *
virtio_connect (const char *arg, uint32_t port, int timeout_ms, char *err, size_t errlen)
{
  long deadline = agent_now_ms () + timeout_ms;
  AgentChan *chan;

  if (link_open (arg, err, errlen) < 0 || (chan = chan_new (port, err, errlen)) == NULL)
    return NULL;
  /* Like libvchan's client, wait for the server to offer the port. */
  for (;;)
    {
      long left;

      if (link_read () < 0 || link_flush () < 0)
        {
          agent_set_error (err, errlen, "%s", vlink.err);
          break;
        }
      if (vmux_peer_offers (&vlink.mux, port))
        {
          chan->vc = vmux_connect (&vlink.mux, port);
          if (chan->vc == NULL)
            {
              agent_set_error (err, errlen, "cannot connect to vchan port %u: %s", (unsigned) port,
                       vlink.mux.error);
              break;
            }
          link_flush ();
          return chan;
        }
      left = deadline - agent_now_ms ();
      if (left <= 0)
        {
          agent_set_error (err, errlen, "vchan port %u was not offered by the host in %d ms",
                   (unsigned) port, timeout_ms);
          break;
        }
      link_wait ((int) (left < 1000 ? left : 1000));
    }
  free (chan);
  return NULL;
}

static int
virtio_fd (AgentChan *chan)
{
  (void) chan;
  return vlink.fd;
}

static int
chan_gone (AgentChan *chan)
{
  if (vlink.broken)
    {
      snprintf (chan->err, sizeof chan->err, "%s", vlink.err);
      return -1;
    }
  if (chan->vc->state == VMUX_CHAN_GONE)
    {
      snprintf (chan->err, sizeof chan->err, "the host closed vchan port %u",
                (unsigned) chan->port);
      return -1;
    }
  return 0;
}

static int
virtio_pump (AgentChan *chan)
{
  struct pollfd pfd = { .fd = vlink.fd, .events = POLLIN };

  if (link_read () < 0 || link_flush () < 0)
    return chan_gone (chan);
  /* A port the host left reports POLLHUP for ever: notice it here so that
   * a caller's poll loop ends instead of spinning. */
  if (poll (&pfd, 1, 0) > 0 && (pfd.revents & POLLHUP) && !(pfd.revents & POLLIN))
    link_down ("the host is not connected");
  return chan_gone (chan);
}

static size_t
virtio_ready (AgentChan *chan)
{
  return vmux_chan_ready (chan->vc);
}

static size_t
virtio_take (AgentChan *chan, void *buf, size_t len)
{
  size_t n = vmux_chan_read (chan->vc, buf, len);

  if (n > 0)
    link_flush ();
  return n;
}

static int
virtio_write_all (AgentChan *chan, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0)
    {
      size_t n;

      if (chan_gone (chan) < 0)
        return -1;
      n = vmux_chan_write (chan->vc, p, len);
      p += n;
      len -= n;
      if (link_flush () < 0)
        return chan_gone (chan);
      if (n == 0)
        {
          link_wait (-1);
          if (link_read () < 0)
            return chan_gone (chan);
        }
    }
  return 0;
}

static void
virtio_close (AgentChan *chan)
{
  if (chan == NULL)
    return;
  if (chan->vc != NULL && vlink.owner == getpid ())
    {
      vmux_chan_close (chan->vc);
      link_flush ();
    }
  free (chan);
}

static const char *
virtio_error (AgentChan *chan)
{
  return chan->err[0] != '\0' ? chan->err : vlink.broken ? vlink.err : "no error";
}

static int
virtio_gone (AgentChan *chan)
{
  return (vlink.broken || chan->vc->state == VMUX_CHAN_GONE) && vmux_chan_ready (chan->vc) == 0;
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
  .write_all = virtio_write_all,
  .close = virtio_close,
  .error = virtio_error,
  .gone = virtio_gone,
};
