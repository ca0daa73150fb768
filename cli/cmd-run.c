/* cmd-run.c — `qube run`: run a command or call a service in a running
 * qube through qrexec, with stdin, stdout and stderr passed through and
 * the command's exit code as this command's exit status (as qvm-run
 * --pass-io does). */
#include "config.h"

#include <string.h>

#include "qube-cli.h"

/* qube run's own failures (no daemon, connection lost) are qrexec
 * failures for the caller, as in Qubes. */
#define RUN_EXIT_QREXEC_FAILED 125

static int
run_run (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *user = NULL;
  g_autofree char *service = NULL;
  g_autofree char *command = NULL;
  gboolean no_stdin = FALSE;
  QubeManager *manager;
  int status, exit_code = RUN_EXIT_QREXEC_FAILED;
  const GOptionEntry entries[] = {
    { "user", 'u', 0, G_OPTION_ARG_STRING, &user,
      "Run as USER (default: the qube's default user)", "USER" },
    { "service", 0, 0, G_OPTION_ARG_STRING, &service,
      "Call the qrexec service SERVICE[+ARGUMENT] instead of a command", "SERVICE" },
    { "no-stdin", 0, 0, G_OPTION_ARG_NONE, &no_stdin,
      "Give the command an empty stdin", NULL },
    { NULL }
  };

  if (!cli_parse (cli, entries, FALSE, 1, -1, argc, argv, &args, &status))
    return status;
  if (service != NULL)
    {
      if (args[1] != NULL)
        return cli_usage_error (cli, "--service takes no command ('%s')", args[1]);
      if (*service == '\0' || *service == '+' || strchr (service, ' ') != NULL ||
          strchr (service, '/') != NULL)
        return cli_usage_error (cli, "'%s' is not a service name SERVICE[+ARGUMENT]", service);
      command = g_strdup_printf ("QUBESRPC %s dom0", service);
    }
  else if (args[1] == NULL)
    return cli_usage_error (cli, "no command given (qube run NAME -- COMMAND…)");
  else if (args[2] == NULL)
    /* One argument is a shell command line, as for qvm-run. */
    command = g_strdup (args[1]);
  else
    {
      GString *line = g_string_new (NULL);

      for (char **a = args + 1; *a != NULL; a++)
        {
          g_autofree char *quoted = g_shell_quote (*a);

          g_string_append_printf (line, "%s%s", line->len > 0 ? " " : "", quoted);
        }
      command = g_string_free (line, FALSE);
    }

  manager = cli_get_manager (cli, &error);
  if (manager == NULL || !qube_qrexec_run (manager, args[0], user, command,
                                           no_stdin ? QUBE_QREXEC_RUN_NO_STDIN : QUBE_QREXEC_RUN_NONE,
                                           0, 1, 2, &exit_code, &error))
    {
      cli_fail (error);
      return RUN_EXIT_QREXEC_FAILED;
    }
  return exit_code;
}

const CliCommand cli_run_commands[] = {
  { "run", "NAME [--] COMMAND… | --service SERVICE[+ARG] NAME",
    "Run a command or call a service in a running qube", run_run },
  { NULL }
};
