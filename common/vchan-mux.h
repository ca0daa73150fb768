/* vchan-mux.h — many vchan channels over one byte stream (a virtio-serial
 * port between the host and a qube): the wire format, its parser and the
 * per-channel rings and credits.
 *
 * This file is shared, as source, by the host side (plugins/kvm) and the
 * guest side (agent/transport-virtio.c), so both speak exactly the same
 * protocol.  It does no I/O and takes no locks: the caller feeds it the
 * bytes read from the link (vmux_feed), writes out what it queued
 * (vmux_out_peek / vmux_out_consumed) and serialises all calls on one mux.
 * Plain C and libc only (the guest programs link statically).
 *
 * Every frame is a 16-byte header, little-endian:
 *   u16 type, u16 flags, u32 port, u32 a, u32 b
 * followed, for DATA only, by `a` payload bytes.  The format, the
 * connection setup and the flow control are described in
 * plugins/kvm/README.md ("vchan").  Everything the peer sends is checked;
 * a violation makes vmux_feed() fail with a reason, and the link must then
 * be dropped.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* 2: the receiver of a server's CLOSE answers it (see vmux_chan_close). */
#define VMUX_VERSION 2u
#define VMUX_HEADER_SIZE 16u
/* A HELLO carries this in its port field ("QVMX"): a receiver that is not
 * in a session yet skips bytes until a HELLO, so the tail of an earlier
 * session left in the link cannot be mistaken for frames. */
#define VMUX_HELLO_MAGIC 0x584d5651u

enum {
  VMUX_HELLO = 1,     /* port = VMUX_HELLO_MAGIC, a = version, b = 1 when it answers */
  VMUX_OFFER = 2,     /* a server offers `port`: a = its read ring, b = its write ring */
  VMUX_CONNECT = 3,   /* a client takes the offer of `port` */
  VMUX_DATA = 4,      /* a = payload length, never beyond the credit */
  VMUX_CREDIT = 5,    /* a = bytes the reader consumed */
  VMUX_CLOSE = 6,     /* the sender closed its end (or withdrew its offer); a
                       * client answers a server's CLOSE with its own */
};

/* flags: the sender is the server end of the channel (so the same port
 * number can carry one channel served from each side). */
#define VMUX_F_FROM_SERVER 0x1u

/* Ring sizes: what a server announces is rounded up to a power of two in
 * this range; an announcement outside it is a protocol violation. */
#define VMUX_RING_MIN ((size_t) 4096)
#define VMUX_RING_DEFAULT_MIN ((size_t) 256 * 1024)
#define VMUX_RING_MAX ((size_t) 64 * 1024 * 1024)

typedef enum {
  VMUX_CHAN_WAITING = 0,    /* server: offered, no client yet */
  VMUX_CHAN_CONNECTED = 1,
  VMUX_CHAN_GONE = 2,       /* the peer closed its end, or the link went down */
} VmuxChanState;

typedef struct Vmux Vmux;
typedef struct VmuxChan VmuxChan;

struct VmuxChan {
  Vmux *mux;
  uint32_t port;
  int server;               /* this end offered the channel */
  VmuxChanState state;
  size_t read_ring, write_ring;   /* server: the sizes it offered */
  unsigned char *rx;        /* receive ring, rx_size bytes, a power of two */
  size_t rx_size;
  uint64_t rx_head, rx_tail;
  size_t unreported;        /* consumed, credit not yet returned */
  size_t credit;            /* bytes the peer's ring has free for us */
  size_t peer_ring;
  int deferred;             /* server: offered once the port's previous
                             * channel is closed on both ends */
  void *user;               /* the caller's own data */
  VmuxChan *next;
};

typedef struct VmuxOffer {
  uint32_t port;
  uint32_t read_ring, write_ring;
  struct VmuxOffer *next;
} VmuxOffer;

/* A port whose server end this side closed, until the peer's CLOSE says
 * that nothing more of that channel is on its way. */
typedef struct VmuxClosing {
  uint32_t port;
  struct VmuxClosing *next;
} VmuxClosing;

/* Called, inside a vmux_* call, when something happened to `chan` (data,
 * credit, connected, gone), or with chan == NULL for the link itself (the
 * peer said hello, offered a port, or the link went down). */
