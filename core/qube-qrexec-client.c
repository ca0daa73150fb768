/* qube-qrexec-client.c — dom0 runs a command in a qube (see
 * qube-qrexec-client.h).
 *
 * Like Qubes' qrexec-client: ask the daemon serving the qube (its socket
 * in the qube's runtime directory) to send MSG_EXEC_CMDLINE; the daemon
 * answers with the data port and the vchan transport; this side offers the
 * port as the vchan server, exchanges MSG_HELLO with the process side and
 * passes stdin, stdout and stderr through until MSG_DATA_EXIT_CODE.  Every
 * message from the qube goes through the validating parser.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "common/qrexec-filter.h"
#include "qrexec-protocol.h"
#include "qube-dispvm-private.h"
#include "qube-error.h"
#include "qube-plugin-private.h"
#include "qube-qrexec-chan.h"
#include "qube-qrexec-client.h"
#include "qube-qrexec-daemon.h"
#include "qube-vm-private.h"

/* The qube's agent must connect the data channel by then. */
#define RUN_CONNECT_TIMEOUT_S 30
/* How much of the channel is looked at at once. */
#define RUN_BLOCK_SIZE (1024 * 1024)
/* Stop reading stdin while this much waits for the qube's ring. */
#define STDIN_QUEUE_MAX (1024 * 1024)
/* Payloads of one block gathered into one writev(): a 1 MiB block holds
 * 16 full messages. */
#define RUN_IOV_MAX 64

typedef struct {
  const char *qube;
  QubeQrexecChan *chan;
  QubeQrexecParser *parser;
  GMainContext *context;
  int stdin_fd, stdout_fd, stderr_fd;
  QubeQrexecRunFlags flags;
  GSource *stdin_source;
  gboolean stdin_done;
  gboolean done;
  int exit_code;
  GError *error;
  guint8 *inbuf;
  gboolean stdout_eof;
  guint32 payload_type;     /* a stdout/stderr payload being passed through */
  gsize payload_left;
  /* The block: bytes of the channel looked at in place (one or two
   * spans), `pos` the first not yet used. */
  struct iovec span[2];
  gsize pos, end;
  gboolean connected;       /* the agent connected the data channel */
  /* Output gathered for one descriptor and not written yet; it points
   * into the block (or a parsed message), so it is written before either
   * is released. */
  int *out_fd;
  struct iovec out_iov[RUN_IOV_MAX];
  int out_n;
} RunState;

static void
run_fail (RunState *st, GError *error)
{
  if (st->error == NULL)
    st->error = error;
  else
    g_error_free (error);
  st->done = TRUE;
}

static gboolean
writev_all (int fd, struct iovec *iov, int n_iov)
{
  while (n_iov > 0)
    {
      gssize n = writev (fd, iov, MIN (n_iov, IOV_MAX));

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        {
          /* The caller's descriptor may be non-blocking (a terminal or pipe
           * another program set so): wait for room, lose nothing. */
          struct pollfd pfd = { .fd = fd, .events = POLLOUT };

          if (poll (&pfd, 1, -1) < 0 && errno != EINTR)
            return FALSE;
          continue;
        }
      if (n < 0)
        return FALSE;
      while (n_iov > 0 && (gsize) n >= iov->iov_len)
        {
          n -= (gssize) iov->iov_len;
          iov++;
          n_iov--;
        }
      if (n_iov > 0)
        {
          iov->iov_base = (guint8 *) iov->iov_base + n;
          iov->iov_len -= (gsize) n;
        }
    }
  return TRUE;
}

static gboolean stdin_cb (int fd, GIOCondition condition, gpointer data);

static void
stdin_watch (RunState *st, gboolean on)
{
  if (on && st->stdin_source == NULL && !st->stdin_done)
    {
      st->stdin_source = g_unix_fd_source_new (st->stdin_fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
      g_source_set_callback (st->stdin_source, (GSourceFunc) (void (*) (void)) stdin_cb, st, NULL);
      g_source_attach (st->stdin_source, st->context);
    }
  else if (!on && st->stdin_source != NULL)
    {
      g_source_destroy (st->stdin_source);
      g_clear_pointer (&st->stdin_source, g_source_unref);
    }
}

static gboolean
stdin_cb (int fd, GIOCondition condition, gpointer data)
{
  RunState *st = data;
  g_autoptr(GByteArray) msg = g_byte_array_new ();
  gssize n;

  /* At most what the agent's protocol version takes in one message. */
  do
    n = read (fd, st->inbuf, _qube_qrexec_parser_max_chunk (st->parser));
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN)
    return G_SOURCE_CONTINUE;
  /* A read error ends the input like EOF does. */
  _qube_qrexec_append_data (msg, MSG_DATA_STDIN, st->inbuf, n > 0 ? (gsize) n : 0);
  _qube_qrexec_chan_send (st->chan, msg->data, msg->len);
  if (n <= 0)
    {
      st->stdin_done = TRUE;
      stdin_watch (st, FALSE);
      return G_SOURCE_REMOVE;
    }
  if (_qube_qrexec_chan_queued (st->chan) > STDIN_QUEUE_MAX)
    stdin_watch (st, FALSE);
  return G_SOURCE_CONTINUE;
}

