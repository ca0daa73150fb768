/* qube-qrexec-daemon.c — the dom0 side of qrexec (see qube-qrexec-daemon.h).
 *
 * Per qube: the control connection (vchan port 512, the daemon is the
 * client as in Qubes) with the MSG_HELLO exchange, and a unix socket in
 * the qube's runtime directory where dom0 programs ask for a command to be
 * run (the request is forwarded as MSG_EXEC_CMDLINE with a data port the
 * daemon allocates; the program then offers that port itself).  A
 * MSG_TRIGGER_SERVICE3 from a qube is decided by the policy; an allowed
 * call gets a data port in the caller (MSG_SERVICE_CONNECT) and one in the
 * target (MSG_EXEC_CMDLINE "QUBESRPC ..."), and the daemon joins the two,
 * re-checking every message it passes on.
 *
 * Everything a qube sends is hostile: it goes through the validating
 * parser, and a qube that breaks the protocol, names a port it was never
 * offered or floods the daemon loses its control connection with a
 * warning that names it and the cause; the other qubes go on.
 */
#include "config.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>
#include <glib/gstdio.h>

#include "qrexec-protocol.h"
#include "qube-admin.h"
#include "qube-error.h"
#include "qube-plugin-private.h"
#include "qube-policy.h"
#include "qube-qrexec-chan.h"
#include "qube-qrexec-daemon-private.h"
#include "qube-dispvm.h"
#include "qube-dispvm-private.h"
#include "qube-vm-private.h"

/* Calls a qube may have in progress at once, and how many requests it may
 * make in a burst and per second after it. */
#define MAX_CALLS_PER_QUBE 64
#define REQUEST_BURST 200
#define REQUESTS_PER_SECOND 100
/* A local client's request: header, exec_params and "user:command". */
#define MAX_CLIENT_REQUEST (sizeof (struct msg_header) + sizeof (struct exec_params) + MAX_QREXEC_CMD_LEN)
/* How much the relay buffers toward one side before it stops reading the
 * other. */
#define RELAY_QUEUE_MAX (1024 * 1024)
#define FIRST_DATA_PORT 513
#define LAST_DATA_PORT 65535
/* What may wait to be sent to a qube on its control channel (beyond its
 * ring) before it counts as not reading it. */
#define CONTROL_QUEUE_MAX (1024 * 1024)
/* Both sides of a call must have connected their data channels by then. */
#define CALL_CONNECT_TIMEOUT_S 30

typedef struct _QrexecQube QrexecQube;
typedef struct _QrexecCall QrexecCall;

struct _QubeQrexecDaemon {
  GObject parent_instance;
  QubeManager *manager;
  GMainContext *context;
  char *policy_dir;
  char *ask_agent;
  GHashTable *qubes;              /* name -> QrexecQube */
  guint call_connect_timeout_s;   /* CALL_CONNECT_TIMEOUT_S but in tests */
  guint32 last_data_port;         /* LAST_DATA_PORT but in tests */
  gsize control_queue_max;        /* CONTROL_QUEUE_MAX but in tests */
  guint64 last_serial;            /* of the QrexecQube served last */
};

G_DEFINE_FINAL_TYPE (QubeQrexecDaemon, qube_qrexec_daemon, G_TYPE_OBJECT)

