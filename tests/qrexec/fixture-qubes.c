/* fixture-qubes.c — a test fixture that pretends qubes are running.
 *
 * It is not an isolation backend: each "qube" is a qube-agent process on
 * this host attached through the socket vchan transport in the qube's
 * runtime directory, and this process hosts the real qrexec daemon
 * (QubeQrexecDaemon) for them, as a backend would once it started real
 * VMs.  Used by the qrexec tests and bench/qrexec.
 *
 *   fixture-qubes --state-dir DIR [--policy-dir DIR]
 *                 [--call-connect-timeout SECONDS] [--last-data-port PORT]
 *                 [--control-queue-max BYTES] [--commands]
 *                 [--fake NAME]... NAME...
 *
 * Creates the qubes that do not exist (StandaloneVM), starts an agent for
 * each NAME (services from STATE/rpc/NAME, trigger socket
 * RUNDIR/agent.sock), serves each NAME and each --fake NAME (a qube whose
 * guest side the test plays itself), prints "ready" once every agent said
 * hello, and runs until SIGTERM or SIGINT, or until the thread that
 * started it ends (PR_SET_PDEATHSIG: start it from a thread that outlives
 * it), so that a test or benchmark killed by its time limit leaves no
 * agents behind; the agents go with it however it ends.
 *
 * With --commands, a line "reconnect NAME" on its standard input has the
 * daemon serve NAME anew, as when the qube started again (its guest must
 * offer the control channel again); the fixture answers on its standard
 * output "reconnected NAME" or "error: WHY".
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>

#include "qube.h"
#include "qube-qrexec-daemon-private.h"

static gboolean quitting;

/* Stays installed: a second SIGTERM during the cleanup is ignored. */
static gboolean
quit_cb (gpointer data)
{
  quitting = TRUE;
  g_main_loop_quit (data);
  return G_SOURCE_CONTINUE;
}

/* An agent goes with the fixture, however the fixture ends. */
static void
agent_child_setup (gpointer data)
{
  (void) prctl (PR_SET_PDEATHSIG, SIGTERM);
}

/* Reads the test's commands from standard input. */
static gboolean
command_cb (GIOChannel *in, GIOCondition condition, gpointer data)
{
  QubeQrexecDaemon *daemon = data;
  g_autofree char *line = NULL;
  g_autoptr(GError) error = NULL;
  const char *name;

  if (g_io_channel_read_line (in, &line, NULL, NULL, &error) != G_IO_STATUS_NORMAL)
    return G_SOURCE_REMOVE;
  g_strchomp (line);
  name = g_str_has_prefix (line, "reconnect ") ? line + strlen ("reconnect ") : NULL;
  if (name == NULL)
    printf ("error: unknown command '%s'\n", line);
  else if (!qube_qrexec_daemon_connect (daemon, name, "socket", &error))
    printf ("error: %s\n", error->message);
  else
    printf ("reconnected %s\n", name);
  fflush (stdout);
  return G_SOURCE_CONTINUE;
}

static GPid
start_agent (QubeManager *manager, const char *name, GError **error)
{
  g_autofree char *rundir = qube_qrexec_qube_runtime_dir (manager, name);
  g_autofree char *rpc = g_build_filename (qube_manager_get_state_dir (manager), "rpc", name, NULL);
  g_autofree char *rpc_config = g_build_filename (qube_manager_get_state_dir (manager), "rpc-config",
                                                  name, NULL);
  const char *builddir = g_getenv ("QUBE_TEST_BUILDDIR");
  g_autofree char *agent = g_build_filename (builddir != NULL ? builddir : ".", "agent",
                                             "qube-agent", NULL);
  g_autofree char *transport = g_strdup_printf ("socket:%s", rundir);
  g_autofree char *trigger = g_build_filename (rundir, "agent.sock", NULL);
  g_auto(GStrv) envp = g_get_environ ();
  const char *argv[] = { agent, "--default-user", g_get_user_name (), NULL };
  GPid pid;

  g_mkdir_with_parents (rundir, 0700);
  g_mkdir_with_parents (rpc, 0755);
  g_mkdir_with_parents (rpc_config, 0755);
  /* What runs in the "qube" (services, qrexec-client-vm) finds the agent
   * through these. */
  envp = g_environ_setenv (envp, "QUBE_AGENT_TRANSPORT", transport, TRUE);
  envp = g_environ_setenv (envp, "QREXEC_AGENT_SOCKET", trigger, TRUE);
  envp = g_environ_setenv (envp, "QREXEC_SERVICE_PATH", rpc, TRUE);
  envp = g_environ_setenv (envp, "QUBES_RPC_CONFIG_PATH", rpc_config, TRUE);
  if (!g_spawn_async (NULL, (char **) argv, envp, G_SPAWN_DO_NOT_REAP_CHILD, agent_child_setup, NULL,
                      &pid, error))
    return 0;
  return pid;
}

