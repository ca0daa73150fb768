/* vchan-peer-proto.h — what the kvm vchan test (host) and its guest peer
 * (vchan-peer.c) share: command codes, the byte pattern of streams and
 * their checksum.  Header-only, libc only.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

enum { PEER_ECHO = 1, PEER_SOURCE = 2, PEER_SINK = 3 };

static inline void
peer_put32 (unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char) v;
  p[1] = (unsigned char) (v >> 8);
  p[2] = (unsigned char) (v >> 16);
  p[3] = (unsigned char) (v >> 24);
}

static inline uint32_t
peer_get32 (const unsigned char *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static inline uint64_t
peer_seed (uint32_t port)
{
  return 0x9e3779b97f4a7c15ull ^ ((uint64_t) port << 17) ^ port;
}

/* The stream pattern: xorshift64 words, continued across calls (n must be
 * a multiple of 8 except for the last call). */
static inline void
peer_pattern (uint64_t *state, unsigned char *buf, size_t n)
{
  for (size_t i = 0; i < n; i += 8)
    {
      uint64_t x = *state;

      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      *state = x;
      for (size_t j = 0; j < 8 && i + j < n; j++)
        buf[i + j] = (unsigned char) (x >> (8 * j));
    }
}

/* A position-dependent checksum (FNV-1a over the bytes, 64-bit). */
typedef struct {
  uint64_t h;
  uint64_t total;
} PeerSum;

static inline void
peer_sum_init (PeerSum *s)
{
  s->h = 0xcbf29ce484222325ull;
  s->total = 0;
}

static inline void
peer_sum_add (PeerSum *s, const unsigned char *buf, size_t n)
{
  uint64_t h = s->h;

  for (size_t i = 0; i < n; i++)
    h = (h ^ buf[i]) * 0x100000001b3ull;
  s->h = h;
  s->total += n;
}

static inline uint64_t
peer_sum_end (PeerSum *s)
{
  return s->h;
}