enum {
  SIGNAL_CONNECTED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

struct _QrexecQube {
  QubeQrexecDaemon *daemon;
  char *name;
  /* Which time the daemon serves this qube: what began with an earlier
   * connection of the same name (a call, a prompt, a disposable's start)
   * ends without touching this one's ports, calls or agent. */
  guint64 serial;
  char *runtime_dir;
  char *transport;
  QubePluginInfo *plugin;
  QubeQrexecChan *ctrl;
  QubeQrexecParser *parser;
  gboolean hello_done;
  gint64 connected_at;            /* when this connection was asked for */
  guint reconnect_ms;             /* the wait before serving an agent that ended it */
  gboolean relay;                 /* dom0 programs' data channels go through us */
  int listen_fd;
  char *socket_path;
  GSource *listen_source;
  GHashTable *ports;              /* reserved data ports -> PORT_* flags */
  guint32 next_port;              /* where the search for a free port starts */
  guint32 highest_port;           /* the highest port ever reserved */
  GList *clients;                 /* QrexecClient */
  guint active_calls;
  double tokens;
  gint64 tokens_time;
};

/* A dom0 program's request on the qube's socket; the port stays reserved
 * while it is connected. */
typedef struct {
  QrexecQube *qube;
  int fd;
  GSource *source;
  GByteArray *buf;
  guint32 port;
  /* A relayed call: the data channel to the qube, the program's socket. */
  QubeQrexecChan *data_chan;
  QubeQrexecChan *local;
  guint64 to_program, to_qube;    /* bytes relayed each way */
} QrexecClient;

/* A qube-to-qube call joined by the daemon. */
struct _QrexecCall {
  QubeQrexecDaemon *daemon;
  char *source_name, *target_name;
  guint64 source_serial, target_serial;
  guint32 source_port, target_port;
  QubeQrexecChan *source_chan;      /* the caller: we are its vchan client */
  QubeQrexecChan *target_chan;      /* the service: we offer it the channel */
  QubeQrexecParser *source_parser;  /* messages of the calling side */
  QubeQrexecParser *target_parser;  /* messages of the process side */
  gboolean exit_passed;
  gboolean service_over;            /* it ended (or broke off) without an exit code */
  gboolean source_seen, target_seen; /* each side's channel was connected */
  char *what;
  GSource *connect_timeout;
  gboolean dispose_target;          /* the target is a disposable made for it */
};

static void qube_close (QrexecQube *q, const char *reason);

/* ---- helpers ------------------------------------------------------------- */

/**
 * qube_qrexec_qube_runtime_dir:
 * @manager: a #QubeManager
 * @name: a qube's name
 *
 * The runtime directory of a qube: where its vchan transport and the
 * qrexec daemon keep their sockets while it runs.
 *
 * Returns: (transfer full) (type filename): `RUNTIME_DIR/qubes/NAME`
 */
char *
qube_qrexec_qube_runtime_dir (QubeManager *manager, const char *name)
{
  g_return_val_if_fail (QUBE_IS_MANAGER (manager), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  return g_build_filename (qube_manager_get_runtime_dir (manager), "qubes", name, NULL);
}

/* The qube `name` as served when `serial` was its serial, or NULL once it
 * is not served or served anew. */
static QrexecQube *
lookup_serial (QubeQrexecDaemon *self, const char *name, guint64 serial)
{
  QrexecQube *q = g_hash_table_lookup (self->qubes, name);

  return q != NULL && q->serial == serial ? q : NULL;
}

static QrexecQube *
lookup_connected (QubeQrexecDaemon *self, const char *name)
{
  QrexecQube *q = g_hash_table_lookup (self->qubes, name);

  return q != NULL && q->ctrl != NULL && q->hello_done ? q : NULL;
}

/* A call qube `name` made is over, whichever of its connections made it:
 * its count of calls in progress, which a reconnect carries over (else a
 * guest could reset its limit by ending its connection), goes down. */
static void
call_count_down (QubeQrexecDaemon *self, const char *name)
{
  QrexecQube *q = g_hash_table_lookup (self->qubes, name);

  if (q != NULL && q->active_calls > 0)
    q->active_calls--;
}

/* A data port stays reserved, as in Qubes, until both sides are done
 * with it: this daemon (the call, relay or dom0 program that used it has
 * ended) and, once the agent was told of it, the agent too (its
 * MSG_CONNECTION_TERMINATED): a port used again while the agent still
 * serves the old connection on it would mix two calls. */
#define PORT_RESERVED 1u     /* always set: a table value is never 0 */
#define PORT_SENT 2u         /* the agent was told of the port */
#define PORT_OURS_DONE 4u
#define PORT_AGENT_DONE 8u

/* The next free port after the last one given, round the range: a port
 * just freed is not offered again at once (a process that used it may
 * still be letting go of its end); 0 when none is free. */
static guint32
qube_allocate_port (QrexecQube *q)
{
  guint32 last = q->daemon->last_data_port;

  for (guint32 i = FIRST_DATA_PORT; i <= last; i++)
    {
      guint32 port = q->next_port < FIRST_DATA_PORT || q->next_port > last ? FIRST_DATA_PORT
                                                                           : q->next_port;

      q->next_port = port + 1;
      if (!g_hash_table_contains (q->ports, GUINT_TO_POINTER (port)))
        {
          g_hash_table_insert (q->ports, GUINT_TO_POINTER (port), GUINT_TO_POINTER (PORT_RESERVED));
          q->highest_port = MAX (q->highest_port, port);
          return port;
        }
    }
  return 0;
}

/* Adds `flags` to a reserved port's; frees it once nothing holds it. */
static void
port_mark (QrexecQube *q, guint32 port, guint flags)
{
  guint now = GPOINTER_TO_UINT (g_hash_table_lookup (q->ports, GUINT_TO_POINTER (port)));

  if (now == 0)
    return;
  now |= flags;
  if ((now & PORT_OURS_DONE) && (!(now & PORT_SENT) || (now & PORT_AGENT_DONE)))
    g_hash_table_remove (q->ports, GUINT_TO_POINTER (port));
  else
    g_hash_table_insert (q->ports, GUINT_TO_POINTER (port), GUINT_TO_POINTER (now));
}

/* This daemon is done with a port of qube `name` as served at `serial`. */
static void
qube_release_port (QubeQrexecDaemon *self, const char *name, guint64 serial, guint32 port)
{
  QrexecQube *q = lookup_serial (self, name, serial);

  if (q != NULL && port != 0)
    port_mark (q, port, PORT_OURS_DONE);
}

/* The agent's control connection ended: no MSG_CONNECTION_TERMINATED
 * comes for what the agent was told before. */
static void
ports_forget_agent (QrexecQube *q)
{
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, q->ports);
  while (g_hash_table_iter_next (&iter, &key, &value))
    if (GPOINTER_TO_UINT (value) & PORT_OURS_DONE)
      g_hash_table_iter_remove (&iter);
    else
      g_hash_table_iter_replace (&iter, GUINT_TO_POINTER (GPOINTER_TO_UINT (value) | PORT_AGENT_DONE));
}

static QubeVchanPeer
qube_peer (QrexecQube *q)
{
  return (QubeVchanPeer) { .size = sizeof (QubeVchanPeer), .name = q->name, .domid = -1,
                           .runtime_dir = q->runtime_dir, .address = NULL };
}

static void
ctrl_send (QrexecQube *q, GByteArray *msg)
{
  if (q->ctrl != NULL)
    _qube_qrexec_chan_send (q->ctrl, msg->data, msg->len);
}

/* Sends a message that tells the agent of data port `port`. */
static void
ctrl_send_port (QrexecQube *q, GByteArray *msg, guint32 port)
{
  if (q->ctrl != NULL)
    port_mark (q, port, PORT_SENT);
  ctrl_send (q, msg);
}

/* ---- qube-to-qube calls ------------------------------------------------- */

/* A disposable whose call ended: destroyed by a worker, off this loop. */
static void
dispose (QubeQrexecDaemon *self, const char *name)
{
  g_autoptr(GError) error = NULL;

  if (!qube_dispvm_destroy_detached (self->manager, name, &error))
    g_warning ("disposable '%s': %s", name, error->message);
}

static void
call_free (QrexecCall *call)
{
  QubeQrexecDaemon *self = call->daemon;

  call_count_down (self, call->source_name);
  qube_release_port (self, call->source_name, call->source_serial, call->source_port);
  qube_release_port (self, call->target_name, call->target_serial, call->target_port);
  if (call->connect_timeout != NULL)
    {
      g_source_destroy (call->connect_timeout);
      g_source_unref (call->connect_timeout);
    }
  g_clear_pointer (&call->source_chan, _qube_qrexec_chan_free);
  g_clear_pointer (&call->target_chan, _qube_qrexec_chan_free);
  _qube_qrexec_parser_free (call->source_parser);
  _qube_qrexec_parser_free (call->target_parser);
  if (call->dispose_target)
    dispose (self, call->target_name);
  g_free (call->source_name);
  g_free (call->target_name);
  g_free (call->what);
  g_free (call);
}

/* Moves validated messages from one side to the other while the other's
 * queue has room.  FALSE when the call must end (logged). */
static gboolean
call_relay (QrexecCall *call, QubeQrexecChan *from, QubeQrexecParser *parser, QubeQrexecChan *to,
            QubeQrexecParser *to_parser)
{
  while (_qube_qrexec_chan_queued (to) < RELAY_QUEUE_MAX)
    {
      g_autoptr(GByteArray) out = g_byte_array_new ();
      g_autoptr(QubeQrexecMessage) msg = NULL;
      g_autoptr(GError) error = NULL;
      struct iovec iov[2];
      int n;

      if (!_qube_qrexec_parser_next (parser, &msg, &error))
        {
          g_warning ("%s: %s; ending the call", call->what, error->message);
          return FALSE;
        }
      if (msg == NULL)
        {
          /* The parser copies what it is fed: it is fed from where the
           * channel holds the bytes. */
          n = _qube_qrexec_chan_peek (from, iov, 65536);
          if (n == 0)
            break;
          /* It sent something: it was connected, even if it is gone by
           * the time anyone looks (a fast service on a transport that
           * takes writes before the peer comes). */
          if (from == call->source_chan)
            call->source_seen = TRUE;
          else
            call->target_seen = TRUE;
          for (int i = 0; i < n; i++)
            _qube_qrexec_parser_feed (parser, iov[i].iov_base, iov[i].iov_len);
          _qube_qrexec_chan_consume (from);
          continue;
        }
      switch (msg->type)
        {
        case MSG_HELLO:
          continue;
        case MSG_DATA_STDIN:
        case MSG_DATA_STDOUT:
        case MSG_DATA_STDERR:
          /* Each side has its own protocol version with the daemon: a
           * version 3 side's messages are cut for a version 2 side (and
           * for a side whose hello has not come yet). */
          _qube_qrexec_append_data_chunked (out, msg->type, g_bytes_get_data (msg->data, NULL),
                                            g_bytes_get_size (msg->data),
                                            _qube_qrexec_parser_max_chunk (to_parser));
          break;
        case MSG_DATA_EXIT_CODE:
          /* Only the service's exit code ends the call. */
          if (from != call->target_chan)
            continue;
          _qube_qrexec_append_exit_code (out, msg->exit_code);
          call->exit_passed = TRUE;
          break;
        default:
          continue;
        }
      _qube_qrexec_chan_send (to, out->data, out->len);
    }
  return TRUE;
}

/* Notes which sides have connected so far. */
static void
call_note_connected (QrexecCall *call)
{
  call->source_seen = call->source_seen || _qube_qrexec_chan_is_connected (call->source_chan);
  call->target_seen = call->target_seen || _qube_qrexec_chan_is_connected (call->target_chan);
}

/* The service's side is done (its exit code is passed on, or it ended
 * without one): what waits for the caller goes to it, and its channel is
 * closed once it is connected and has taken it all, so that its
 * qrexec-client-vm learns of the end (a caller that never connects is
 * ended by the connect timeout). */
static void
call_wind_up (QrexecCall *call)
{
  const char *reason = NULL;
  gboolean closed = _qube_qrexec_chan_is_closed (call->source_chan, &reason);

  if (_qube_qrexec_chan_queued (call->source_chan) == 0 &&
      (closed || _qube_qrexec_chan_is_connected (call->source_chan)))
    {
      g_debug ("%s: finished", call->what);
      call_free (call);
    }
  else if (closed)
    {
      g_message ("%s: the caller's data channel closed before it got %s: %s", call->what,
                 call->exit_passed ? "the exit code" : "all of the service's output", reason);
      call_free (call);
    }
}

static void
call_event (QubeQrexecChan *chan, gpointer user_data)
{
  QrexecCall *call = user_data;
  const char *reason = NULL;

  call_note_connected (call);

  if (!call->service_over)
    {
      /* The caller breaking the protocol ends the call; the service
       * doing so ends its side (what it sent before still goes on). */
      if (!call_relay (call, call->source_chan, call->source_parser, call->target_chan,
                       call->target_parser))
        {
          call_free (call);
          return;
        }
      if (!call_relay (call, call->target_chan, call->target_parser, call->source_chan,
                       call->source_parser))
        call->service_over = TRUE;
    }
  if (call->exit_passed || call->service_over)
    {
      /* The service may be gone already (it finished before the caller
       * connected): what matters is that the caller gets everything. */
      call_wind_up (call);
      return;
    }
  if (_qube_qrexec_chan_is_closed (call->source_chan, &reason))
    {
      g_message ("%s: ended before the service's exit code: the caller's data channel: %s",
                 call->what, reason);
      call_free (call);
      return;
    }
  /* The service's side is over once all it sent is read and passed on:
   * when its parser waits for more, not while it holds messages that wait
   * for room toward the caller. */
  if (_qube_qrexec_chan_is_finished (call->target_chan, &reason) &&
      _qube_qrexec_parser_wanted (call->target_parser) > 0)
    {
      g_message ("%s: ended before the service's exit code: the service's data channel: %s",
                 call->what, reason);
      call->service_over = TRUE;
      call_wind_up (call);
    }
}

static gboolean
call_connect_timeout_cb (gpointer data)
{
  QrexecCall *call = data;

  /* Both sides came: what happens next is the call's (a service may have
   * finished long before a slow caller reads it all). */
  call_note_connected (call);
  if (call->source_seen && call->target_seen)
    {
      g_clear_pointer (&call->connect_timeout, g_source_unref);
      return G_SOURCE_REMOVE;
    }
  g_message ("%s: a side did not connect its data channel in %u s; ending the call",
             call->what, call->daemon->call_connect_timeout_s);
  /* call_free() destroys this source: keep it from being destroyed twice. */
  g_clear_pointer (&call->connect_timeout, g_source_unref);
  call_free (call);
  return G_SOURCE_REMOVE;
}

/* Starts an allowed call from `source` to `target`. */
static gboolean
call_start (QrexecQube *source, QrexecQube *target, const char *ident, const char *service_name,
            const char *user, gboolean dispose_target, GError **error)
{
  QubeQrexecDaemon *self = source->daemon;
  QrexecCall *call = g_new0 (QrexecCall, 1);
  QubeVchanPeer speer = qube_peer (source), tpeer = qube_peer (target);
  g_autoptr(GByteArray) msg = g_byte_array_new ();
  g_autofree char *cmdline = NULL;

  call->daemon = self;
  call->dispose_target = dispose_target;
  call->source_name = g_strdup (source->name);
  call->target_name = g_strdup (target->name);
  call->source_serial = source->serial;
  call->target_serial = target->serial;
  call->what = g_strdup_printf ("call %s from '%s' to '%s'", service_name, source->name, target->name);
  source->active_calls++;
  call->source_port = qube_allocate_port (source);
  call->target_port = qube_allocate_port (target);
  if (call->source_port == 0 || call->target_port == 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED, "no free data port");
      call_free (call);
      return FALSE;
    }
  call->source_parser = _qube_qrexec_parser_new (QUBE_QREXEC_FROM_CALLER, source->name);
  call->target_parser = _qube_qrexec_parser_new (QUBE_QREXEC_FROM_PROCESS, target->name);

