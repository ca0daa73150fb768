/* qube-qrexec-daemon.c — serves qrexec for one running qube, as Qubes runs
 * one qrexec-daemon per domain.
 *
 *   qube-qrexec-daemon [--state-dir DIR] [--transport T] [--timeout S] NAME
 *
 * qube_vm_start() spawns it detached once the qube's compartment runs.  It
 * takes the qube's vchan link, completes MSG_HELLO with the guest's agent
 * (retrying while the guest boots, up to the timeout), writes "ready" on
 * its standard output and closes it, then serves the qube's service calls
 * and the requests of dom0 programs (`qube run`) on RUNTIME/qubes/NAME/
 * qrexec.sock until the qube stops or it is sent SIGTERM.  When it sees
 * its qube stopped, it looks at the qube's state, which releases the
 * qube's volumes at once (a shutdown without --wait).  Its pid is in
 * RUNTIME/qubes/NAME/qrexec-daemon.pid; its messages go to the
 * qrexec-daemon.log beside it.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>

#include "qube.h"

#define WATCH_INTERVAL_MS 1000

typedef struct {
  QubeManager *manager;
  QubeQrexecDaemon *daemon;
  const char *name;
  GMainLoop *loop;
} Daemon;

static gboolean
on_term (gpointer user_data)
{
  Daemon *d = user_data;

  g_main_loop_quit (d->loop);
  return G_SOURCE_REMOVE;
}

/* Ends the daemon once its qube is no longer up (and lets the state
 * query release what the qube had). */
static gboolean
watch_qube (gpointer user_data)
{
  Daemon *d = user_data;
  g_autoptr(QubeVm) vm = qube_manager_lookup (d->manager, d->name, NULL);
  const char *state;

  if (vm == NULL)
    {
      g_main_loop_quit (d->loop);
      return G_SOURCE_REMOVE;
    }
  state = qube_vm_get_state (vm);
  if (g_str_equal (state, "Halted") || g_str_equal (state, "Unknown"))
    {
      g_message ("qube '%s' is %s: the qrexec daemon ends", d->name, state);
      g_main_loop_quit (d->loop);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  g_autofree char *state_dir = NULL;
  g_autofree char *transport = NULL;
  g_autofree char *policy_dir = NULL;
  g_autofree char *pidfile = NULL;
  g_autofree char *pid = NULL;
  g_autofree char *runtime_dir = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = g_option_context_new ("NAME");
  g_autoptr(QubeManager) manager = NULL;
  g_autoptr(QubeQrexecDaemon) daemon = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  int timeout_s = 60;
  gint64 deadline;
  Daemon d = { 0 };
  const GOptionEntry entries[] = {
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir, "The state directory", "DIR" },
    { "transport", 0, 0, G_OPTION_ARG_STRING, &transport, "The vchan transport plugin", "NAME" },
    { "policy-dir", 0, 0, G_OPTION_ARG_FILENAME, &policy_dir,
      "The qrexec policy directory (default: $QUBE_POLICY_DIR, else the system's)", "DIR" },
    { "timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s,
      "Seconds to wait for the guest's agent", "S" },
    { NULL }
  };

  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_summary (context, "Serves qrexec for the running qube NAME.");
  if (!g_option_context_parse (context, &argc, &argv, &error) || argc != 2 || timeout_s <= 0)
    {
      fprintf (stderr, "qube-qrexec-daemon: %s\n",
               error != NULL ? error->message : "usage: qube-qrexec-daemon [OPTION…] NAME");
      return 2;
    }
  d.name = argv[1];
  if (transport == NULL)
    transport = g_strdup ("kvm");
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
  runtime_dir = qube_qrexec_qube_runtime_dir (manager, d.name);
  pidfile = g_build_filename (runtime_dir, "qrexec-daemon.pid", NULL);
  pid = g_strdup_printf ("%d\n", (int) getpid ());
  if (!g_file_set_contents (pidfile, pid, -1, &error))
    {
      fprintf (stderr, "qube-qrexec-daemon: %s\n", error->message);
      return 1;
    }

  daemon = qube_qrexec_daemon_new (manager);
  if (policy_dir != NULL)
    qube_qrexec_daemon_set_policy_dir (daemon, policy_dir);
  deadline = g_get_monotonic_time () + (gint64) timeout_s * G_USEC_PER_SEC;
  /* The guest is still booting: its link comes up when its agent runs. */
  while (!qube_qrexec_daemon_connect (daemon, d.name, transport, &error))
    {
      if (g_get_monotonic_time () >= deadline)
        {
          fprintf (stderr, "qube-qrexec-daemon: qube '%s': %s\n", d.name, error->message);
          return 1;
        }
      g_clear_error (&error);
      g_usleep (200 * 1000);
    }
  while (!qube_qrexec_daemon_is_connected (daemon, d.name))
    {
      if (g_get_monotonic_time () >= deadline)
        {
          fprintf (stderr, "qube-qrexec-daemon: qube '%s': no MSG_HELLO from its agent in %d s\n",
                   d.name, timeout_s);
          return 1;
        }
      g_main_context_iteration (NULL, FALSE);
      g_usleep (10 * 1000);
    }

  /* Tell the starter, and hold no descriptor of its. */
  if (write (STDOUT_FILENO, "ready\n", 6) != 6)
    return 1;
  {
    int null_fd = open ("/dev/null", O_RDWR | O_CLOEXEC);

    if (null_fd >= 0)
      {
        dup2 (null_fd, STDOUT_FILENO);
        dup2 (null_fd, STDIN_FILENO);
        close (null_fd);
      }
  }

  loop = g_main_loop_new (NULL, FALSE);
  d.manager = manager;
  d.daemon = daemon;
  d.loop = loop;
  g_unix_signal_add (SIGTERM, on_term, &d);
  g_unix_signal_add (SIGINT, on_term, &d);
  g_timeout_add (WATCH_INTERVAL_MS, watch_qube, &d);
  g_main_loop_run (loop);
  qube_qrexec_daemon_disconnect (daemon, d.name);
  return 0;
}
