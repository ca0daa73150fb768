/* qube-vchan.h — the vchan transport ABI.
 *
 * libvchan-style byte channels between the host and a qube (or between two
 * qubes), addressed by (peer, port).  One end is the server (it allocates
 * the rings, sizes them from read_min/write_min), the other the client.
 * The semantics are libvchan's:
 *
 *  - read()/write() are stream operations: they move at least one byte and
 *    may move fewer than asked; they block only when nothing can move.
 *  - recv()/send() are all-or-nothing: they move exactly `len` bytes or
 *    none (send() of more than the ring holds fails).
 *  - fd() is a descriptor that becomes readable when there is an event
 *    (data, space, a state change); ack() consumes pending events without
 *    blocking; wait() blocks until the next event and consumes it.
 *  - is_open() reports one of three states.
 *
 * A channel is used by one thread at a time; different channels may be
 * used from different threads concurrently.
 */
#ifndef QUBE_ABI_VCHAN_H
#define QUBE_ABI_VCHAN_H

#include <sys/uio.h>

#include "qube-plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A channel.  Its layout belongs to the plugin. */
typedef struct QubeVchan QubeVchan;

/* The three states of is_open(). */
typedef enum QubeVchanState {
  QUBE_VCHAN_DISCONNECTED = 0, /* the peer closed, or never will connect */
  QUBE_VCHAN_CONNECTED = 1,
  QUBE_VCHAN_WAITING = 2       /* server side: the client has not come yet */
} QubeVchanState;

/* The other end of a channel. */
typedef struct QubeVchanPeer {
  uint32_t size;            /* sizeof(QubeVchanPeer) */
  /* --- ABI 1.0 --- */
  const char *name;         /* the peer qube's name ("dom0" for the host) */
  int32_t domid;            /* the peer's domain id where the transport has
                               them (Xen), else -1 */
  const char *runtime_dir;  /* the peer qube's runtime directory on the
                               host (see QubeDomainRef), or NULL */
  const char *address;      /* transport-specific address (a socket path,
                               "tcp:HOST:PORT"), or NULL for the default */
} QubeVchanPeer;

typedef struct QubeVchanOps {
  uint32_t size;            /* sizeof(QubeVchanOps) */
  /* --- ABI 1.0 --- */

  /* Offer a channel on `port`; returns at once with the channel in state
   * WAITING, or NULL with the error set.  read_min/write_min are the
   * smallest ring sizes acceptable for this end's reads and writes. */
  QubeVchan *(*server_init)(void *plugin, const QubeVchanPeer *peer,
                            uint32_t port, size_t read_min,
                            size_t write_min);

  /* Connect to a server's channel; blocks until connected or failed. */
  QubeVchan *(*client_init)(void *plugin, const QubeVchanPeer *peer,
                            uint32_t port);

  /* Start connecting without blocking: returns a channel whose fd() becomes
   * readable when client_init_async_finish() may be called; NULL slot: use
   * client_init. */
  QubeVchan *(*client_init_async)(void *plugin, const QubeVchanPeer *peer,
                                  uint32_t port);
  /* Returns 0 when connected, QUBE_ABI_E_TIMEOUT ("not yet", call again
   * after the fd is readable) or another error (the channel is unusable;
   * close it). */
  int (*client_init_async_finish)(QubeVchan *chan);

  /* Stream I/O: >0 bytes moved, 0 only for len == 0, -1 on error or when
   * the peer is gone (set_error called).  Block until one byte can move. */
  long (*read)(QubeVchan *chan, void *buf, size_t len);
  long (*write)(QubeVchan *chan, const void *buf, size_t len);

  /* All-or-nothing I/O: `len` on success, -1 on error; blocks until the
   * whole message fits or is there. */
  long (*recv)(QubeVchan *chan, void *buf, size_t len);
  long (*send)(QubeVchan *chan, const void *buf, size_t len);

  /* Bytes readable without blocking, and bytes writable without blocking. */
  size_t (*data_ready)(QubeVchan *chan);
  size_t (*buffer_space)(QubeVchan *chan);

  /* One of QubeVchanState. */
  int (*is_open)(QubeVchan *chan);

  /* Event descriptor for poll(); readable when an event is pending. */
  int (*fd)(QubeVchan *chan);
  /* Consume pending events without blocking; 0 or -1 on error. */
  int (*ack)(QubeVchan *chan);
  /* Block until an event, consume it; 0 or -1 on error. */
  int (*wait)(QubeVchan *chan);

  /* Close and free; the peer sees DISCONNECTED. NULL is accepted. */
  void (*close)(QubeVchan *chan);

  /* --- ABI 1.2 --- */

  /* Reading in place, for transports whose receive ring is in this
   * process (both may be NULL; then use read()).  peek() points iov[0]
   * and, where the bytes wrap around the ring, iov[1] at the first
   * readable bytes, at most `len` of them, without consuming them, and
   * returns how many spans it filled: 0 when nothing is ready, also once
   * the peer left and all it sent was taken (it never blocks), -1 on
   * error.  The bytes stay where they are until consume()
   * or close().  consume() drops the first `len` bytes (at most what
   * data_ready() says) as read() would have taken them and returns 0, or
   * -1 on error. */
  int (*peek)(QubeVchan *chan, struct iovec iov[2], size_t len);
  int (*consume)(QubeVchan *chan, size_t len);
} QubeVchanOps;

#ifdef __cplusplus
}
#endif

#endif /* QUBE_ABI_VCHAN_H */
