/* cmd-run.c — `qube run`: run a command or call a service in a qube
 * through qrexec (a halted qube is started first, as by qvm-run, unless
 * --no-autostart), with stdin, stdout and stderr passed through and
 * the command's exit code as this command's exit status (as qvm-run
 * --pass-io does).  With --dispvm[=TEMPLATE] the command runs in a new
 * disposable (a preloaded one when ready, taken by the qrexec daemon),
 * destroyed once this command ended (however it ended) by a detached
 * process, so that this command returns at once.  Output that goes to a
 * terminal is filtered as qvm-run filters it (--filter-escape-chars,
 * --no-filter-escape-chars). */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "qube-cli.h"

/* qube run's own failures (no daemon, connection lost) are qrexec
 * failures for the caller, as in Qubes. */
#define RUN_EXIT_QREXEC_FAILED 125

/* --dispvm takes an optional value: GOption hands it to a callback,
 * without user data for main entries. */
static gboolean dispvm_wanted;
static char *dispvm_template;

static gboolean
dispvm_option_cb (const char *option_name, const char *value, gpointer data, GError **error)
{
  (void) option_name;
  (void) data;
  (void) error;
  dispvm_wanted = TRUE;
  g_free (dispvm_template);
  dispvm_template = value != NULL && *value != '\0' ? g_strdup (value) : NULL;
  return TRUE;
}

/* Runs `command` in a new disposable of `dvm` (NULL: the global
 * default_dispvm); the disposable is handed to a detached process for
 * destruction whatever happened. */
static gboolean
run_in_dispvm (QubeManager *manager, const char *dvm, const char *user, const char *command,
               QubeQrexecRunFlags flags, int *exit_code, GError **error)
{
  g_autofree char *template_name = dvm != NULL ? g_strdup (dvm)
                                   : qube_dispvm_template_for (manager, NULL, error);
  g_autoptr(QubeVm) vm = NULL;
  g_autoptr(GError) cleanup_error = NULL;
  g_autoptr(GError) take_error = NULL;
  gboolean destroy_after = FALSE;
  gboolean ok;

  if (template_name == NULL)
    return FALSE;
  {
    /* The qrexec daemon, which serves the preloads, destroys it when this
     * process ends. */
    g_autofree char *name = qube_dispvm_take_preloaded (manager, template_name, &take_error);

    if (name != NULL)
      return qube_qrexec_run (manager, name, user, command, flags, 0, 1, 2, exit_code, error);
    if (take_error != NULL && !g_error_matches (take_error, QUBE_ERROR, QUBE_ERROR_NOT_RUNNING))
      g_message ("%s", take_error->message);
  }
  /* The daemon said none is ready, or failed, or did not answer in time
   * (it may hold the queue's lock): a cold start.  With no daemon, the
   * queue is looked at here. */
  vm = qube_dispvm_new (manager, template_name,
                        g_error_matches (take_error, QUBE_ERROR, QUBE_ERROR_NOT_RUNNING), NULL,
                        error);
  if (vm == NULL)
    return FALSE;
  /* Destroyed when this command ends, even by ^C; if that cannot be
   * arranged, right after the call. */
  if (!qube_dispvm_destroy_at_exit (manager, qube_vm_get_name (vm), &cleanup_error))
    {
      g_printerr ("qube run: %s\n", cleanup_error->message);
      g_clear_error (&cleanup_error);
      destroy_after = TRUE;
    }
  ok = qube_qrexec_run (manager, qube_vm_get_name (vm), user, command, flags, 0, 1, 2,
                        exit_code, error);
  if (destroy_after
      && !qube_dispvm_destroy_detached (manager, qube_vm_get_name (vm), &cleanup_error))
    g_printerr ("qube run: %s\n", cleanup_error->message);
  return ok;
}

/* Runs `command` in the qube `name`, starting it first when it is halted
 * (as qvm-run does), unless `autostart` is off: then a halted qube is
 * refused.  Only a qube whose qrexec daemon cannot be reached is started
 * or asked for its state, so a call to a running qube costs nothing more. */
static gboolean
run_in_qube (Cli *cli, QubeManager *manager, const char *name, gboolean autostart,
             const char *user, const char *command, QubeQrexecRunFlags flags,
             int *exit_code, GError **error)
{
  g_autoptr(GError) run_error = NULL;
  g_autoptr(GError) start_error = NULL;
  g_autofree char *reply = NULL;

  if (qube_qrexec_run (manager, name, user, command, flags, 0, 1, 2, exit_code, &run_error))
    return TRUE;
  if (!g_error_matches (run_error, QUBE_ERROR, QUBE_ERROR_NOT_RUNNING))
    {
      g_propagate_error (error, g_steal_pointer (&run_error));
      return FALSE;
    }
  if (!autostart)
    {
      g_autoptr(QubeVm) vm = qube_manager_lookup (manager, name, NULL);

      if (vm != NULL && g_str_equal (qube_vm_get_state (vm), "Halted"))
        g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_RUNNING, "qube '%s' is not running", name);
      else
        g_propagate_error (error, g_steal_pointer (&run_error));
      return FALSE;
    }
  reply = cli_admin_call (cli, "admin.vm.Start", NULL, name, NULL, &start_error);
  /* Running already (started by another command meanwhile, or its qrexec
   * daemon is gone): the second try says which. */
  if (reply == NULL && !g_error_matches (start_error, QUBE_ERROR, QUBE_ERROR_RUNNING))
    {
      g_propagate_error (error, g_steal_pointer (&start_error));
      return FALSE;
    }
  return qube_qrexec_run (manager, name, user, command, flags, 0, 1, 2, exit_code, error);
}