  call->target_chan = _qube_qrexec_chan_server (target->plugin, &tpeer, call->target_port,
                                                4 * 1024 * 1024, 1024 * 1024, self->context, error);
  if (call->target_chan == NULL)
    {
      call_free (call);
      return FALSE;
    }
  /* As Qubes' dom0 tells a qube: "service+argument source", the '+' even
   * for no argument, and not the target the caller asked for (only a
   * service in dom0 learns that). */
  cmdline = g_strdup_printf ("%s:QUBESRPC %s%s %s", user != NULL ? user : "DEFAULT", service_name,
                             strchr (service_name, '+') == NULL ? "+" : "", source->name);
  if (!_qube_qrexec_append_exec (msg, MSG_EXEC_CMDLINE, 0, call->target_port, cmdline, error))
    {
      call_free (call);
      return FALSE;
    }
  ctrl_send_port (target, msg, call->target_port);

  g_byte_array_set_size (msg, 0);
  /* The caller's channel waits for its offer before the caller hears of
   * the port: an offer made before the channel existed would wake no
   * one. */
  call->source_chan = _qube_qrexec_chan_client (source->plugin, &speer, call->source_port,
                                                self->context, error);
  if (call->source_chan == NULL
      || !_qube_qrexec_append_exec (msg, MSG_SERVICE_CONNECT, 0, call->source_port, ident, error))
    {
      call_free (call);
      return FALSE;
    }
  ctrl_send_port (source, msg, call->source_port);
  g_byte_array_set_size (msg, 0);
  _qube_qrexec_append_hello (msg, QREXEC_PROTOCOL_VERSION);
  _qube_qrexec_chan_send (call->source_chan, msg->data, msg->len);
  _qube_qrexec_chan_send (call->target_chan, msg->data, msg->len);
  _qube_qrexec_chan_set_callback (call->source_chan, call_event, call);
  _qube_qrexec_chan_set_callback (call->target_chan, call_event, call);
  call->connect_timeout = g_timeout_source_new_seconds (self->call_connect_timeout_s);
  g_source_set_callback (call->connect_timeout, call_connect_timeout_cb, call, NULL);
  g_source_attach (call->connect_timeout, self->context);
  g_debug ("%s: data ports %u (caller) and %u (service)", call->what, call->source_port,
           call->target_port);
  return TRUE;
}

/* ---- admin.* calls to the admin qube -------------------------------------
 *
 * An allowed `admin.*` call whose target is the admin qube goes to qubed,
 * on its qrexec socket (RUNTIME_DIR/qubed-qrexec.sock): the daemon takes
 * the caller's data channel, reads its stdin (the payload) to EOF, sends
 * qubed `service source dest_type dest\0payload` with the caller's name
 * as source and the target it asked for as dest, and writes qubed's reply
 * back as the caller's stdout as it comes (admin.Events never ends), as
 * fast as the caller takes it.  The call lasts until qubed's reply ends
 * or the caller goes.  qubed decides the call by the policy once more,
 * with the dest qube as target.  Without a qubed there is nothing to
 * answer, and the call is refused. */

typedef struct {
  QubeQrexecDaemon *daemon;
  char *source_name;
  guint64 source_serial;
  char *what;
  char *header;                   /* qubed's request header, NUL excluded */
  char *socket_path;
  guint32 port;
  QubeQrexecChan *chan;           /* the caller's data channel */
  QubeQrexecParser *parser;
  GByteArray *input;
  gboolean asked;                 /* the request went to qubed */
  gboolean replied;               /* the reply and exit code are queued */
  GSource *timeout;               /* until the payload is whole */
  GCancellable *cancel;           /* the exchange with qubed */
  GBytes *request;                /* header, NUL, payload */
  GSocketConnection *conn;
  gboolean reading;               /* a read of qubed's reply is under way */
  guint8 status[2];               /* the reply's first bytes: "0\0" is OK */
  guint64 reply_len;
} AdminForward;

static void
admin_forward_free (AdminForward *fwd)
{
  call_count_down (fwd->daemon, fwd->source_name);
  qube_release_port (fwd->daemon, fwd->source_name, fwd->source_serial, fwd->port);
  if (fwd->timeout != NULL)
    {
      g_source_destroy (fwd->timeout);
      g_source_unref (fwd->timeout);
    }
  /* An operation under way ends with G_IO_ERROR_CANCELLED and touches
   * nothing of fwd. */
  g_cancellable_cancel (fwd->cancel);
  g_clear_object (&fwd->cancel);
  g_clear_object (&fwd->conn);
  g_clear_pointer (&fwd->request, g_bytes_unref);
  g_clear_pointer (&fwd->chan, _qube_qrexec_chan_free);
  _qube_qrexec_parser_free (fwd->parser);
  g_byte_array_unref (fwd->input);
  g_free (fwd->source_name);
  g_free (fwd->what);
  g_free (fwd->header);
  g_free (fwd->socket_path);
  g_free (fwd);
}

static char *
admin_socket_path (QubeQrexecDaemon *self)
{
  return g_build_filename (qube_manager_get_runtime_dir (self->manager),
                           QUBE_ADMIN_QREXEC_SOCKET, NULL);
}

/* qubed's reply is over (or never came): stdout's EOF and the exit code,
 * 0 for an OK reply, 1 for an exception, 125 when qubed gave none. */
static void
admin_reply_end (AdminForward *fwd, const char *problem)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  gint32 exit_code = fwd->reply_len < 2 || problem != NULL ? 125
                     : fwd->status[0] == '0' && fwd->status[1] == '\0' ? 0 : 1;

  if (problem != NULL)
    g_message ("%s: %s qubed at %s: %s", fwd->what, fwd->reply_len > 0 ? "the reply broke off from" :
               "no reply from", fwd->socket_path, problem);
  g_clear_object (&fwd->conn);
  _qube_qrexec_append_data (out, MSG_DATA_STDOUT, NULL, 0);
  _qube_qrexec_append_exit_code (out, exit_code);
  _qube_qrexec_chan_send (fwd->chan, out->data, out->len);
  fwd->replied = TRUE;
  if (_qube_qrexec_chan_queued (fwd->chan) == 0 && _qube_qrexec_chan_is_connected (fwd->chan))
    admin_forward_free (fwd);
}

static void admin_read (AdminForward *fwd);

static void
admin_read_done (GObject *stream, GAsyncResult *result, gpointer user_data)
{
  AdminForward *fwd = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = g_input_stream_read_bytes_finish (G_INPUT_STREAM (stream), result, &error);
  g_autoptr(GByteArray) out = g_byte_array_new ();
  const guint8 *data;
  gsize len;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  fwd->reading = FALSE;
  if (bytes == NULL || g_bytes_get_size (bytes) == 0)
    {
      admin_reply_end (fwd, error != NULL ? error->message : NULL);
      return;
    }
  data = g_bytes_get_data (bytes, &len);
  for (gsize i = 0; i < len && fwd->reply_len + i < sizeof fwd->status; i++)
    fwd->status[fwd->reply_len + i] = data[i];
  fwd->reply_len += len;
  _qube_qrexec_append_data_chunked (out, MSG_DATA_STDOUT, data, len,
                                    _qube_qrexec_parser_max_chunk (fwd->parser));
  _qube_qrexec_chan_send (fwd->chan, out->data, out->len);
  admin_read (fwd);
}

/* Reads on while the caller's queue has room; its channel's next event
 * reads on once it has taken some. */
static void
admin_read (AdminForward *fwd)
{
  if (fwd->reading || fwd->conn == NULL || _qube_qrexec_chan_queued (fwd->chan) >= RELAY_QUEUE_MAX)
    return;
  fwd->reading = TRUE;
  g_input_stream_read_bytes_async (g_io_stream_get_input_stream (G_IO_STREAM (fwd->conn)), 65536,
                                   G_PRIORITY_DEFAULT, fwd->cancel, admin_read_done, fwd);
}

static void
admin_request_sent (GObject *stream, GAsyncResult *result, gpointer user_data)
{
  AdminForward *fwd = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (stream), result, NULL, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        admin_reply_end (fwd, error->message);
      return;
    }
  g_clear_pointer (&fwd->request, g_bytes_unref);
  /* The request is whole: qubed reads to its end. */
  if (!g_socket_shutdown (g_socket_connection_get_socket (fwd->conn), FALSE, TRUE, &error))
    {
      admin_reply_end (fwd, error->message);
      return;
    }
  admin_read (fwd);
}

static void
admin_connected (GObject *client, GAsyncResult *result, gpointer user_data)
{
  AdminForward *fwd = user_data;
  g_autoptr(GError) error = NULL;
  GSocketConnection *conn = g_socket_client_connect_finish (G_SOCKET_CLIENT (client), result, &error);
  gsize len;
  const guint8 *data;

  if (conn == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        admin_reply_end (fwd, error->message);
      return;
    }
  fwd->conn = conn;
  data = g_bytes_get_data (fwd->request, &len);
  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (conn)), data, len,
                                   G_PRIORITY_DEFAULT, fwd->cancel, admin_request_sent, fwd);
}

