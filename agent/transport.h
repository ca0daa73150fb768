/* transport.h — how the guest programs reach the host: vchan-like byte
 * channels addressed by port, behind a small table so that other
 * transports (virtio-serial, libxenvchan) slot in beside the socket one.
 *
 * A transport is named by a spec string "NAME:ARGUMENT" (e.g.
 * "socket:/run/qube/qubes/work").  Channels are blocking, used by one
 * thread; agent_chan_fd() is pollable for incoming bytes, after which
 * agent_chan_pump() moves what arrived into the channel's buffer.
 * Plain C and libc only: the guest programs link statically.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct AgentChan AgentChan;

typedef struct {
  const char *name;
  /* Offer a channel on `port` (the listening half; accept() waits for the
   * peer).  read_ring is the size of this end's receive buffer. */
  AgentChan *(*listen) (const char *arg, uint32_t port, size_t read_ring, size_t write_ring,
                        char *err, size_t errlen);
  int (*accept) (AgentChan *chan, char *err, size_t errlen);
  /* Connect to the peer's channel on `port`, waiting up to timeout_ms for
   * it to be offered. */
  AgentChan *(*connect) (const char *arg, uint32_t port, int timeout_ms, char *err, size_t errlen);
  int (*fd) (AgentChan *chan);
  /* Take in what arrived without blocking: 0, or -1 when the peer is gone
   * or broke the rules (the reason is in agent_chan_error()). */
  int (*pump) (AgentChan *chan);
  size_t (*ready) (AgentChan *chan);
  /* Copy out up to len buffered bytes (never blocks; returns the count). */
  size_t (*take) (AgentChan *chan, void *buf, size_t len);
  /* How many bytes write_some() can move now (what the peer has room
   * for, as far as pump() last learnt), 0 when none: then room comes as
   * `room_events` on fd().  A transport that cannot tell returns
   * (size_t) -1 and write_some() moves what fits. */
  size_t (*space) (AgentChan *chan);
  /* Moves up to len bytes to the peer without waiting: the count (0 when
   * there is no room), or -1 when the peer is gone or the channel broke. */
  long (*write_some) (AgentChan *chan, const void *buf, size_t len);
  /* The poll() events on fd() that tell of new room to write. */
  short room_events;
  /* The listening half is done with (after accept) or the channel is. */
  void (*close) (AgentChan *chan);
  const char *(*error) (AgentChan *chan);
  /* Is the peer gone (after everything it sent was taken)? */
  int (*gone) (AgentChan *chan);
  /* Optional: move what the pipe or stream socket `fd` (from_socket says
   * which; the caller knows its descriptors) holds now (at most
   * `max` bytes) to the channel, each `chunk` bytes preceded by
   * `header_len` bytes that make_header() writes for that piece's length,
   * without copying through user space and without waiting: only as much
   * as space() allows (call it only when space() exceeds header_len).
   * Returns the payload bytes moved, 0 when `fd` holds nothing (read it
   * to tell EOF), -1 on error. */
  long (*splice_from_pipe) (AgentChan *chan, int fd, int from_socket, size_t max, size_t chunk,
                            size_t header_len,
                            void (*make_header) (void *header, size_t len, void *data),
                            void *data);
  /* Optional, for transports whose peers are domains: writes into buf the
   * argument that reaches domain `domain` (for a data channel that a
   * qrexec message's connect_domain names); 0, or -1 with the reason in
   * err.  Transports with one peer, the host, leave it NULL. */
  int (*domain_arg) (uint32_t domain, char *buf, size_t len, char *err, size_t errlen);
} AgentTransport;

extern const AgentTransport agent_transport_socket;
/* "virtio:PORT-NAME": kvm qubes (transport-virtio.c). */
extern const AgentTransport agent_transport_virtio;
/* "xen:DOMID" (default dom0): Xen qubes, over libxenvchan
 * (transport-xen.c; built when the Xen libraries are). */
extern const AgentTransport agent_transport_xen;

/* The transport a spec names, with *arg pointing at its argument; NULL
 * when unknown. */
const AgentTransport *agent_transport_find (const char *spec, const char **arg);

/* The argument that opens a data channel to connect_domain `domain` of a
 * qrexec message, given the control channel's argument `arg`: domain 0
 * is the daemon's (dom0 in Qubes) and is reached as the control channel
 * is; any other (Qubes' direct qube-to-qube channels) only through the
 * transport's domain_arg(), in buf.  NULL, with the reason in err, when
 * the transport cannot reach it. */
const char *agent_transport_domain_arg (const AgentTransport *t, const char *arg, uint32_t domain,
                                        char *buf, size_t len, char *err, size_t errlen);

/* Helpers for transports: format a message into err (when err is not
 * NULL), and the monotonic clock in milliseconds. */
void agent_set_error (char *err, size_t errlen, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
long agent_now_ms (void);

/* Sets the send buffer of socket `sock` to `bytes` (at most 64 MiB): past
 * the system's wmem_max where the process may (root), else up to it. */
void agent_size_send_buffer (int sock, size_t bytes);

/* Read exactly len bytes, blocking: 0, or -1 when the peer went away. */
int agent_chan_read_exact (const AgentTransport *t, AgentChan *chan, void *buf, size_t len);
/* Write everything, waiting for the peer to make room: 0, or -1 when the
 * peer went away.  (It takes in what arrives meanwhile, but does not hand
 * it out: a loop that must keep reading uses write_some().) */
int agent_chan_write_all (const AgentTransport *t, AgentChan *chan, const void *buf, size_t len);