/* Writes the gathered output; a reader of ours that went away only loses
 * its own output. */
static void
deliver_flush (RunState *st)
{
  if (st->out_n > 0 && *st->out_fd >= 0 && !writev_all (*st->out_fd, st->out_iov, st->out_n))
    *st->out_fd = -1;
  st->out_n = 0;
}

/* Received output for stdout or stderr, gathered so that the payloads of
 * several messages leave in one system call. */
static void
deliver (RunState *st, guint32 type, const guint8 *p, gsize len)
{
  int *fd = type == MSG_DATA_STDOUT ? &st->stdout_fd : &st->stderr_fd;

  if (len == 0 || *fd < 0)
    return;
  if (st->flags & (type == MSG_DATA_STDOUT ? QUBE_QREXEC_RUN_FILTER_STDOUT
                                           : QUBE_QREXEC_RUN_FILTER_STDERR))
    {
      /* Filtered in a copy (the payload may be a parsed message's), and
       * written at once. */
      g_autofree guint8 *copy = g_memdup2 (p, len);
      struct iovec iov = { copy, len };

      deliver_flush (st);
      qrexec_filter_unsafe ((char *) copy, len);
      if (!writev_all (*fd, &iov, 1))
        *fd = -1;
      return;
    }
  if (st->out_n > 0 && (st->out_fd != fd || st->out_n == RUN_IOV_MAX))
    deliver_flush (st);
  st->out_fd = fd;
  st->out_iov[st->out_n++] = (struct iovec) { (void *) p, len };
}

/* The bytes of the block from offset `pos` to the end of the span they
 * are in. */
static const guint8 *
block_at (const RunState *st, gsize pos, gsize *len)
{
  gsize first = st->span[0].iov_len;

  if (pos < first)
    {
      *len = first - pos;
      return (const guint8 *) st->span[0].iov_base + pos;
    }
  *len = st->end - pos;
  return (const guint8 *) st->span[1].iov_base + (pos - first);
}

/* Copies `len` bytes of the block from `pos` on (they are there) without
 * moving on. */
static void
block_copy (const RunState *st, void *dest, gsize len)
{
  for (gsize pos = st->pos; len > 0;)
    {
      gsize avail;
      const guint8 *p = block_at (st, pos, &avail);
      gsize n = MIN (avail, len);

      memcpy (dest, p, n);
      dest = (guint8 *) dest + n;
      len -= n;
      pos += n;
    }
}

/* Hands the rest of the block to the parser. */
static void
block_feed (RunState *st)
{
  while (st->pos < st->end)
    {
      gsize avail;
      const guint8 *p = block_at (st, st->pos, &avail);

      _qube_qrexec_parser_feed (st->parser, p, avail);
      st->pos += avail;
    }
}

/* The block is all used: what was gathered from it is written out, and it
 * is taken off the channel. */
static void
block_release (RunState *st)
{
  deliver_flush (st);
  _qube_qrexec_chan_consume (st->chan);
  st->pos = st->end = 0;
}

/* Shows up to `len` bytes of the channel as the block; FALSE when there
 * are none. */
static gboolean
block_peek (RunState *st, gsize len)
{
  int n = _qube_qrexec_chan_peek (st->chan, st->span, len);

  st->pos = 0;
  st->end = 0;
  for (int i = 0; i < n; i++)
    st->end += st->span[i].iov_len;
  return st->end > 0;
}

/* The data path.  Once the hello is done and the parser holds nothing,
 * bytes are looked at in large blocks where the channel holds them (the
 * transport's ring, where it lets us), and non-empty stdout/stderr
 * messages in them are checked here (the same rules as the parser's) and
 * written out from there, without copying them into messages.  Anything
 * else, from its header on, goes to the parser.  Returns FALSE when the
 * parser must take over or more bytes are needed; the block is released
 * then. */
