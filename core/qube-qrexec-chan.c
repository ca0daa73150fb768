/* qube-qrexec-chan.c — a vchan channel in a GLib main loop (see
 * qube-qrexec-chan.h).  Writes go through the peer's ring only as far as
 * buffer_space() says, so the loop never blocks on a slow or hostile peer.
 * The same interface over a local stream socket carries a data channel
 * the qrexec daemon relays (_qube_qrexec_chan_new_fd()).
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <glib-unix.h>

#include "qube-error.h"
#include "qube-qrexec-chan.h"

#define G_LOG_DOMAIN_CHAN "qube-qrexec"

struct _QubeQrexecChan {
  QubePluginInfo *plugin;
  const QubeVchanOps *ops;
  QubeVchan *vchan;
  GSource *source;
  gpointer fd_tag;           /* a local socket: `fd` in `source`, while watched */
  gboolean connecting;       /* async client, not connected yet */
  gboolean failed;
  gboolean write_failed;     /* the peer is gone: what it sent can still be read */
  char *reason;
  GByteArray *out;
  gsize out_start;
  QubeQrexecChanFunc func;
  gpointer user_data;
  /* A channel over a local socket (ops == NULL): what was received and
   * not read yet, and whether the peer ended its side. */
  int fd;
  GByteArray *in;
  gsize in_start;
  gboolean eof;
  GMainContext *context;
  /* What the last peek showed, and where a transport without peek()
   * was read into for it. */
  gsize peeked;
  guint8 *peek_buf;
  gsize peek_buf_size;
};

/* Buffered per direction on a local socket before its reader waits. */
#define FD_BUFFER_MAX (4 * 1024 * 1024)

/* Drops the consumed head of a buffer once it is all consumed or large. */
static void
buffer_consumed (GByteArray *buf, gsize *start)
{
  if (*start == buf->len)
    {
      g_byte_array_set_size (buf, 0);
      *start = 0;
    }
  else if (*start > 1024 * 1024)
    {
      g_byte_array_remove_range (buf, 0, (guint) *start);
      *start = 0;
    }
}

static void
chan_fail (QubeQrexecChan *chan, const char *reason)
{
  if (!chan->failed)
    {
      chan->failed = TRUE;
      chan->reason = g_strdup (reason);
    }
}

static void
chan_flush (QubeQrexecChan *chan)
{
  while (!chan->failed && !chan->write_failed && !chan->connecting &&
         chan->out->len > chan->out_start)
    {
      gsize space = chan->ops->buffer_space (chan->vchan);
      gsize want = chan->out->len - chan->out_start;
      long n;

      if (space == 0)
        break;
      n = chan->ops->write (chan->vchan, chan->out->data + chan->out_start, MIN (space, want));
      if (n <= 0)
        {
          /* Nothing more will go out; what the peer sent before leaving
           * is still read. */
          chan->write_failed = TRUE;
          chan->out_start = chan->out->len;
          break;
        }
      chan->out_start += (gsize) n;
    }
  buffer_consumed (chan->out, &chan->out_start);
}

static gboolean
chan_event_cb (int fd, GIOCondition condition, gpointer data)
{
  QubeQrexecChan *chan = data;

  if (chan->ops->ack (chan->vchan) < 0)
    chan_fail (chan, "cannot acknowledge the channel's events");
  if (chan->connecting && !chan->failed)
    {
      int rc = chan->ops->client_init_async_finish (chan->vchan);

      if (rc == QUBE_ABI_E_TIMEOUT)
        return G_SOURCE_CONTINUE;
      chan->connecting = FALSE;
      if (rc != 0)
        {
          g_autoptr(GError) error = NULL;

          _qube_plugin_take_error (chan->plugin, rc, "connecting", &error);
          chan_fail (chan, error->message);
        }
    }
  chan_flush (chan);
  if (chan->func != NULL)
    chan->func (chan, chan->user_data);
  /* The callback may have freed the channel: it returned through
   * _qube_qrexec_chan_free(), which destroyed this source. */
  return G_SOURCE_CONTINUE;
}

