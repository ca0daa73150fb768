/* qube-qrexec-daemon.c — serves qrexec for the running qubes of one state
 * directory: one process holds every qube's vchan link, so it can join a
 * call from one qube to another and relay the calls of dom0 programs.
 *
 *   qube-qrexec-daemon [--state-dir DIR] [--policy-dir DIR] [--ask-agent PROGRAM]
 *
 * qube_vm_start() spawns it detached when it is not running, and talks to
 * it on RUNTIME/qrexec-daemon.sock, one request per connection, a line
 * each way:
 *   connect NAME TRANSPORT TIMEOUT   → "ready" once the guest's agent
 *                                      answered MSG_HELLO, or "error TEXT"
 *   disconnect NAME                  → "ok"
 *   take TEMPLATE                    → "ok NAME" once a preloaded disposable
 *                                      of TEMPLATE runs, "none" when none is
 *                                      ready, or "error TEXT"; the
 *                                      disposable is destroyed once the
 *                                      requester closes the connection
 *                                      (however it ends)
 * A client has a few seconds to send its line; requests are read as they
 * come, so a slow client holds up no other.
 * Every second it looks at the state of the qubes it serves: a qube found
 * stopped (its guest powered off, its QEMU died) is released there and
 * then (volumes stopped, runtime directory removed) and let go.  With no
 * qube left for a few seconds it ends.  RUNTIME/qrexec-daemon.lock keeps
 * it single; its pid is in RUNTIME/qrexec-daemon.pid, its messages in
 * RUNTIME/qrexec-daemon.log.
 *
 * Disposables: a served unnamed disposable (auto_cleanup) found stopped
 * is removed; every few seconds, when a preload queue is short or long,
 * a filler is spawned (see qube-dispvm.c).  The same program runs the
 * disposable workers, which never take the daemon's lock:
 *   --preload-dispvms        fills the preload queues, then ends
 *   --discard-dispvm NAME    destroys a disposable, then fills the queues
 *   --discard-dispvm-at-eof NAME   the same once its stdin ends (the
 *                            process using the disposable ended)
 *   --start-dispvm TEMPLATE  starts a disposable and prints its name (for
 *                            a qrexec call to @dispvm with none preloaded)
 * and the shutdown of a qube nobody waits for (qube_vm_shutdown() without
 * wait):
 *   --shutdown-qube NAME     shuts the qube down as a waiting shutdown
 *                            does: its agent, its backend, a kill at its
 *                            shutdown-timeout
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>

#include "qube.h"

#define WATCH_INTERVAL_MS 1000
#define IDLE_EXIT_S 5
#define LOCK_WAIT_S 10
/* How often the preload queues are looked at. */
#define PRELOAD_CHECK_MS 2000

typedef struct {
  QubeManager *manager;
  QubeQrexecDaemon *daemon;
  GMainLoop *loop;
  GHashTable *served;     /* name → transport */
  GList *pending;         /* Pending */
  GList *clients;         /* Client: requests being read */
  GList *holders;         /* Holder: takes under way, disposables handed out */
  gint64 idle_since;
  int listen_fd;
  guint listen_source;
  char *socket_path;
} Daemon;

/* A start waiting for its qube's agent: its connection is retried while
 * the guest boots, then the daemon's ::connected signal answers it. */
typedef struct {
  Daemon *d;
  int fd;
  char *name;
  char *transport;
  gboolean connected;     /* qube_qrexec_daemon_connect() succeeded */
  char *last_error;
  guint retry_ms;
  GSource *retry;         /* the next connection attempt */
  GSource *deadline;      /* the start's timeout */
} Pending;

/* A connection whose request line is still coming. */
typedef struct {
  Daemon *d;
  int fd;
  char line[512];
  gsize got;
  GSource *io;
  GSource *timeout;
} Client;

/* The first connection attempts follow the guest's boot closely; later
 * ones less often. */
