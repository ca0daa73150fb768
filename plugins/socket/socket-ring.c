/* socket-ring.c — the receive ring of a socket vchan end (see socket-ring.h). */
#include "config.h"

#include <string.h>

#include "socket-ring.h"

void
socket_ring_init (SocketRing *ring, gsize size)
{
  g_assert (size > 0 && (size & (size - 1)) == 0);
  ring->buf = g_malloc (size);
  ring->size = size;
  ring->head = 0;
  ring->tail = 0;
}

void
socket_ring_clear (SocketRing *ring)
{
  g_clear_pointer (&ring->buf, g_free);
  ring->size = 0;
  ring->head = ring->tail = 0;
}

guint8 *
socket_ring_write_region (const SocketRing *ring, gsize *len)
{
  gsize offset = (gsize) (ring->tail & (ring->size - 1));

  *len = MIN (socket_ring_free (ring), ring->size - offset);
  return ring->buf + offset;
}

void
socket_ring_peek (const SocketRing *ring, void *dest, gsize len)
{
  struct iovec iov[2];
  int n = socket_ring_spans (ring, iov, len);

  for (int i = 0; i < n; i++)
    {
      memcpy (dest, iov[i].iov_base, iov[i].iov_len);
      dest = (guint8 *) dest + iov[i].iov_len;
    }
}

int
socket_ring_spans (const SocketRing *ring, struct iovec iov[2], gsize len)
{
  gsize offset = (gsize) (ring->head & (ring->size - 1));
  gsize first = MIN (len, ring->size - offset);

  if (len == 0)
    return 0;
  iov[0] = (struct iovec) { ring->buf + offset, first };
  if (first == len)
    return 1;
  iov[1] = (struct iovec) { ring->buf, len - first };
  return 2;
}
