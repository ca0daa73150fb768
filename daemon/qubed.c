/* qubed.c — the admin daemon: the Admin API on a unix socket.
 *
 * One request per connection in the qubesd wire format (see qube-admin.h);
 * the calls themselves are answered by QubeAdmin.  Two sockets: the local
 * one, whose clients are the admin qube (source must be dom0), and the
 * qrexec one (RUNTIME_DIR/qubed-qrexec.sock), for the qrexec daemon
 * forwarding a qube's `admin.*` call with the caller's name as source (the
 * policy then decides).  A timer notices qubes that changed state without
 * an Admin API call (a QEMU that died, a guest that powered off) and sends
 * their events.  Lifecycle calls (a start lasts as long as the boot) run
 * in a worker thread, so the main loop never waits for a qube.  Both accept
 * only peers running as root or as the daemon's own user.  Everything runs
 * on one GLib main loop; no client, however slow, can block it: reads and
 * writes are asynchronous, idle clients time out, and admin.Events
 * subscribers have a bounded queue.
 *
 * Disposables: at start, and whenever a preload queue is short, qubed
 * spawns the filler (qube_dispvm_preload_fill_detached()); the queue
 * changes that any process makes (see qube-dispvm.c) reach admin.Events
 * as domain-preload-dispvm-{start,used,removed} events.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <locale.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qube.h"

#define READ_CHUNK 16384

typedef struct {
  QubeAdmin *admin;
  GMainLoop *loop;
  char *preload_events;       /* the file of preload queue changes */
  goffset preload_events_read;
  guint client_timeout;
  gsize event_queue_max;
  guint n_clients;
  /* The power state last reported for each qube: name -> state. */
  GHashTable *states;
  /* Lifecycle calls run here, one at a time, off the main loop. */
  GThreadPool *worker;
  char *state_dir;
  char *policy_dir;
  /* Qubes with a lifecycle call in the worker: name -> count. */
  GHashTable *busy;
} Daemon;

typedef struct {
  int refs;
  Daemon *daemon;
  GSocketConnection *conn;
  gboolean trust_source;
  GCancellable *cancellable;
  GByteArray *request;
  guint8 chunk[READ_CHUNK];
  guint timeout_id;
  gboolean closed;

  /* admin.Events subscribers */
  char *source;
  GQueue events;
  gsize queued;
  gboolean writing;
  gulong event_handler;
  GSource *hup_source;
} Client;

static Client *
client_ref (Client *c)
{
  c->refs++;
  return c;
}

/* Closing drops the sources and handlers that hold references, so the
 * closing code itself holds one until it is done. */
static void client_unref (Client *c);

static void
client_do_close (Client *c)
{
  if (c->closed)
    return;
  c->closed = TRUE;
  g_cancellable_cancel (c->cancellable);
  g_clear_handle_id (&c->timeout_id, g_source_remove);
  if (c->event_handler != 0)
    g_clear_signal_handler (&c->event_handler, c->daemon->admin);
  if (c->hup_source != NULL)
    {
      GSource *source = g_steal_pointer (&c->hup_source);

      g_source_destroy (source);
      g_source_unref (source);
    }
  g_io_stream_close (G_IO_STREAM (c->conn), NULL, NULL);
}

static void
client_close (Client *c)
{
  client_ref (c);
  client_do_close (c);
  client_unref (c);
}

static void
client_unref (Client *c)
{
  if (--c->refs > 0)
    return;
  client_do_close (c);
  c->daemon->n_clients--;
  g_queue_clear_full (&c->events, (GDestroyNotify) g_bytes_unref);
  g_clear_pointer (&c->request, g_byte_array_unref);
  g_clear_pointer (&c->source, g_free);
  g_clear_object (&c->cancellable);
  g_clear_object (&c->conn);
  g_free (c);
}

/* ---- replies ---- */

static void
reply_written (GObject *stream, GAsyncResult *result, gpointer user_data)
{
  Client *c = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (stream), result, NULL, &error)
      && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_debug ("client went away before its reply was written: %s", error->message);
  client_close (c);
  client_unref (c);
}