#define CONNECT_RETRY_FIRST_MS 50
#define CONNECT_RETRY_MAX_MS 400
/* A client has this long to send its request line. */
#define REQUEST_TIMEOUT_S 5

static void
reply (int fd, const char *text)
{
  g_autofree char *line = g_strconcat (text, "\n", NULL);

  if (send (fd, line, strlen (line), MSG_NOSIGNAL) < 0)
    g_debug ("a client went away before its reply");
}

static void
source_clear (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

static void
pending_free (Pending *p)
{
  source_clear (&p->retry);
  source_clear (&p->deadline);
  close (p->fd);
  g_free (p->name);
  g_free (p->transport);
  g_free (p->last_error);
  g_free (p);
}

/* Answers a start and forgets it. */
static void
pending_done (Pending *p, const char *text)
{
  reply (p->fd, text);
  p->d->pending = g_list_remove (p->d->pending, p);
  pending_free (p);
}

/* The agent of a served qube said HELLO: its starts are answered. */
static void
on_qube_connected (QubeQrexecDaemon *daemon, const char *name, gpointer user_data)
{
  Daemon *d = user_data;
  GList *l = d->pending;

  (void) daemon;
  while (l != NULL)
    {
      Pending *p = l->data;

      l = l->next;
      if (!p->connected || !g_str_equal (p->name, name))
        continue;
      g_hash_table_replace (d->served, g_strdup (p->name), g_strdup (p->transport));
      pending_done (p, "ready");
    }
}

static gboolean
pending_timeout_cb (gpointer user_data)
{
  Pending *p = user_data;
  g_autofree char *text = g_strdup_printf ("error %s", p->last_error != NULL
                                           ? p->last_error : "no MSG_HELLO from its agent");

  g_clear_pointer (&p->deadline, g_source_unref);
  if (p->connected)
    qube_qrexec_daemon_disconnect (p->d->daemon, p->name);
  pending_done (p, text);
  return G_SOURCE_REMOVE;
}

static gboolean pending_retry_cb (gpointer user_data);

/* Connects to the qube's agent while its guest boots: until it works,
 * again after a while. */
static void
pending_connect (Pending *p)
{
  g_autoptr(GError) error = NULL;

  p->connected = qube_qrexec_daemon_connect (p->d->daemon, p->name, p->transport, &error);
  if (p->connected)
    return;
  g_free (p->last_error);
  p->last_error = g_strdup (error->message);
  p->retry = g_timeout_source_new (p->retry_ms);
  g_source_set_callback (p->retry, pending_retry_cb, p, NULL);
  g_source_attach (p->retry, NULL);
  p->retry_ms = MIN (p->retry_ms * 2, CONNECT_RETRY_MAX_MS);
}

static gboolean
pending_retry_cb (gpointer user_data)
{
  Pending *p = user_data;

  g_clear_pointer (&p->retry, g_source_unref);
  pending_connect (p);
  return G_SOURCE_REMOVE;
}

/* A preloaded disposable taken for a dom0 program, held while the
 * program's connection is open. */
typedef struct {
  Daemon *daemon;
  int fd;
  char *name;             /* NULL while the take is under way */
  guint watch;            /* the end of the program's connection */
} Holder;

static void
holder_free (Holder *h)
{
  h->daemon->holders = g_list_remove (h->daemon->holders, h);
  if (h->watch != 0)
    g_source_remove (h->watch);
  if (h->fd >= 0)
    close (h->fd);
  g_free (h->name);
  g_free (h);
}

/* The program ended (nothing more is ever sent): its disposable goes, off
 * this loop. */
static gboolean
holder_ended (int fd, GIOCondition condition, gpointer user_data)
{
  Holder *h = user_data;
  g_autoptr(GError) error = NULL;

  (void) fd;
  (void) condition;
  h->watch = 0;
  if (!qube_dispvm_destroy_detached (h->daemon->manager, h->name, &error))
    g_warning ("%s", error->message);
  holder_free (h);
  return G_SOURCE_REMOVE;
}

static void
holder_taken (GObject *object, GAsyncResult *result, gpointer user_data)
{
  Holder *h = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;

  h->name = qube_dispvm_preload_take_finish (QUBE_MANAGER (object), result, &error);
  if (h->name == NULL)
    {
      reply (h->fd, error != NULL ? (text = g_strdup_printf ("error %s", error->message))
                                  : "none");
      holder_free (h);
      return;
    }
  text = g_strdup_printf ("ok %s", h->name);
  reply (h->fd, text);
  h->watch = g_unix_fd_add (h->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, holder_ended, h);
}

static void
handle_request (Daemon *d, int fd, char *line)
{
  g_auto(GStrv) words = g_strsplit (g_strchomp (line), " ", 0);
  guint n = g_strv_length (words);

  if (n == 4 && g_str_equal (words[0], "connect") && qube_name_is_valid (words[1], NULL))
    {
      Pending *p = g_new0 (Pending, 1);
      guint64 timeout_s = 60;

      g_ascii_string_to_unsigned (words[3], 10, 1, 3600, &timeout_s, NULL);
      p->d = d;
      p->fd = fd;
      p->name = g_strdup (words[1]);
      p->transport = g_strdup (words[2]);
      p->retry_ms = CONNECT_RETRY_FIRST_MS;
      p->deadline = g_timeout_source_new_seconds ((guint) timeout_s);
      g_source_set_callback (p->deadline, pending_timeout_cb, p, NULL);
      g_source_attach (p->deadline, NULL);
      /* A start after a stop the daemon did not see yet. */
      if (g_hash_table_remove (d->served, p->name))
        qube_qrexec_daemon_disconnect (d->daemon, p->name);
      d->pending = g_list_append (d->pending, p);
      pending_connect (p);
      return;
    }
  if (n == 2 && g_str_equal (words[0], "take") && qube_name_is_valid (words[1], NULL))
    {
      Holder *h = g_new0 (Holder, 1);

      h->daemon = d;
      h->fd = fd;
      d->holders = g_list_prepend (d->holders, h);
      qube_dispvm_preload_take_async (d->manager, words[1], NULL, holder_taken, h);
      return;
    }
  if (n == 2 && g_str_equal (words[0], "disconnect"))
    {
      if (g_hash_table_remove (d->served, words[1]))
        qube_qrexec_daemon_disconnect (d->daemon, words[1]);
      reply (fd, "ok");
      close (fd);
      return;
    }
  reply (fd, "error not a request");
  close (fd);
}

/* Forgets a client; its connection is closed unless `keep_fd`. */
static void
client_free (Client *c, gboolean keep_fd)
{
  c->d->clients = g_list_remove (c->d->clients, c);
  source_clear (&c->io);
  source_clear (&c->timeout);
  if (!keep_fd)
    close (c->fd);
  g_free (c);
}

static gboolean
client_timeout_cb (gpointer user_data)
{
  Client *c = user_data;

  g_debug ("a client sent no whole request in %d s", REQUEST_TIMEOUT_S);
  client_free (c, FALSE);
  return G_SOURCE_REMOVE;
}

/* Reads what a client sent so far, and serves its line once whole. */
static gboolean
client_read_cb (int fd, GIOCondition condition, gpointer user_data)
{
  Client *c = user_data;
  gssize r = recv (fd, c->line + c->got, sizeof c->line - 1 - c->got, MSG_DONTWAIT);
  Daemon *d = c->d;
  char line[sizeof c->line];

  (void) condition;
  if (r < 0 && (errno == EAGAIN || errno == EINTR))
    return G_SOURCE_CONTINUE;
  if (r <= 0)
    {
      client_free (c, FALSE);
      return G_SOURCE_REMOVE;
    }
  c->got += (gsize) r;
  c->line[c->got] = '\0';
  if (memchr (c->line, '\n', c->got) == NULL && c->got < sizeof c->line - 1)
    return G_SOURCE_CONTINUE;
  /* A line longer than any request is not one. */
  if (memchr (c->line, '\n', c->got) == NULL)
    {
      client_free (c, FALSE);
      return G_SOURCE_REMOVE;
    }
  memcpy (line, c->line, c->got + 1);
  fd = c->fd;
  client_free (c, TRUE);
  handle_request (d, fd, line);
  return G_SOURCE_REMOVE;
}

/* A new client: its request is read as it comes, from the main loop, so
 * a slow one delays nobody else. */
static gboolean
listen_cb (int fd, GIOCondition condition, gpointer user_data)
{
  Daemon *d = user_data;
  int cfd = accept4 (fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  Client *c;

  (void) condition;
  if (cfd < 0)
    return G_SOURCE_CONTINUE;
  c = g_new0 (Client, 1);
  c->d = d;
  c->fd = cfd;
  c->io = g_unix_fd_source_new (cfd, G_IO_IN);
  g_source_set_callback (c->io, (GSourceFunc) (void (*) (void)) client_read_cb, c, NULL);
  g_source_attach (c->io, NULL);
  c->timeout = g_timeout_source_new_seconds (REQUEST_TIMEOUT_S);
  g_source_set_callback (c->timeout, client_timeout_cb, c, NULL);
  g_source_attach (c->timeout, NULL);
  d->clients = g_list_prepend (d->clients, c);
  return G_SOURCE_CONTINUE;
}

/* Lets go of the qubes that stopped, and ends when none is left. */
static gboolean
watch_qubes (gpointer user_data)
{
  Daemon *d = user_data;
  GHashTableIter iter;
  gpointer key;
  g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func (g_free);

  g_hash_table_iter_init (&iter, d->served);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      g_autoptr(QubeVm) vm = qube_manager_lookup (d->manager, key, NULL);
      const char *state = vm != NULL ? qube_vm_get_state (vm) : "Halted";

      if (g_str_equal (state, "Halted") || g_str_equal (state, "Unknown"))
        g_ptr_array_add (gone, g_strdup (key));
    }
  for (guint i = 0; i < gone->len; i++)
    {
      g_autoptr(QubeVm) vm = qube_manager_lookup (d->manager, gone->pdata[i], NULL);
      g_autofree char *auto_cleanup = NULL;

      g_message ("qube '%s' stopped: its qrexec connection ends", (char *) gone->pdata[i]);
      qube_qrexec_daemon_disconnect (d->daemon, gone->pdata[i]);
      g_hash_table_remove (d->served, gone->pdata[i]);
      /* An unnamed disposable that stopped (it crashed, or powered off)
       * is discarded. */
      if (vm != NULL)
        auto_cleanup = qube_vm_get_property (vm, "auto_cleanup", NULL, NULL, NULL);
      if (g_strcmp0 (auto_cleanup, "True") == 0)
        {
          g_autoptr(GError) error = NULL;

          if (!qube_dispvm_destroy_detached (d->manager, gone->pdata[i], &error))
            g_warning ("%s", error->message);
        }
    }
  if (g_hash_table_size (d->served) > 0 || d->pending != NULL || d->clients != NULL)
    d->idle_since = 0;
  else if (d->idle_since == 0)
    d->idle_since = g_get_monotonic_time ();
  else if (g_get_monotonic_time () - d->idle_since > IDLE_EXIT_S * G_USEC_PER_SEC)
    {
      /* Refuse new starts at once: they spawn the next daemon. */
      g_clear_handle_id (&d->listen_source, g_source_remove);
      g_unlink (d->socket_path);
      close (d->listen_fd);
      d->listen_fd = -1;
      g_main_loop_quit (d->loop);
    }
  return G_SOURCE_CONTINUE;
}

/* Spawns the filler when a preload queue is short or long. */
static gboolean
check_preloads (gpointer user_data)
{
  Daemon *d = user_data;
  g_autoptr(GError) error = NULL;

  if (qube_dispvm_preload_wanted (d->manager)
      && !qube_dispvm_preload_fill_detached (d->manager, &error))
    g_warning ("%s", error->message);
  return G_SOURCE_CONTINUE;
}

/* The worker modes; the exit status. */
static int
run_worker (QubeManager *manager, const char *discard, const char *start, gboolean preload)
{
  g_autoptr(GError) error = NULL;

  if (discard != NULL)
    {
      /* Gone already: another worker (the call's end, the qube's stop)
       * was first. */
      g_autoptr(QubeVm) vm = qube_manager_lookup (manager, discard, NULL);

      if (vm != NULL && !qube_dispvm_destroy (vm, &error))
        {
          g_printerr ("qube-qrexec-daemon: cannot discard disposable '%s': %s\n", discard,
                      error->message);
          g_clear_error (&error);
        }
      else if (vm != NULL)
        g_message ("disposable '%s' discarded", discard);
      preload = TRUE;
    }
  if (start != NULL)
    {
      g_autoptr(QubeVm) vm = qube_dispvm_new (manager, start, FALSE, NULL, &error);

      if (vm == NULL)
        {
          g_printerr ("qube-qrexec-daemon: %s\n", error->message);
          return 1;
        }
      /* Whoever asked may be gone (the qrexec daemon ended): then nobody
       * would ever destroy it. */
      signal (SIGPIPE, SIG_IGN);
      if (printf ("%s\n", qube_vm_get_name (vm)) < 0 || fflush (stdout) != 0)
        {
          g_printerr ("qube-qrexec-daemon: disposable '%s' started for nobody: %s\n",
                      qube_vm_get_name (vm), g_strerror (errno));
          if (!qube_dispvm_destroy (vm, &error))
            g_printerr ("qube-qrexec-daemon: cannot destroy disposable '%s': %s\n",
                        qube_vm_get_name (vm), error->message);
          return 1;
        }
      return 0;
    }
  if (preload && !qube_dispvm_preload_fill (manager, &error))
    {
      g_printerr ("qube-qrexec-daemon: %s\n", error->message);
      return 1;
    }
  return 0;
}

/* --shutdown-qube: the exit status. */
static int
run_shutdown (QubeManager *manager, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) vm = qube_manager_lookup (manager, name, &error);

  /* Stopped already (by itself, or by another shutdown): done. */
  if (vm != NULL && (qube_vm_shutdown (vm, TRUE, &error)
                     || g_error_matches (error, QUBE_ERROR, QUBE_ERROR_NOT_RUNNING)))
    return 0;
  g_printerr ("qube-qrexec-daemon: %s\n", error->message);
  return 1;
}