static gboolean
take_direct (RunState *st)
{
  struct msg_header hdr;
  gsize chunk = _qube_qrexec_parser_max_chunk (st->parser);

  if (st->pos == st->end)
    {
      block_release (st);
      if (_qube_qrexec_parser_get_version (st->parser) == 0 ||
          _qube_qrexec_parser_wanted (st->parser) != sizeof hdr)
        return FALSE;
      if (!block_peek (st, RUN_BLOCK_SIZE))
        return FALSE;
    }
  if (st->payload_left > 0)
    {
      gsize avail;
      const guint8 *p = block_at (st, st->pos, &avail);
      gsize n = MIN (st->payload_left, avail);

      deliver (st, st->payload_type, p, n);
      st->pos += n;
      st->payload_left -= n;
      return TRUE;
    }
  if (st->end - st->pos >= sizeof hdr)
    {
      block_copy (st, &hdr, sizeof hdr);
      if ((hdr.type == MSG_DATA_STDOUT || hdr.type == MSG_DATA_STDERR) && hdr.len > 0 &&
          hdr.len <= chunk && !(hdr.type == MSG_DATA_STDOUT && st->stdout_eof))
        {
          st->pos += sizeof hdr;
          st->payload_type = hdr.type;
          st->payload_left = hdr.len;
          return TRUE;
        }
    }
  /* Not a data message, or the block ends inside a header: the parser
   * takes the rest of the block (what was gathered before it is written
   * out as the block is released). */
  block_feed (st);
  block_release (st);
  return FALSE;
}

static void
chan_cb (QubeQrexecChan *chan, gpointer data)
{
  RunState *st = data;
  const char *reason = NULL;

  if (_qube_qrexec_chan_is_connected (chan))
    st->connected = TRUE;
  while (!st->done)
    {
      g_autoptr(QubeQrexecMessage) msg = NULL;
      GError *error = NULL;

      if (take_direct (st))
        continue;
      if (st->payload_left > 0)
        break;      /* the rest of a payload is not there yet */
      if (!_qube_qrexec_parser_next (st->parser, &msg, &error))
        {
          deliver_flush (st);
          run_fail (st, error);
          return;
        }
      if (msg == NULL)
        {
          gsize want = _qube_qrexec_parser_wanted (st->parser);

          if (!block_peek (st, MAX (want, 1)))
            break;
          block_feed (st);
          block_release (st);
          continue;
        }
      if (msg->type == MSG_DATA_STDOUT || msg->type == MSG_DATA_STDERR)
        {
          gsize len;
          const guint8 *p = g_bytes_get_data (msg->data, &len);

          if (msg->type == MSG_DATA_STDOUT && msg->eof)
            st->stdout_eof = TRUE;
          /* The message is freed at the end of this round. */
          deliver (st, msg->type, p, len);
          deliver_flush (st);
        }
      else if (msg->type == MSG_DATA_EXIT_CODE)
        {
          st->exit_code = msg->exit_code;
          st->done = TRUE;
        }
    }
  /* Nothing of the channel is held in place across events. */
  block_release (st);
  if (st->done)
    return;
  if (!st->stdin_done && _qube_qrexec_chan_queued (chan) < STDIN_QUEUE_MAX / 4 &&
      _qube_qrexec_chan_is_connected (chan))
    stdin_watch (st, TRUE);
  if (_qube_qrexec_chan_data_ready (chan) == 0 && _qube_qrexec_chan_is_closed (chan, &reason))
    run_fail (st, g_error_new (QUBE_ERROR, QUBE_ERROR_IO,
                               "the connection to qube '%s' ended before the command's exit code: %s",
                               st->qube, reason));
}

/* The agent had its time to connect the data channel. */
static gboolean
connect_timeout_cb (gpointer data)
{
  RunState *st = data;

  if (!st->done && !st->connected)
    run_fail (st, g_error_new (QUBE_ERROR, QUBE_ERROR_TIMEOUT,
                               "cannot run a command in qube '%s': its agent did not "
                               "connect the data channel in %d s", st->qube,
                               RUN_CONNECT_TIMEOUT_S));
  return G_SOURCE_REMOVE;
}