static void
send_reply (Client *c, GBytes *reply)
{
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (c->conn));
  gsize len;
  const void *data = g_bytes_get_data (reply, &len);

  /* The data outlives the write: the closure keeps the bytes. */
  g_object_set_data_full (G_OBJECT (c->conn), "qubed-reply", g_bytes_ref (reply),
                          (GDestroyNotify) g_bytes_unref);
  g_output_stream_write_all_async (out, data, len, G_PRIORITY_DEFAULT, c->cancellable,
                                   reply_written, client_ref (c));
}

/* ---- admin.Events ---- */

static void write_next_event (Client *c);

static void
event_written (GObject *stream, GAsyncResult *result, gpointer user_data)
{
  Client *c = user_data;
  g_autoptr(GError) error = NULL;

  c->writing = FALSE;
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (stream), result, NULL, &error))
    {
      if (!c->closed)
        g_message ("admin.Events subscriber '%s' went away: %s", c->source, error->message);
      client_close (c);
    }
  else if (!c->closed)
    {
      GBytes *done = g_queue_pop_head (&c->events);

      c->queued -= g_bytes_get_size (done);
      g_bytes_unref (done);
      write_next_event (c);
    }
  client_unref (c);
}

static void
write_next_event (Client *c)
{
  GBytes *next = g_queue_peek_head (&c->events);
  gsize len;
  const void *data;

  if (c->writing || c->closed || next == NULL)
    return;
  data = g_bytes_get_data (next, &len);
  c->writing = TRUE;
  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (c->conn)),
                                   data, len, G_PRIORITY_DEFAULT, c->cancellable,
                                   event_written, client_ref (c));
}

static void
queue_event (Client *c, GBytes *message)
{
  if (c->closed)
    return;
  if (c->queued + g_bytes_get_size (message) > c->daemon->event_queue_max)
    {
      g_message ("dropping admin.Events subscriber '%s': it reads too slowly "
                 "(%" G_GSIZE_FORMAT " bytes of events queued)", c->source, c->queued);
      client_close (c);
      return;
    }
  c->queued += g_bytes_get_size (message);
  g_queue_push_tail (&c->events, g_bytes_ref (message));
  write_next_event (c);
}

static void
on_event (QubeAdmin *admin, const char *subject, const char *event,
          const char *const *kwargs, gpointer user_data)
{
  Client *c = user_data;
  g_autoptr(GBytes) message = NULL;

  if (!qube_admin_event_visible (admin, c->source, subject))
    return;
  message = qube_admin_encode_event (subject, event, kwargs);
  queue_event (c, message);
}

static gboolean
on_subscriber_hup (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  Client *c = user_data;

  g_debug ("admin.Events subscriber '%s' hung up", c->source);
  /* The source goes away after this returns, dropping its reference. */
  g_clear_pointer (&c->hup_source, g_source_unref);
  client_close (c);
  return G_SOURCE_REMOVE;
}

/* `allowed` is the Admin API's answer to the admin.Events call: an
 * exception goes back as the reply, an OK starts the stream. */
