/* qube-qrexec-chan.c — a vchan channel in a GLib main loop (see
 * qube-qrexec-chan.h).  Writes go through the peer's ring only as far as
 * buffer_space() says, so the loop never blocks on a slow or hostile peer.
 */
#include "config.h"

#include <glib-unix.h>

#include "qube-error.h"
#include "qube-qrexec-chan.h"

#define G_LOG_DOMAIN_CHAN "qube-qrexec"

struct _QubeQrexecChan {
  QubePluginInfo *plugin;
  const QubeVchanOps *ops;
  QubeVchan *vchan;
  GSource *source;
  gboolean connecting;       /* async client, not connected yet */
  gboolean failed;
  gboolean write_failed;     /* the peer is gone: what it sent can still be read */
  char *reason;
  GByteArray *out;
  gsize out_start;
  QubeQrexecChanFunc func;
  gpointer user_data;
};

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
  if (chan->out_start == chan->out->len)
    {
      g_byte_array_set_size (chan->out, 0);
      chan->out_start = 0;
    }
  else if (chan->out_start > 1024 * 1024)
    {
      g_byte_array_remove_range (chan->out, 0, (guint) chan->out_start);
      chan->out_start = 0;
    }
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
  g_source_destroy (chan->source);
  g_source_unref (chan->source);
  chan->ops->close (chan->vchan);
  g_byte_array_unref (chan->out);
  g_free (chan->reason);
  g_free (chan);
}

gboolean
_qube_qrexec_chan_is_connected (QubeQrexecChan *chan)
{
  return !chan->connecting && !chan->failed &&
         chan->ops->is_open (chan->vchan) == QUBE_VCHAN_CONNECTED;
}

gboolean
_qube_qrexec_chan_is_closed (QubeQrexecChan *chan, const char **reason)
{
  gboolean closed = chan->failed ||
                    (!chan->connecting && chan->ops->is_open (chan->vchan) == QUBE_VCHAN_DISCONNECTED);

  if (reason != NULL)
    *reason = chan->reason != NULL ? chan->reason : "the peer closed the channel";
  return closed;
}

gsize
_qube_qrexec_chan_data_ready (QubeQrexecChan *chan)
{
  if (chan->connecting || chan->failed)
    return 0;
  return chan->ops->data_ready (chan->vchan);
}

gsize
_qube_qrexec_chan_read (QubeQrexecChan *chan, void *buf, gsize len)
{
  gsize ready = _qube_qrexec_chan_data_ready (chan);
  long n;

  if (ready == 0 || len == 0)
    return 0;
  n = chan->ops->read (chan->vchan, buf, MIN (ready, len));
  if (n <= 0)
    {
      chan_fail (chan, "cannot read from the channel");
      return 0;
    }
  return (gsize) n;
}

gboolean
_qube_qrexec_chan_send (QubeQrexecChan *chan, const void *data, gsize len)
{
  if (chan->failed || chan->write_failed)
    return FALSE;
  g_byte_array_append (chan->out, data, (guint) len);
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
  space = chan->ops->buffer_space (chan->vchan);
  return space > _qube_qrexec_chan_queued (chan) ? space - _qube_qrexec_chan_queued (chan) : 0;
}
