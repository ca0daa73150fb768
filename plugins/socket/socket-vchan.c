/* socket-vchan.c — the "socket" plugin: vchan channels over stream sockets.
 *
 * A unix socket per (peer directory, port) on one host, or a TCP connection
 * to a qube on another machine when that is configured explicitly.  The
 * libvchan semantics (rings of a known size, honest data_ready and
 * buffer_space, all-or-nothing send/recv) come from a small framing with
 * credit-based flow control on top of the socket and a pump thread that
 * moves arriving bytes into the receive ring without the application's
 * help; README.md in this directory explains the design.
 *
 * This file may not trust the peer: every frame header is checked against
 * the ring and the credit it may use, and a peer that breaks the rules is
 * disconnected.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <glib-unix.h>

#include "abi/qube-plugin.h"
#include "abi/qube-vchan.h"
#include "socket-ring.h"

/* Rings are at least 1 MiB, more than the 64 KiB qrexec asks for: a trip
 * through the socket and the pump costs far more than a shared-memory
 * index update, and a ring that holds several writes keeps both ends busy
 * (64 KiB rings move about a third of what 1 MiB rings move here).  The
 * memory is only touched as data flows.  At most what is sane per end. */
#define RING_MIN ((gsize) 1024 * 1024)
/* What a peer may announce: any power of two from qrexec's 64 KiB up. */
#define RING_PEER_MIN ((gsize) 64 * 1024)
#define RING_MAX ((gsize) 64 * 1024 * 1024)

/* The framing on the socket, in network byte order.  The server sends
 * HELLO once after accepting; then both sides send frames. */
#define HELLO_MAGIC 0x51564348u /* "QVCH" */
#define HELLO_VERSION 1u
#define HELLO_LEN 16            /* magic, version, server read ring, server write ring */
#define FRAME_LEN 8             /* type, value */
#define FRAME_DATA 1u           /* value = payload bytes that follow */
#define FRAME_CREDIT 2u         /* value = bytes the sender consumed from its ring */

/* An async client retries this often while the server is not there yet. */
#define CONNECT_RETRY_MS 20
/* A blocking client_init gives up after this long without the server's hello. */
#define CONNECT_TIMEOUT_S 30
/* After close, the socket is kept (write side shut) until the peer closes
 * too, so that TCP does not reset data still in flight. */
#define LINGER_S 5

typedef struct {
  const QubeHost *host;
  gboolean tcp_enabled;
} SocketPlugin;

typedef enum {
  PHASE_WAITING,   /* server: listening; client: connecting or awaiting hello */
  PHASE_CONNECTED,
  PHASE_GONE,      /* the peer closed, or connecting failed */
} ChanPhase;

struct QubeVchan {
  gint refcount;            /* the application and each attached source */
  SocketPlugin *sp;
  GMainContext *ctx;        /* the pump's context, where all sources live */
  char *what;               /* "vchan port 512 with 'work'", for messages */
  gboolean server;
  gboolean retry;           /* async client: wait for the server to appear */
  struct sockaddr_storage addr;
  socklen_t addr_len;
  char *where;              /* the socket path or host:port, for messages */
  char *unix_path;          /* server: the listening socket file */
  char *lock_path;          /* server: the lock file that reserves the port */
  int lock_fd;
  int listen_fd;
  int sock;
  int event_fd;
  gsize read_ring;          /* server: ring sizes decided at init */
  gsize write_ring;

  /* Pump thread only. */
  GSource *listen_source;
  GSource *sock_source;
  GSource *retry_source;
  guint8 hdr[HELLO_LEN];
  gsize hdr_have;
  gsize payload_left;

  /* Shared; under `lock`. */
  GMutex lock;
  GCond cond;
  ChanPhase phase;
  gboolean ever_connected;
  gboolean event_pending;   /* the event fd is (or is about to be) written, not yet acked */
  char *gone_reason;
  SocketRing rx;
  gsize peer_ring;          /* the peer's receive ring: the most one send() moves */
  gsize credit;             /* bytes the peer's ring can take now */
};

/* ---- the pump thread ---------------------------------------------------- */

typedef struct {
  GMainContext *ctx;
  pid_t pid;
} SocketPump;

static GMutex pump_lock;
static SocketPump *pump;

static gpointer
pump_main (gpointer data)
{
  SocketPump *self = data;

  for (;;)
    g_main_context_iteration (self->ctx, TRUE);
  return NULL;
}

/* The context of this process's pump thread, started on first use.  After
 * fork() the parent's thread does not exist in the child, so a child
 * starts its own (the parent's structures are left alone).  The pump
 * never touches GLib's global default context, so that a fork() taken
 * while it runs cannot leave that context's once-lock held. */
static GMainContext *
pump_context (void)
{
  GMainContext *ctx;

  g_mutex_lock (&pump_lock);
  if (pump == NULL || pump->pid != getpid ())
    {
      GThread *thread;

      pump = g_new0 (SocketPump, 1);
      pump->ctx = g_main_context_new ();
      pump->pid = getpid ();
      thread = g_thread_new ("vchan-socket", pump_main, pump);
      g_thread_unref (thread);
    }
  ctx = pump->ctx;
  g_mutex_unlock (&pump_lock);
  return ctx;
}

/* Run `func` in the pump thread, handing it `chan` (a reference taken
 * here is dropped after the call). */
static void
pump_run (GMainContext *ctx, GSourceFunc func, gpointer chan, GDestroyNotify notify)
{
  GSource *source = g_idle_source_new ();

  g_source_set_callback (source, func, chan, notify);
  g_source_attach (source, ctx);
  g_source_unref (source);
}

/* ---- channel life ------------------------------------------------------- */

static QubeVchan *
chan_ref (QubeVchan *chan)
{
  g_atomic_int_inc (&chan->refcount);
  return chan;
}