static void
subscribe (Client *c, const char *source, GBytes *allowed)
{
  g_autoptr(GBytes) established = NULL;
  GSocket *socket = g_socket_connection_get_socket (c->conn);

  if (((const char *) g_bytes_get_data (allowed, NULL))[0] != '0')
    {
      send_reply (c, allowed);
      return;
    }
  c->source = g_strdup (source);
  c->event_handler = g_signal_connect (c->daemon->admin, "event", G_CALLBACK (on_event), c);
  /* The subscription lasts until the client hangs up. */
  c->hup_source = g_socket_create_source (socket, G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (c->hup_source, G_SOURCE_FUNC (on_subscriber_hup), client_ref (c),
                         (GDestroyNotify) client_unref);
  g_source_attach (c->hup_source, NULL);
  established = qube_admin_encode_event ("", "connection-established", NULL);
  queue_event (c, established);
}

/* ---- requests ---- */

/* ---- lifecycle calls, off the main loop ----
 *
 * Starting a qube takes as long as its boot; the main loop must go on
 * serving the other clients meanwhile.  Such calls run in one worker
 * thread, on a QubeAdmin of its own over its own QubeManager (the state is
 * shared through the store and the runtime directory, as between
 * processes); the worker's events are sent on from the main loop, in
 * order, and its reply written from there. */

typedef struct {
  Daemon *daemon;
  Client *client;
  GBytes *request;
  char *dest;
  GBytes *reply;
} Work;

typedef struct {
  Daemon *daemon;
  char *subject;
  char *event;
  char **kwargs;
} ForwardedEvent;

static void
forwarded_event_free (ForwardedEvent *e)
{
  g_free (e->subject);
  g_free (e->event);
  g_strfreev (e->kwargs);
  g_free (e);
}

static gboolean
emit_forwarded (gpointer data)
{
  ForwardedEvent *e = data;

  qube_admin_emit_event (e->daemon->admin, e->subject, e->event,
                         (const char *const *) e->kwargs);
  return G_SOURCE_REMOVE;
}

/* In the worker: an event of its QubeAdmin, for the main loop. */
static void
on_worker_event (QubeAdmin *admin, const char *subject, const char *event,
                 const char *const *kwargs, gpointer user_data)
{
  ForwardedEvent *e = g_new0 (ForwardedEvent, 1);

  e->daemon = user_data;
  e->subject = g_strdup (subject);
  e->event = g_strdup (event);
  e->kwargs = g_strdupv ((char **) kwargs);
  g_main_context_invoke_full (NULL, G_PRIORITY_DEFAULT, emit_forwarded, e,
                              (GDestroyNotify) forwarded_event_free);
}

static gboolean
work_done (gpointer data)
{
  Work *w = data;
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (w->daemon->busy, w->dest));

  if (n > 1)
    g_hash_table_insert (w->daemon->busy, g_strdup (w->dest), GUINT_TO_POINTER (n - 1));
  else
    g_hash_table_remove (w->daemon->busy, w->dest);
  if (!w->client->closed)
    send_reply (w->client, w->reply);
  client_unref (w->client);
  g_bytes_unref (w->request);
  g_bytes_unref (w->reply);
  g_free (w->dest);
  g_free (w);
  return G_SOURCE_REMOVE;
}

static void
worker_run (gpointer data, gpointer user_data)
{
  static QubeAdmin *admin;
  Work *w = data;
  Daemon *d = user_data;

  /* The worker's own Admin API, made once, used only in this thread. */
  if (admin == NULL)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(QubeManager) manager = qube_manager_new (d->state_dir, &error);

      if (manager == NULL)
        {
          w->reply = qube_admin_encode_exception ("QubesException", error->message);
          g_main_context_invoke (NULL, work_done, w);
          return;
        }
      admin = qube_admin_new (manager, d->policy_dir);
      g_signal_connect (admin, "event", G_CALLBACK (on_worker_event), d);
    }
  w->reply = qube_admin_handle_request (admin, w->request, w->client->trust_source);
  /* After the events it sent: the same queue keeps them in order. */
  g_main_context_invoke (NULL, work_done, w);
}

/* The calls that wait on a qube's backend (a start waits for the boot;
 * a disposable with none preloaded is started for the call). */
static gboolean
is_lifecycle (const char *method)
{
  static const char *const slow[] = { "admin.vm.Start", "admin.vm.Shutdown", "admin.vm.Kill",
                                      "admin.vm.Pause", "admin.vm.Unpause",
                                      "admin.vm.CreateDisposable", NULL };

  return g_strv_contains (slow, method);
}

static void
handle_request (Client *c)
{
  g_autoptr(GBytes) request = g_byte_array_free_to_bytes (g_steal_pointer (&c->request));
  g_autofree char *method = NULL, *source = NULL, *dest = NULL;
  g_autoptr(GBytes) reply = NULL;
  gboolean parsed = qube_admin_parse_request (request, &method, NULL, &source, &dest, NULL,
                                              NULL);

  if (parsed && is_lifecycle (method))
    {
      Work *w = g_new0 (Work, 1);
      Daemon *d = c->daemon;
      guint n = GPOINTER_TO_UINT (g_hash_table_lookup (d->busy, dest));

      w->daemon = d;
      w->client = client_ref (c);
      w->request = g_bytes_ref (request);
      w->dest = g_steal_pointer (&dest);
      g_hash_table_insert (d->busy, g_strdup (w->dest), GUINT_TO_POINTER (n + 1));
      g_thread_pool_push (d->worker, w, NULL);
      return;
    }
  reply = qube_admin_handle_request (c->daemon->admin, request, c->trust_source);
  if (parsed && g_str_equal (method, "admin.Events"))
    {
      subscribe (c, source, reply);
      return;
    }
  send_reply (c, reply);
}