static QubeQrexecChan *
chan_wrap (QubePluginInfo *plugin, QubeVchan *vchan, gboolean connecting, GMainContext *context)
{
  QubeQrexecChan *chan = g_new0 (QubeQrexecChan, 1);

  chan->fd = -1;
  chan->plugin = plugin;
  chan->ops = _qube_plugin_info_get_desc (plugin)->vchan;
  chan->vchan = vchan;
  chan->connecting = connecting;
  chan->out = g_byte_array_new ();
  chan->source = g_unix_fd_source_new (chan->ops->fd (vchan), G_IO_IN);
  g_source_set_callback (chan->source, (GSourceFunc) (void (*) (void)) chan_event_cb, chan, NULL);
  g_source_attach (chan->source, context);
  return chan;
}

QubeQrexecChan *
_qube_qrexec_chan_server (QubePluginInfo *plugin, const QubeVchanPeer *peer, guint32 port,
                          gsize read_min, gsize write_min, GMainContext *context, GError **error)
{
  const QubeVchanOps *ops = _qube_plugin_info_get_desc (plugin)->vchan;
  QubeVchan *vchan = ops->server_init (_qube_plugin_info_get_data (plugin), peer, port,
                                       read_min, write_min);

  if (vchan == NULL)
    {
      g_autofree char *what = g_strdup_printf ("cannot offer vchan port %u to '%s'", port, peer->name);

      _qube_plugin_take_error (plugin, -1, what, error);
      return NULL;
    }
  return chan_wrap (plugin, vchan, FALSE, context);
}

QubeQrexecChan *
_qube_qrexec_chan_client (QubePluginInfo *plugin, const QubeVchanPeer *peer, guint32 port,
                          GMainContext *context, GError **error)
{
  const QubeVchanOps *ops = _qube_plugin_info_get_desc (plugin)->vchan;
  void *data = _qube_plugin_info_get_data (plugin);
  g_autofree char *what = g_strdup_printf ("cannot connect to vchan port %u of '%s'", port, peer->name);
  QubeVchan *vchan;

  if (ops->client_init_async == NULL || ops->client_init_async_finish == NULL)
    {
      vchan = ops->client_init (data, peer, port);
      if (vchan == NULL)
        {
          _qube_plugin_take_error (plugin, -1, what, error);
          return NULL;
        }
      return chan_wrap (plugin, vchan, FALSE, context);
    }
  vchan = ops->client_init_async (data, peer, port);
  if (vchan == NULL)
    {
      _qube_plugin_take_error (plugin, -1, what, error);
      return NULL;
    }
  return chan_wrap (plugin, vchan, TRUE, context);
}

/* ---- over a local socket ------------------------------------------------ */

/* A local socket's one source for its whole life: what it waits for
 * changes with the channel's state (g_source_modify_unix_fd()), so an
 * event costs no new source. */
static gboolean
fd_source_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  return callback (user_data);
}

static GSourceFuncs fd_source_funcs = {
  .dispatch = fd_source_dispatch,
};

/* Watches what the socket can do now: reading while there is room to
 * keep it, writing while something waits to go out. */
static void
fd_watch (QubeQrexecChan *chan)
{
  GIOCondition want = 0;

  if (!chan->eof && !chan->failed && chan->in->len - chan->in_start < FD_BUFFER_MAX)
    want |= G_IO_IN;
  if (!chan->failed && !chan->write_failed && chan->out->len > chan->out_start)
    want |= G_IO_OUT;
  /* Waiting for nothing, the fd leaves the poll set: poll() would still
   * report a hang-up. */
  if (want == 0 && chan->fd_tag != NULL)
    {
      g_source_remove_unix_fd (chan->source, chan->fd_tag);
      chan->fd_tag = NULL;
    }
  else if (want != 0 && chan->fd_tag == NULL)
    chan->fd_tag = g_source_add_unix_fd (chan->source, chan->fd, want);
  else if (want != 0)
    g_source_modify_unix_fd (chan->source, chan->fd_tag, want);
}

static void
fd_flush (QubeQrexecChan *chan)
{
  while (!chan->failed && !chan->write_failed && chan->out->len > chan->out_start)
    {
      gssize n = send (chan->fd, chan->out->data + chan->out_start,
                       chan->out->len - chan->out_start, MSG_DONTWAIT | MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n <= 0)
        {
          chan->write_failed = TRUE;
          chan->out_start = chan->out->len;
          break;
        }
      chan->out_start += (gsize) n;
    }
  buffer_consumed (chan->out, &chan->out_start);
}

