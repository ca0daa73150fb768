/* cmd-power.c — `qube start`, `qube shutdown`, `qube kill`, `qube pause`,
 * `qube unpause`: a qube's power state, as qvm-start, qvm-shutdown,
 * qvm-kill, qvm-pause and qvm-unpause change it.  The library does the
 * work (qube-lifecycle.h); a started qube outlives this command. */
#include "config.h"

#include <string.h>

#include "qube-cli.h"

typedef gboolean (*PowerFunc) (QubeVm *vm, GError **error);

static int
run_power (Cli *cli, int argc, char **argv, PowerFunc func)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  if (!cli_parse (cli, NULL, FALSE, 1, -1, argc, argv, &args, &status))
    return status;
  for (char **name = args; *name != NULL; name++)
    {
      g_autoptr(QubeVm) vm = cli_lookup_vm (cli, *name, &error);

      if (vm == NULL || !func (vm, &error))
        return cli_fail (error);
    }
  return CLI_EXIT_OK;
}

static int
run_start (Cli *cli, int argc, char **argv)
{
  return run_power (cli, argc, argv, qube_vm_start);
}

static int
run_kill (Cli *cli, int argc, char **argv)
{
  return run_power (cli, argc, argv, qube_vm_kill);
}

static int
run_pause (Cli *cli, int argc, char **argv)
{
  return run_power (cli, argc, argv, qube_vm_pause);
}

static int
run_unpause (Cli *cli, int argc, char **argv)
{
  return run_power (cli, argc, argv, qube_vm_unpause);
}

static int
run_shutdown (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  gboolean wait = FALSE;
  int status;
  const GOptionEntry entries[] = {
    { "wait", 0, 0, G_OPTION_ARG_NONE, &wait,
      "Wait until the qube has stopped (killing it after its shutdown-timeout)", NULL },
    { NULL }
  };

  if (!cli_parse (cli, entries, FALSE, 1, -1, argc, argv, &args, &status))
    return status;
  for (char **name = args; *name != NULL; name++)
    {
      g_autoptr(QubeVm) vm = cli_lookup_vm (cli, *name, &error);

      if (vm == NULL || !qube_vm_shutdown (vm, wait, &error))
        return cli_fail (error);
    }
  return CLI_EXIT_OK;
}

const CliCommand cli_power_commands[] = {
  { "start", "NAME…", "Start qubes (returns once their qrexec agent answers)", run_start },
  { "shutdown", "[--wait] NAME…", "Ask qubes to power off", run_shutdown },
  { "kill", "NAME…", "Stop qubes at once", run_kill },
  { "pause", "NAME…", "Pause running qubes", run_pause },
  { "unpause", "NAME…", "Let paused qubes run again", run_unpause },
  { NULL }
};