static void
request_read (GObject *stream, GAsyncResult *result, gpointer user_data)
{
  Client *c = user_data;
  g_autoptr(GError) error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (stream), result, &error);

  if (c->closed)
    ;
  else if (n < 0)
    {
      g_debug ("client read failed: %s", error->message);
      client_close (c);
    }
  else if (n == 0)
    {
      g_clear_handle_id (&c->timeout_id, g_source_remove);
      handle_request (c);
    }
  else if (c->request->len + (gsize) n > QUBE_ADMIN_REQUEST_MAX)
    {
      g_autoptr(GBytes) reply = NULL;

      g_message ("dropping a request over %d bytes", QUBE_ADMIN_REQUEST_MAX);
      g_clear_handle_id (&c->timeout_id, g_source_remove);
      reply = qube_admin_encode_exception ("ProtocolError", "request over the size limit");
      send_reply (c, reply);
    }
  else
    {
      g_byte_array_append (c->request, c->chunk, n);
      g_input_stream_read_async (G_INPUT_STREAM (stream), c->chunk, sizeof c->chunk,
                                 G_PRIORITY_DEFAULT, c->cancellable, request_read,
                                 client_ref (c));
    }
  client_unref (c);
}

static gboolean
on_client_timeout (gpointer user_data)
{
  Client *c = user_data;

  c->timeout_id = 0;
  g_message ("dropping a client that sent no complete request in %u s",
             c->daemon->client_timeout);
  client_close (c);
  return G_SOURCE_REMOVE;
}

static gboolean
peer_allowed (GSocketConnection *conn)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GCredentials) creds =
    g_socket_get_credentials (g_socket_connection_get_socket (conn), &error);
  uid_t uid;

  if (creds == NULL)
    {
      g_message ("refusing a client whose credentials are unknown: %s", error->message);
      return FALSE;
    }
  uid = g_credentials_get_unix_user (creds, NULL);
  if (uid != 0 && uid != getuid ())
    {
      g_message ("refusing a client running as uid %u", (unsigned) uid);
      return FALSE;
    }
  return TRUE;
}

static gboolean
on_incoming (GSocketService *service, GSocketConnection *conn, GObject *source_object,
             gpointer user_data)
{
  Daemon *d = user_data;
  Client *c;

  if (!peer_allowed (conn))
    return FALSE;
  c = g_new0 (Client, 1);
  c->refs = 1;
  c->daemon = d;
  c->conn = g_object_ref (conn);
  c->trust_source = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (service), "qubed-trust"));
  c->cancellable = g_cancellable_new ();
  c->request = g_byte_array_new ();
  g_queue_init (&c->events);
  d->n_clients++;
  c->timeout_id = g_timeout_add_seconds_full (G_PRIORITY_DEFAULT, d->client_timeout,
                                              on_client_timeout, client_ref (c),
                                              (GDestroyNotify) client_unref);
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (conn)), c->chunk,
                             sizeof c->chunk, G_PRIORITY_DEFAULT, c->cancellable,
                             request_read, c);
  return TRUE;
}

/* ---- qubes that change state by themselves ---- */

/* The event a change of power state is reported as, or NULL. */
static const char *
state_event (const char *before, const char *after)
{
  gboolean was_up = !g_str_equal (before, "Halted");
  gboolean is_up = !g_str_equal (after, "Halted");

  if (was_up && !is_up)
    return "domain-shutdown";
  if (!was_up && is_up)
    return "domain-start";
  if (g_str_equal (after, "Paused") && !g_str_equal (before, "Paused"))
    return "domain-paused";
  if (g_str_equal (before, "Paused") && g_str_equal (after, "Running"))
    return "domain-unpaused";
  return NULL;
}

/* Events the Admin API sent (or this watcher) keep the known states
 * current, so that a change is reported once. */
static void
on_state_event (QubeAdmin *admin, const char *subject, const char *event,
                const char *const *kwargs, gpointer user_data)
{
  Daemon *d = user_data;
  const char *state = NULL;

  if (g_str_equal (event, "domain-start") || g_str_equal (event, "domain-unpaused"))
    state = "Running";
  else if (g_str_equal (event, "domain-shutdown"))
    state = "Halted";
  else if (g_str_equal (event, "domain-paused"))
    state = "Paused";
  if (state != NULL && *subject != '\0')
    g_hash_table_insert (d->states, g_strdup (subject), g_strdup (state));
}