static void
fd_fill (QubeQrexecChan *chan)
{
  guint8 buf[65536];

  while (!chan->eof && !chan->failed && chan->in->len - chan->in_start < FD_BUFFER_MAX)
    {
      gssize n = recv (chan->fd, buf, sizeof buf, MSG_DONTWAIT);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n < 0)
        {
          chan_fail (chan, g_strerror (errno));
          break;
        }
      if (n == 0)
        {
          chan->eof = TRUE;
          break;
        }
      g_byte_array_append (chan->in, buf, (guint) n);
    }
}

static gboolean
fd_event_cb (gpointer data)
{
  QubeQrexecChan *chan = data;

  fd_fill (chan);
  fd_flush (chan);
  fd_watch (chan);
  if (chan->func != NULL)
    chan->func (chan, chan->user_data);
  /* The callback may have freed the channel: it returned through
   * _qube_qrexec_chan_free(), which destroyed this source. */
  return G_SOURCE_CONTINUE;
}

/* A channel over the connected stream socket `fd` (not taken: the caller
 * closes it after freeing the channel). */
QubeQrexecChan *
_qube_qrexec_chan_new_fd (int fd, GMainContext *context)
{
  QubeQrexecChan *chan = g_new0 (QubeQrexecChan, 1);

  chan->fd = fd;
  chan->in = g_byte_array_new ();
  chan->out = g_byte_array_new ();
  chan->context = context != NULL ? g_main_context_ref (context) : NULL;
  chan->source = g_source_new (&fd_source_funcs, sizeof (GSource));
  g_source_set_callback (chan->source, fd_event_cb, chan, NULL);
  g_source_attach (chan->source, chan->context);
  fd_watch (chan);
  return chan;
}

void
_qube_qrexec_chan_set_callback (QubeQrexecChan *chan, QubeQrexecChanFunc func, gpointer user_data)
{
  chan->func = func;
  chan->user_data = user_data;
}

void
_qube_qrexec_chan_free (QubeQrexecChan *chan)
{
  if (chan == NULL)
    return;
  if (chan->source != NULL)
    {
      g_source_destroy (chan->source);
      g_source_unref (chan->source);
    }
  if (chan->ops != NULL)
    chan->ops->close (chan->vchan);
  else
    {
      g_byte_array_unref (chan->in);
      if (chan->context != NULL)
        g_main_context_unref (chan->context);
    }
  g_byte_array_unref (chan->out);
  g_free (chan->peek_buf);
  g_free (chan->reason);
  g_free (chan);
}

gboolean
_qube_qrexec_chan_is_connected (QubeQrexecChan *chan)
{
  if (chan->ops == NULL)
    return !chan->failed && !chan->eof && !chan->write_failed;
  return !chan->connecting && !chan->failed &&
         chan->ops->is_open (chan->vchan) == QUBE_VCHAN_CONNECTED;
}

gboolean
_qube_qrexec_chan_is_closed (QubeQrexecChan *chan, const char **reason)
{
  gboolean closed = chan->ops == NULL
                    ? chan->failed || (chan->eof && chan->in->len == chan->in_start)
                    : chan->failed ||
                      (!chan->connecting && chan->ops->is_open (chan->vchan) == QUBE_VCHAN_DISCONNECTED);

  if (reason != NULL)
    *reason = chan->reason != NULL ? chan->reason : "the peer closed the channel";
  return closed;
}

/* Closed, and everything the peer sent is read: a transport may report
 * the peer gone while its data is still in the ring (libvchan does). */
gboolean
_qube_qrexec_chan_is_finished (QubeQrexecChan *chan, const char **reason)
{
  return _qube_qrexec_chan_is_closed (chan, reason) &&
         (chan->failed || chan->ops == NULL || chan->ops->data_ready (chan->vchan) == 0);
}

gsize
_qube_qrexec_chan_data_ready (QubeQrexecChan *chan)
{
  if (chan->ops == NULL)
    return chan->in->len - chan->in_start;
  if (chan->connecting || chan->failed)
    return 0;
  return chan->ops->data_ready (chan->vchan);
}

