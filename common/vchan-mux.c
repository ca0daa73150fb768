/* vchan-mux.c — the channel multiplexer shared by the kvm plugin (host) and
 * the guest agent: frame encoding, the checking parser, receive rings and
 * credits.  No I/O, no locks, libc only; see vchan-mux.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vchan-mux.h"

/* More pending offers than this from one peer is a flood, not a use. */
#define VMUX_MAX_OFFERS 4096
/* Our closes the peer has not answered yet.  Well above the channels one
 * side can hold at once (the guest link serves at most 512), so that
 * ordinary closes never reach it. */
#define VMUX_MAX_CLOSING 4096

static void
put32 (unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char) v;
  p[1] = (unsigned char) (v >> 8);
  p[2] = (unsigned char) (v >> 16);
  p[3] = (unsigned char) (v >> 24);
}

static uint32_t
get32 (const unsigned char *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static int
fail (Vmux *mux, const char *reason, uint32_t port)
{
  snprintf (mux->error, sizeof mux->error, "%s (port %u)", reason, (unsigned) port);
  return -1;
}

static void __attribute__ ((format (printf, 2, 3)))
trace (Vmux *mux, const char *format, ...)
{
  char text[160];
  va_list args;

  if (mux->trace == NULL)
    return;
  va_start (args, format);
  vsnprintf (text, sizeof text, format, args);
  va_end (args);
  mux->trace (mux, text, mux->trace_data);
}

static const char *
end_name (int server)
{
  return server ? "server" : "client";
}

static void
notify (Vmux *mux, VmuxChan *chan)
{
  if (mux->notify != NULL)
    mux->notify (mux, chan, mux->notify_data);
}

void
vmux_init (Vmux *mux, VmuxNotify notify_cb, void *notify_data)
{
  memset (mux, 0, sizeof *mux);
  mux->notify = notify_cb;
  mux->notify_data = notify_data;
}

void
vmux_set_trace (Vmux *mux, VmuxTrace trace_cb, void *trace_data)
{
  mux->trace = trace_cb;
  mux->trace_data = trace_data;
}

static void
forget_offers (Vmux *mux)
{
  while (mux->offers != NULL)
    {
      VmuxOffer *next = mux->offers->next;

      free (mux->offers);
      mux->offers = next;
    }
}

static VmuxClosing **
find_closing (Vmux *mux, uint32_t port)
{
  for (VmuxClosing **c = &mux->closing; *c != NULL; c = &(*c)->next)
    if ((*c)->port == port)
      return c;
  return NULL;
}

static void
forget_closing (Vmux *mux)
{
  while (mux->closing != NULL)
    {
      VmuxClosing *next = mux->closing->next;

      free (mux->closing);
      mux->closing = next;
    }
}

void
vmux_clear (Vmux *mux)
{
  while (mux->chans != NULL)
    {
      VmuxChan *next = mux->chans->next;

      free (mux->chans->rx);
      free (mux->chans);
      mux->chans = next;
    }
  forget_offers (mux);
  forget_closing (mux);
  free (mux->out);
  mux->out = NULL;
  mux->out_off = mux->out_len = mux->out_cap = 0;
}

/* Appends one frame (and its payload) to the output. */
static int
queue (Vmux *mux, uint16_t type, uint16_t flags, uint32_t port, uint32_t a, uint32_t b,
       const void *payload, size_t payload_len)
{
  size_t need = VMUX_HEADER_SIZE + payload_len;
  unsigned char *h;

  if (mux->out_off == mux->out_len)
    mux->out_off = mux->out_len = 0;
  if (mux->out_cap - mux->out_len < need && mux->out_off > 0)
    {
      memmove (mux->out, mux->out + mux->out_off, mux->out_len - mux->out_off);
      mux->out_len -= mux->out_off;
      mux->out_off = 0;
    }
  if (mux->out_cap - mux->out_len < need)
    {
      size_t cap = mux->out_cap ? mux->out_cap : 4096;
      unsigned char *grown;

      while (cap - mux->out_len < need)
        cap *= 2;
      grown = realloc (mux->out, cap);
      if (grown == NULL)
        return fail (mux, "out of memory queueing a frame", port);
      mux->out = grown;
      mux->out_cap = cap;
    }
  h = mux->out + mux->out_len;
  h[0] = (unsigned char) type;
  h[1] = (unsigned char) (type >> 8);
  h[2] = (unsigned char) flags;
  h[3] = (unsigned char) (flags >> 8);
  put32 (h + 4, port);
  put32 (h + 8, a);
  put32 (h + 12, b);
  if (payload_len > 0)
    memcpy (h + VMUX_HEADER_SIZE, payload, payload_len);
  mux->out_len += need;
  return 0;
}

void
vmux_out_peek (Vmux *mux, const void **buf, size_t *len)
{
  *buf = mux->out + mux->out_off;
  *len = mux->out_len - mux->out_off;
}

void
vmux_out_consumed (Vmux *mux, size_t n)
{
  mux->out_off += n;
  if (mux->out_off >= mux->out_len)
    mux->out_off = mux->out_len = 0;
}

static VmuxChan *
find_chan (Vmux *mux, uint32_t port, int server)
{
  for (VmuxChan *c = mux->chans; c != NULL; c = c->next)
    if (c->port == port && c->server == server)
      return c;
  return NULL;
}

static VmuxOffer **
find_offer (Vmux *mux, uint32_t port)
{
  for (VmuxOffer **o = &mux->offers; *o != NULL; o = &(*o)->next)
    if ((*o)->port == port)
      return o;
  return NULL;
}

static int
send_offer (Vmux *mux, VmuxChan *chan)
{
  return queue (mux, VMUX_OFFER, VMUX_F_FROM_SERVER, chan->port, (uint32_t) chan->read_ring,
                (uint32_t) chan->write_ring, NULL, 0);
}

int
vmux_link_up (Vmux *mux)
{
  mux->hdr_have = 0;
  mux->payload_chan = NULL;
  mux->payload_left = 0;
  mux->out_off = mux->out_len = 0;
  mux->answered = 0;
  return queue (mux, VMUX_HELLO, 0, VMUX_HELLO_MAGIC, VMUX_VERSION, 0, NULL, 0);
}

/* The peer's view of every channel is gone: connected channels end, and
 * nothing of an old channel can come any more (waiting offers are made
 * again with the next HELLO). */
static void
peer_reset (Vmux *mux, const char *why)
{
  mux->reset_ended = 0;
  forget_offers (mux);
  forget_closing (mux);
  for (VmuxChan *c = mux->chans; c != NULL; c = c->next)
    {
      c->deferred = 0;
      if (c->state == VMUX_CHAN_CONNECTED)
        {
          mux->reset_ended++;
          trace (mux, "port %u (%s end) ends: %s", (unsigned) c->port, end_name (c->server), why);
          c->state = VMUX_CHAN_GONE;
          notify (mux, c);
        }
    }
}

/* The payload of a data frame `len` long for a channel that is gone is
 * dropped as it comes. */
static int
skip_payload (Vmux *mux, uint32_t len, uint32_t port)
{
  if (len > VMUX_RING_MAX)
    return fail (mux, "the peer sent a data frame larger than any ring", port);
  mux->payload_chan = NULL;
  mux->payload_left = len;
  return 0;
}

/* We closed our server end of `port` with a CLOSE: the client's frames
 * for it are the old channel's until its CLOSE comes. */
static int
start_closing (Vmux *mux, uint32_t port)
{
  VmuxClosing *c;
  unsigned n = 0;

  /* Bounded: a peer that connects to port after
   * withdrawn port would otherwise grow the list, and the walk every
   * client frame makes of it, without end. */
  for (c = mux->closing; c != NULL; c = c->next, n++)
    if (c->port == port)
      return 0;
  if (n >= VMUX_MAX_CLOSING)
    return fail (mux, "the peer left too many closed channels unanswered", port);
  c = calloc (1, sizeof *c);
  if (c == NULL)
    return fail (mux, "out of memory closing a channel", port);
  c->port = port;
  c->next = mux->closing;
  mux->closing = c;
  return 0;
}

/* The client's CLOSE for a port we closed: the old channel is over on
 * both ends, and a new offer of the port may go out. */
static int
end_closing (Vmux *mux, VmuxClosing **closing)
{
  VmuxClosing *done = *closing;
  uint32_t port = done->port;
  VmuxChan *next;

  *closing = done->next;
  free (done);
  trace (mux, "port %u: the peer answered our close", (unsigned) port);
  next = find_chan (mux, port, 1);
  if (next != NULL && next->deferred)
    {
      next->deferred = 0;
      return send_offer (mux, next);
    }
  return 0;
}

void
vmux_link_down (Vmux *mux)
{
  mux->peer_up = 0;
  mux->answered = 0;
  peer_reset (mux, "the link went down");
  mux->payload_chan = NULL;
  mux->payload_left = 0;
  mux->hdr_have = 0;
  mux->out_off = mux->out_len = 0;
  notify (mux, NULL);
}

static int
ring_valid (uint32_t size)
{
  return size >= VMUX_RING_MIN && size <= VMUX_RING_MAX && (size & (size - 1)) == 0;
}

static size_t
ring_round (size_t min)
{
  size_t size = VMUX_RING_DEFAULT_MIN;

  while (size < min && size < VMUX_RING_MAX)
    size <<= 1;
  return size;
}

static int
chan_connected (VmuxChan *chan, size_t rx_size, size_t peer_ring)
{
  chan->rx = malloc (rx_size);
  if (chan->rx == NULL)
    return -1;
  chan->rx_size = rx_size;
  chan->credit = chan->peer_ring = peer_ring;
  chan->state = VMUX_CHAN_CONNECTED;
  return 0;
}

static int
is_hello (const unsigned char *h)
{
  return h[0] == VMUX_HELLO && h[1] == 0 && h[2] == 0 && h[3] == 0 &&
         get32 (h + 4) == VMUX_HELLO_MAGIC && get32 (h + 8) == VMUX_VERSION && get32 (h + 12) <= 1;
}

/* One complete header arrived. */
static int
handle_frame (Vmux *mux)
{
  const unsigned char *h = mux->hdr;
  uint16_t type = (uint16_t) (h[0] | h[1] << 8);
  uint16_t flags = (uint16_t) (h[2] | h[3] << 8);
  uint32_t port = get32 (h + 4), a = get32 (h + 8), b = get32 (h + 12);
  int from_server = (flags & VMUX_F_FROM_SERVER) != 0;
  VmuxChan *chan;
  VmuxOffer **offer;
  VmuxClosing **closing;

  if ((flags & ~VMUX_F_FROM_SERVER) != 0)
    return fail (mux, "the peer sent unknown frame flags", port);
  /* A client's frame for a server port we closed, before its CLOSE: the
   * old channel's, dropped (its CLOSE ends that). */
  closing = from_server || type == VMUX_HELLO ? NULL : find_closing (mux, port);
  if (closing != NULL && type == VMUX_CLOSE)
    return end_closing (mux, closing);
  if (closing != NULL && type != VMUX_OFFER)
    return type == VMUX_DATA ? skip_payload (mux, a, port) : 0;

  switch (type)
    {
    case VMUX_HELLO:
      if (a != VMUX_VERSION || b > 1 || port != VMUX_HELLO_MAGIC || flags != 0)
        return fail (mux, "the peer's hello is not a version 2 hello", port);
      /* A new hello is a new session: whatever the peer knew is gone. */
      peer_reset (mux, "the peer started a new session");
      mux->peer_up = 1;
      mux->sessions++;
      trace (mux, "the peer said hello%s (session %lu)", b ? " back" : "", mux->sessions);
      /* The side that answers sends its offers after the answer; the side
       * that asked sends them on the answer, unless both asked at once and
       * it answered already. */
      if (b == 0)
        {
          if (queue (mux, VMUX_HELLO, 0, VMUX_HELLO_MAGIC, VMUX_VERSION, 1, NULL, 0) < 0)
            return -1;
          mux->answered = 1;
        }
      else if (mux->answered)
        {
          notify (mux, NULL);
          return 0;
        }
      for (VmuxChan *c = mux->chans; c != NULL; c = c->next)
        if (c->server && c->state == VMUX_CHAN_WAITING && send_offer (mux, c) < 0)
          return -1;
      notify (mux, NULL);
      return 0;

    case VMUX_OFFER:
      {
        VmuxOffer *o;
        unsigned n = 0;

        if (!from_server || !ring_valid (a) || !ring_valid (b))
          return fail (mux, "the peer offered a channel with invalid ring sizes", port);
        if (find_offer (mux, port) != NULL)
          return fail (mux, "the peer offered a port twice", port);
        for (o = mux->offers; o != NULL; o = o->next)
          n++;
        if (n >= VMUX_MAX_OFFERS)
          return fail (mux, "the peer offered too many ports", port);
        o = calloc (1, sizeof *o);
        if (o == NULL)
          return fail (mux, "out of memory for an offer", port);
        o->port = port;
        o->read_ring = a;
        o->write_ring = b;
        o->next = mux->offers;
        mux->offers = o;
        trace (mux, "port %u: offered by the peer", (unsigned) port);
        notify (mux, NULL);
        return 0;
      }

    case VMUX_CONNECT:
      if (from_server)
        return fail (mux, "the peer connected as a server", port);
      chan = find_chan (mux, port, 1);
      if (chan == NULL)
        {
          /* Withdrawn while the peer was away: the client learns its end
           * is gone, and may have sent on it meanwhile. */
          trace (mux, "port %u: the peer connected after we withdrew it", (unsigned) port);
          return queue (mux, VMUX_CLOSE, VMUX_F_FROM_SERVER, port, 0, 0, NULL, 0) < 0
                 ? -1 : start_closing (mux, port);
        }
      if (chan->state != VMUX_CHAN_WAITING || chan->deferred)
        return fail (mux, "the peer connected to a port it was not offered", port);
      if (chan_connected (chan, chan->read_ring, chan->write_ring) < 0)
        return fail (mux, "out of memory for a ring", port);
      trace (mux, "port %u: the peer connected", (unsigned) port);
      notify (mux, chan);
      return 0;

    case VMUX_DATA:
      chan = find_chan (mux, port, !from_server);
      /* We closed it and the peer did not know yet: drop the bytes. */
      if (chan == NULL)
        return skip_payload (mux, a, port);
      if (chan->state != VMUX_CHAN_CONNECTED)
        return fail (mux, "the peer sent data on a channel that is not connected", port);
      if (a == 0 || a > chan->rx_size - (size_t) (chan->rx_tail - chan->rx_head))
        return fail (mux, "the peer sent more than the space it was given", port);
      mux->payload_chan = chan;
      mux->payload_left = a;
      return 0;

    case VMUX_CREDIT:
      chan = find_chan (mux, port, !from_server);
      if (chan == NULL)
        return 0;
      if (chan->state == VMUX_CHAN_WAITING)
        return fail (mux, "the peer returned credit on a channel that is not connected", port);
      if (a == 0 || a > chan->peer_ring - chan->credit)
        return fail (mux, "the peer returned credit beyond its ring", port);
      chan->credit += a;
      notify (mux, chan);
      return 0;

    case VMUX_CLOSE:
      chan = find_chan (mux, port, !from_server);
      if (chan != NULL && chan->state == VMUX_CHAN_CONNECTED)
        {
          trace (mux, "port %u (%s end): the peer closed its end (%zu bytes unread)",
                 (unsigned) port, end_name (chan->server), vmux_chan_ready (chan));
          chan->state = VMUX_CHAN_GONE;
          notify (mux, chan);
          /* Nothing more of this channel comes from us: the server may
           * offer the port again. */
          if (from_server && queue (mux, VMUX_CLOSE, 0, port, 0, 0, NULL, 0) < 0)
            return -1;
        }
      else if (chan == NULL && from_server && (offer = find_offer (mux, port)) != NULL)
        {
          VmuxOffer *gone = *offer;

          *offer = gone->next;
          free (gone);
          trace (mux, "port %u: the peer withdrew its offer", (unsigned) port);
          if (queue (mux, VMUX_CLOSE, 0, port, 0, 0, NULL, 0) < 0)
            return -1;
        }
      else
        trace (mux, "port %u: the peer's %s close of a channel we do not have, ignored",
               (unsigned) port, end_name (from_server));
      return 0;

    default:
      return fail (mux, "the peer sent an unknown frame type", port);
    }
}

int
vmux_feed (Vmux *mux, const void *buf, size_t len)
{
  const unsigned char *p = buf;

  while (len > 0)
    {
      if (mux->payload_left > 0)
        {
          size_t n = len < mux->payload_left ? len : mux->payload_left;
          VmuxChan *chan = mux->payload_chan;

          if (chan != NULL)
            {
              size_t done = 0;

              while (done < n)
                {
                  size_t off = (size_t) (chan->rx_tail & (chan->rx_size - 1));
                  size_t run = chan->rx_size - off;

                  if (run > n - done)
                    run = n - done;
                  memcpy (chan->rx + off, p + done, run);
                  chan->rx_tail += run;
                  done += run;
                }
            }
          p += n;
          len -= n;
          mux->payload_left -= n;
          if (mux->payload_left == 0)
            {
              mux->payload_chan = NULL;
              if (chan != NULL)
                notify (mux, chan);
            }
          continue;
        }
      else
        {
          size_t n = VMUX_HEADER_SIZE - mux->hdr_have;

          if (n > len)
            n = len;
          memcpy (mux->hdr + mux->hdr_have, p, n);
          mux->hdr_have += n;
          p += n;
          len -= n;
          if (mux->hdr_have < VMUX_HEADER_SIZE)
            continue;
          if (!mux->peer_up && !is_hello (mux->hdr))
            {
              /* Before a session starts the link may still carry the end
               * of an earlier one: slide to the next HELLO. */
              memmove (mux->hdr, mux->hdr + 1, VMUX_HEADER_SIZE - 1);
              mux->hdr_have = VMUX_HEADER_SIZE - 1;
              mux->skipped++;
              continue;
            }
          mux->hdr_have = 0;
          if (handle_frame (mux) < 0)
            return -1;
        }
    }
  return 0;
}

VmuxChan *
vmux_offer (Vmux *mux, uint32_t port, size_t read_min, size_t write_min)
{
  VmuxChan *chan;

  if (find_chan (mux, port, 1) != NULL)
    {
      fail (mux, "the port is already offered", port);
      return NULL;
    }
  chan = calloc (1, sizeof *chan);
  if (chan == NULL)
    {
      fail (mux, "out of memory", port);
      return NULL;
    }
  chan->mux = mux;
  chan->port = port;
  chan->server = 1;
  chan->state = VMUX_CHAN_WAITING;
  chan->read_ring = ring_round (read_min);
  chan->write_ring = ring_round (write_min);
  /* The port's previous channel may still have frames on their way. */
  chan->deferred = find_closing (mux, port) != NULL;
  if (mux->peer_up && !chan->deferred && send_offer (mux, chan) < 0)
    {
      free (chan);
      return NULL;
    }
  chan->next = mux->chans;
  mux->chans = chan;
  return chan;
}

int
vmux_peer_offers (Vmux *mux, uint32_t port)
{
  return mux->peer_up && find_offer (mux, port) != NULL;
}

VmuxChan *
vmux_connect (Vmux *mux, uint32_t port)
{
  VmuxOffer **offer = mux->peer_up ? find_offer (mux, port) : NULL;
  VmuxOffer *taken;
  VmuxChan *chan;

  if (offer == NULL)
    {
      fail (mux, "the peer does not offer the port", port);
      return NULL;
    }
  if (find_chan (mux, port, 0) != NULL)
    {
      fail (mux, "a channel to the port is already open", port);
      return NULL;
    }
  taken = *offer;
  chan = calloc (1, sizeof *chan);
  if (chan == NULL || chan_connected (chan, taken->write_ring, taken->read_ring) < 0 ||
      queue (mux, VMUX_CONNECT, 0, port, 0, 0, NULL, 0) < 0)
    {
      if (chan != NULL)
        free (chan->rx);
      free (chan);
      fail (mux, "out of memory", port);
      return NULL;
    }
  *offer = taken->next;
  free (taken);
  chan->mux = mux;
  chan->port = port;
  chan->next = mux->chans;
  mux->chans = chan;
  return chan;
}

size_t
vmux_chan_ready (VmuxChan *chan)
{
  return (size_t) (chan->rx_tail - chan->rx_head);
}

size_t
vmux_chan_space (VmuxChan *chan)
{
  return chan->state == VMUX_CHAN_CONNECTED ? chan->credit : 0;
}

static uint16_t
chan_flags (VmuxChan *chan)
{
  return chan->server ? VMUX_F_FROM_SERVER : 0;
}

size_t
vmux_chan_read (VmuxChan *chan, void *buf, size_t len)
{
  size_t fill = vmux_chan_ready (chan);
  size_t n = len < fill ? len : fill;
  size_t off, first;

  if (n == 0)
    return 0;
  off = (size_t) (chan->rx_head & (chan->rx_size - 1));
  first = chan->rx_size - off < n ? chan->rx_size - off : n;
  memcpy (buf, chan->rx + off, first);
  memcpy ((char *) buf + first, chan->rx, n - first);
  chan->rx_head += n;
  chan->unreported += n;
  /* Credit in batches, and always once the ring is empty, so that a peer
   * waiting to send a whole message sees all the room there is. */
  if (chan->state == VMUX_CHAN_CONNECTED &&
      (chan->unreported >= chan->rx_size / 4 || chan->rx_head == chan->rx_tail))
    {
      if (queue (chan->mux, VMUX_CREDIT, chan_flags (chan), chan->port,
                 (uint32_t) chan->unreported, 0, NULL, 0) == 0)
        chan->unreported = 0;
    }
  return n;
}

size_t
vmux_chan_write (VmuxChan *chan, const void *buf, size_t len)
{
  size_t n = len < vmux_chan_space (chan) ? len : vmux_chan_space (chan);

  if (n == 0)
    return 0;
  if (queue (chan->mux, VMUX_DATA, chan_flags (chan), chan->port, (uint32_t) n, 0, buf, n) < 0)
    return 0;
  chan->credit -= n;
  return n;
}

int
vmux_chan_close (VmuxChan *chan)
{
  Vmux *mux;
  int rc = 0;

  if (chan == NULL)
    return 0;
  mux = chan->mux;
  trace (mux, "port %u (%s end): closed here%s", (unsigned) chan->port, end_name (chan->server),
         chan->state == VMUX_CHAN_GONE ? " after the peer" : "");
  /* A deferred offer was never made: there is nothing to close.  A close
   * that cannot be sent or recorded still frees the channel. */
  if (mux->peer_up && chan->state != VMUX_CHAN_GONE && !chan->deferred)
    {
      rc = queue (mux, VMUX_CLOSE, chan_flags (chan), chan->port, 0, 0, NULL, 0);
      if (rc == 0 && chan->server)
        rc = start_closing (mux, chan->port);
    }
  if (mux->payload_chan == chan)
    mux->payload_chan = NULL;   /* the rest of its payload is dropped */
  for (VmuxChan **c = &mux->chans; *c != NULL; c = &(*c)->next)
    if (*c == chan)
      {
        *c = chan->next;
        break;
      }
  free (chan->rx);
  free (chan);
  return rc;
}