/* Looks at every qube's power state: a qube whose QEMU died, one stopped
 * from inside, one started or stopped by another program on the same
 * state directory is reported as Qubes reports it.  `report`: FALSE at
 * start-up, when the states are only learnt. */
static void
watch_states (Daemon *d, gboolean report)
{
  g_autoptr(GPtrArray) vms = qube_manager_list_vms (qube_admin_get_manager (d->admin));
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  GHashTableIter iter;
  gpointer key;

  for (guint i = 0; i < vms->len; i++)
    {
      QubeVm *vm = vms->pdata[i];
      const char *name = qube_vm_get_name (vm);
      const char *state, *before, *event;

      g_hash_table_add (seen, (gpointer) name);
      /* A lifecycle call in progress reports the change itself. */
      if (g_hash_table_contains (d->busy, name))
        continue;
      state = qube_vm_get_state (vm);
      before = g_hash_table_lookup (d->states, name);
      event = before != NULL ? state_event (before, state) : NULL;
      /* A qube on its way up or down is reported once it got there. */
      if (before != NULL && (g_str_equal (state, "Transient") || g_str_equal (state, "Halting")
                             || g_str_equal (state, "Unknown")))
        continue;
      if (report && event != NULL)
        {
          g_message ("qube '%s' went from %s to %s by itself", name, before, state);
          qube_admin_emit_event (d->admin, name, event, NULL);
        }
      g_hash_table_insert (d->states, g_strdup (name), g_strdup (state));
    }
  g_hash_table_iter_init (&iter, d->states);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (!g_hash_table_contains (seen, key))
      g_hash_table_iter_remove (&iter);
}

static gboolean
on_watch_timeout (gpointer user_data)
{
  watch_states (user_data, TRUE);
  return G_SOURCE_CONTINUE;
}

/* ---- sockets ---- */

/* A socket file left by a daemon that died is removed; one that answers
 * belongs to a running daemon and is an error. */
static gboolean
clear_stale_socket (const char *path, GError **error)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr(GSocketConnection) conn = NULL;

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    return TRUE;
  conn = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL, NULL);
  if (conn != NULL)
    return g_set_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
                        "cannot listen on %s: another qubed is serving it", path), FALSE;
  if (g_unlink (path) != 0 && errno != ENOENT)
    {
      int saved_errno = errno;
      return g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                          "cannot remove stale socket %s: %s", path,
                          g_strerror (saved_errno)), FALSE;
    }
  return TRUE;
}

static GSocketService *
listen_on (Daemon *d, const char *path, gboolean trust_source, GError **error)
{
  g_autoptr(GSocketService) service = g_socket_service_new ();
  g_autoptr(GSocketAddress) address = NULL;
  g_autofree char *dir = g_path_get_dirname (path);
  mode_t old_umask;
  gboolean ok;

  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      int saved_errno = errno;
      return g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                          "cannot create %s: %s", dir, g_strerror (saved_errno)), NULL;
    }
  if (!clear_stale_socket (path, error))
    return NULL;
  address = g_unix_socket_address_new (path);
  /* Only the owner may connect: the socket is as powerful as dom0. */
  old_umask = umask (0077);
  ok = g_socket_listener_add_address (G_SOCKET_LISTENER (service), address,
                                      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT,
                                      NULL, NULL, error);
  umask (old_umask);
  if (!ok)
    {
      g_prefix_error (error, "cannot listen on %s: ", path);
      return NULL;
    }
  g_object_set_data (G_OBJECT (service), "qubed-trust", GINT_TO_POINTER (trust_source));
  g_signal_connect (service, "incoming", G_CALLBACK (on_incoming), d);
  return g_steal_pointer (&service);
}

/* Tells systemd (Type=notify) that the sockets are ready. */
static void
notify_ready (void)
{
  const char *path = g_getenv ("NOTIFY_SOCKET");
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;
  static const char message[] = "READY=1";

  if (path == NULL || *path == '\0')
    return;
  if (path[0] == '@')
    address = g_unix_socket_address_new_with_type (path + 1, -1,
                                                   G_UNIX_SOCKET_ADDRESS_ABSTRACT);
  else
    address = g_unix_socket_address_new (path);
  socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM,
                         G_SOCKET_PROTOCOL_DEFAULT, &error);
  if (socket == NULL
      || g_socket_send_to (socket, address, message, sizeof message - 1, NULL, &error) < 0)
    g_warning ("cannot notify systemd through %s: %s", path, error->message);
}