static void
chan_unref (gpointer data)
{
  QubeVchan *chan = data;

  if (!g_atomic_int_dec_and_test (&chan->refcount))
    return;
  socket_ring_clear (&chan->rx);
  g_mutex_clear (&chan->lock);
  g_cond_clear (&chan->cond);
  g_free (chan->gone_reason);
  g_free (chan->what);
  g_free (chan->where);
  g_free (chan->unix_path);
  g_free (chan->lock_path);
  g_free (chan);
}

static void
chan_error (QubeVchan *chan, QubeAbiError code, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
chan_error (QubeVchan *chan, QubeAbiError code, const char *fmt, ...)
{
  g_autofree char *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  chan->sp->host->set_error (chan->sp->host, code, "%s: %s", chan->what, msg);
}

/* Wake whoever waits on this channel: threads blocked in an operation
 * (the condition) and pollers (the event fd).  Called without the lock,
 * and it wakes them only after letting go of it: a poller woken while we
 * held it would come to acknowledge the event and wait for the lock at
 * once (on our CPU it preempts us first), a switch there and back for
 * every wake-up. */
static void
chan_notify (QubeVchan *chan)
{
  guint64 one = 1;
  int fd = -1;

  g_mutex_lock (&chan->lock);
  if (!chan->event_pending && chan->event_fd >= 0)
    {
      /* Set before the write: a notification meanwhile need not write
       * again, as the reader looks at the channel after acknowledging. */
      chan->event_pending = TRUE;
      fd = chan->event_fd;
    }
  g_mutex_unlock (&chan->lock);
  g_cond_broadcast (&chan->cond);
  if (fd >= 0 && write (fd, &one, sizeof one) < 0 && errno != EAGAIN)
    g_warning ("%s: cannot signal the event fd: %s", chan->what, g_strerror (errno));
}

static void
chan_set_gone (QubeVchan *chan, const char *reason)
{
  gboolean was_gone;

  g_mutex_lock (&chan->lock);
  was_gone = chan->phase == PHASE_GONE;
  if (!was_gone)
    {
      chan->phase = PHASE_GONE;
      chan->gone_reason = g_strdup (reason);
    }
  g_mutex_unlock (&chan->lock);
  if (!was_gone)
    chan_notify (chan);
}

static void
chan_drop_source (GSource **source)
{
  if (*source == NULL)
    return;
  g_source_destroy (*source);
  g_clear_pointer (source, g_source_unref);
}

static GSource *
chan_attach_fd (QubeVchan *chan, int fd, GIOCondition condition,
                GUnixFDSourceFunc func)
{
  GSource *source = g_unix_fd_source_new (fd, condition);

  g_source_set_callback (source, G_SOURCE_FUNC (func), chan_ref (chan), chan_unref);
  g_source_attach (source, chan->ctx);
  return source;
}

/* ---- sending (application thread) --------------------------------------- */

/* Send one frame, waiting for socket space as needed (the socket is
 * non-blocking because the pump shares it). */
static gboolean
send_frame (QubeVchan *chan, guint32 type, const void *payload, gsize len,
            int *saved_errno)
{
  guint32 hdr[2] = { g_htonl (type), g_htonl ((guint32) len) };
  struct iovec iov[2] = {
    { .iov_base = hdr, .iov_len = sizeof hdr },
    { .iov_base = (void *) payload, .iov_len = type == FRAME_DATA ? len : 0 },
  };
  struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };

  while (iov[0].iov_len + iov[1].iov_len > 0)
    {
      ssize_t n = sendmsg (chan->sock, &msg, MSG_NOSIGNAL);

      if (n < 0)
        {
          struct pollfd pfd = { .fd = chan->sock, .events = POLLOUT };

          if (errno == EINTR)
            continue;
          if (errno != EAGAIN)
            {
              *saved_errno = errno;
              return FALSE;
            }
          if (poll (&pfd, 1, -1) < 0 && errno != EINTR)
            {
              *saved_errno = errno;
              return FALSE;
            }
          continue;
        }
      for (int i = 0; i < 2 && n > 0; i++)
        {
          gsize step = MIN ((gsize) n, iov[i].iov_len);

          iov[i].iov_base = (guint8 *) iov[i].iov_base + step;
          iov[i].iov_len -= step;
          n -= step;
        }
      if (iov[0].iov_len == 0)
        {
          msg.msg_iov = &iov[1];
          msg.msg_iovlen = 1;
        }
    }
  return TRUE;
}

/* ---- receiving (pump thread) -------------------------------------------- */

static void
pump_protocol_error (QubeVchan *chan, const char *reason)
{
  g_autofree char *msg = g_strdup_printf ("the peer broke the vchan protocol: %s", reason);

  chan->sp->host->log (chan->sp->host, QUBE_LOG_WARNING, "%s: %s", chan->what, msg);
  chan_set_gone (chan, msg);
  /* Cut the peer off now; the descriptor itself goes at close(). */
  (void) shutdown (chan->sock, SHUT_RDWR);
}

static gboolean
ring_size_valid (guint32 size)
{
  return size >= RING_PEER_MIN && size <= RING_MAX && (size & (size - 1)) == 0;
}