/* Asks the daemon: returns the data port and the transport, or FALSE. */
static gboolean
ask_daemon (const char *socket_path, const char *qube, guint32 type, const char *cmdline,
            int *sock_out, guint32 *port, char **transport, GError **error)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct msg_header hdr = { type, (guint32) (sizeof (struct exec_params) + strlen (cmdline) + 1) };
  struct exec_params params = { 0, 0 };
  g_autofree char *reply = NULL;
  int sock;

  if (strlen (socket_path) >= sizeof sun.sun_path)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID, "cannot run a command in qube '%s': "
                   "socket path '%s' is too long", qube, socket_path);
      return FALSE;
    }
  strcpy (sun.sun_path, socket_path);
  sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0 || connect (sock, (struct sockaddr *) &sun, sizeof sun) < 0)
    {
      int saved = errno;

      if (sock >= 0)
        close (sock);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_RUNNING,
                   "cannot run a command in qube '%s': it is not running or no qrexec daemon "
                   "serves it (%s: %s)", qube, socket_path, g_strerror (saved));
      return FALSE;
    }
  if (send (sock, &hdr, sizeof hdr, MSG_NOSIGNAL) != sizeof hdr ||
      send (sock, &params, sizeof params, MSG_NOSIGNAL) != sizeof params ||
      send (sock, cmdline, strlen (cmdline) + 1, MSG_NOSIGNAL) != (gssize) strlen (cmdline) + 1 ||
      recv (sock, &hdr, sizeof hdr, MSG_WAITALL) != sizeof hdr || hdr.len > 4096 ||
      (reply = g_malloc0 (hdr.len + 1), recv (sock, reply, hdr.len, MSG_WAITALL) != (gssize) hdr.len))
    {
      close (sock);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IO,
                   "cannot run a command in qube '%s': the qrexec daemon did not answer", qube);
      return FALSE;
    }
  if (hdr.type == MSG_SERVICE_REFUSED)
    {
      close (sock);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED, "cannot run a command in qube '%s': %s",
                   qube, reply);
      return FALSE;
    }
  if (hdr.type != type || hdr.len <= sizeof params || reply[hdr.len - 1] != '\0')
    {
      close (sock);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL,
                   "cannot run a command in qube '%s': the qrexec daemon's answer is invalid", qube);
      return FALSE;
    }
  memcpy (&params, reply, sizeof params);
  *port = params.connect_port;
  *transport = g_strdup (reply + sizeof params);
  *sock_out = sock;
  return TRUE;
}