/* A local socket's reader took `len` received bytes: a full buffer, which
 * stopped watching the socket, has room again. */
static void
fd_consumed (QubeQrexecChan *chan, gsize len)
{
  gboolean was_full = chan->in->len - chan->in_start >= FD_BUFFER_MAX;

  chan->in_start += len;
  buffer_consumed (chan->in, &chan->in_start);
  if (was_full)
    fd_watch (chan);
}

gsize
_qube_qrexec_chan_read (QubeQrexecChan *chan, void *buf, gsize len)
{
  gsize ready = _qube_qrexec_chan_data_ready (chan);
  long n;

  g_assert (chan->peeked == 0);
  if (ready == 0 || len == 0)
    return 0;
  if (chan->ops == NULL)
    {
      gsize take = MIN (ready, len);

      memcpy (buf, chan->in->data + chan->in_start, take);
      fd_consumed (chan, take);
      return take;
    }
  n = chan->ops->read (chan->vchan, buf, MIN (ready, len));
  if (n <= 0)
    {
      chan_fail (chan, "cannot read from the channel");
      return 0;
    }
  return (gsize) n;
}

static gboolean
chan_has_peek (QubeQrexecChan *chan)
{
  return QUBE_ABI_HAS (QubeVchanOps, chan->ops, consume) &&
         chan->ops->peek != NULL && chan->ops->consume != NULL;
}

int
_qube_qrexec_chan_peek (QubeQrexecChan *chan, struct iovec iov[2], gsize len)
{
  gsize ready = _qube_qrexec_chan_data_ready (chan);
  gsize shown = 0;
  int n;

  g_assert (chan->peeked == 0);
  len = MIN (ready, len);
  if (len == 0)
    return 0;
  if (chan->ops == NULL)
    {
      iov[0] = (struct iovec) { chan->in->data + chan->in_start, len };
      chan->peeked = len;
      return 1;
    }
  if (!chan_has_peek (chan))
    {
      if (chan->peek_buf_size < len)
        {
          g_free (chan->peek_buf);
          chan->peek_buf = g_malloc (len);
          chan->peek_buf_size = len;
        }
      len = _qube_qrexec_chan_read (chan, chan->peek_buf, len);
      if (len == 0)
        return 0;
      iov[0] = (struct iovec) { chan->peek_buf, len };
      chan->peeked = len;
      return 1;
    }
  n = chan->ops->peek (chan->vchan, iov, len);
  if (n < 0 || n > 2)
    {
      chan_fail (chan, "cannot read from the channel");
      return 0;
    }
  for (int i = 0; i < n; i++)
    shown += iov[i].iov_len;
  if (shown > len)
    {
      chan_fail (chan, "the transport showed more than was asked for");
      return 0;
    }
  chan->peeked = shown;
  return n;
}

void
_qube_qrexec_chan_consume (QubeQrexecChan *chan)
{
  gsize len = chan->peeked;

  chan->peeked = 0;
  if (len == 0)
    return;
  if (chan->ops == NULL)
    fd_consumed (chan, len);
  else if (chan_has_peek (chan) && chan->ops->consume (chan->vchan, len) < 0)
    chan_fail (chan, "cannot read from the channel");
}

gboolean
_qube_qrexec_chan_send (QubeQrexecChan *chan, const void *data, gsize len)
{
  if (chan->failed || chan->write_failed)
    return FALSE;
  g_byte_array_append (chan->out, data, (guint) len);
  if (chan->ops == NULL)
    {
      fd_flush (chan);
      fd_watch (chan);
      return !chan->failed && !chan->write_failed;
    }
  chan_flush (chan);
  return !chan->failed && !chan->write_failed;
}

gsize
_qube_qrexec_chan_queued (QubeQrexecChan *chan)
{
  return chan->out->len - chan->out_start;
}

gsize
_qube_qrexec_chan_room (QubeQrexecChan *chan)
{
  gsize space;

  if (chan->connecting || chan->failed || chan->write_failed)
    return 0;
  space = chan->ops != NULL ? chan->ops->buffer_space (chan->vchan) : FD_BUFFER_MAX;
  return space > _qube_qrexec_chan_queued (chan) ? space - _qube_qrexec_chan_queued (chan) : 0;
}