int
main (int argc, char **argv)
{
  g_autofree char *state_dir = NULL;
  g_autofree char *policy_dir = NULL;
  int call_connect_timeout = 0;
  int last_data_port = 0;
  int control_queue_max = 0;
  gboolean commands = FALSE;
  g_auto(GStrv) fakes = NULL;
  g_auto(GStrv) names = NULL;
  g_autoptr(GOptionContext) context = g_option_context_new ("NAME…");
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) manager = NULL;
  g_autoptr(QubeQrexecDaemon) daemon = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(GArray) pids = g_array_new (FALSE, FALSE, sizeof (GPid));
  const GOptionEntry entries[] = {
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir, "State directory", "DIR" },
    { "policy-dir", 0, 0, G_OPTION_ARG_FILENAME, &policy_dir, "Policy directory", "DIR" },
    { "fake", 0, 0, G_OPTION_ARG_STRING_ARRAY, &fakes, "A qube whose guest the test plays", "NAME" },
    { "call-connect-timeout", 0, 0, G_OPTION_ARG_INT, &call_connect_timeout,
      "Seconds both sides of a call have to connect (default: the daemon's)", "SECONDS" },
    { "last-data-port", 0, 0, G_OPTION_ARG_INT, &last_data_port,
      "The highest data port offered (default: the daemon's)", "PORT" },
    { "control-queue-max", 0, 0, G_OPTION_ARG_INT, &control_queue_max,
      "Bytes that may wait for a qube on its control channel (default: the daemon's)", "BYTES" },
    { "commands", 0, 0, G_OPTION_ARG_NONE, &commands,
      "Read commands (reconnect NAME) from standard input", NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &names, NULL, NULL },
    { NULL }
  };
  gboolean ready = FALSE;
  pid_t parent = getppid ();

  /* Ended like by the starter's SIGTERM when the starter dies. */
  g_unix_signal_add (SIGTERM, quit_cb, loop);
  g_unix_signal_add (SIGINT, quit_cb, loop);
  if (prctl (PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid () != parent)
    {
      g_printerr ("fixture-qubes: %s\n", getppid () != parent ? "the process that started it is gone"
                  : g_strerror (errno));
      return 1;
    }
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || state_dir == NULL)
    {
      g_printerr ("fixture-qubes: %s\n", error != NULL ? error->message : "--state-dir is needed");
      return 2;
    }
  manager = qube_manager_new (state_dir, &error);
  if (manager == NULL)
    {
      g_printerr ("fixture-qubes: %s\n", error->message);
      return 1;
    }
  daemon = qube_qrexec_daemon_new (manager);
  if (policy_dir != NULL)
    qube_qrexec_daemon_set_policy_dir (daemon, policy_dir);
  if (call_connect_timeout > 0)
    _qube_qrexec_daemon_set_call_connect_timeout (daemon, (guint) call_connect_timeout);
  if (last_data_port > 0)
    _qube_qrexec_daemon_set_last_data_port (daemon, (guint32) last_data_port);
  if (control_queue_max > 0)
    _qube_qrexec_daemon_set_control_queue_max (daemon, (gsize) control_queue_max);

  for (int pass = 0; pass < 2; pass++)
    for (char **n = pass == 0 ? names : fakes; n != NULL && *n != NULL; n++)
      {
        g_autoptr(QubeVm) vm = qube_manager_lookup (manager, *n, NULL);

        if (vm == NULL)
          vm = qube_manager_create_vm (manager, "StandaloneVM", *n, NULL, NULL, &error);
        if (vm == NULL)
          {
            g_printerr ("fixture-qubes: %s\n", error->message);
            return 1;
          }
        if (pass == 0)
          {
            GPid pid = start_agent (manager, *n, &error);

            if (pid == 0)
              {
                g_printerr ("fixture-qubes: cannot start the agent of '%s': %s\n", *n, error->message);
                return 1;
              }
            g_array_append_val (pids, pid);
          }
        if (!qube_qrexec_daemon_connect (daemon, *n, "socket", &error))
          {
            g_printerr ("fixture-qubes: %s\n", error->message);
            return 1;
          }
      }

  while (!ready && !quitting)
    {
      ready = TRUE;
      for (char **n = names; n != NULL && *n != NULL; n++)
        ready &= qube_qrexec_daemon_is_connected (daemon, *n);
      if (!ready)
        g_main_context_iteration (NULL, TRUE);
    }
  if (!quitting)
    {
      /* A starter gone meanwhile: the cleanup below still runs. */
      signal (SIGPIPE, SIG_IGN);
      printf ("ready\n");
      fflush (stdout);
      if (commands)
        {
          g_autoptr(GIOChannel) in = g_io_channel_unix_new (STDIN_FILENO);

          g_io_add_watch (in, G_IO_IN | G_IO_HUP | G_IO_ERR, command_cb, daemon);
        }
      g_main_loop_run (loop);
    }

  g_clear_object (&daemon);
  for (guint i = 0; i < pids->len; i++)
    {
      kill (g_array_index (pids, GPid, i), SIGTERM);
      waitpid (g_array_index (pids, GPid, i), NULL, 0);
    }
  return 0;
}