/* qube_qrexec_run() without a manager (see qube-vm-private.h). */
gboolean
_qube_qrexec_run_at (QubePluginRegistry *plugins, const char *runtime_dir, const char *qube,
                     const char *user, const char *command, QubeQrexecRunFlags flags,
                     int stdin_fd, int stdout_fd, int stderr_fd, int *exit_code, GError **error)
{
  g_autofree char *socket_path = g_build_filename (runtime_dir, QUBE_QREXEC_CLIENT_SOCKET, NULL);
  g_autofree char *cmdline = NULL;
  g_autofree char *transport = NULL;
  g_autoptr(GByteArray) hello = g_byte_array_new ();
  g_autoptr(GMainContext) context = NULL;
  QubePluginInfo *plugin;
  QubeVchanPeer peer;
  RunState st = { 0, };
  guint32 port = 0;
  int sock = -1;

  cmdline = g_strdup_printf ("%s:%s", user != NULL ? user : "DEFAULT", command);
  if (strlen (cmdline) + 1 > MAX_QREXEC_CMD_LEN)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "cannot run a command in qube '%s': the command line is longer than %d bytes",
                   qube, MAX_QREXEC_CMD_LEN - 1);
      return FALSE;
    }
  if (!ask_daemon (socket_path, qube, MSG_EXEC_CMDLINE, cmdline, &sock, &port, &transport, error))
    return FALSE;
  /* The daemon relays the data channel over the request's socket when
   * only it can reach the qube (QUBE_QREXEC_RELAY_TRANSPORT). */
  plugin = NULL;
  if (strcmp (transport, QUBE_QREXEC_RELAY_TRANSPORT) != 0)
    {
      plugin = _qube_plugin_registry_find (plugins, QUBE_PLUGIN_KIND_VCHAN, transport, error);
      if (plugin == NULL)
        {
          close (sock);
          return FALSE;
        }
    }

  context = g_main_context_new ();
  g_main_context_push_thread_default (context);
  peer = (QubeVchanPeer) { .size = sizeof peer, .name = qube, .domid = -1,
                           .runtime_dir = runtime_dir };
  st.qube = qube;
  st.context = context;
  st.stdin_fd = stdin_fd;
  st.stdout_fd = stdout_fd;
  st.stderr_fd = stderr_fd;
  st.flags = flags;
  st.exit_code = QREXEC_EXIT_FAILED;
  st.inbuf = g_malloc (MAX_DATA_CHUNK_V3);
  st.parser = _qube_qrexec_parser_new (QUBE_QREXEC_FROM_PROCESS, qube);
  st.chan = plugin == NULL
            ? _qube_qrexec_chan_new_fd (sock, context)
            : _qube_qrexec_chan_server (plugin, &peer, port, QUBE_QREXEC_DATA_RING, 1024 * 1024,
                                        context, &st.error);
  if (st.chan != NULL)
    {
      _qube_qrexec_chan_set_callback (st.chan, chan_cb, &st);
      _qube_qrexec_append_hello (hello, QREXEC_PROTOCOL_VERSION);
      if (flags & QUBE_QREXEC_RUN_NO_STDIN)
        {
          _qube_qrexec_append_data (hello, MSG_DATA_STDIN, NULL, 0);
          st.stdin_done = TRUE;
        }
      _qube_qrexec_chan_send (st.chan, hello->data, hello->len);
      GSource *timeout = g_timeout_source_new_seconds (RUN_CONNECT_TIMEOUT_S);

      g_source_set_callback (timeout, connect_timeout_cb, &st, NULL);
      g_source_attach (timeout, context);
      while (!st.done)
        g_main_context_iteration (context, TRUE);
      g_source_destroy (timeout);
      g_source_unref (timeout);
    }

  stdin_watch (&st, FALSE);
  g_clear_pointer (&st.chan, _qube_qrexec_chan_free);
  _qube_qrexec_parser_free (st.parser);
  g_free (st.inbuf);
  g_main_context_pop_thread_default (context);
  close (sock);
  if (st.error != NULL)
    {
      g_propagate_error (error, st.error);
      return FALSE;
    }
  *exit_code = st.exit_code;
  return TRUE;
}

/**
 * qube_qrexec_run:
 * @manager: the #QubeManager of the qube
 * @qube: the qube to run the command in
 * @user: (nullable): the user to run it as; %NULL for the qube's default
 * @command: the command line (run by the qube's shell), or
 *   `QUBESRPC SERVICE+ARG dom0` for a service
 * @flags: #QubeQrexecRunFlags
 * @stdin_fd: where the command's stdin comes from (ignored with
 *   %QUBE_QREXEC_RUN_NO_STDIN)
 * @stdout_fd: where its stdout goes, or -1 to drop it
 * @stderr_fd: where its stderr goes, or -1 to drop it
 * @exit_code: (out): its exit code (125 when qrexec failed in the qube,
 *   127 when the command or service was not found)
 * @error: return location for a #GError
 *
 * Runs a command in a running qube through the qrexec daemon serving it,
 * passing the data through until the command exits.  Blocks; runs its own
 * main context.
 *
 * Returns: %TRUE when the command ran to its exit code, else %FALSE with
 *   @error set
 */
gboolean
qube_qrexec_run (QubeManager *manager, const char *qube, const char *user, const char *command,
                 QubeQrexecRunFlags flags, int stdin_fd, int stdout_fd, int stderr_fd,
                 int *exit_code, GError **error)
{
  g_autoptr(QubeVm) vm = NULL;
  g_autofree char *runtime_dir = NULL;
  GError *local_error = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), FALSE);
  g_return_val_if_fail (qube != NULL && command != NULL && exit_code != NULL, FALSE);

  vm = qube_manager_lookup (manager, qube, error);
  if (vm == NULL)
    return FALSE;
  runtime_dir = qube_qrexec_qube_runtime_dir (manager, qube);
  if (_qube_qrexec_run_at (qube_manager_get_plugins (manager), runtime_dir, qube, user, command,
                           flags, stdin_fd, stdout_fd, stderr_fd, exit_code, &local_error))
    return TRUE;
  /* A disposable goes with its call: what its guest said is kept (a
   * disposable that is not running has nothing new to say). */
  if (g_str_equal (qube_vm_get_klass (vm), "DispVM")
      && !g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_NOT_RUNNING))
    _qube_dispvm_error_keep_console (manager, qube, local_error);
  g_propagate_error (error, local_error);
  return FALSE;
}