typedef void (*VmuxNotify) (Vmux *mux, VmuxChan *chan, void *data);
/* Called, inside a vmux_* call, with one line on what happened to a
 * channel's life (offers, connects, closes, sessions): for a debug log. */
typedef void (*VmuxTrace) (Vmux *mux, const char *text, void *data);

struct Vmux {
  VmuxChan *chans;
  VmuxOffer *offers;        /* the peer's offers nobody took yet */
  VmuxClosing *closing;     /* our closed server ports, not yet answered */
  int peer_up;              /* the peer's HELLO arrived on this link */
  int answered;             /* we answered a HELLO since the link came up */
  unsigned long skipped;    /* bytes dropped while looking for a HELLO */
  unsigned long sessions;   /* HELLOs received so far */
  unsigned reset_ended;     /* connected channels the last peer reset ended */
  VmuxNotify notify;
  void *notify_data;
  VmuxTrace trace;          /* NULL: no trace */
  void *trace_data;
  /* parser */
  unsigned char hdr[VMUX_HEADER_SIZE];
  size_t hdr_have;
  VmuxChan *payload_chan;
  size_t payload_left;
  /* output not yet written to the link */
  unsigned char *out;
  size_t out_off, out_len, out_cap;
  char error[200];
};

void vmux_init (Vmux *mux, VmuxNotify notify, void *notify_data);
/* Lines on the channels' lives go to `trace` from now on. */
void vmux_set_trace (Vmux *mux, VmuxTrace trace, void *trace_data);
/* Frees every channel, offer and buffer. */
void vmux_clear (Vmux *mux);

/* The link (re)opened: queues our HELLO (the peer answers with its own).
 * Either side may say HELLO first, or both at once: a HELLO that arrives
 * while nobody listens is lost, so each side asks when it opens the link. */
int vmux_link_up (Vmux *mux);
/* The link broke: connected channels become GONE, the peer's offers are
 * forgotten; our waiting offers stay (they are offered again on the next
 * HELLO). */
void vmux_link_down (Vmux *mux);

/* Takes in `len` bytes read from the link.  0, or -1 with mux->error set
 * when the peer broke the protocol. */
int vmux_feed (Vmux *mux, const void *buf, size_t len);

/* Queued output: the bytes to write next (len 0 when none), and how many of
 * them were written. */
void vmux_out_peek (Vmux *mux, const void **buf, size_t *len);
void vmux_out_consumed (Vmux *mux, size_t n);

/* Offer `port` as its server.  NULL with mux->error set when we offer it
 * already or memory is short.  While the port's previous channel is not
 * closed on both ends yet, the offer waits (the channel is WAITING). */
VmuxChan *vmux_offer (Vmux *mux, uint32_t port, size_t read_min, size_t write_min);
/* Does the peer offer `port`? */
int vmux_peer_offers (Vmux *mux, uint32_t port);
/* Take the peer's offer of `port` as its client: the channel is CONNECTED
 * at once.  NULL when the port is not offered (mux->error says so). */
VmuxChan *vmux_connect (Vmux *mux, uint32_t port);

size_t vmux_chan_ready (VmuxChan *chan);
size_t vmux_chan_space (VmuxChan *chan);
/* Copy out up to len received bytes; returns the count (credit is returned
 * to the peer in batches, and always when the ring becomes empty). */
size_t vmux_chan_read (VmuxChan *chan, void *buf, size_t len);
/* Queue up to len bytes, as much as the credit allows; returns the count. */
size_t vmux_chan_write (VmuxChan *chan, const void *buf, size_t len);
/* Close our end (withdraws an offer) and free the channel.  A server's
 * CLOSE is answered by the client's; until then what the client still
 * sends on the port is dropped and a new offer of the port waits, so no
 * frame of the old channel reaches a new one.  The channel is freed in
 * any case; -1 (mux->error says why: memory is short, or the peer left
 * too many closes unanswered) when the close could not be sent or
 * recorded: the link can no longer keep channels apart and must be
 * dropped. */
int vmux_chan_close (VmuxChan *chan);