/* The payload is whole: the exchange with qubed starts. */
static void
admin_ask (AdminForward *fwd)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (fwd->socket_path);

  g_debug ("%s: %u bytes of payload; asking qubed", fwd->what, fwd->input->len);
  fwd->asked = TRUE;
  if (fwd->timeout != NULL)
    {
      g_source_destroy (fwd->timeout);
      g_clear_pointer (&fwd->timeout, g_source_unref);
    }
  g_byte_array_prepend (fwd->input, (const guint8 *) fwd->header, (guint) strlen (fwd->header) + 1);
  fwd->request = g_byte_array_free_to_bytes (g_steal_pointer (&fwd->input));
  fwd->input = g_byte_array_new ();
  fwd->cancel = g_cancellable_new ();
  g_socket_client_connect_async (client, G_SOCKET_CONNECTABLE (address), fwd->cancel,
                                 admin_connected, fwd);
}

static void
admin_forward_event (QubeQrexecChan *chan, gpointer user_data)
{
  AdminForward *fwd = user_data;
  const char *reason = NULL;
  guint8 buf[65536];

  if (fwd->replied)
    {
      if (_qube_qrexec_chan_queued (chan) == 0 || _qube_qrexec_chan_is_closed (chan, NULL))
        admin_forward_free (fwd);
      return;
    }
  if (fwd->asked)
    {
      /* The caller going ends the exchange (an admin.Events subscriber
       * ends so); room in its queue lets the reply stream on.  Whatever it
       * sends after its payload's end is dropped. */
      while (_qube_qrexec_chan_read (chan, buf, sizeof buf) > 0)
        ;
      if (_qube_qrexec_chan_is_closed (chan, &reason))
        {
          g_debug ("%s: the caller went away before qubed's reply ended: %s", fwd->what, reason);
          admin_forward_free (fwd);
        }
      else
        admin_read (fwd);
      return;
    }
  while (!fwd->asked)
    {
      g_autoptr(QubeQrexecMessage) msg = NULL;
      g_autoptr(GError) error = NULL;
      gsize n;

      if (!_qube_qrexec_parser_next (fwd->parser, &msg, &error))
        {
          g_warning ("%s: %s; ending the call", fwd->what, error->message);
          admin_forward_free (fwd);
          return;
        }
      if (msg == NULL)
        {
          n = _qube_qrexec_chan_read (chan, buf, sizeof buf);
          if (n == 0)
            break;
          _qube_qrexec_parser_feed (fwd->parser, buf, n);
          continue;
        }
      if (msg->type != MSG_DATA_STDIN)
        continue;
      if (g_bytes_get_size (msg->data) > 0)
        {
          if (fwd->input->len + g_bytes_get_size (msg->data) > QUBE_ADMIN_REQUEST_MAX)
            {
              g_message ("%s: payload over %d bytes; ending the call", fwd->what,
                         QUBE_ADMIN_REQUEST_MAX);
              admin_forward_free (fwd);
              return;
            }
          g_byte_array_append (fwd->input, g_bytes_get_data (msg->data, NULL),
                               g_bytes_get_size (msg->data));
          continue;
        }
      /* EOF on stdin: the request is whole. */
      admin_ask (fwd);
      return;
    }
  if (!fwd->asked && _qube_qrexec_chan_is_closed (chan, &reason))
    {
      g_message ("%s: the caller's data channel closed before its payload ended: %s",
                 fwd->what, reason);
      admin_forward_free (fwd);
    }
}

static gboolean
admin_forward_timeout_cb (gpointer data)
{
  AdminForward *fwd = data;

  g_message ("%s: the caller did not connect and send its payload in %u s; ending the call",
             fwd->what, fwd->daemon->call_connect_timeout_s);
  /* admin_forward_free() destroys this source: keep it from being
   * destroyed twice. */
  g_clear_pointer (&fwd->timeout, g_source_unref);
  admin_forward_free (fwd);
  return G_SOURCE_REMOVE;
}

/* Takes an allowed admin.* call from `source` to the admin qube. */
static gboolean
admin_forward_start (QrexecQube *source, const char *ident, const char *service_name,
                     const char *requested, GError **error)
{
  QubeQrexecDaemon *self = source->daemon;
  g_autofree char *socket_path = admin_socket_path (self);
  g_autoptr(GByteArray) msg = g_byte_array_new ();
  QubeVchanPeer peer = qube_peer (source);
  AdminForward *fwd;
  const char *dest;

  if (!g_file_test (socket_path, G_FILE_TEST_EXISTS))
    return g_set_error (error, QUBE_ERROR, QUBE_ERROR_UNAVAILABLE,
                        "no qubed serves the Admin API (%s does not exist)", socket_path),
           FALSE;
  /* The dest is the qube the caller named; a keyword other than the admin
   * qube's names none. */
  if (g_str_equal (requested, "@adminvm") || g_str_equal (requested, "dom0"))
    dest = "keyword adminvm";
  else if (requested[0] != '@' && qube_name_is_valid (requested, NULL))
    dest = NULL;
  else
    return g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                        "an Admin API call names a qube or @adminvm, not '%s'", requested),
           FALSE;

  fwd = g_new0 (AdminForward, 1);
  fwd->daemon = self;
  fwd->source_name = g_strdup (source->name);
  fwd->source_serial = source->serial;
  fwd->what = g_strdup_printf ("call %s from '%s' to dom0 for '%s'", service_name, source->name,
                               requested);
  fwd->header = dest != NULL
                ? g_strdup_printf ("%s %s %s", service_name, source->name, dest)
                : g_strdup_printf ("%s %s name %s", service_name, source->name, requested);
  fwd->socket_path = g_steal_pointer (&socket_path);
  fwd->input = g_byte_array_new ();
  fwd->parser = _qube_qrexec_parser_new (QUBE_QREXEC_FROM_CALLER, source->name);
  source->active_calls++;
  fwd->port = qube_allocate_port (source);
  if (fwd->port == 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED, "no free data port");
      admin_forward_free (fwd);
      return FALSE;
    }
  /* The channel waits for the caller's offer before the caller hears of
   * the port: an offer made before the channel existed would wake no
   * one. */
  fwd->chan = _qube_qrexec_chan_client (source->plugin, &peer, fwd->port, self->context, error);
  if (fwd->chan == NULL
      || !_qube_qrexec_append_exec (msg, MSG_SERVICE_CONNECT, 0, fwd->port, ident, error))
    {
      admin_forward_free (fwd);
      return FALSE;
    }
  ctrl_send_port (source, msg, fwd->port);
  g_byte_array_set_size (msg, 0);
  _qube_qrexec_append_hello (msg, QREXEC_PROTOCOL_VERSION);
  _qube_qrexec_chan_send (fwd->chan, msg->data, msg->len);
  _qube_qrexec_chan_set_callback (fwd->chan, admin_forward_event, fwd);
  fwd->timeout = g_timeout_source_new_seconds (self->call_connect_timeout_s);
  g_source_set_callback (fwd->timeout, admin_forward_timeout_cb, fwd, NULL);
  g_source_attach (fwd->timeout, self->context);
  g_debug ("%s: data port %u", fwd->what, fwd->port);
  return TRUE;
}

/* ---- the policy --------------------------------------------------------- */

/* The snapshot as the daemon sees it: running means connected. */
static QubePolicySystem *
policy_snapshot (QubeQrexecDaemon *self)
{
  QubePolicySystem *system = qube_policy_system_new_for_manager (self->manager, NULL);
  GHashTableIter iter;
  gpointer key;

  g_hash_table_iter_init (&iter, self->qubes);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (qube_policy_system_has_qube (system, key))
      qube_policy_system_set_running (system, key, lookup_connected (self, key) != NULL, NULL);
  return system;
}

static void
refuse (QrexecQube *q, const char *ident)
{
  g_autoptr(GByteArray) msg = g_byte_array_new ();

  if (_qube_qrexec_append_service_refused (msg, ident, NULL))
    ctrl_send (q, msg);
}

/* Takes one token of the qube's request budget; FALSE when it is flooding. */
static gboolean
take_request_token (QrexecQube *q)
{
  gint64 now = g_get_monotonic_time ();

  q->tokens = MIN ((double) REQUEST_BURST,
                   q->tokens + (double) (now - q->tokens_time) * REQUESTS_PER_SECOND / G_USEC_PER_SEC);
  q->tokens_time = now;
  if (q->tokens < 1.0)
    return FALSE;
  q->tokens -= 1.0;
  return TRUE;
}

/* A call to a new disposable waiting for a worker to start one. */
typedef struct {
  QubeQrexecDaemon *daemon;
  char *source, *target, *ident, *service_name, *dvm, *user;
  guint64 source_serial;
} PendingDispvm;

static void
pending_dispvm_free (PendingDispvm *p)
{
  g_free (p->source);
  g_free (p->target);
  g_free (p->ident);
  g_free (p->service_name);
  g_free (p->dvm);
  g_free (p->user);
  g_free (p);
}

/* Joins the call from `source` to the running disposable `name`, which is
 * destroyed once the call ends (or now, when it cannot start). */
static void
call_disposable (QrexecQube *source, const char *target, const char *ident,
                 const char *service_name, const char *name, const char *user)
{
  QrexecQube *tq = lookup_connected (source->daemon, name);
  g_autoptr(GError) error = NULL;

  if (tq == NULL)
    {
      g_message ("call %s from '%s' to '%s' refused: disposable '%s' has no qrexec connection",
                 service_name, source->name, target, name);
      refuse (source, ident);
      dispose (source->daemon, name);
      return;
    }
  g_message ("call %s from '%s' to '%s': in disposable '%s'", service_name, source->name, target,
             name);
  /* On failure call_free() has disposed of the disposable. */
  if (!call_start (source, tq, ident, service_name, user, TRUE, &error))
    {
      g_warning ("call %s from '%s' to '%s' failed: %s", service_name, source->name, name,
                 error->message);
      refuse (source, ident);
    }
}

