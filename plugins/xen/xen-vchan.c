/* xen-vchan.c — vchan channels between Xen domains with libxenvchan, laid
 * out as Qubes lays them out so that Qubes' own libvchan peers interoperate:
 * the server (domain S) publishes its rings under
 * /local/domain/S/data/vchan/<client domid>/<port>, the client reads them
 * from there.
 *
 * libxenvchan is used non-blocking; this file waits on the event channel
 * itself, so that read/write move at least one byte and recv/send all or
 * nothing, as the ABI says. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <unistd.h>
#include <glib.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <libxenvchan.h>
#include <xenstore.h>

#include "xen-vchan.h"

#define XEN_VCHAN_RING_MIN (16 * 1024)
/* Larger requests get rings of this size: libxenvchan keeps the grant
 * references of both rings in the one shared page (and refuses rings over
 * 1 MiB), and a domain's gntalloc grants 1024 pages in all by default, so
 * 256 KiB rings (128 pages a channel) leave room for several channels at
 * once.  The size of a ring only bounds how much is in flight. */
#define XEN_VCHAN_RING_MAX (256 * 1024)

static void xen_vchan_close (QubeVchan *chan);

struct QubeVchan
{
  const QubeHost *host;
  struct libxenvchan *vchan;
  char *what;          /* "vchan port N to/from PEER", for errors */
  int lock_fd;         /* server: the port's lock (see lock_port), else -1 */
  /* An asynchronous client: an epoll set that holds the xenstore watch on
   * the server's entries while connecting, then the event channel, so that
   * fd() stays one descriptor. */
  int epoll_fd;
  struct xs_handle *watch;
  char *path;
  int peer_domid;
};

/* The domain id of this domain, and of the peer: the peer's domid field,
 * an address "domid:N", "dom0", or a domain named so in xenstore. */
static gboolean
resolve_domids (const QubeHost *host, const QubeVchanPeer *peer,
                int *self_domid, int *peer_domid)
{
  struct xs_handle *xs = xs_open (0);
  char *value;
  unsigned int len, n = 0;
  char **doms;

  if (xs == NULL)
    {
      host->set_error (host, QUBE_ABI_E_UNAVAILABLE,
                       "cannot connect to xenstore: %s", g_strerror (errno));
      return FALSE;
    }
  value = xs_read (xs, XBT_NULL, "domid", &len);
  *self_domid = value != NULL ? atoi (value) : 0;
  free (value);

  *peer_domid = -1;
  if (peer->domid >= 0)
    *peer_domid = peer->domid;
  else if (peer->address != NULL && g_str_has_prefix (peer->address, "domid:"))
    {
      guint64 v;

      if (g_ascii_string_to_unsigned (peer->address + 6, 10, 0, 0x7fef, &v, NULL))
        *peer_domid = (int) v;
    }
  else if (peer->name != NULL && g_str_equal (peer->name, "dom0"))
    *peer_domid = 0;
  else if (peer->name != NULL &&
           (doms = xs_directory (xs, XBT_NULL, "/local/domain", &n)) != NULL)
    {
      for (unsigned int i = 0; i < n && *peer_domid < 0; i++)
        {
          g_autofree char *path = g_strdup_printf ("/local/domain/%s/name", doms[i]);

          value = xs_read (xs, XBT_NULL, path, &len);
          if (value != NULL && g_str_equal (value, peer->name))
            *peer_domid = atoi (doms[i]);
          free (value);
        }
      free (doms);
    }
  xs_close (xs);
  if (*peer_domid < 0)
    {
      host->set_error (host, QUBE_ABI_E_NOT_FOUND,
                       "no Xen domain for vchan peer '%s'",
                       peer->name != NULL ? peer->name : "(unnamed)");
      return FALSE;
    }
  return TRUE;
}

/* A server holds an flock on <runtime_dir>/xen/vchan-<peer>-<port>.lock
 * while its channel exists: a second offer of the port is refused, and the
 * offer of a process that died is released with it (its xenstore entries
 * are then simply replaced).  Returns the locked fd, or -1 with the error
 * set. */