/* A whole header is in chan->hdr.  Returns FALSE when the peer is cut off. */
static gboolean
pump_handle_header (QubeVchan *chan, gboolean *notify)
{
  guint32 v[4];

  memcpy (v, chan->hdr, chan->hdr_have);
  for (gsize i = 0; i < chan->hdr_have / 4; i++)
    v[i] = g_ntohl (v[i]);
  chan->hdr_have = 0;

  if (!chan->server && !chan->ever_connected)
    {
      /* The server's hello: its ring sizes are our credit and our ring. */
      if (v[0] != HELLO_MAGIC || v[1] != HELLO_VERSION)
        {
          pump_protocol_error (chan, "the server's hello is not a socket vchan hello (version 1)");
          return FALSE;
        }
      if (!ring_size_valid (v[2]) || !ring_size_valid (v[3]))
        {
          pump_protocol_error (chan, "the server announced ring sizes out of range");
          return FALSE;
        }
      g_mutex_lock (&chan->lock);
      socket_ring_init (&chan->rx, v[3]);
      chan->peer_ring = chan->credit = v[2];
      chan->phase = PHASE_CONNECTED;
      chan->ever_connected = TRUE;
      g_mutex_unlock (&chan->lock);
      *notify = TRUE;
      return TRUE;
    }

  switch (v[0])
    {
    case FRAME_DATA:
      {
        gboolean fits;

        g_mutex_lock (&chan->lock);
        /* The peer may only send what we credited it; the ring's free
         * space is never less than that. */
        fits = v[1] > 0 && v[1] <= socket_ring_free (&chan->rx);
        g_mutex_unlock (&chan->lock);
        if (!fits)
          {
            pump_protocol_error (chan, "a data frame larger than the space it was given");
            return FALSE;
          }
        chan->payload_left = v[1];
        return TRUE;
      }
    case FRAME_CREDIT:
      {
        gboolean ok;

        g_mutex_lock (&chan->lock);
        ok = v[1] > 0 && v[1] <= chan->peer_ring - chan->credit;
        if (ok)
          chan->credit += v[1];
        g_mutex_unlock (&chan->lock);
        if (!ok)
          {
            pump_protocol_error (chan, "credit beyond the size of its ring");
            return FALSE;
          }
        *notify = TRUE;
        return TRUE;
      }
    default:
      pump_protocol_error (chan, "an unknown frame type");
      return FALSE;
    }
}

typedef enum {
  RX_MORE,      /* something moved: call again */
  RX_DRAINED,   /* the socket holds nothing more now */
  RX_STOP,      /* the peer is gone or was cut off */
} RxStatus;

/* One receive from the socket: payload bytes of the current data frame
 * into the ring, or a frame header.  A receive that finishes a payload
 * also takes the header behind it when the bytes are there: one system
 * call per frame instead of two. */
static RxStatus
rx_step (QubeVchan *chan, gboolean *notify)
{
  gsize need = (!chan->server && !chan->ever_connected) ? HELLO_LEN : FRAME_LEN;
  struct iovec iov[2];
  struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 1 };
  gsize payload = 0;
  ssize_t n;

  if (chan->payload_left > 0)
    {
      gsize room;
      guint8 *dest;

      g_mutex_lock (&chan->lock);
      dest = socket_ring_write_region (&chan->rx, &room);
      g_mutex_unlock (&chan->lock);
      /* The header check guaranteed the room: only we fill the ring. */
      g_assert (room > 0);
      payload = MIN (room, chan->payload_left);
      iov[0] = (struct iovec) { dest, payload };
      if (payload == chan->payload_left)
        {
          iov[1] = (struct iovec) { chan->hdr, need };
          msg.msg_iovlen = 2;
        }
    }
  else
    iov[0] = (struct iovec) { chan->hdr + chan->hdr_have, need - chan->hdr_have };

  n = recvmsg (chan->sock, &msg, MSG_DONTWAIT);
  if (n > 0)
    {
      gsize got = MIN ((gsize) n, payload);

      if (got > 0)
        {
          g_mutex_lock (&chan->lock);
          chan->rx.tail += (guint64) got;
          g_mutex_unlock (&chan->lock);
          chan->payload_left -= got;
          *notify = TRUE;
        }
      chan->hdr_have += (gsize) n - got;
      if (chan->hdr_have == need && !pump_handle_header (chan, notify))
        return RX_STOP;
      return RX_MORE;
    }
  if (n == 0)
    {
      chan_set_gone (chan, chan->ever_connected
                     ? "the peer closed the channel"
                     : "the server closed the connection before its hello");
      return RX_STOP;
    }
  if (errno == EAGAIN || errno == EINTR)
    return RX_DRAINED;
  {
    g_autofree char *reason = g_strdup_printf ("connection lost: %s", g_strerror (errno));

    chan_set_gone (chan, reason);
  }
  return RX_STOP;
}