static void
dispvm_started (GObject *object, GAsyncResult *result, gpointer user_data)
{
  PendingDispvm *p = user_data;
  QubeQrexecDaemon *self = p->daemon;
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;
  QrexecQube *q;
  GSubprocess *proc = G_SUBPROCESS (object);

  if (!g_subprocess_communicate_utf8_finish (proc, result, &out, NULL, &error))
    g_warning ("call %s from '%s': the disposable's worker: %s", p->service_name, p->source,
               error->message);
  if (out != NULL)
    g_strchomp (out);
  q = lookup_serial (self, p->source, p->source_serial);
  call_count_down (self, p->source);
  if (out == NULL || !g_subprocess_get_if_exited (proc) || g_subprocess_get_exit_status (proc) != 0
      || !qube_name_is_valid (out, NULL))
    {
      g_message ("call %s from '%s' to '%s' refused: no disposable of '%s' could be started "
                 "(see worker.log)", p->service_name, p->source, p->target, p->dvm);
      if (q != NULL && q->ctrl != NULL)
        refuse (q, p->ident);
    }
  else if (q == NULL || q->ctrl == NULL)
    {
      g_message ("call %s from '%s': the caller went away while its disposable started",
                 p->service_name, p->source);
      dispose (self, out);
    }
  else
    call_disposable (q, p->target, p->ident, p->service_name, out, p->user);
  pending_dispvm_free (p);
  g_object_unref (proc);
}

/* No preloaded disposable for the call: a worker starts one (the call
 * waits, the daemon goes on). */
static void
dispvm_start_cold (PendingDispvm *p)
{
  QubeQrexecDaemon *self = p->daemon;
  QrexecQube *q = lookup_serial (self, p->source, p->source_serial);
  g_autoptr(GError) error = NULL;
  GSubprocess *proc = _qube_dispvm_spawn_start (self->manager, p->dvm, &error);

  if (proc == NULL)
    {
      g_warning ("call %s from '%s' to '%s' refused: %s", p->service_name, p->source, p->target,
                 error->message);
      call_count_down (self, p->source);
      if (q != NULL && q->ctrl != NULL)
        refuse (q, p->ident);
      pending_dispvm_free (p);
      return;
    }
  g_subprocess_communicate_utf8_async (proc, NULL, NULL, dispvm_started, p);
}

static void
dispvm_taken (GObject *object, GAsyncResult *result, gpointer user_data)
{
  PendingDispvm *p = user_data;
  QubeQrexecDaemon *self = p->daemon;
  g_autoptr(GError) error = NULL;
  g_autofree char *name = qube_dispvm_preload_take_finish (QUBE_MANAGER (object), result, &error);
  QrexecQube *q;

  if (error != NULL)
    g_message ("no preloaded disposable of '%s': %s", p->dvm, error->message);
  q = lookup_serial (self, p->source, p->source_serial);
  if (q == NULL || q->ctrl == NULL)
    {
      /* Nobody to serve: no disposable is started, a taken one goes. */
      call_count_down (self, p->source);
      g_message ("call %s from '%s': the caller went away while its disposable was %s",
                 p->service_name, p->source, name != NULL ? "taken" : "looked for");
      if (name != NULL)
        dispose (self, name);
      pending_dispvm_free (p);
      return;
    }
  if (name == NULL)
    {
      dispvm_start_cold (p);
      return;
    }
  call_count_down (self, p->source);
  call_disposable (q, p->target, p->ident, p->service_name, name, p->user);
  pending_dispvm_free (p);
}

/* An allowed call to a new disposable of `dvm`: a preloaded one when one
 * is ready (taken in a thread: the take waits for the queue's lock and
 * the unpause), else one a worker starts. */
static void
call_dispvm (QrexecQube *q, const char *target, const char *ident, const char *service_name,
             const char *dvm, const char *user)
{
  PendingDispvm *p = g_new0 (PendingDispvm, 1);

  p->daemon = q->daemon;
  p->source = g_strdup (q->name);
  p->source_serial = q->serial;
  p->target = g_strdup (target);
  p->ident = g_strdup (ident);
  p->service_name = g_strdup (service_name);
  p->dvm = g_strdup (dvm);
  p->user = g_strdup (user);
  /* A disposable being taken or started counts as a call in progress. */
  q->active_calls++;
  qube_dispvm_preload_take_async (q->daemon->manager, dvm, NULL, dispvm_taken, p);
}

/* Carries out the final decision for a call from `q`. */
static void
decide_call (QrexecQube *q, const char *target, const char *ident, const char *service_name,
             QubePolicyDecision *decision)
{
  g_autoptr(GError) error = NULL;
  const char *resolved;
  QrexecQube *tq;

  if (qube_policy_decision_get_action (decision) != QUBE_POLICY_ACTION_ALLOW)
    {
      g_message ("call %s from '%s' to '%s' refused: %s", service_name, q->name, target,
                 qube_policy_decision_get_reason (decision));
      refuse (q, ident);
      return;
    }
  resolved = qube_policy_decision_get_target (decision);
  if (qube_policy_decision_is_dispvm (decision))
    {
      call_dispvm (q, target, ident, service_name, resolved + strlen ("@dispvm:"),
                   qube_policy_decision_get_user (decision));
      return;
    }
  if (g_strcmp0 (resolved, "dom0") == 0)
    {
      if (!g_str_has_prefix (service_name, "admin."))
        {
          g_message ("call %s from '%s' to dom0 refused: the admin qube serves only the "
                     "Admin API (admin.*)", service_name, q->name);
          refuse (q, ident);
        }
      else if (!admin_forward_start (q, ident, service_name, target, &error))
        {
          g_message ("call %s from '%s' to dom0 refused: %s", service_name, q->name,
                     error->message);
          refuse (q, ident);
        }
      return;
    }
  tq = lookup_connected (q->daemon, resolved);
  if (tq == NULL)
    {
      g_message ("call %s from '%s' to '%s' refused: qube '%s' is not running (no qrexec connection)",
                 service_name, q->name, target, resolved);
      refuse (q, ident);
      return;
    }
  if (!call_start (q, tq, ident, service_name, qube_policy_decision_get_user (decision), FALSE,
                   &error))
    {
      g_warning ("call %s from '%s' to '%s' failed: %s", service_name, q->name, resolved, error->message);
      refuse (q, ident);
    }
}

/* An `ask` waiting for the prompt agent, which may take as long as a
 * person does: it runs in a thread, the daemon goes on. */
typedef struct {
  char *source, *target, *ident, *service_name;
  guint64 source_serial;
  QubePolicyDecision *decision;
} PendingAsk;

static void
pending_ask_free (PendingAsk *ask)
{
  g_free (ask->source);
  g_free (ask->target);
  g_free (ask->ident);
  g_free (ask->service_name);
  g_clear_object (&ask->decision);
  g_free (ask);
}

static void
ask_thread (GTask *task, gpointer source_object, gpointer task_data, GCancellable *cancellable)
{
  QubeQrexecDaemon *self = source_object;
  PendingAsk *ask = task_data;

  g_task_return_pointer (task, qube_policy_decision_resolve_ask (ask->decision, self->ask_agent,
                                                                 cancellable),
                         g_object_unref);
}

static void
ask_done (GObject *source_object, GAsyncResult *result, gpointer user_data)
{
  QubeQrexecDaemon *self = QUBE_QREXEC_DAEMON (source_object);
  PendingAsk *ask = g_task_get_task_data (G_TASK (result));
  g_autoptr(QubePolicyDecision) decision = g_task_propagate_pointer (G_TASK (result), NULL);
  QrexecQube *q = lookup_serial (self, ask->source, ask->source_serial);

  call_count_down (self, ask->source);
  if (q == NULL || q->ctrl == NULL)
    {
      g_message ("call %s from '%s': the qube went away while the prompt agent was asked",
                 ask->service_name, ask->source);
      return;
    }
  decide_call (q, ask->target, ask->ident, ask->service_name, decision);
}

/* A service request from qube `q`.  FALSE: the qube misbehaved and its
 * connection was closed. */