static int
lock_port (const QubeHost *host, int peer_domid, uint32_t port, const char *peer_name)
{
  g_autofree char *dir = g_build_filename (host->runtime_dir, "xen", NULL);
  g_autofree char *name = g_strdup_printf ("vchan-%d-%u.lock", peer_domid, port);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  int fd;

  if (g_mkdir_with_parents (dir, 0700) != 0 ||
      (fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
    {
      host->set_error (host, QUBE_ABI_E_IO, "cannot offer vchan port %u to '%s': "
                       "cannot open %s: %s", port, peer_name, path, g_strerror (errno));
      return -1;
    }
  if (flock (fd, LOCK_EX | LOCK_NB) != 0)
    {
      close (fd);
      host->set_error (host, QUBE_ABI_E_EXISTS,
                       "cannot offer vchan port %u to '%s': it is already offered",
                       port, peer_name);
      return -1;
    }
  return fd;
}

static QubeVchan *
chan_new (const QubeHost *host, struct libxenvchan *vchan, char *what)
{
  QubeVchan *chan = g_new0 (QubeVchan, 1);

  chan->host = host;
  chan->vchan = vchan;
  chan->what = what;
  chan->lock_fd = -1;
  chan->epoll_fd = -1;
  /* We wait for events ourselves (see the file comment). */
  if (vchan != NULL)
    vchan->blocking = 0;
  return chan;
}

static QubeVchan *
xen_vchan_server_init (void *plugin, const QubeVchanPeer *peer, uint32_t port,
                       size_t read_min, size_t write_min)
{
  const QubeHost *host = ((XenVchanPluginHead *) plugin)->host;
  g_autofree char *path = NULL;
  struct libxenvchan *vchan;
  QubeVchan *chan;
  int self, other, lock_fd;

  if (!resolve_domids (host, peer, &self, &other))
    return NULL;
  path = g_strdup_printf ("/local/domain/%d/data/vchan/%d/%u", self, other, port);
  lock_fd = lock_port (host, other, port, peer->name != NULL ? peer->name : "?");
  if (lock_fd < 0)
    return NULL;
  /* Below 16 KiB libxenvchan uses rings inside the shared page (1 or 2 KiB),
   * which cost one event round trip per KiB; 16 KiB rings take 4 grant
   * pages each, so dom0's default gntalloc limit (1024) still allows over
   * 100 channels. */
  vchan = libxenvchan_server_init (NULL, other, path,
                                   CLAMP (read_min, XEN_VCHAN_RING_MIN, XEN_VCHAN_RING_MAX),
                                   CLAMP (write_min, XEN_VCHAN_RING_MIN, XEN_VCHAN_RING_MAX));
  if (vchan == NULL)
    {
      close (lock_fd);
      host->set_error (host, QUBE_ABI_E_IO, "cannot offer vchan port %u to '%s': %s",
                       port, peer->name != NULL ? peer->name : "?",
                       errno != 0 ? g_strerror (errno) : "libxenvchan refused the rings");
      return NULL;
    }
  chan = chan_new (host, vchan,
                   g_strdup_printf ("vchan port %u to '%s'", port,
                                    peer->name != NULL ? peer->name : "?"));
  chan->lock_fd = lock_fd;
  return chan;
}

static QubeVchan *
xen_vchan_client_init (void *plugin, const QubeVchanPeer *peer, uint32_t port)
{
  const QubeHost *host = ((XenVchanPluginHead *) plugin)->host;
  g_autofree char *path = NULL;
  struct libxenvchan *vchan;
  int self, other;

  if (!resolve_domids (host, peer, &self, &other))
    return NULL;
  path = g_strdup_printf ("/local/domain/%d/data/vchan/%d/%u", other, self, port);
  vchan = libxenvchan_client_init (NULL, other, path);
  if (vchan == NULL)
    {
      host->set_error (host, QUBE_ABI_E_NOT_FOUND,
                       "cannot connect to vchan port %u of '%s': %s", port,
                       peer->name != NULL ? peer->name : "?",
                       errno != 0 ? g_strerror (errno) : "no server");
      return NULL;
    }
  return chan_new (host, vchan,
                   g_strdup_printf ("vchan port %u of '%s'", port,
                                    peer->name != NULL ? peer->name : "?"));
}

/* Starts connecting to a server that may not be there yet: its xenstore
 * entries are watched, and each change is a try (the first comes at once,
 * when the watch is set). */
static QubeVchan *
xen_vchan_client_init_async (void *plugin, const QubeVchanPeer *peer, uint32_t port)
{
  const QubeHost *host = ((XenVchanPluginHead *) plugin)->host;
  const char *peer_name = peer->name != NULL ? peer->name : "?";
  struct epoll_event ev = { .events = EPOLLIN };
  QubeVchan *chan;
  int self, other;

  if (!resolve_domids (host, peer, &self, &other))
    return NULL;
  chan = chan_new (host, NULL, g_strdup_printf ("vchan port %u of '%s'", port, peer_name));
  chan->peer_domid = other;
  chan->path = g_strdup_printf ("/local/domain/%d/data/vchan/%d/%u", other, self, port);
  chan->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
  chan->watch = xs_open (0);
  if (chan->epoll_fd < 0 || chan->watch == NULL
      || !xs_watch (chan->watch, chan->path, "vchan")
      || (ev.data.fd = xs_fileno (chan->watch)) < 0
      || epoll_ctl (chan->epoll_fd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0)
    {
      host->set_error (host, QUBE_ABI_E_IO, "cannot connect to vchan port %u of '%s': "
                       "cannot watch %s: %s", port, peer_name, chan->path, g_strerror (errno));
      xen_vchan_close (chan);
      return NULL;
    }
  return chan;
}

static int
xen_vchan_client_init_async_finish (QubeVchan *chan)
{
  struct epoll_event ev = { .events = EPOLLIN };
  struct libxenvchan *vchan;
  char **event;

  if (chan->vchan != NULL)
    return QUBE_ABI_OK;
  while ((event = xs_check_watch (chan->watch)) != NULL)
    free (event);
  vchan = libxenvchan_client_init (NULL, chan->peer_domid, chan->path);
  if (vchan == NULL)
    return QUBE_ABI_E_TIMEOUT;
  vchan->blocking = 0;
  chan->vchan = vchan;
  epoll_ctl (chan->epoll_fd, EPOLL_CTL_DEL, xs_fileno (chan->watch), NULL);
  xs_close (chan->watch);
  chan->watch = NULL;
  ev.data.fd = libxenvchan_fd_for_select (vchan);
  if (epoll_ctl (chan->epoll_fd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0)
    {
      chan->host->set_error (chan->host, QUBE_ABI_E_IO, "%s: cannot watch its events: %s",
                             chan->what, g_strerror (errno));
      return QUBE_ABI_E_IO;
    }
  return QUBE_ABI_OK;
}

static long
gone (QubeVchan *chan)
{
  chan->host->set_error (chan->host, QUBE_ABI_E_IO, "%s: the peer closed it",
                         chan->what);
  return -1;
}

/* Blocks for the next event; fails when the channel is closed. */
static gboolean
wait_event (QubeVchan *chan)
{
  if (libxenvchan_wait (chan->vchan) < 0)
    {
      chan->host->set_error (chan->host, QUBE_ABI_E_IO, "%s: cannot wait: %s",
                             chan->what, g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

static long
xen_vchan_read (QubeVchan *chan, void *buf, size_t len)
{
  if (len == 0)
    return 0;
  for (;;)
    {
      /* Data the peer sent before closing is still delivered. */
      if (libxenvchan_data_ready (chan->vchan) > 0)
        return libxenvchan_read (chan->vchan, buf, MIN (len, (size_t) G_MAXINT));
      if (libxenvchan_is_open (chan->vchan) == QUBE_VCHAN_DISCONNECTED)
        return gone (chan);
      if (!wait_event (chan))
        return -1;
    }
}

static long
xen_vchan_write (QubeVchan *chan, const void *buf, size_t len)
{
  if (len == 0)
    return 0;
  for (;;)
    {
      int n;

      if (libxenvchan_is_open (chan->vchan) == QUBE_VCHAN_DISCONNECTED)
        return gone (chan);
      if (libxenvchan_buffer_space (chan->vchan) > 0)
        {
          n = libxenvchan_write (chan->vchan, buf, MIN (len, (size_t) G_MAXINT));
          if (n < 0)
            return gone (chan);
          if (n > 0)
            return n;
        }
      if (!wait_event (chan))
        return -1;
    }
}

/* A message larger than its ring could never move whole: refuse it at once
 * rather than wait forever. */
static gboolean
fits_ring (QubeVchan *chan, size_t len, const struct libxenvchan_ring *ring)
{
  size_t ring_size = (size_t) 1 << ring->order;

  if (len <= ring_size)
    return TRUE;
  chan->host->set_error (chan->host, QUBE_ABI_E_INVALID,
                         "%s: a message of %zu bytes does not fit its %zu-byte ring",
                         chan->what, len, ring_size);
  return FALSE;
}

static long
xen_vchan_recv (QubeVchan *chan, void *buf, size_t len)
{
  if (len == 0)
    return 0;
  if (!fits_ring (chan, len, &chan->vchan->read))
    return -1;
  for (;;)
    {
      if ((size_t) libxenvchan_data_ready (chan->vchan) >= len)
        return libxenvchan_recv (chan->vchan, buf, len) == (int) len ? (long) len : gone (chan);
      if (libxenvchan_is_open (chan->vchan) == QUBE_VCHAN_DISCONNECTED)
        return gone (chan);
      if (!wait_event (chan))
        return -1;
    }
}

static long
xen_vchan_send (QubeVchan *chan, const void *buf, size_t len)
{
  if (len == 0)
    return 0;
  if (!fits_ring (chan, len, &chan->vchan->write))
    return -1;
  for (;;)
    {
      if (libxenvchan_is_open (chan->vchan) == QUBE_VCHAN_DISCONNECTED)
        return gone (chan);
      if ((size_t) libxenvchan_buffer_space (chan->vchan) >= len)
        return libxenvchan_send (chan->vchan, buf, len) == (int) len ? (long) len : gone (chan);
      if (!wait_event (chan))
        return -1;
    }
}

static size_t
xen_vchan_data_ready (QubeVchan *chan)
{
  int n = chan->vchan != NULL ? libxenvchan_data_ready (chan->vchan) : 0;

  return n > 0 ? (size_t) n : 0;
}

static size_t
xen_vchan_buffer_space (QubeVchan *chan)
{
  int n;

  if (chan->vchan == NULL || libxenvchan_is_open (chan->vchan) != QUBE_VCHAN_CONNECTED)
    return 0;
  n = libxenvchan_buffer_space (chan->vchan);
  return n > 0 ? (size_t) n : 0;
}

static int
xen_vchan_is_open (QubeVchan *chan)
{
  /* libxenvchan answers 0 closed, 1 connected, 2 server waiting: ours. */
  int state = chan->vchan != NULL ? libxenvchan_is_open (chan->vchan) : 2;

  return state == 1 ? QUBE_VCHAN_CONNECTED
       : state == 2 ? QUBE_VCHAN_WAITING : QUBE_VCHAN_DISCONNECTED;
}

static int
xen_vchan_fd (QubeVchan *chan)
{
  if (chan->epoll_fd >= 0)
    return chan->epoll_fd;
  return libxenvchan_fd_for_select (chan->vchan);
}

static int
xen_vchan_ack (QubeVchan *chan)
{
  struct pollfd pfd = { .fd = -1, .events = POLLIN };

  /* Still connecting: the watch's events are taken by the next try. */
  if (chan->vchan == NULL)
    return 0;
  pfd.fd = libxenvchan_fd_for_select (chan->vchan);
  /* Each pending event is consumed (and its port unmasked) by one wait. */
  while (poll (&pfd, 1, 0) > 0 && (pfd.revents & POLLIN))
    if (!wait_event (chan))
      return -1;
  return 0;
}

static int
xen_vchan_wait (QubeVchan *chan)
{
  if (chan->vchan == NULL)
    {
      chan->host->set_error (chan->host, QUBE_ABI_E_INVALID, "%s: not connected yet", chan->what);
      return -1;
    }
  return wait_event (chan) ? 0 : -1;
}

static void
xen_vchan_close (QubeVchan *chan)
{
  if (chan == NULL)
    return;
  if (chan->vchan != NULL)
    libxenvchan_close (chan->vchan);
  if (chan->watch != NULL)
    xs_close (chan->watch);
  if (chan->epoll_fd >= 0)
    close (chan->epoll_fd);
  g_free (chan->path);
  /* After the xenstore entries are gone: the port may be offered again. */
  if (chan->lock_fd >= 0)
    close (chan->lock_fd);
  g_free (chan->what);
  g_free (chan);
}

const QubeVchanOps xen_vchan_ops = {
  .size = sizeof (QubeVchanOps),
  .server_init = xen_vchan_server_init,
  .client_init = xen_vchan_client_init,
  .client_init_async = xen_vchan_client_init_async,
  .client_init_async_finish = xen_vchan_client_init_async_finish,
  .read = xen_vchan_read,
  .write = xen_vchan_write,
  .recv = xen_vchan_recv,
  .send = xen_vchan_send,
  .data_ready = xen_vchan_data_ready,
  .buffer_space = xen_vchan_buffer_space,
  .is_open = xen_vchan_is_open,
  .fd = xen_vchan_fd,
  .ack = xen_vchan_ack,
  .wait = xen_vchan_wait,
  .close = xen_vchan_close,
};
