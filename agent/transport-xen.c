/* transport-xen.c — the guest end of the xen vchan transport: libxenvchan
 * rings shared with dom0 (or the domain the spec names, "xen:DOMID"; a
 * data channel's peer is the domain its qrexec message names), laid
 * out as plugins/xen lays them out: the server in domain S offers port P to
 * domain C under /local/domain/S/data/vchan/C/P.
 *
 * The ring is the buffer: ready() and take() look at it directly, so data
 * is never held back in this process behind an event already consumed.
 * The event channel's descriptor is non-blocking; pump() only consumes
 * pending events.  Debian ships libxenvchan and the libraries under it as
 * static archives too, so the guest programs still link statically.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libxenvchan.h>
#include <xenstore.h>

#include "transport.h"

/* Rings below 16 KiB live inside the shared page and cost an event round
 * trip per KiB (see plugins/xen/README.md). */
#define XEN_RING_MIN (16 * 1024)
/* ... and larger requests get 256 KiB: the grant references of both rings
 * share one page, and gntalloc grants 1024 pages in all by default. */
#define XEN_RING_MAX (256 * 1024)

struct AgentChan {
  struct libxenvchan *v;
  uint32_t port;
  pid_t owner;       /* the process that made it */
  char err[256];
};

/* The peer's domain id from the spec's argument: empty or "dom0" is 0. */
static int
peer_domid (const char *arg, char *err, size_t errlen)
{
  char *end;
  long v;

  if (arg == NULL || arg[0] == '\0' || strcmp (arg, "dom0") == 0)
    return 0;
  errno = 0;
  v = strtol (arg, &end, 10);
  if (errno != 0 || *end != '\0' || v < 0 || v >= 0x7ff0)
    {
      agent_set_error (err, errlen, "'%s' is not a Xen domain id", arg);
      return -1;
    }
  return (int) v;
}

/* A data channel's peer, named by its domain id (checked, as any spec's,
 * by peer_domid()). */
static int
xen_domain_arg (uint32_t domain, char *buf, size_t len, char *err, size_t errlen)
{
  (void) err;
  (void) errlen;
  snprintf (buf, len, "%u", (unsigned) domain);
  return 0;
}

/* This domain's id, as xenstore tells the guest. */
static int
self_domid (char *err, size_t errlen)
{
  struct xs_handle *xs = xs_open (0);
  unsigned int len = 0;
  char *value, *end;
  long v;

  if (xs == NULL)
    {
      agent_set_error (err, errlen, "cannot reach xenstore: %s", strerror (errno));
      return -1;
    }
  value = xs_read (xs, XBT_NULL, "domid", &len);
  xs_close (xs);
  if (value == NULL)
    {
      agent_set_error (err, errlen, "cannot read this domain's id from xenstore: %s",
                       strerror (errno));
      return -1;
    }
  errno = 0;
  v = strtol (value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v < 0 || v >= 0x7ff0)
    {
      agent_set_error (err, errlen, "xenstore gives this domain the id '%.32s'", value);
      free (value);
      return -1;
    }
  free (value);
  return (int) v;
}

static size_t
ring_size (size_t wanted)
{
  return wanted < XEN_RING_MIN ? XEN_RING_MIN : wanted > XEN_RING_MAX ? XEN_RING_MAX : wanted;
}

static AgentChan *
chan_new (struct libxenvchan *v, uint32_t port, char *err, size_t errlen)
{
  AgentChan *chan = calloc (1, sizeof *chan);
  int fd = libxenvchan_fd_for_select (v);
  int flags = fcntl (fd, F_GETFL);

  if (chan == NULL || flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0)
    {
      agent_set_error (err, errlen, "vchan port %u: %s", (unsigned) port,
                       chan == NULL ? "out of memory" : strerror (errno));
      libxenvchan_close (v);
      free (chan);
      return NULL;
    }
  /* Waiting is done here, on the descriptor. */
  v->blocking = 0;
  chan->v = v;
  chan->port = port;
  chan->owner = getpid ();
  return chan;
}

static AgentChan *
xen_listen (const char *arg, uint32_t port, size_t read_ring, size_t write_ring,
            char *err, size_t errlen)
{
  int peer = peer_domid (arg, err, errlen);
  int self = peer < 0 ? -1 : self_domid (err, errlen);
  struct libxenvchan *v;
  char path[128];

  if (self < 0)
    return NULL;
  snprintf (path, sizeof path, "/local/domain/%d/data/vchan/%d/%u", self, peer, (unsigned) port);
  v = libxenvchan_server_init (NULL, peer, path, ring_size (read_ring), ring_size (write_ring));
  if (v == NULL)
    {
      agent_set_error (err, errlen, "cannot offer vchan port %u to domain %d: %s",
                       (unsigned) port, peer, strerror (errno));
      return NULL;
    }
  return chan_new (v, port, err, errlen);
}

/* Takes the pending events without blocking. */
static int
consume_events (AgentChan *chan)
{
  while (libxenvchan_wait (chan->v) == 0)
    ;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    return 0;
  snprintf (chan->err, sizeof chan->err, "vchan port %u: cannot take its events: %s",
            (unsigned) chan->port, strerror (errno));
  return -1;
}

