/* socket-ring.h — the receive ring of a socket vchan end.
 *
 * One producer (the plugin's pump thread, which copies bytes arriving on
 * the socket into the free part) and one consumer (the application thread,
 * which reads the filled part).  The positions are free-running 64-bit
 * counters; the caller serialises updates of them with the channel lock,
 * while the bytes themselves are copied without it (each side only touches
 * its own part of the buffer).
 */
#pragma once

#include <sys/uio.h>

#include <glib.h>

typedef struct {
  guint8 *buf;
  gsize size;      /* a power of two */
  guint64 head;    /* next byte the consumer reads */
  guint64 tail;    /* next byte the producer writes */
} SocketRing;

void socket_ring_init (SocketRing *ring, gsize size);
void socket_ring_clear (SocketRing *ring);

static inline gsize
socket_ring_fill (const SocketRing *ring)
{
  return (gsize) (ring->tail - ring->head);
}

static inline gsize
socket_ring_free (const SocketRing *ring)
{
  return ring->size - socket_ring_fill (ring);
}

/* The contiguous free region at the tail (may be shorter than the free
 * space when it wraps). */
guint8 *socket_ring_write_region (const SocketRing *ring, gsize *len);

/* Copy `len` bytes (at most the fill, which the caller checked under the
 * lock) out of the head into `dest`, without moving the head.  Reads only
 * `head`, which belongs to the consumer, so it needs no lock. */
void socket_ring_peek (const SocketRing *ring, void *dest, gsize len);

/* Points iov at the first `len` bytes of the fill (checked by the caller
 * under the lock), in place; returns how many spans (1 or 2, 0 for
 * len == 0). */
int socket_ring_spans (const SocketRing *ring, struct iovec iov[2], gsize len);