static gboolean
handle_trigger (QrexecQube *q, QubeQrexecMessage *msg)
{
  /* An empty target is @default, as in Qubes: for the policy, and for
   * the QREXEC_REQUESTED_TARGET* of a service in dom0. */
  const char *target = *msg->target_domain != '\0' ? msg->target_domain : "@default";
  const char *ident = msg->ident;
  const char *service_name = msg->service_name;
  QubeQrexecDaemon *self = q->daemon;
  g_autofree char *service = NULL;
  g_autofree char *argument = NULL;
  g_autoptr(QubePolicySystem) system = NULL;
  g_autoptr(QubePolicy) policy = NULL;
  g_autoptr(QubePolicyDecision) decision = NULL;
  g_autoptr(GError) error = NULL;

  if (!take_request_token (q))
    {
      qube_close (q, "it sends service requests faster than allowed (flood)");
      return FALSE;
    }
  if (msg->refusal != NULL)
    {
      /* Well-formed but not a request to act on (a name that is empty or
       * has a character no qube or service name has): refused, as Qubes
       * refuses it; the qube's other calls go on. */
      g_autofree char *shown = g_strescape (service_name, NULL);

      g_message ("call %s from '%s' refused: %s", shown, q->name, msg->refusal);
      refuse (q, ident);
      return TRUE;
    }
  if (q->active_calls >= MAX_CALLS_PER_QUBE)
    {
      /* Refused, not cut off: a busy qube's other calls and the commands
       * dom0 runs in it go on. */
      g_message ("call %s from '%s' refused: it has %u calls in progress, the most a qube may have",
                 service_name, q->name, q->active_calls);
      refuse (q, ident);
      return TRUE;
    }
  if (!qube_policy_split_call (service_name, &service, &argument, &error))
    {
      g_message ("call %s from '%s' refused: %s", service_name, q->name, error->message);
      refuse (q, ident);
      return TRUE;
    }
  system = policy_snapshot (self);
  policy = qube_policy_load (self->policy_dir);
  decision = qube_policy_evaluate (policy, system, q->name, target, service, argument);
  if (qube_policy_decision_get_action (decision) == QUBE_POLICY_ACTION_ASK &&
      self->ask_agent != NULL && *self->ask_agent != '\0')
    {
      g_autoptr(GTask) task = g_task_new (self, NULL, ask_done, NULL);
      PendingAsk *ask = g_new0 (PendingAsk, 1);

      ask->source = g_strdup (q->name);
      ask->source_serial = q->serial;
      ask->target = g_strdup (target);
      ask->ident = g_strdup (ident);
      ask->service_name = g_strdup (service_name);
      ask->decision = g_steal_pointer (&decision);
      g_task_set_task_data (task, ask, (GDestroyNotify) pending_ask_free);
      /* A pending question counts as a call in progress. */
      q->active_calls++;
      g_task_run_in_thread (task, ask_thread);
      return TRUE;
    }
  if (qube_policy_decision_get_action (decision) == QUBE_POLICY_ACTION_ASK)
    {
      /* No prompt agent: this denies, with the reason saying so. */
      QubePolicyDecision *answered = qube_policy_decision_resolve_ask (decision, NULL, NULL);

      g_object_unref (decision);
      decision = answered;
    }
  decide_call (q, target, ident, service_name, decision);
  return TRUE;
}

/* ---- the control connection --------------------------------------------- */

typedef struct {
  QubeQrexecDaemon *daemon;
  char *name;
  guint64 serial;           /* reconnect_cb: the connection that ended */
} Announce;

static void
announce_free (Announce *a)
{
  g_object_unref (a->daemon);
  g_free (a->name);
  g_free (a);
}

static gboolean
announce_cb (gpointer data)
{
  Announce *a = data;

  /* Still the same connection: it may have ended since. */
  if (lookup_connected (a->daemon, a->name) != NULL)
    g_signal_emit (a->daemon, signals[SIGNAL_CONNECTED], 0, a->name);
  return G_SOURCE_REMOVE;
}

/* Emits ::connected for a qube whose HELLO came, from the main loop
 * rather than from inside its channel's event, so a handler may do
 * anything with the qube (even disconnect it). */
static void
announce_connected (QrexecQube *q)
{
  Announce *a = g_new0 (Announce, 1);
  GSource *idle = g_idle_source_new ();

  a->daemon = g_object_ref (q->daemon);
  a->name = g_strdup (q->name);
  g_source_set_priority (idle, G_PRIORITY_DEFAULT);
  g_source_set_callback (idle, announce_cb, a, (GDestroyNotify) announce_free);
  g_source_attach (idle, q->daemon->context);
  g_source_unref (idle);
}

/* An agent that ended its control connection (it restarted, as an agent
 * may while its qube runs) is served anew, as Qubes' daemon does: what
 * it had in progress is dropped as after a new start, its ports, its
 * count of calls in progress and its request budget go on.  A little
 * later, and later still each time a connection ends within seconds, so
 * that a guest that keeps ending it costs a rebuild and a line of log
 * every half minute at most; the qube may be let go meanwhile (it
 * stopped: its runtime directory is gone, or the watcher let it go). */
#define RECONNECT_DELAY_MS 500
#define RECONNECT_MAX_MS 30000
#define RECONNECT_QUICK_US (10 * G_USEC_PER_SEC)

static gboolean
reconnect_cb (gpointer data)
{
  Announce *a = data;
  QrexecQube *q = lookup_serial (a->daemon, a->name, a->serial);
  g_autoptr(GError) error = NULL;
  g_autofree char *transport = NULL;

  if (q == NULL || q->ctrl != NULL)
    return G_SOURCE_REMOVE;
  /* Stopped meanwhile by another process, which took its runtime
   * directory away: not made again (it would make the qube look alive),
   * the qube is let go. */
  if (!g_file_test (q->runtime_dir, G_FILE_TEST_IS_DIR))
    {
      g_message ("qube '%s': its runtime directory is gone (it stopped): not served again", a->name);
      qube_qrexec_daemon_disconnect (a->daemon, a->name);
      return G_SOURCE_REMOVE;
    }
  transport = g_strdup (q->transport);
  if (!qube_qrexec_daemon_connect (a->daemon, a->name, transport, &error))
    g_warning ("qube '%s': cannot wait for its agent again: %s", a->name, error->message);
  return G_SOURCE_REMOVE;
}

static void
schedule_reconnect (QrexecQube *q)
{
  Announce *a = g_new0 (Announce, 1);
  GSource *timeout;

  if (g_get_monotonic_time () - q->connected_at < RECONNECT_QUICK_US)
    q->reconnect_ms = CLAMP (q->reconnect_ms * 2, RECONNECT_DELAY_MS, RECONNECT_MAX_MS);
  else
    q->reconnect_ms = RECONNECT_DELAY_MS;
  timeout = g_timeout_source_new (q->reconnect_ms);
  a->daemon = g_object_ref (q->daemon);
  a->name = g_strdup (q->name);
  a->serial = q->serial;
  g_source_set_callback (timeout, reconnect_cb, a, (GDestroyNotify) announce_free);
  g_source_attach (timeout, q->daemon->context);
  g_source_unref (timeout);
}

static void
handle_control_message (QrexecQube *q, QubeQrexecMessage *msg, gboolean *closed)
{
  switch (msg->type)
    {
    case MSG_HELLO:
      q->hello_done = TRUE;
      g_debug ("qube '%s': qrexec protocol %u", q->name, _qube_qrexec_parser_get_version (q->parser));
      announce_connected (q);
      break;
    case MSG_TRIGGER_SERVICE:
    case MSG_TRIGGER_SERVICE3:
      *closed = !handle_trigger (q, msg);
      break;
    case MSG_CONNECTION_TERMINATED:
      /* The agent may only speak of ports this daemon offered it.  One it
       * was offered and that is free already (a second notice) is let be,
       * as Qubes' daemon does. */
      if (msg->connect_port < FIRST_DATA_PORT || msg->connect_port > q->highest_port)
        {
          g_autofree char *reason = g_strdup_printf ("it reported the end of a connection on data "
                                                     "port %u, which it was never offered",
                                                     msg->connect_port);

          qube_close (q, reason);
          *closed = TRUE;
        }
      else
        port_mark (q, msg->connect_port, PORT_AGENT_DONE);
      break;
    default:
      break;
    }
}

static void
ctrl_event (QubeQrexecChan *chan, gpointer user_data)
{
  QrexecQube *q = user_data;
  guint8 buf[16384];
  const char *reason = NULL;
  gsize queued;

  for (;;)
    {
      g_autoptr(QubeQrexecMessage) msg = NULL;
      g_autoptr(GError) error = NULL;
      gboolean closed = FALSE;
      gsize n;

      if (!_qube_qrexec_parser_next (q->parser, &msg, &error))
        {
          qube_close (q, error->message);
          return;
        }
      if (msg != NULL)
        {
          handle_control_message (q, msg, &closed);
          if (closed)
            return;
          continue;
        }
      n = _qube_qrexec_chan_read (q->ctrl, buf, sizeof buf);
      if (n == 0)
        break;
      _qube_qrexec_parser_feed (q->parser, buf, n);
    }
  /* A guest that asks and never reads the answers would make the daemon
   * keep them for ever. */
  queued = _qube_qrexec_chan_queued (q->ctrl);
  if (queued > q->daemon->control_queue_max)
    {
      g_autofree char *why = g_strdup_printf ("it does not read its control channel (%" G_GSIZE_FORMAT
                                              " bytes wait for it)", queued);

      qube_close (q, why);
      return;
    }
  if (_qube_qrexec_chan_is_closed (q->ctrl, &reason))
    {
      g_message ("qube '%s': the control connection ended: %s; waiting for its agent to offer "
                 "it again", q->name, reason);
      g_clear_pointer (&q->ctrl, _qube_qrexec_chan_free);
      q->hello_done = FALSE;
      ports_forget_agent (q);
      schedule_reconnect (q);
    }
}

/* Drops a qube's control connection because of what it did. */
static void
qube_close (QrexecQube *q, const char *reason)
{
  g_warning ("qube '%s': %s; closing its qrexec control connection", q->name, reason);
  g_clear_pointer (&q->ctrl, _qube_qrexec_chan_free);
  q->hello_done = FALSE;
  ports_forget_agent (q);
}

/* ---- dom0 clients ------------------------------------------------------- */

static void
client_free (QrexecClient *c)
{
  c->qube->clients = g_list_remove (c->qube->clients, c);
  if (c->port != 0)
    port_mark (c->qube, c->port, PORT_OURS_DONE);
  g_clear_pointer (&c->data_chan, _qube_qrexec_chan_free);
  g_clear_pointer (&c->local, _qube_qrexec_chan_free);
  if (c->source != NULL)
    {
      g_source_destroy (c->source);
      g_source_unref (c->source);
    }
  close (c->fd);
  g_byte_array_unref (c->buf);
  g_free (c);
}

