/* cmd-power.c — `qube start`, `qube shutdown`, `qube kill`, `qube pause`,
 * `qube unpause`: a qube's power state, as qvm-start, qvm-shutdown,
 * qvm-kill, qvm-pause and qvm-unpause change it, through the Admin API
 * (qubed when it runs, else in-process); a started qube outlives this
 * command. */
#include "config.h"

#include "qube-cli.h"

/* One Admin API call per qube named. */
static int
run_power (Cli *cli, int argc, char **argv, const char *method, const GOptionEntry *entries,
           const gboolean *wait)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  if (!cli_parse (cli, entries, FALSE, 1, -1, argc, argv, &args, &status))
    return status;
  for (char **name = args; *name != NULL; name++)
    {
      g_autofree char *done = cli_admin_call (cli, method, wait != NULL && *wait ? "wait" : NULL,
                                              *name, NULL, &error);

      if (done == NULL)
        return cli_fail (error);
    }
  return CLI_EXIT_OK;
}

static int
run_start (Cli *cli, int argc, char **argv)
{
  return run_power (cli, argc, argv, "admin.vm.Start", NULL, NULL);
}

static int
run_kill (Cli *cli, int argc, char **argv)
{
  return run_power (cli, argc, argv, "admin.vm.Kill", NULL, NULL);
}

static int
run_pause (Cli *cli, int argc, char **argv)
{
  return run_power (cli, argc, argv, "admin.vm.Pause", NULL, NULL);
}

static int
run_unpause (Cli *cli, int argc, char **argv)
{
  return run_power (cli, argc, argv, "admin.vm.Unpause", NULL, NULL);
}

static int
run_shutdown (Cli *cli, int argc, char **argv)
{
  gboolean wait = FALSE;
  const GOptionEntry entries[] = {
    { "wait", 0, 0, G_OPTION_ARG_NONE, &wait,
      "Wait until the qube has stopped (it is killed after its shutdown-timeout either way)", NULL },
    { NULL }
  };

  return run_power (cli, argc, argv, "admin.vm.Shutdown", entries, &wait);
}

const CliCommand cli_power_commands[] = {
  { "start", "NAME…", "Start qubes (returns once their qrexec agent answers)", run_start },
  { "shutdown", "[--wait] NAME…", "Ask qubes to power off", run_shutdown },
  { "kill", "NAME…", "Stop qubes at once", run_kill },
  { "pause", "NAME…", "Pause running qubes", run_pause },
  { "unpause", "NAME…", "Let paused qubes run again", run_unpause },
  { NULL }
};