static int
run_run (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *user = NULL;
  g_autofree char *service = NULL;
  g_autofree char *command = NULL;
  gboolean no_stdin = FALSE;
  gboolean no_autostart = FALSE;
  gboolean filter = FALSE, no_filter = FALSE;
  QubeManager *manager;
  int status, exit_code = RUN_EXIT_QREXEC_FAILED;
  const GOptionEntry entries[] = {
    { "user", 'u', 0, G_OPTION_ARG_STRING, &user,
      "Run as USER (default: the qube's default user)", "USER" },
    { "service", 0, 0, G_OPTION_ARG_STRING, &service,
      "Call the qrexec service SERVICE[+ARGUMENT] instead of a command", "SERVICE" },
    { "no-stdin", 0, 0, G_OPTION_ARG_NONE, &no_stdin,
      "Give the command an empty stdin", NULL },
    { "no-autostart", 0, 0, G_OPTION_ARG_NONE, &no_autostart,
      "Fail when the qube is halted instead of starting it", NULL },
    { "filter-escape-chars", 0, 0, G_OPTION_ARG_NONE, &filter,
      "Write the qube's control and non-ASCII bytes as '_' (the default for a terminal)", NULL },
    { "no-filter-escape-chars", 0, 0, G_OPTION_ARG_NONE, &no_filter,
      "Pass the qube's output unchanged, even to a terminal (it may drive it)", NULL },
    { "dispvm", 0, G_OPTION_FLAG_OPTIONAL_ARG, G_OPTION_ARG_CALLBACK, (gpointer) dispvm_option_cb,
      "Run in a new disposable of TEMPLATE (default: the global default_dispvm); "
      "then no NAME is given", "TEMPLATE" },
    { NULL }
  };
  char **cmd;
  QubeQrexecRunFlags flags;

  if (!cli_parse (cli, entries, FALSE, 0, -1, argc, argv, &args, &status))
    return status;
  if (!dispvm_wanted && args[0] == NULL)
    return cli_usage_error (cli, "missing arguments, expected %s", "NAME");
  if (filter && no_filter)
    return cli_usage_error (cli, "--filter-escape-chars and --no-filter-escape-chars exclude each other");
  /* With --dispvm every argument belongs to the command. */
  cmd = dispvm_wanted ? args : args + 1;
  if (service != NULL)
    {
      if (dispvm_wanted ? args[0] != NULL : args[1] != NULL)
        return cli_usage_error (cli, "--service takes no command ('%s')", cmd[0]);
      if (*service == '\0' || *service == '+' || strchr (service, ' ') != NULL ||
          strchr (service, '/') != NULL)
        return cli_usage_error (cli, "'%s' is not a service name SERVICE[+ARGUMENT]", service);
      command = g_strdup_printf ("QUBESRPC %s dom0", service);
    }
  else if (cmd[0] == NULL)
    return cli_usage_error (cli, "no command given (qube run NAME -- COMMAND…)");
  else if (cmd[1] == NULL)
    /* One argument is a shell command line, as for qvm-run. */
    command = g_strdup (cmd[0]);
  else
    {
      GString *line = g_string_new (NULL);

      for (char **a = cmd; *a != NULL; a++)
        {
          g_autofree char *quoted = g_shell_quote (*a);

          g_string_append_printf (line, "%s%s", line->len > 0 ? " " : "", quoted);
        }
      command = g_string_free (line, FALSE);
    }

  flags = no_stdin ? QUBE_QREXEC_RUN_NO_STDIN : QUBE_QREXEC_RUN_NONE;
  /* A qube's output must not drive the terminal that shows it. */
  if (filter || (!no_filter && isatty (1)))
    flags |= QUBE_QREXEC_RUN_FILTER_STDOUT;
  if (filter || (!no_filter && isatty (2)))
    flags |= QUBE_QREXEC_RUN_FILTER_STDERR;
  manager = cli_get_manager (cli, &error);
  if (manager == NULL
      || !(dispvm_wanted
           ? run_in_dispvm (manager, dispvm_template, user, command, flags, &exit_code, &error)
           : run_in_qube (cli, manager, args[0], !no_autostart, user, command, flags,
                          &exit_code, &error)))
    {
      cli_fail (error);
      return RUN_EXIT_QREXEC_FAILED;
    }
  return exit_code;
}

const CliCommand cli_run_commands[] = {
  { "run", "NAME [--] COMMAND… | --service SERVICE[+ARG] NAME | --dispvm[=TEMPLATE] [--] COMMAND…",
    "Run a command or call a service in a qube (started first when halted)", run_run },
  { NULL }
};
