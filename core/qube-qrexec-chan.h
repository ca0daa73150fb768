/* qube-qrexec-chan.h — a vchan channel driven from a GLib main loop, as the
 * daemon side of qrexec uses it: the plugin's event fd watched by a
 * GSource (ack() before looking), non-blocking reads of what is there, and
 * an outgoing queue written as the peer's ring makes room, so that no peer
 * can stall the loop.  Internal to the core.
 */
#pragma once

#include <sys/uio.h>

#include <glib.h>

#include "qube-plugin-private.h"

G_BEGIN_DECLS

typedef struct _QubeQrexecChan QubeQrexecChan;

/* The receive ring a data channel's server asks for, where the command's
 * output usually flows: the most a sender may have under way.  2 MiB
 * streamed faster than 1 MiB over the socket transport (bench/qrexec,
 * twelve alternated runs: ratio median 0.65 against 0.60, the larger
 * ahead in ten) while 4 MiB gained nothing more; much larger rings fall
 * out of the CPU's cache (8 MiB cost a third more CPU per byte than
 * 1 MiB). */
#define QUBE_QREXEC_DATA_RING (2 * 1024 * 1024)

/* Called after every event (data, room, connection, peer gone); the
 * callback reads with _qube_qrexec_chan_read() and checks the state. */
typedef void (*QubeQrexecChanFunc) (QubeQrexecChan *chan, gpointer user_data);

/* Offers a channel (server) or starts connecting to one (async client)
 * with `peer` on `port`; events are dispatched in `context`. */
QubeQrexecChan *_qube_qrexec_chan_server (QubePluginInfo *plugin, const QubeVchanPeer *peer,
                                          guint32 port, gsize read_min, gsize write_min,
                                          GMainContext *context, GError **error);
QubeQrexecChan *_qube_qrexec_chan_client (QubePluginInfo *plugin, const QubeVchanPeer *peer,
                                          guint32 port, GMainContext *context, GError **error);
/* The same interface over a connected local stream socket, which stays
 * the caller's to close: a data channel the qrexec daemon relays. */
QubeQrexecChan *_qube_qrexec_chan_new_fd (int fd, GMainContext *context);
void _qube_qrexec_chan_set_callback (QubeQrexecChan *chan, QubeQrexecChanFunc func,
                                     gpointer user_data);
void _qube_qrexec_chan_free (QubeQrexecChan *chan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubeQrexecChan, _qube_qrexec_chan_free)

/* Connected (and the client's async connect finished)? */
gboolean _qube_qrexec_chan_is_connected (QubeQrexecChan *chan);
/* The peer is gone (or connecting failed), though what it sent may still
 * wait to be read; *reason says why when it is set. */
gboolean _qube_qrexec_chan_is_closed (QubeQrexecChan *chan, const char **reason);
/* Closed, and nothing is left to read. */
gboolean _qube_qrexec_chan_is_finished (QubeQrexecChan *chan, const char **reason);

/* Reads what is buffered, up to `len`, without blocking. */
gsize _qube_qrexec_chan_read (QubeQrexecChan *chan, void *buf, gsize len);
gsize _qube_qrexec_chan_data_ready (QubeQrexecChan *chan);
/* Shows up to `len` buffered bytes, without blocking, in one or two spans
 * (the ring may wrap); returns how many spans, 0 when nothing is there.
 * Where the transport offers it the bytes are shown in its ring, so
 * writing them out costs no copy; otherwise they are read into a buffer
 * of the channel's.  They stay valid until _qube_qrexec_chan_consume(),
 * which must come before the next peek, read or main loop iteration. */
int _qube_qrexec_chan_peek (QubeQrexecChan *chan, struct iovec iov[2], gsize len);
/* Takes what the last peek showed off the channel. */
void _qube_qrexec_chan_consume (QubeQrexecChan *chan);

/* Queues bytes to send; they go out as the peer's ring has room.  FALSE
 * when the channel failed (the bytes are dropped). */
gboolean _qube_qrexec_chan_send (QubeQrexecChan *chan, const void *data, gsize len);
/* Bytes queued and not yet accepted by the peer's ring. */
gsize _qube_qrexec_chan_queued (QubeQrexecChan *chan);
/* Room in the peer's ring beyond what is queued. */
gsize _qube_qrexec_chan_room (QubeQrexecChan *chan);

G_END_DECLS