static gboolean
holder_taking (Daemon *d)
{
  for (GList *l = d->holders; l != NULL; l = l->next)
    if (((Holder *) l->data)->name == NULL)
      return TRUE;
  return FALSE;
}

/* The daemon ends: the disposables it handed out, whose programs may
 * still run, go with it (their programs' calls ended with the daemon's
 * relay anyway).  Takes under way finish first, so none is left taken
 * off its queue and running. */
static void
destroy_handed_out (Daemon *d)
{
  while (holder_taking (d))
    g_main_context_iteration (NULL, TRUE);
  while (d->holders != NULL)
    {
      Holder *h = d->holders->data;
      g_autoptr(QubeVm) vm = qube_manager_lookup (d->manager, h->name, NULL);
      g_autoptr(GError) error = NULL;

      if (vm != NULL && !qube_dispvm_destroy (vm, &error))
        g_warning ("cannot destroy disposable '%s' at exit: %s", h->name, error->message);
      else if (vm != NULL)
        g_message ("disposable '%s' destroyed: the qrexec daemon ends", h->name);
      holder_free (h);
    }
}

static gboolean
on_term (gpointer user_data)
{
  g_main_loop_quit (((Daemon *) user_data)->loop);
  return G_SOURCE_REMOVE;
}

static int
listen_on (const char *path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd;

  if (strlen (path) >= sizeof sun.sun_path)
    return -1;
  strcpy (sun.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  g_unlink (path);
  if (bind (fd, (struct sockaddr *) &sun, sizeof sun) < 0 || listen (fd, 64) < 0)
    {
      close (fd);
      return -1;
    }
  return fd;
}

static gboolean
take_lock (const char *path)
{
  int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

  if (fd < 0)
    return FALSE;
  /* A daemon that is ending lets go soon; another running one keeps it. */
  for (int i = 0; i < LOCK_WAIT_S * 10; i++)
    {
      if (flock (fd, LOCK_EX | LOCK_NB) == 0)
        return TRUE;   /* held until this process ends */
      g_usleep (100 * 1000);
    }
  close (fd);
  return FALSE;
}

int
main (int argc, char **argv)
{
  g_autofree char *state_dir = NULL;
  g_autofree char *policy_dir = NULL;
  g_autofree char *ask_agent = NULL;
  g_autofree char *lock_path = NULL;
  g_autofree char *pidfile = NULL;
  g_autofree char *pid = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(QubeManager) manager = NULL;
  g_autoptr(QubeQrexecDaemon) daemon = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  const char *runtime_dir;
  g_autofree char *discard = NULL;
  g_autofree char *discard_at_eof = NULL;
  g_autofree char *start_dispvm = NULL;
  g_autofree char *shutdown = NULL;
  gboolean preload = FALSE;
  guint watch_source;
  guint preload_source;
  Daemon d = { 0 };
  const GOptionEntry entries[] = {
    { "discard-dispvm", 0, 0, G_OPTION_ARG_STRING, &discard,
      "Destroy the disposable NAME, fill the preload queues, and end", "NAME" },
    { "discard-dispvm-at-eof", 0, 0, G_OPTION_ARG_STRING, &discard_at_eof,
      "The same once standard input ends (its writer, the disposable's user, ended)", "NAME" },
    { "start-dispvm", 0, 0, G_OPTION_ARG_STRING, &start_dispvm,
      "Start a disposable of TEMPLATE, print its name, and end", "TEMPLATE" },
    { "preload-dispvms", 0, 0, G_OPTION_ARG_NONE, &preload,
      "Fill the preload queues of disposables, and end", NULL },
    { "shutdown-qube", 0, 0, G_OPTION_ARG_STRING, &shutdown,
      "Shut the qube NAME down, killing it after its shutdown-timeout, and end", "NAME" },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir, "The state directory", "DIR" },
    { "policy-dir", 0, 0, G_OPTION_ARG_FILENAME, &policy_dir,
      "The qrexec policy directory (default: $QUBE_POLICY_DIR, else the system's)", "DIR" },
    { "ask-agent", 0, 0, G_OPTION_ARG_FILENAME, &ask_agent,
      "The program asked to decide calls an 'ask' rule matches (default: $QUBE_ASK_AGENT; "
      "with none, they are denied)", "PROGRAM" },
    { NULL }
  };

  /* Every message, debug ones too, goes to the log (stderr): stdout is
   * /dev/null, or the pipe a --start-dispvm worker answers on. */
  g_log_writer_default_set_use_stderr (TRUE);
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_summary (context, "Serves qrexec for the running qubes.");
  if (!g_option_context_parse (context, &argc, &argv, &error) || argc != 1)
    {
      fprintf (stderr, "qube-qrexec-daemon: %s\n",
               error != NULL ? error->message : "usage: qube-qrexec-daemon [OPTION…]");
      return 2;
    }
  if (state_dir == NULL)
    state_dir = qube_manager_default_state_dir ();
  manager = qube_manager_new (state_dir, &error);
  if (manager == NULL)
    {
      fprintf (stderr, "qube-qrexec-daemon: %s\n", error->message);
      return 1;
    }
  if (shutdown != NULL)
    return run_shutdown (manager, shutdown);
  if (discard_at_eof != NULL)
    {
      char buf[256];

      /* Nothing is ever written: only the end counts. */
      for (;;)
        {
          gssize n = read (0, buf, sizeof buf);

          if (n == 0 || (n < 0 && errno != EINTR))
            break;
        }
      discard = g_steal_pointer (&discard_at_eof);
    }
  if (discard != NULL || start_dispvm != NULL || preload)
    return run_worker (manager, discard, start_dispvm, preload);
  runtime_dir = qube_manager_get_runtime_dir (manager);
  g_mkdir_with_parents (runtime_dir, 0700);
  lock_path = g_build_filename (runtime_dir, "qrexec-daemon.lock", NULL);
  if (!take_lock (lock_path))
    {
      fprintf (stderr, "qube-qrexec-daemon: another daemon serves %s\n", runtime_dir);
      return 3;
    }
  pidfile = g_build_filename (runtime_dir, "qrexec-daemon.pid", NULL);
  pid = g_strdup_printf ("%d\n", (int) getpid ());
  g_file_set_contents (pidfile, pid, -1, NULL);
  d.socket_path = g_build_filename (runtime_dir, QUBE_QREXEC_DAEMON_SOCKET, NULL);
  d.listen_fd = listen_on (d.socket_path);
  if (d.listen_fd < 0)
    {
      fprintf (stderr, "qube-qrexec-daemon: cannot listen on %s: %s\n", d.socket_path,
               g_strerror (errno));
      return 1;
    }

  /* Without the options, the environment's (see qube_qrexec_daemon_new()). */
  daemon = qube_qrexec_daemon_new (manager);
  if (policy_dir != NULL)
    qube_qrexec_daemon_set_policy_dir (daemon, policy_dir);
  if (ask_agent != NULL)
    qube_qrexec_daemon_set_ask_agent (daemon, *ask_agent != '\0' ? ask_agent : NULL);
  loop = g_main_loop_new (NULL, FALSE);
  d.manager = manager;
  d.daemon = daemon;
  d.loop = loop;
  d.served = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_signal_connect (daemon, "connected", G_CALLBACK (on_qube_connected), &d);
  d.listen_source = g_unix_fd_add (d.listen_fd, G_IO_IN, listen_cb, &d);
  g_unix_signal_add (SIGTERM, on_term, &d);
  g_unix_signal_add (SIGINT, on_term, &d);
  watch_source = g_timeout_add (WATCH_INTERVAL_MS, watch_qubes, &d);
  preload_source = g_timeout_add (PRELOAD_CHECK_MS, check_preloads, &d);
  g_main_loop_run (loop);

  /* New starts spawn a new daemon, which waits for this one's lock. */
  g_clear_handle_id (&d.listen_source, g_source_remove);
  if (d.listen_fd >= 0)
    {
      g_unlink (d.socket_path);
      close (d.listen_fd);
      d.listen_fd = -1;
    }
  g_clear_list (&d.pending, (GDestroyNotify) pending_free);
  while (d.clients != NULL)
    client_free (d.clients->data, FALSE);
  /* The loop runs again below, while takes under way finish: nothing of
   * the serving daemon may act then (no filler is started, no qube is
   * let go of). */
  g_clear_handle_id (&watch_source, g_source_remove);
  g_clear_handle_id (&preload_source, g_source_remove);
  destroy_handed_out (&d);
  {
    GHashTableIter iter;
    gpointer key;

    g_hash_table_iter_init (&iter, d.served);
    while (g_hash_table_iter_next (&iter, &key, NULL))
      qube_qrexec_daemon_disconnect (daemon, key);
  }
  g_hash_table_unref (d.served);
  g_unlink (pidfile);
  g_free (d.socket_path);
  return 0;
}