/* Spawns the filler when a preload queue is short or long. */
static gboolean
check_preloads (gpointer user_data)
{
  Daemon *d = user_data;
  QubeManager *manager = qube_admin_get_manager (d->admin);
  g_autoptr(GError) error = NULL;

  if (qube_dispvm_preload_wanted (manager)
      && !qube_dispvm_preload_fill_detached (manager, &error))
    g_warning ("%s", error->message);
  return G_SOURCE_CONTINUE;
}

/* Passes the preload queue changes appended since the last look to
 * admin.Events: lines `TEMPLATE EVENT NAME [REASON]`. */
static gboolean
read_preload_events (gpointer user_data)
{
  Daemon *d = user_data;
  char buf[65536];
  GStatBuf st;
  gssize n;
  char *end;
  int fd;
  g_auto(GStrv) lines = NULL;

  if (g_stat (d->preload_events, &st) < 0 || st.st_size == d->preload_events_read)
    return G_SOURCE_CONTINUE;
  /* The filler truncates a long file: start over. */
  if (st.st_size < d->preload_events_read)
    d->preload_events_read = 0;
  fd = open (d->preload_events, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return G_SOURCE_CONTINUE;
  n = pread (fd, buf, sizeof buf - 1, d->preload_events_read);
  close (fd);
  if (n <= 0)
    return G_SOURCE_CONTINUE;
  buf[n] = '\0';
  /* Only whole lines; the rest is read next time. */
  end = g_strrstr_len (buf, n, "\n");
  if (end == NULL)
    return G_SOURCE_CONTINUE;
  *end = '\0';
  d->preload_events_read += end - buf + 1;
  lines = g_strsplit (buf, "\n", -1);
  for (char **l = lines; *l != NULL; l++)
    {
      g_auto(GStrv) words = g_strsplit (*l, " ", 4);
      const char *kwargs[] = { "dispvm", NULL, NULL, NULL, NULL };

      if (g_strv_length (words) < 3 || !g_str_has_prefix (words[1], "domain-preload-dispvm-")
          || !qube_name_is_valid (words[0], NULL) || !qube_name_is_valid (words[2], NULL)
          || !g_utf8_validate (*l, -1, NULL))
        continue;
      kwargs[1] = words[2];
      if (words[3] != NULL)
        {
          kwargs[2] = "reason";
          kwargs[3] = words[3];
        }
      qube_admin_emit_event (d->admin, words[0], words[1], kwargs);
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_quit_signal (gpointer user_data)
{
  Daemon *d = user_data;

  g_message ("stopping");
  g_main_loop_quit (d->loop);
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = NULL;
  g_autofree char *socket_path = NULL;
  g_autofree char *qrexec_socket_path = NULL;
  g_autofree char *state_dir = NULL;
  g_autofree char *policy_dir = NULL;
  g_autoptr(QubeManager) manager = NULL;
  g_autoptr(GSocketService) local = NULL;
  g_autoptr(GSocketService) qrexec = NULL;
  gboolean foreground = FALSE;
  int client_timeout = 10;
  int event_queue_max = 1024 * 1024;
  int watch_interval = 2;
  Daemon d = { 0 };
  GOptionEntry entries[] = {
    { "foreground", 0, 0, G_OPTION_ARG_NONE, &foreground,
      "Stay in the foreground (qubed never forks; for compatibility)", NULL },
    { "socket", 0, 0, G_OPTION_ARG_FILENAME, &socket_path,
      "The local clients' socket (default /run/qubed.sock, or "
      "$XDG_RUNTIME_DIR/qubed.sock when not root)", "PATH" },
    { "qrexec-socket", 0, 0, G_OPTION_ARG_FILENAME, &qrexec_socket_path,
      "The socket the qrexec daemon forwards qubes' admin.* calls to "
      "(default qubed-qrexec.sock in the state directory's runtime directory, "
      "where the qrexec daemon looks for it)", "PATH" },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
      "The state directory (default $QUBE_STATE_DIR, else /var/lib/qube)", "DIR" },
    { "policy-dir", 0, 0, G_OPTION_ARG_FILENAME, &policy_dir,
      "The qrexec policy directory (default $QUBE_POLICY_DIR, else "
      QUBE_POLICY_DEFAULT_DIR ")", "DIR" },
    { "client-timeout", 0, 0, G_OPTION_ARG_INT, &client_timeout,
      "Seconds a client has to send its whole request (default 10)", "SECONDS" },
    { "event-queue-max", 0, 0, G_OPTION_ARG_INT, &event_queue_max,
      "Bytes of events queued for one admin.Events subscriber before it is "
      "dropped (default 1 MiB)", "BYTES" },
    { "watch-interval", 0, 0, G_OPTION_ARG_INT, &watch_interval,
      "Seconds between looks at the qubes' power states, for the events of "
      "qubes that stop by themselves (default 2)", "SECONDS" },
    { NULL }
  };

  setlocale (LC_ALL, "");
  context = g_option_context_new ("- the libqube admin daemon");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("qubed: %s\n", error->message);
      return 2;
    }
  if (argc > 1 || client_timeout <= 0 || event_queue_max <= 0 || watch_interval <= 0)
    {
      g_printerr ("qubed: unexpected arguments or values; see qubed --help\n");
      return 2;
    }
  /* A client that goes away must not kill the daemon. */
  signal (SIGPIPE, SIG_IGN);
  /* The qrexec daemon a start spawns decides qubes' calls, qubes'
   * admin.* calls among them, by the same policy. */
  if (policy_dir != NULL)
    g_setenv ("QUBE_POLICY_DIR", policy_dir, TRUE);

  if (socket_path == NULL)
    socket_path = qube_admin_default_socket ();
  manager = qube_manager_new (state_dir, &error);
  if (manager == NULL)
    {
      g_printerr ("qubed: %s\n", error->message);
      return 1;
    }
  /* Where the qrexec daemon of this state directory looks for it. */
  if (qrexec_socket_path == NULL)
    qrexec_socket_path = g_build_filename (qube_manager_get_runtime_dir (manager),
                                           QUBE_ADMIN_QREXEC_SOCKET, NULL);
  d.admin = qube_admin_new (manager, policy_dir);
  d.loop = g_main_loop_new (NULL, FALSE);
  d.client_timeout = (guint) client_timeout;
  d.event_queue_max = (gsize) event_queue_max;
  d.states = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  d.busy = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  d.state_dir = g_strdup (qube_manager_get_state_dir (manager));
  d.policy_dir = g_strdup (policy_dir);
  d.worker = g_thread_pool_new (worker_run, &d, 1, FALSE, NULL);
  /* Qubes running from before (a restart after a crash) are found again. */
  watch_states (&d, FALSE);
  g_signal_connect (d.admin, "event", G_CALLBACK (on_state_event), &d);

  local = listen_on (&d, socket_path, FALSE, &error);
  if (local != NULL)
    qrexec = listen_on (&d, qrexec_socket_path, TRUE, &error);
  if (qrexec == NULL)
    {
      g_printerr ("qubed: %s\n", error->message);
      if (local != NULL)
        g_unlink (socket_path);
      return 1;
    }
  g_timeout_add_seconds ((guint) watch_interval, on_watch_timeout, &d);
  g_unix_signal_add (SIGTERM, on_quit_signal, &d);
  g_unix_signal_add (SIGINT, on_quit_signal, &d);
  /* Preloaded disposables: the queues filled now and kept filled; their
   * changes from here on become events. */
  {
    GStatBuf st;

    d.preload_events = qube_dispvm_events_path (manager);
    d.preload_events_read = g_stat (d.preload_events, &st) == 0 ? st.st_size : 0;
    check_preloads (&d);
    g_timeout_add_seconds (2, check_preloads, &d);
    g_timeout_add (100, read_preload_events, &d);
  }
  g_message ("serving %s (state %s) on %s and %s", "the Admin API",
             qube_manager_get_state_dir (manager), socket_path, qrexec_socket_path);
  notify_ready ();

  g_main_loop_run (d.loop);

  g_socket_service_stop (local);
  g_socket_service_stop (qrexec);
  /* A start or stop under way is finished, not cut off half-way. */
  g_thread_pool_free (d.worker, FALSE, TRUE);
  g_unlink (socket_path);
  g_unlink (qrexec_socket_path);
  g_main_loop_unref (d.loop);
  g_object_unref (d.admin);
  g_hash_table_unref (d.states);
  g_hash_table_unref (d.busy);
  g_free (d.state_dir);
  g_free (d.policy_dir);
  g_free (d.preload_events);
  return 0;
}
