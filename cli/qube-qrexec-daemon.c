/* qube-qrexec-daemon.c — serves qrexec for the running qubes of one state
 * directory: one process holds every qube's vchan link, so it can join a
 * call from one qube to another and relay the calls of dom0 programs.
 *
 *   qube-qrexec-daemon [--state-dir DIR] [--policy-dir DIR]
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
 */
#include "config.h"

#include <errno.h>
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
  gint64 idle_since;
  int listen_fd;
  guint listen_source;
  char *socket_path;
} Daemon;

/* A start waiting for its qube's agent. */
typedef struct {
  int fd;
  char *name;
  char *transport;
  gint64 deadline;
  gboolean connected;     /* qube_qrexec_daemon_connect() succeeded */
  char *last_error;
} Pending;

static void
reply (int fd, const char *text)
{
  g_autofree char *line = g_strconcat (text, "\n", NULL);

  if (send (fd, line, strlen (line), MSG_NOSIGNAL) < 0)
    g_debug ("a client went away before its reply");
}

static void
pending_free (Pending *p)
{
  close (p->fd);
  g_free (p->name);
  g_free (p->transport);
  g_free (p->last_error);
  g_free (p);
}

/* Advances the waiting starts: connect while the guest boots, then wait
 * for its HELLO. */
static gboolean
pending_tick (gpointer user_data)
{
  Daemon *d = user_data;
  GList *l = d->pending;

  while (l != NULL)
    {
      Pending *p = l->data;
      GList *next = l->next;
      g_autoptr(GError) error = NULL;
      gboolean done = FALSE;

      if (!p->connected)
        {
          p->connected = qube_qrexec_daemon_connect (d->daemon, p->name, p->transport, &error);
          if (!p->connected)
            {
              g_free (p->last_error);
              p->last_error = g_strdup (error->message);
            }
        }
      if (p->connected && qube_qrexec_daemon_is_connected (d->daemon, p->name))
        {
          g_hash_table_replace (d->served, g_strdup (p->name), g_strdup (p->transport));
          reply (p->fd, "ready");
          done = TRUE;
        }
      else if (g_get_monotonic_time () >= p->deadline)
        {
          g_autofree char *text = g_strdup_printf ("error %s", p->last_error != NULL
                                                   ? p->last_error : "no MSG_HELLO from its agent");

          if (p->connected)
            qube_qrexec_daemon_disconnect (d->daemon, p->name);
          reply (p->fd, text);
          done = TRUE;
        }
      if (done)
        {
          d->pending = g_list_delete_link (d->pending, l);
          pending_free (p);
        }
      l = next;
    }
  return G_SOURCE_CONTINUE;
}

/* A preloaded disposable taken for a dom0 program, held while the
 * program's connection is open. */
typedef struct {
  Daemon *daemon;
  int fd;
  char *name;
} Holder;

static void
holder_free (Holder *h)
{
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
  g_unix_fd_add (h->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, holder_ended, h);
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
      p->fd = fd;
      p->name = g_strdup (words[1]);
      p->transport = g_strdup (words[2]);
      p->deadline = g_get_monotonic_time () + (gint64) timeout_s * G_USEC_PER_SEC;
      /* A start after a stop the daemon did not see yet. */
      if (g_hash_table_remove (d->served, p->name))
        qube_qrexec_daemon_disconnect (d->daemon, p->name);
      d->pending = g_list_append (d->pending, p);
      pending_tick (d);
      return;
    }
  if (n == 2 && g_str_equal (words[0], "take") && qube_name_is_valid (words[1], NULL))
    {
      Holder *h = g_new0 (Holder, 1);

      h->daemon = d;
      h->fd = fd;
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

static gboolean
listen_cb (int fd, GIOCondition condition, gpointer user_data)
{
  Daemon *d = user_data;
  int cfd = accept4 (fd, NULL, NULL, SOCK_CLOEXEC);
  char line[512];
  gsize got = 0;

  (void) condition;
  if (cfd < 0)
    return G_SOURCE_CONTINUE;
  /* The starter writes its one line at once; a bounded wait for it. */
  {
    struct timeval tv = { 5, 0 };
    setsockopt (cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  while (got < sizeof line - 1)
    {
      gssize r = recv (cfd, line + got, sizeof line - 1 - got, 0);

      if (r <= 0)
        break;
      got += (gsize) r;
      if (memchr (line, '\n', got) != NULL)
        break;
    }
  line[got] = '\0';
  if (memchr (line, '\n', got) == NULL)
    {
      close (cfd);
      return G_SOURCE_CONTINUE;
    }
  handle_request (d, cfd, line);
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
  if (g_hash_table_size (d->served) > 0 || d->pending != NULL)
    d->idle_since = 0;
  else if (d->idle_since == 0)
    d->idle_since = g_get_monotonic_time ();
  else if (g_get_monotonic_time () - d->idle_since > IDLE_EXIT_S * G_USEC_PER_SEC)
    {
      /* Refuse new starts at once: they spawn the next daemon. */
      g_source_remove (d->listen_source);
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
      printf ("%s\n", qube_vm_get_name (vm));
      fflush (stdout);
      return 0;
    }
  if (preload && !qube_dispvm_preload_fill (manager, &error))
    {
      g_printerr ("qube-qrexec-daemon: %s\n", error->message);
      return 1;
    }
  return 0;
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
  gboolean preload = FALSE;
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
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir, "The state directory", "DIR" },
    { "policy-dir", 0, 0, G_OPTION_ARG_FILENAME, &policy_dir,
      "The qrexec policy directory (default: $QUBE_POLICY_DIR, else the system's)", "DIR" },
    { NULL }
  };

  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_summary (context, "Serves qrexec for the running qubes.");
  if (!g_option_context_parse (context, &argc, &argv, &error) || argc != 1)
    {
      fprintf (stderr, "qube-qrexec-daemon: %s\n",
               error != NULL ? error->message : "usage: qube-qrexec-daemon [OPTION…]");
      return 2;
    }
  if (policy_dir == NULL && g_getenv ("QUBE_POLICY_DIR") != NULL)
    policy_dir = g_strdup (g_getenv ("QUBE_POLICY_DIR"));
  if (state_dir == NULL)
    state_dir = qube_manager_default_state_dir ();
  manager = qube_manager_new (state_dir, &error);
  if (manager == NULL)
    {
      fprintf (stderr, "qube-qrexec-daemon: %s\n", error->message);
      return 1;
    }
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

  daemon = qube_qrexec_daemon_new (manager);
  if (policy_dir != NULL)
    qube_qrexec_daemon_set_policy_dir (daemon, policy_dir);
  loop = g_main_loop_new (NULL, FALSE);
  d.manager = manager;
  d.daemon = daemon;
  d.loop = loop;
  d.served = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  d.listen_source = g_unix_fd_add (d.listen_fd, G_IO_IN, listen_cb, &d);
  g_unix_signal_add (SIGTERM, on_term, &d);
  g_unix_signal_add (SIGINT, on_term, &d);
  g_timeout_add (WATCH_INTERVAL_MS, watch_qubes, &d);
  g_timeout_add (50, pending_tick, &d);
  g_timeout_add (PRELOAD_CHECK_MS, check_preloads, &d);
  g_main_loop_run (loop);

  /* New starts spawn a new daemon, which waits for this one's lock. */
  if (d.listen_fd >= 0)
    {
      g_unlink (d.socket_path);
      close (d.listen_fd);
    }
  g_list_free_full (d.pending, (GDestroyNotify) pending_free);
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