static void
client_reply (QrexecClient *c, guint32 type, guint32 port, const char *text)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  struct msg_header hdr = { type, 0 };
  struct exec_params params = { 0, port };

  if (type != MSG_SERVICE_REFUSED)
    {
      hdr.len = sizeof params + strlen (text) + 1;
      g_byte_array_append (out, (const guint8 *) &hdr, sizeof hdr);
      g_byte_array_append (out, (const guint8 *) &params, sizeof params);
      g_byte_array_append (out, (const guint8 *) text, strlen (text) + 1);
    }
  else
    {
      hdr.len = strlen (text) + 1;
      g_byte_array_append (out, (const guint8 *) &hdr, sizeof hdr);
      g_byte_array_append (out, (const guint8 *) text, strlen (text) + 1);
    }
  /* A small reply on a fresh local socket: it fits. */
  if (send (c->fd, out->data, out->len, MSG_NOSIGNAL) != (gssize) out->len)
    g_debug ("qube '%s': a client went away before its reply", c->qube->name);
}

/* Moves a relayed call's bytes both ways, as far as each side has room;
 * ends the call when either side has ended and the program has all. */
static void
relay_pump (QubeQrexecChan *chan, gpointer user_data)
{
  QrexecClient *c = user_data;
  guint8 buf[65536];
  gsize room, n;
  const char *side = NULL, *reason = NULL;

  (void) chan;
  while ((room = _qube_qrexec_chan_room (c->local)) > 0
         && (n = _qube_qrexec_chan_read (c->data_chan, buf, MIN (room, sizeof buf))) > 0)
    {
      _qube_qrexec_chan_send (c->local, buf, n);
      c->to_program += n;
    }
  while ((room = _qube_qrexec_chan_room (c->data_chan)) > 0
         && (n = _qube_qrexec_chan_read (c->local, buf, MIN (room, sizeof buf))) > 0)
    {
      _qube_qrexec_chan_send (c->data_chan, buf, n);
      c->to_qube += n;
    }
  if (_qube_qrexec_chan_is_closed (c->data_chan, &reason) && _qube_qrexec_chan_queued (c->local) == 0)
    side = "the qube's data channel";
  else if (_qube_qrexec_chan_is_closed (c->local, &reason))
    side = "the program's socket";
  if (side != NULL)
    {
      g_debug ("qube '%s': relayed call on data port %u ended: %s: %s (%" G_GUINT64_FORMAT
               " bytes to the program, %" G_GUINT64_FORMAT " to the qube)", c->qube->name,
               c->port, side, reason, c->to_program, c->to_qube);
      client_free (c);
    }
}

/* A whole request from a dom0 program: run it in the qube. */
static gboolean
client_request (QrexecClient *c)
{
  QrexecQube *q = c->qube;
  struct msg_header hdr;
  g_autoptr(GByteArray) msg = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  const char *cmdline;
  gsize cmd_len;

  memcpy (&hdr, c->buf->data, sizeof hdr);
  cmdline = (const char *) c->buf->data + sizeof hdr + sizeof (struct exec_params);
  cmd_len = hdr.len - sizeof (struct exec_params);
  if (cmd_len == 0 || memchr (cmdline, '\0', cmd_len) != cmdline + cmd_len - 1)
    {
      client_reply (c, MSG_SERVICE_REFUSED, 0, "the command line is not one NUL-terminated string");
      return FALSE;
    }
  if (q->ctrl == NULL || !q->hello_done)
    {
      client_reply (c, MSG_SERVICE_REFUSED, 0, "the qube's qrexec agent is not connected");
      return FALSE;
    }
  c->port = qube_allocate_port (q);
  if (c->port == 0 ||
      !_qube_qrexec_append_exec (msg, hdr.type, 0, c->port, cmdline, &error))
    {
      client_reply (c, MSG_SERVICE_REFUSED, 0, error != NULL ? error->message : "no free data port");
      return FALSE;
    }
  if (q->relay)
    {
      QubeVchanPeer peer = qube_peer (q);

      /* Offered before the agent hears of it. */
      c->data_chan = _qube_qrexec_chan_server (q->plugin, &peer, c->port, QUBE_QREXEC_DATA_RING,
                                               1024 * 1024, q->daemon->context, &error);
      if (c->data_chan == NULL)
        {
          client_reply (c, MSG_SERVICE_REFUSED, 0, error->message);
          return FALSE;
        }
    }
  ctrl_send_port (q, msg, c->port);
  if (q->relay)
    {
      client_reply (c, hdr.type, c->port, QUBE_QREXEC_RELAY_TRANSPORT);
      c->local = _qube_qrexec_chan_new_fd (c->fd, q->daemon->context);
      _qube_qrexec_chan_set_callback (c->data_chan, relay_pump, c);
      _qube_qrexec_chan_set_callback (c->local, relay_pump, c);
      return TRUE;
    }
  /* The reply names the port and the vchan transport to offer it on. */
  client_reply (c, hdr.type, c->port, q->transport);
  return TRUE;
}

static gboolean
client_event_cb (int fd, GIOCondition condition, gpointer data)
{
  QrexecClient *c = data;
  guint8 buf[4096];
  gssize n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
  struct msg_header hdr;

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return G_SOURCE_CONTINUE;
  if (n <= 0 || c->port != 0)
    {
      /* The program finished (or sent more than one request): its port
       * is free again. */
      client_free (c);
      return G_SOURCE_REMOVE;
    }
  g_byte_array_append (c->buf, buf, (guint) n);
  if (c->buf->len < sizeof hdr)
    return G_SOURCE_CONTINUE;
  memcpy (&hdr, c->buf->data, sizeof hdr);
  if ((hdr.type != MSG_EXEC_CMDLINE && hdr.type != MSG_JUST_EXEC) ||
      hdr.len <= sizeof (struct exec_params) || sizeof hdr + hdr.len > MAX_CLIENT_REQUEST)
    {
      client_reply (c, MSG_SERVICE_REFUSED, 0, "not a command request");
      client_free (c);
      return G_SOURCE_REMOVE;
    }
  if (c->buf->len < sizeof hdr + hdr.len)
    return G_SOURCE_CONTINUE;
  if (c->buf->len > sizeof hdr + hdr.len || !client_request (c))
    {
      client_free (c);
      return G_SOURCE_REMOVE;
    }
  if (c->local != NULL)
    {
      /* A relayed call: its channel watches the socket from now on. */
      g_source_destroy (c->source);
      g_clear_pointer (&c->source, g_source_unref);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
listen_event_cb (int fd, GIOCondition condition, gpointer data)
{
  QrexecQube *q = data;
  QrexecClient *c;
  int cfd = accept4 (fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

  if (cfd < 0)
    return G_SOURCE_CONTINUE;
  c = g_new0 (QrexecClient, 1);
  c->qube = q;
  c->fd = cfd;
  c->buf = g_byte_array_new ();
  c->source = g_unix_fd_source_new (cfd, G_IO_IN | G_IO_HUP | G_IO_ERR);
  g_source_set_callback (c->source, (GSourceFunc) (void (*) (void)) client_event_cb, c, NULL);
  g_source_attach (c->source, q->daemon->context);
  q->clients = g_list_prepend (q->clients, c);
  return G_SOURCE_CONTINUE;
}

static gboolean
qube_listen (QrexecQube *q, GError **error)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };

  q->socket_path = g_build_filename (q->runtime_dir, QUBE_QREXEC_CLIENT_SOCKET, NULL);
  if (strlen (q->socket_path) >= sizeof sun.sun_path)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "cannot serve qrexec for qube '%s': socket path '%s' is too long",
                   q->name, q->socket_path);
      return FALSE;
    }
  strcpy (sun.sun_path, q->socket_path);
  (void) g_unlink (q->socket_path);
  q->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (q->listen_fd < 0 || bind (q->listen_fd, (struct sockaddr *) &sun, sizeof sun) < 0 ||
      listen (q->listen_fd, 64) < 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IO,
                   "cannot serve qrexec for qube '%s': cannot listen on '%s': %s",
                   q->name, q->socket_path, g_strerror (errno));
      return FALSE;
    }
  q->listen_source = g_unix_fd_source_new (q->listen_fd, G_IO_IN);
  g_source_set_callback (q->listen_source, (GSourceFunc) (void (*) (void)) listen_event_cb, q, NULL);
  g_source_attach (q->listen_source, q->daemon->context);
  return TRUE;
}

static void
qube_free (QrexecQube *q)
{
  while (q->clients != NULL)
    client_free (q->clients->data);
  g_clear_pointer (&q->ctrl, _qube_qrexec_chan_free);
  _qube_qrexec_parser_free (q->parser);
  if (q->listen_source != NULL)
    {
      g_source_destroy (q->listen_source);
      g_source_unref (q->listen_source);
    }
  if (q->listen_fd >= 0)
    {
      close (q->listen_fd);
      (void) g_unlink (q->socket_path);
    }
  g_hash_table_unref (q->ports);
  g_free (q->socket_path);
  g_free (q->name);
  g_free (q->runtime_dir);
  g_free (q->transport);
  g_free (q);
}

/* ---- the object ---------------------------------------------------------- */

static void
qube_qrexec_daemon_finalize (GObject *object)
{
  QubeQrexecDaemon *self = QUBE_QREXEC_DAEMON (object);

  g_hash_table_unref (self->qubes);
  g_clear_object (&self->manager);
  g_main_context_unref (self->context);
  g_free (self->policy_dir);
  g_free (self->ask_agent);
  G_OBJECT_CLASS (qube_qrexec_daemon_parent_class)->finalize (object);
}