static gboolean
pump_sock_cb (int fd, GIOCondition condition, gpointer data)
{
  QubeVchan *chan = data;
  gboolean notify = FALSE;
  RxStatus status = RX_MORE;

  /* Bounded, so that one busy channel does not starve the others. */
  for (int round = 0; round < 64 && status == RX_MORE; round++)
    status = rx_step (chan, &notify);

  if (notify)
    chan_notify (chan);
  if (status == RX_STOP)
    {
      g_clear_pointer (&chan->sock_source, g_source_unref);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

/* ---- server side --------------------------------------------------------- */

static void
server_stop_listening (QubeVchan *chan)
{
  chan_drop_source (&chan->listen_source);
  if (chan->listen_fd >= 0)
    {
      close (chan->listen_fd);
      chan->listen_fd = -1;
    }
  if (chan->unix_path != NULL)
    {
      (void) unlink (chan->unix_path);
      g_clear_pointer (&chan->unix_path, g_free);
    }
}

static gboolean
pump_accept_cb (int fd, GIOCondition condition, gpointer data)
{
  QubeVchan *chan = data;
  guint32 hello[4] = { g_htonl (HELLO_MAGIC), g_htonl (HELLO_VERSION),
                       g_htonl ((guint32) chan->read_ring),
                       g_htonl ((guint32) chan->write_ring) };
  int sock = accept4 (fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  int one = 1;

  if (sock < 0)
    {
      g_autofree char *reason = NULL;

      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
        return G_SOURCE_CONTINUE;
      reason = g_strdup_printf ("cannot accept the client: %s", g_strerror (errno));
      chan_set_gone (chan, reason);
      g_clear_pointer (&chan->listen_source, g_source_unref);
      return G_SOURCE_REMOVE;
    }

  /* One client per channel, as with libvchan: nobody else may connect. */
  g_clear_pointer (&chan->listen_source, g_source_unref);
  close (chan->listen_fd);
  chan->listen_fd = -1;
  if (chan->unix_path != NULL)
    {
      (void) unlink (chan->unix_path);
      g_clear_pointer (&chan->unix_path, g_free);
    }
  if (chan->addr.ss_family != AF_UNIX)
    (void) setsockopt (sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  /* A fresh socket always has room for the 16-byte hello. */
  if (send (sock, hello, sizeof hello, MSG_NOSIGNAL) != (ssize_t) sizeof hello)
    {
      g_autofree char *reason = g_strdup_printf ("cannot greet the client: %s", g_strerror (errno));

      close (sock);
      chan_set_gone (chan, reason);
      return G_SOURCE_REMOVE;
    }

  g_mutex_lock (&chan->lock);
  chan->sock = sock;
  chan->phase = PHASE_CONNECTED;
  chan->ever_connected = TRUE;
  g_mutex_unlock (&chan->lock);
  chan_notify (chan);
  chan->sock_source = chan_attach_fd (chan, sock, G_IO_IN, pump_sock_cb);
  return G_SOURCE_REMOVE;
}

/* ---- client side --------------------------------------------------------- */

static gboolean pump_connect_attempt (gpointer data);

static void
pump_connect_failed (QubeVchan *chan, int err)
{
  g_autofree char *reason = NULL;

  if (chan->sock >= 0)
    {
      close (chan->sock);
      chan->sock = -1;
    }
  /* The server is not there (yet): an async client keeps trying. */
  if (chan->retry && (err == ENOENT || err == ECONNREFUSED || err == EAGAIN))
    {
      chan->retry_source = g_timeout_source_new (CONNECT_RETRY_MS);
      g_source_set_callback (chan->retry_source, pump_connect_attempt,
                             chan_ref (chan), chan_unref);
      g_source_attach (chan->retry_source, chan->ctx);
      return;
    }
  reason = g_strdup_printf ("cannot connect to %s: %s", chan->where, g_strerror (err));
  chan_set_gone (chan, reason);
}

static gboolean
pump_connected_cb (int fd, GIOCondition condition, gpointer data)
{
  QubeVchan *chan = data;
  int err = 0;
  socklen_t len = sizeof err;

  g_clear_pointer (&chan->sock_source, g_source_unref);
  if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err != 0)
    pump_connect_failed (chan, err);
  else
    chan->sock_source = chan_attach_fd (chan, fd, G_IO_IN, pump_sock_cb);
  return G_SOURCE_REMOVE;
}

static gboolean
pump_connect_attempt (gpointer data)
{
  QubeVchan *chan = data;
  int one = 1;

  g_clear_pointer (&chan->retry_source, g_source_unref);
  chan->sock = socket (chan->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (chan->sock < 0)
    {
      pump_connect_failed (chan, errno);
      return G_SOURCE_REMOVE;
    }
  if (chan->addr.ss_family != AF_UNIX)
    (void) setsockopt (chan->sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect (chan->sock, (struct sockaddr *) &chan->addr, chan->addr_len) == 0)
    chan->sock_source = chan_attach_fd (chan, chan->sock, G_IO_IN, pump_sock_cb);
  else if (errno == EINPROGRESS)
    chan->sock_source = chan_attach_fd (chan, chan->sock, G_IO_OUT, pump_connected_cb);
  else
    pump_connect_failed (chan, errno);
  return G_SOURCE_REMOVE;
}

/* ---- closing ------------------------------------------------------------- */

typedef struct {
  int fd;
  GSource *io;
  GSource *timer;
} Linger;

static void
linger_finish (Linger *linger)
{
  g_source_destroy (linger->io);
  g_source_unref (linger->io);
  g_source_destroy (linger->timer);
  g_source_unref (linger->timer);
  close (linger->fd);
  g_free (linger);
}

static gboolean
linger_io_cb (int fd, GIOCondition condition, gpointer data)
{
  guint8 scratch[4096];
  ssize_t n;

  while ((n = recv (fd, scratch, sizeof scratch, MSG_DONTWAIT)) > 0)
    ;
  if (n == 0 || (errno != EAGAIN && errno != EINTR))
    linger_finish (data);
  return G_SOURCE_CONTINUE;
}

static gboolean
linger_timer_cb (gpointer data)
{
  linger_finish (data);
  return G_SOURCE_CONTINUE;
}

static void
linger_start (GMainContext *ctx, int fd)
{
  Linger *linger = g_new0 (Linger, 1);

  (void) shutdown (fd, SHUT_WR);
  linger->fd = fd;
  linger->io = g_unix_fd_source_new (fd, G_IO_IN);
  g_source_set_callback (linger->io, G_SOURCE_FUNC (linger_io_cb), linger, NULL);
  linger->timer = g_timeout_source_new_seconds (LINGER_S);
  g_source_set_callback (linger->timer, linger_timer_cb, linger, NULL);
  g_source_attach (linger->io, ctx);
  g_source_attach (linger->timer, ctx);
}

static gboolean
pump_close_cb (gpointer data)
{
  QubeVchan *chan = data;

  server_stop_listening (chan);
  chan_drop_source (&chan->sock_source);
  chan_drop_source (&chan->retry_source);
  if (chan->lock_fd >= 0)
    {
      if (chan->lock_path != NULL)
        (void) unlink (chan->lock_path);
      close (chan->lock_fd);
      chan->lock_fd = -1;
    }
  if (chan->sock >= 0)
    {
      linger_start (chan->ctx, chan->sock);
      chan->sock = -1;
    }
  close (chan->event_fd);
  chan->event_fd = -1;
  chan_unref (chan);
  return G_SOURCE_REMOVE;
}

/* TCP only: wait (at most LINGER_S) until the peer's kernel has taken
 * everything written, with the end of the stream behind it.  A process
 * commonly exits right after close(); the pump's linger dies with it, and
 * closing a TCP socket that holds unread bytes (the peer's credit frames)
 * resets the connection and discards whatever is still queued to be
 * sent.  Bytes the peer acknowledged are safe: they are read before the
 * reset is seen.  A unix socket queues written bytes at the peer at once,
 * so it needs none of this. */
static void
close_flush_tcp (QubeVchan *chan)
{
  gint64 deadline = g_get_monotonic_time () + LINGER_S * G_TIME_SPAN_SECOND;
  gboolean connected;

  g_mutex_lock (&chan->lock);
  connected = chan->ever_connected && chan->sock >= 0;
  g_mutex_unlock (&chan->lock);
  if (!connected || chan->addr.ss_family == AF_UNIX)
    return;
  (void) shutdown (chan->sock, SHUT_WR);
  while (g_get_monotonic_time () < deadline)
    {
      struct tcp_info info = { 0, };
      socklen_t info_len = sizeof info;
      int queued = 0;

      /* A reset or closed connection will deliver nothing more. */
      if (getsockopt (chan->sock, IPPROTO_TCP, TCP_INFO, &info, &info_len) < 0 ||
          info.tcpi_state == TCP_CLOSE ||
          ioctl (chan->sock, SIOCOUTQ, &queued) < 0 || queued == 0)
        return;
      /* Acknowledgements raise no event the socket can be polled for. */
      g_usleep (1000);
    }
}

static void
socket_close (QubeVchan *chan)
{
  if (chan == NULL)
    return;
  close_flush_tcp (chan);
  chan_set_gone (chan, "the channel was closed");
  /* Sources and descriptors belong to the pump thread: it tears them down,
   * taking over the application's reference. */
  pump_run (chan->ctx, pump_close_cb, chan, NULL);
}

/* ---- addressing ---------------------------------------------------------- */

static gsize
ring_size_for (gsize min)
{
  gsize size = RING_MIN;

  while (size < min)
    size <<= 1;
  return size;
}

static gboolean
peer_name_valid (const char *name)
{
  return name != NULL && *name != '\0' && strchr (name, '/') == NULL &&
         strcmp (name, ".") != 0 && strcmp (name, "..") != 0;
}

static int
resolve_tcp (QubeVchan *chan, const char *address, uint32_t port)
{
  const char *rest = address + strlen ("tcp:");
  const char *colon = strrchr (rest, ':');
  g_autofree char *host = NULL;
  guint64 base = 0;
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_NUMERICSERV | (chan->server ? AI_PASSIVE : 0) };
  struct addrinfo *res = NULL;
  int rc;

  if (!chan->sp->tcp_enabled)
    {
      chan_error (chan, QUBE_ABI_E_INVALID,
                  "TCP address '%s' refused: vchan over TCP is off "
                  "(it is unauthenticated; set tcp=enabled in the socket plugin's "
                  "configuration to allow it)", address);
      return QUBE_ABI_E_INVALID;
    }
  if (colon == NULL || colon == rest ||
      !g_ascii_string_to_unsigned (colon + 1, 10, 1, 65535, &base, NULL))
    {
      chan_error (chan, QUBE_ABI_E_INVALID,
                  "address '%s' is not tcp:HOST:PORT", address);
      return QUBE_ABI_E_INVALID;
    }
  if (base + port > 65535)
    {
      chan_error (chan, QUBE_ABI_E_INVALID,
                  "TCP base port %" G_GUINT64_FORMAT " plus vchan port %u is beyond 65535",
                  base, port);
      return QUBE_ABI_E_INVALID;
    }
  if (rest[0] == '[' && colon[-1] == ']')
    host = g_strndup (rest + 1, (gsize) (colon - rest - 2));
  else
    host = g_strndup (rest, (gsize) (colon - rest));

  rc = getaddrinfo (host, NULL, &hints, &res);
  if (rc != 0)
    {
      chan_error (chan, QUBE_ABI_E_NOT_FOUND, "cannot resolve '%s': %s", host, gai_strerror (rc));
      return QUBE_ABI_E_NOT_FOUND;
    }
  memcpy (&chan->addr, res->ai_addr, res->ai_addrlen);
  chan->addr_len = res->ai_addrlen;
  freeaddrinfo (res);
  if (chan->addr.ss_family == AF_INET)
    ((struct sockaddr_in *) &chan->addr)->sin_port = htons ((uint16_t) (base + port));
  else if (chan->addr.ss_family == AF_INET6)
    ((struct sockaddr_in6 *) &chan->addr)->sin6_port = htons ((uint16_t) (base + port));
  chan->where = g_strdup_printf ("tcp:%s:%u", host, (unsigned) (base + port));
  return 0;
}

/* Where the channel lives: a unix socket <dir>/vchan-<port>.sock, the
 * directory being the peer's address ("unix:DIR"), its runtime directory,
 * or <runtime_dir>/socket/<peer name>; or a TCP address. */
static int
resolve_address (QubeVchan *chan, const QubeVchanPeer *peer, uint32_t port,
                 char **dir_out)
{
  const QubeHost *host = chan->sp->host;
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  struct sockaddr_un *sun = (struct sockaddr_un *) &chan->addr;

  if (peer->address != NULL && g_str_has_prefix (peer->address, "tcp:"))
    return resolve_tcp (chan, peer->address, port);
  if (peer->address != NULL && g_str_has_prefix (peer->address, "unix:"))
    dir = g_strdup (peer->address + strlen ("unix:"));
  else if (peer->address != NULL)
    {
      chan_error (chan, QUBE_ABI_E_INVALID,
                  "address '%s' is neither unix:DIRECTORY nor tcp:HOST:PORT", peer->address);
      return QUBE_ABI_E_INVALID;
    }
  else if (peer->runtime_dir != NULL)
    dir = g_strdup (peer->runtime_dir);
  else if (host->runtime_dir != NULL)
    dir = g_build_filename (host->runtime_dir, "socket", peer->name, NULL);
  else
    {
      chan_error (chan, QUBE_ABI_E_INVALID, "no runtime directory to put the socket in");
      return QUBE_ABI_E_INVALID;
    }

  path = g_strdup_printf ("%s/vchan-%u.sock", dir, port);
  if (strlen (path) >= sizeof sun->sun_path)
    {
      chan_error (chan, QUBE_ABI_E_INVALID,
                  "socket path '%s' is longer than a unix socket address allows", path);
      return QUBE_ABI_E_INVALID;
    }
  sun->sun_family = AF_UNIX;
  strcpy (sun->sun_path, path);
  chan->addr_len = sizeof *sun;
  chan->where = g_steal_pointer (&path);
  if (dir_out != NULL)
    *dir_out = g_steal_pointer (&dir);
  return 0;
}

static QubeVchan *
chan_new (SocketPlugin *sp, const QubeVchanPeer *peer, uint32_t port, gboolean server)
{
  QubeVchan *chan = g_new0 (QubeVchan, 1);

  chan->refcount = 1;
  chan->sp = sp;
  chan->server = server;
  chan->what = g_strdup_printf ("vchan port %u with '%s'", port,
                                peer != NULL && peer->name != NULL ? peer->name : "?");
  chan->lock_fd = chan->listen_fd = chan->sock = -1;
  chan->event_fd = -1;
  g_mutex_init (&chan->lock);
  g_cond_init (&chan->cond);
  chan->phase = PHASE_WAITING;
  return chan;
}

/* Frees a channel that never reached the pump. */
static void
chan_discard (QubeVchan *chan)
{
  if (chan->listen_fd >= 0)
    close (chan->listen_fd);
  if (chan->lock_fd >= 0)
    close (chan->lock_fd);
  if (chan->event_fd >= 0)
    close (chan->event_fd);
  chan_unref (chan);
}

static int
chan_check_peer (QubeVchan *chan, const QubeVchanPeer *peer)
{
  if (peer == NULL || !peer_name_valid (peer->name))
    {
      chan_error (chan, QUBE_ABI_E_INVALID, "the peer needs a name usable in a file name");
      return QUBE_ABI_E_INVALID;
    }
  chan->event_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (chan->event_fd < 0)
    {
      chan_error (chan, QUBE_ABI_E_IO, "cannot create an event fd: %s", g_strerror (errno));
      return QUBE_ABI_E_IO;
    }
  return 0;
}

/* ---- the operations ------------------------------------------------------ */

static int
server_listen_unix (QubeVchan *chan, const char *dir, uint32_t port)
{
  if (g_mkdir_with_parents (dir, 0700) < 0)
    {
      chan_error (chan, QUBE_ABI_E_IO, "cannot create '%s': %s", dir, g_strerror (errno));
      return QUBE_ABI_E_IO;
    }
  /* The lock reserves the port for this channel's life; the socket file
   * alone cannot tell a stale file from a live server. */
  chan->lock_path = g_strdup_printf ("%s/vchan-%u.lock", dir, port);
  chan->lock_fd = open (chan->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (chan->lock_fd < 0)
    {
      chan_error (chan, QUBE_ABI_E_IO, "cannot open '%s': %s", chan->lock_path, g_strerror (errno));
      return QUBE_ABI_E_IO;
    }
  if (flock (chan->lock_fd, LOCK_EX | LOCK_NB) < 0)
    {
      g_clear_pointer (&chan->lock_path, g_free); /* not ours to remove */
      chan_error (chan, QUBE_ABI_E_EXISTS, "the port is already offered (%s is locked)", chan->where);
      return QUBE_ABI_E_EXISTS;
    }
  (void) unlink (chan->where);
  chan->unix_path = g_strdup (chan->where);
  return 0;
}

static QubeVchan *
socket_server_init (void *plugin, const QubeVchanPeer *peer, uint32_t port,
                    size_t read_min, size_t write_min)
{
  QubeVchan *chan = chan_new (plugin, peer, port, TRUE);
  g_autofree char *dir = NULL;
  int one = 1;

  if (chan_check_peer (chan, peer) != 0)
    goto fail;
  if (read_min > RING_MAX || write_min > RING_MAX)
    {
      chan_error (chan, QUBE_ABI_E_INVALID, "rings of %zu/%zu bytes asked, at most %zu allowed",
                  read_min, write_min, RING_MAX);
      goto fail;
    }
  chan->read_ring = ring_size_for (read_min);
  chan->write_ring = ring_size_for (write_min);
  if (resolve_address (chan, peer, port, &dir) != 0)
    goto fail;
  if (dir != NULL && server_listen_unix (chan, dir, port) != 0)
    goto fail;

  chan->listen_fd = socket (chan->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (chan->listen_fd < 0)
    {
      chan_error (chan, QUBE_ABI_E_IO, "cannot create a socket: %s", g_strerror (errno));
      goto fail;
    }
  if (chan->addr.ss_family != AF_UNIX)
    (void) setsockopt (chan->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (chan->listen_fd, (struct sockaddr *) &chan->addr, chan->addr_len) < 0 ||
      listen (chan->listen_fd, 1) < 0)
    {
      chan_error (chan, errno == EADDRINUSE ? QUBE_ABI_E_EXISTS : QUBE_ABI_E_IO,
                  "cannot listen on %s: %s", chan->where, g_strerror (errno));
      goto fail;
    }

  socket_ring_init (&chan->rx, chan->read_ring);
  chan->peer_ring = chan->write_ring;
  chan->credit = chan->write_ring;
  chan->ctx = pump_context ();
  chan->listen_source = chan_attach_fd (chan, chan->listen_fd, G_IO_IN, pump_accept_cb);
  return chan;

fail:
  g_clear_pointer (&chan->unix_path, g_free);
  if (chan->lock_fd >= 0 && chan->lock_path != NULL)
    (void) unlink (chan->lock_path);
  chan_discard (chan);
  return NULL;
}

static QubeVchan *
client_start (SocketPlugin *sp, const QubeVchanPeer *peer, uint32_t port, gboolean retry)
{
  QubeVchan *chan = chan_new (sp, peer, port, FALSE);

  if (chan_check_peer (chan, peer) != 0 || resolve_address (chan, peer, port, NULL) != 0)
    {
      chan_discard (chan);
      return NULL;
    }
  chan->retry = retry;
  chan->ctx = pump_context ();
  pump_run (chan->ctx, pump_connect_attempt, chan_ref (chan), chan_unref);
  return chan;
}

static int
socket_client_init_async_finish (QubeVchan *chan)
{
  int rc = 0;

  g_mutex_lock (&chan->lock);
  if (chan->phase == PHASE_WAITING)
    rc = QUBE_ABI_E_TIMEOUT;
  else if (!chan->ever_connected)
    {
      rc = QUBE_ABI_E_NOT_FOUND;
      chan_error (chan, QUBE_ABI_E_NOT_FOUND, "%s", chan->gone_reason);
    }
  g_mutex_unlock (&chan->lock);
  return rc;
}

static QubeVchan *
socket_client_init (void *plugin, const QubeVchanPeer *peer, uint32_t port)
{
  QubeVchan *chan = client_start (plugin, peer, port, FALSE);
  gint64 deadline = g_get_monotonic_time () + CONNECT_TIMEOUT_S * G_TIME_SPAN_SECOND;
  gboolean timed_out = FALSE;

  if (chan == NULL)
    return NULL;
  g_mutex_lock (&chan->lock);
  while (chan->phase == PHASE_WAITING && !timed_out)
    timed_out = !g_cond_wait_until (&chan->cond, &chan->lock, deadline);
  g_mutex_unlock (&chan->lock);

  if (timed_out)
    {
      chan_error (chan, QUBE_ABI_E_TIMEOUT, "no answer from %s in %d s", chan->where, CONNECT_TIMEOUT_S);
      socket_close (chan);
      return NULL;
    }
  if (socket_client_init_async_finish (chan) != 0)
    {
      socket_close (chan);
      return NULL;
    }
  return chan;
}

static QubeVchan *
socket_client_init_async (void *plugin, const QubeVchanPeer *peer, uint32_t port)
{
  return client_start (plugin, peer, port, TRUE);
}

/* Waits, with the lock held, until `want` bytes can be read (or the
 * channel cannot deliver them).  Returns the fill, or -1 with the error. */
static gssize
wait_readable_locked (QubeVchan *chan, gsize want, gboolean all)
{
  for (;;)
    {
      if (chan->rx.buf != NULL && (chan->phase == PHASE_CONNECTED || chan->ever_connected))
        {
          gsize fill = socket_ring_fill (&chan->rx);

          if (all && want > chan->rx.size)
            {
              chan_error (chan, QUBE_ABI_E_INVALID,
                          "cannot receive %zu bytes at once: the ring holds %zu",
                          want, chan->rx.size);
              return -1;
            }
          if (fill >= want)
            return (gssize) fill;
        }
      if (chan->phase == PHASE_GONE)
        {
          chan_error (chan, QUBE_ABI_E_IO, "%s", chan->gone_reason);
          return -1;
        }
      g_cond_wait (&chan->cond, &chan->lock);
    }
}

/* The peer closed its end (the pump will see the end of the stream). */
static gboolean
peer_closed_errno (int err)
{
  return err == EPIPE || err == ECONNRESET;
}

/* Drops `n` read bytes from the ring's head and gives their space back to
 * the writer. */
static void
chan_consumed (QubeVchan *chan, gsize n)
{
  gboolean gone;
  int err = 0;

  g_mutex_lock (&chan->lock);
  chan->rx.head += n;
  gone = chan->phase == PHASE_GONE;
  g_mutex_unlock (&chan->lock);

  /* Give the space back at once: a writer waiting to send() a whole
   * message must see all the space there is. */
  /* A peer that closed is noticed by the pump once it has read all the
   * peer sent: marking the channel gone here would hide bytes still in
   * the socket. */
  if (!gone && !send_frame (chan, FRAME_CREDIT, NULL, n, &err) && !peer_closed_errno (err))
    {
      g_autofree char *reason = g_strdup_printf ("connection lost: %s", g_strerror (err));

      chan_set_gone (chan, reason);
    }
}

static long
chan_read (QubeVchan *chan, void *buf, size_t len, gboolean all)
{
  gssize fill;
  gsize n;

  if (len == 0)
    return 0;
  g_mutex_lock (&chan->lock);
  fill = wait_readable_locked (chan, all ? len : 1, all);
  g_mutex_unlock (&chan->lock);
  if (fill < 0)
    return -1;

  n = all ? len : MIN (len, (gsize) fill);
  socket_ring_peek (&chan->rx, buf, n);
  chan_consumed (chan, n);
  return (long) n;
}

static long
chan_write (QubeVchan *chan, const void *buf, size_t len, gboolean all)
{
  gsize n;
  int err = 0;

  if (len == 0)
    return 0;
  g_mutex_lock (&chan->lock);
  for (;;)
    {
      if (chan->phase == PHASE_GONE)
        {
          chan_error (chan, QUBE_ABI_E_IO, "cannot write: %s", chan->gone_reason);
          g_mutex_unlock (&chan->lock);
          return -1;
        }
      if (chan->phase == PHASE_CONNECTED)
        {
          if (all && len > chan->peer_ring)
            {
              chan_error (chan, QUBE_ABI_E_INVALID,
                          "cannot send %zu bytes at once: the ring holds %zu",
                          len, chan->peer_ring);
              g_mutex_unlock (&chan->lock);
              return -1;
            }
          if (chan->credit >= (all ? len : 1))
            break;
        }
      g_cond_wait (&chan->cond, &chan->lock);
    }
  n = all ? len : MIN (len, chan->credit);
  chan->credit -= n;
  g_mutex_unlock (&chan->lock);

  if (!send_frame (chan, FRAME_DATA, buf, n, &err))
    {
      g_autofree char *reason = g_strdup_printf ("connection lost: %s", g_strerror (err));

      if (!peer_closed_errno (err))
        chan_set_gone (chan, reason);
      else
        {
          /* The peer closed: the pump is about to read its last bytes
           * and the end of the stream; wait for that, so that the writer
           * sees the channel as the peer left it. */
          gint64 deadline = g_get_monotonic_time () + G_TIME_SPAN_SECOND;

          g_mutex_lock (&chan->lock);
          while (chan->phase != PHASE_GONE && g_cond_wait_until (&chan->cond, &chan->lock, deadline))
            ;
          g_mutex_unlock (&chan->lock);
        }
      chan_error (chan, QUBE_ABI_E_IO, "cannot write: %s", reason);
      return -1;
    }
  return (long) n;
}

static long
socket_read (QubeVchan *chan, void *buf, size_t len)
{
  return chan_read (chan, buf, len, FALSE);
}

static long
socket_recv (QubeVchan *chan, void *buf, size_t len)
{
  return chan_read (chan, buf, len, TRUE);
}

static long
socket_write (QubeVchan *chan, const void *buf, size_t len)
{
  return chan_write (chan, buf, len, FALSE);
}

static long
socket_send (QubeVchan *chan, const void *buf, size_t len)
{
  return chan_write (chan, buf, len, TRUE);
}

static size_t
socket_data_ready (QubeVchan *chan)
{
  gsize fill;

  g_mutex_lock (&chan->lock);
  fill = chan->rx.buf != NULL ? socket_ring_fill (&chan->rx) : 0;
  g_mutex_unlock (&chan->lock);
  return fill;
}

static size_t
socket_buffer_space (QubeVchan *chan)
{
  gsize space;

  g_mutex_lock (&chan->lock);
  space = chan->phase == PHASE_CONNECTED ? chan->credit : 0;
  g_mutex_unlock (&chan->lock);
  return space;
}

static int
socket_peek (QubeVchan *chan, struct iovec iov[2], size_t len)
{
  int n;

  /* The bytes shown are the application's until it consumes them: the
   * pump only writes behind them. */
  g_mutex_lock (&chan->lock);
  n = chan->rx.buf != NULL ? socket_ring_spans (&chan->rx, iov, MIN (len, socket_ring_fill (&chan->rx))) : 0;
  g_mutex_unlock (&chan->lock);
  return n;
}

static int
socket_consume (QubeVchan *chan, size_t len)
{
  gsize fill;

  g_mutex_lock (&chan->lock);
  fill = chan->rx.buf != NULL ? socket_ring_fill (&chan->rx) : 0;
  g_mutex_unlock (&chan->lock);
  if (len > fill)
    {
      chan_error (chan, QUBE_ABI_E_INVALID, "cannot consume %zu bytes: %zu are there", len, fill);
      return -1;
    }
  if (len > 0)
    chan_consumed (chan, len);
  return 0;
}

static int
socket_is_open (QubeVchan *chan)
{
  int state;

  g_mutex_lock (&chan->lock);
  switch (chan->phase)
    {
    case PHASE_WAITING:
      state = QUBE_VCHAN_WAITING;
      break;
    case PHASE_CONNECTED:
      state = QUBE_VCHAN_CONNECTED;
      break;
    default:
      /* Data the peer sent before leaving can still be read. */
      state = chan->rx.buf != NULL && socket_ring_fill (&chan->rx) > 0
              ? QUBE_VCHAN_CONNECTED : QUBE_VCHAN_DISCONNECTED;
      break;
    }
  g_mutex_unlock (&chan->lock);
  return state;
}

static int
socket_fd (QubeVchan *chan)
{
  return chan->event_fd;
}

static int
socket_ack (QubeVchan *chan)
{
  guint64 count;
  int err = 0;

  /* Under the lock, so that an event signalled meanwhile is read here,
   * signalled again, or (its write landing after this read) seen once
   * more as an event with nothing new: never lost. */
  g_mutex_lock (&chan->lock);
  if (read (chan->event_fd, &count, sizeof count) < 0 && errno != EAGAIN)
    err = errno;
  chan->event_pending = FALSE;
  g_mutex_unlock (&chan->lock);
  if (err != 0)
    {
      chan_error (chan, QUBE_ABI_E_IO, "cannot read the event fd: %s", g_strerror (err));
      return -1;
    }
  return 0;
}

static int
socket_wait (QubeVchan *chan)
{
  struct pollfd pfd = { .fd = chan->event_fd, .events = POLLIN };
  gboolean gone;

  g_mutex_lock (&chan->lock);
  gone = chan->phase == PHASE_GONE;
  g_mutex_unlock (&chan->lock);
  /* Nothing more will happen on a channel whose peer is gone. */
  if (!gone)
    while (poll (&pfd, 1, -1) < 0)
      if (errno != EINTR)
        {
          chan_error (chan, QUBE_ABI_E_IO, "cannot wait: %s", g_strerror (errno));
          return -1;
        }
  return socket_ack (chan);
}

static int
socket_init (const QubeHost *host, void **plugin_data)
{
  SocketPlugin *sp = g_new0 (SocketPlugin, 1);
  const char *tcp = host->config_get != NULL ? host->config_get (host, "tcp") : NULL;

  sp->host = host;
  sp->tcp_enabled = g_strcmp0 (tcp, "enabled") == 0;
  if (tcp != NULL && !sp->tcp_enabled && g_strcmp0 (tcp, "disabled") != 0)
    host->log (host, QUBE_LOG_WARNING,
               "configuration tcp=%s is neither 'enabled' nor 'disabled': TCP stays off", tcp);
  *plugin_data = sp;
  return 0;
}

static const QubeVchanOps socket_vchan_ops = {
  .size = sizeof (QubeVchanOps),
  .server_init = socket_server_init,
  .client_init = socket_client_init,
  .client_init_async = socket_client_init_async,
  .client_init_async_finish = socket_client_init_async_finish,
  .read = socket_read,
  .write = socket_write,
  .recv = socket_recv,
  .send = socket_send,
  .data_ready = socket_data_ready,
  .buffer_space = socket_buffer_space,
  .is_open = socket_is_open,
  .fd = socket_fd,
  .ack = socket_ack,
  .wait = socket_wait,
  .close = socket_close,
  .peek = socket_peek,
  .consume = socket_consume,
};

QUBE_PLUGIN_DEFINE (.name = "socket",
                    .description = "vchan over unix sockets on one host, or TCP to remote qubes",
                    .version = PACKAGE_VERSION,
                    .license = "LGPL-2.1-or-later",
                    .source = PACKAGE_NAME,
                    .init = socket_init,
                    .vchan = &socket_vchan_ops);