static int
wait_event (AgentChan *chan)
{
  struct pollfd pfd = { .fd = libxenvchan_fd_for_select (chan->v), .events = POLLIN };

  if (poll (&pfd, 1, -1) < 0 && errno != EINTR)
    {
      snprintf (chan->err, sizeof chan->err, "vchan port %u: poll: %s", (unsigned) chan->port,
                strerror (errno));
      return -1;
    }
  return consume_events (chan);
}

static int
xen_accept (AgentChan *chan, char *err, size_t errlen)
{
  /* The client's connect raises an event. */
  while (libxenvchan_is_open (chan->v) == 2)
    if (wait_event (chan) < 0)
      {
        agent_set_error (err, errlen, "%s", chan->err);
        return -1;
      }
  if (libxenvchan_is_open (chan->v) != 1)
    {
      agent_set_error (err, errlen, "vchan port %u: the peer left before it connected",
                       (unsigned) chan->port);
      return -1;
    }
  return 0;
}

static AgentChan *
xen_connect (const char *arg, uint32_t port, int timeout_ms, char *err, size_t errlen)
{
  int peer = peer_domid (arg, err, errlen);
  int self = peer < 0 ? -1 : self_domid (err, errlen);
  long deadline = agent_now_ms () + timeout_ms;
  long pause_us = 1000;
  char path[128];

  if (self < 0)
    return NULL;
  snprintf (path, sizeof path, "/local/domain/%d/data/vchan/%d/%u", peer, self, (unsigned) port);
  /* The peer offers the port about when it tells us of it: retry briefly,
   * backing off, until it is there. */
  for (;;)
    {
      struct libxenvchan *v = libxenvchan_client_init (NULL, peer, path);
      struct timespec ts;

      if (v != NULL)
        return chan_new (v, port, err, errlen);
      if (agent_now_ms () >= deadline)
        {
          agent_set_error (err, errlen, "cannot connect to vchan port %u of domain %d: "
                           "not offered within %d ms", (unsigned) port, peer, timeout_ms);
          return NULL;
        }
      ts.tv_sec = 0;
      ts.tv_nsec = pause_us * 1000;
      nanosleep (&ts, NULL);
      if (pause_us < 20000)
        pause_us *= 2;
    }
}

static int
xen_fd (AgentChan *chan)
{
  return libxenvchan_fd_for_select (chan->v);
}

/* The peer is gone: says so in the channel's error; -1. */
static int
peer_closed (AgentChan *chan)
{
  snprintf (chan->err, sizeof chan->err, "vchan port %u: the peer closed it", (unsigned) chan->port);
  return -1;
}

static int
xen_pump (AgentChan *chan)
{
  if (consume_events (chan) < 0)
    return -1;
  if (libxenvchan_is_open (chan->v) == 0)
    return peer_closed (chan);
  return 0;
}

static size_t
xen_ready (AgentChan *chan)
{
  int n = libxenvchan_data_ready (chan->v);

  return n > 0 ? (size_t) n : 0;
}

static size_t
xen_take (AgentChan *chan, void *buf, size_t len)
{
  int n;

  if (len == 0)
    return 0;
  n = libxenvchan_read (chan->v, buf, len > 0x40000000 ? 0x40000000 : len);
  return n > 0 ? (size_t) n : 0;
}

static size_t
xen_space (AgentChan *chan)
{
  /* Asking for the space also asks the peer to signal when it reads. */
  int space = libxenvchan_buffer_space (chan->v);

  return space > 0 ? (size_t) space : 0;
}

static long
xen_write_some (AgentChan *chan, const void *buf, size_t len)
{
  size_t space;
  int n;

  if (libxenvchan_is_open (chan->v) != 1)
    return peer_closed (chan);
  space = xen_space (chan);
  if (space == 0 || len == 0)
    return 0;
  n = libxenvchan_write (chan->v, buf, len < space ? len : space);
  if (n < 0)
    return peer_closed (chan);
  return n;
}

static void
xen_close (AgentChan *chan)
{
  if (chan == NULL)
    return;
  /* A forked child lets go of its copy only: libxenvchan_close() would
   * tell the peer, through the shared page, that the channel is closed.
   * The descriptors are close-on-exec and the mappings end with the
   * child. */
  if (chan->owner == getpid ())
    libxenvchan_close (chan->v);
  free (chan);
}

static const char *
xen_error (AgentChan *chan)
{
  return chan->err[0] != '\0' ? chan->err : "the peer closed it";
}

static int
xen_gone (AgentChan *chan)
{
  return libxenvchan_is_open (chan->v) == 0 && libxenvchan_data_ready (chan->v) == 0;
}

const AgentTransport agent_transport_xen = {
  .name = "xen",
  .listen = xen_listen,
  .accept = xen_accept,
  .connect = xen_connect,
  .fd = xen_fd,
  .pump = xen_pump,
  .ready = xen_ready,
  .take = xen_take,
  .space = xen_space,
  .write_some = xen_write_some,
  .room_events = POLLIN,
  .close = xen_close,
  .error = xen_error,
  .gone = xen_gone,
  .domain_arg = xen_domain_arg,
};