static void
qube_qrexec_daemon_class_init (QubeQrexecDaemonClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qube_qrexec_daemon_finalize;

  /**
   * QubeQrexecDaemon::connected:
   * @daemon: the #QubeQrexecDaemon
   * @name: the qube whose agent answered
   *
   * Emitted when a served qube's agent completed the MSG_HELLO exchange:
   * from then on qube_qrexec_daemon_is_connected() is %TRUE for it and
   * calls reach it.  A handler may disconnect the qube.
   */
  signals[SIGNAL_CONNECTED] =
    g_signal_new ("connected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
}

static void
qube_qrexec_daemon_init (QubeQrexecDaemon *self)
{
  self->qubes = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) qube_free);
  self->context = g_main_context_ref_thread_default ();
  self->policy_dir = g_strdup (QUBE_POLICY_DEFAULT_DIR);
  self->call_connect_timeout_s = CALL_CONNECT_TIMEOUT_S;
  self->last_data_port = LAST_DATA_PORT;
  self->control_queue_max = CONTROL_QUEUE_MAX;
}

/* How long both sides of a call have to connect their data channels
 * (tests shorten it). */
void
_qube_qrexec_daemon_set_call_connect_timeout (QubeQrexecDaemon *self, guint seconds)
{
  self->call_connect_timeout_s = MAX (seconds, 1);
}

/* What may wait for a qube on its control channel (tests make it small). */
void
_qube_qrexec_daemon_set_control_queue_max (QubeQrexecDaemon *self, gsize bytes)
{
  self->control_queue_max = bytes;
}

/* The highest data port offered (tests make the range small). */
void
_qube_qrexec_daemon_set_last_data_port (QubeQrexecDaemon *self, guint32 port)
{
  self->last_data_port = CLAMP (port, FIRST_DATA_PORT, LAST_DATA_PORT);
}

/**
 * qube_qrexec_daemon_new:
 * @manager: the #QubeManager whose qubes it serves
 *
 * Creates the qrexec daemon.  Its sources run in the thread-default main
 * context of the caller; the policy comes from `$QUBE_POLICY_DIR` or
 * the default directory until qube_qrexec_daemon_set_policy_dir(), and
 * `ask` rules go to the program `$QUBE_ASK_AGENT` (none when unset: they
 * deny) until qube_qrexec_daemon_set_ask_agent().
 *
 * Returns: (transfer full): a new #QubeQrexecDaemon
 */
QubeQrexecDaemon *
qube_qrexec_daemon_new (QubeManager *manager)
{
  QubeQrexecDaemon *self;
  const char *env = g_getenv ("QUBE_POLICY_DIR");
  const char *ask = g_getenv ("QUBE_ASK_AGENT");

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), NULL);
  self = g_object_new (QUBE_TYPE_QREXEC_DAEMON, NULL);
  self->manager = g_object_ref (manager);
  if (env != NULL && *env != '\0')
    qube_qrexec_daemon_set_policy_dir (self, env);
  if (ask != NULL && *ask != '\0')
    qube_qrexec_daemon_set_ask_agent (self, ask);
  return self;
}

/**
 * qube_qrexec_daemon_set_policy_dir:
 * @self: a #QubeQrexecDaemon
 * @policy_dir: (type filename): the policy directory, read at every call
 *
 * Sets where the qrexec policy is read from.
 */
void
qube_qrexec_daemon_set_policy_dir (QubeQrexecDaemon *self, const char *policy_dir)
{
  g_return_if_fail (QUBE_IS_QREXEC_DAEMON (self));
  g_return_if_fail (policy_dir != NULL);
  g_free (self->policy_dir);
  self->policy_dir = g_strdup (policy_dir);
}

/**
 * qube_qrexec_daemon_set_ask_agent:
 * @self: a #QubeQrexecDaemon
 * @agent: (nullable) (type filename): the prompt agent program for `ask`
 *   rules, or %NULL for none (then `ask` denies)
 *
 * Sets the program asked to decide calls that the policy says to ask
 * about (see qube_policy_decision_resolve_ask()).
 */
void
qube_qrexec_daemon_set_ask_agent (QubeQrexecDaemon *self, const char *agent)
{
  g_return_if_fail (QUBE_IS_QREXEC_DAEMON (self));
  g_free (self->ask_agent);
  self->ask_agent = g_strdup (agent);
}

/**
 * qube_qrexec_daemon_connect:
 * @self: a #QubeQrexecDaemon
 * @name: a running qube
 * @vchan_transport: the vchan plugin that reaches the qube (the backend's
 *   `vchan_transport`, e.g. "socket")
 * @error: return location for a #GError
 *
 * Starts serving a qube: connects to its agent's control channel (the
 * MSG_HELLO exchange completes in the main loop) and opens the socket
 * where dom0 programs ask for commands in it.
 *
 * Returns: %TRUE, or %FALSE with @error set
 */
gboolean
qube_qrexec_daemon_connect (QubeQrexecDaemon *self, const char *name,
                            const char *vchan_transport, GError **error)
{
  g_autoptr(QubeVm) vm = NULL;
  g_autoptr(GByteArray) hello = g_byte_array_new ();
  QrexecQube *q;
  QubeVchanPeer peer;
  g_autoptr(GError) local_error = NULL;
  guint32 next_port = FIRST_DATA_PORT;
  guint active_calls = 0;
  double tokens = REQUEST_BURST;
  gint64 tokens_time = g_get_monotonic_time ();
  guint reconnect_ms = 0;

  g_return_val_if_fail (QUBE_IS_QREXEC_DAEMON (self), FALSE);
  g_return_val_if_fail (name != NULL && vchan_transport != NULL, FALSE);

  vm = qube_manager_lookup (self->manager, name, error);
  if (vm == NULL)
    return FALSE;
  q = g_hash_table_lookup (self->qubes, name);
  if (q != NULL)
    {
      /* A call of the earlier connection may still hold its port (its
       * channel ends with the call): the round of ports goes on where
       * it was instead of starting again at the first. */
      next_port = q->next_port;
      /* Its calls in progress, and what it may ask, stay counted: a guest
       * ending its connection gets no more than it had. */
      active_calls = q->active_calls;
      tokens = q->tokens;
      tokens_time = q->tokens_time;
      reconnect_ms = q->reconnect_ms;
      qube_qrexec_daemon_disconnect (self, name);
    }

  q = g_new0 (QrexecQube, 1);
  q->daemon = self;
  q->name = g_strdup (name);
  q->serial = ++self->last_serial;
  q->transport = g_strdup (vchan_transport);
  /* One process holds a kvm qube's vchan link (this daemon): dom0
   * programs' data channels are relayed through it. */
  q->relay = g_strcmp0 (vchan_transport, "kvm") == 0;
  q->runtime_dir = qube_qrexec_qube_runtime_dir (self->manager, name);
  q->listen_fd = -1;
  q->ports = g_hash_table_new (g_direct_hash, g_direct_equal);
  q->next_port = next_port;
  q->active_calls = active_calls;
  q->tokens = tokens;
  q->tokens_time = tokens_time;
  q->reconnect_ms = reconnect_ms;
  q->connected_at = g_get_monotonic_time ();
  q->parser = _qube_qrexec_parser_new (QUBE_QREXEC_FROM_AGENT, name);
  g_hash_table_insert (self->qubes, q->name, q);

  if (g_mkdir_with_parents (q->runtime_dir, 0700) < 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IO, "cannot serve qrexec for qube '%s': "
                   "cannot create '%s': %s", name, q->runtime_dir, g_strerror (errno));
      goto fail;
    }
  q->plugin = _qube_plugin_registry_find (qube_manager_get_plugins (self->manager),
                                          QUBE_PLUGIN_KIND_VCHAN, vchan_transport, &local_error);
  if (q->plugin == NULL)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
                   "cannot serve qrexec for qube '%s': %s", name, local_error->message);
      goto fail;
    }
  peer = qube_peer (q);
  q->ctrl = _qube_qrexec_chan_client (q->plugin, &peer, VCHAN_BASE_PORT, self->context, error);
  if (q->ctrl == NULL)
    goto fail;
  _qube_qrexec_chan_set_callback (q->ctrl, ctrl_event, q);
  /* The daemon speaks first. */
  _qube_qrexec_append_hello (hello, QREXEC_PROTOCOL_VERSION);
  _qube_qrexec_chan_send (q->ctrl, hello->data, hello->len);
  if (!qube_listen (q, error))
    goto fail;
  return TRUE;

fail:
  g_hash_table_remove (self->qubes, name);
  return FALSE;
}

/**
 * qube_qrexec_daemon_disconnect:
 * @self: a #QubeQrexecDaemon
 * @name: a qube's name
 *
 * Stops serving a qube (it stopped): closes its control connection and
 * its socket.
 */
void
qube_qrexec_daemon_disconnect (QubeQrexecDaemon *self, const char *name)
{
  g_return_if_fail (QUBE_IS_QREXEC_DAEMON (self));
  g_hash_table_remove (self->qubes, name);
}

/**
 * qube_qrexec_daemon_is_connected:
 * @self: a #QubeQrexecDaemon
 * @name: a qube's name
 *
 * Returns: whether the qube's agent is connected and its MSG_HELLO came
 */
gboolean
qube_qrexec_daemon_is_connected (QubeQrexecDaemon *self, const char *name)
{
  g_return_val_if_fail (QUBE_IS_QREXEC_DAEMON (self), FALSE);
  return lookup_connected (self, name) != NULL;
}
