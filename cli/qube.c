/* qube.c — the `qube` command: global options and the table that
 * dispatches to one subcommand.  Each group of subcommands lives in its
 * own cmd-*.c file and is listed in command_groups below. */
#include "config.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "qube-cli.h"

/* In the order `qube --help` lists them. */
static const CliCommand *const command_groups[] = {
  cli_qube_commands,
  cli_power_commands,
  cli_template_commands,
  cli_prefs_commands,
  cli_feature_commands,
  cli_tag_commands,
  cli_pool_commands,
  cli_volume_commands,
  cli_plugin_commands,
  cli_run_commands,
  cli_policy_commands,
};

static const CliCommand *
find_command (const char *name)
{
  for (gsize g = 0; g < G_N_ELEMENTS (command_groups); g++)
    for (const CliCommand *c = command_groups[g]; c->name != NULL; c++)
      if (strcmp (c->name, name) == 0)
        return c;
  return NULL;
}

static char *
describe_commands (void)
{
  GString *text = g_string_new ("Commands:");
  gsize width = 0;

  for (gsize g = 0; g < G_N_ELEMENTS (command_groups); g++)
    for (const CliCommand *c = command_groups[g]; c->name != NULL; c++)
      width = MAX (width, strlen (c->name));
  for (gsize g = 0; g < G_N_ELEMENTS (command_groups); g++)
    for (const CliCommand *c = command_groups[g]; c->name != NULL; c++)
      g_string_append_printf (text, "\n  %-*s  %s", (int) width, c->name,
                              c->summary);
  g_string_append (text, "\n\nRun 'qube COMMAND --help' for the options of one command.");
  return g_string_free (text, FALSE);
}

int
main (int argc, char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *commands = NULL;
  g_autofree char *state_dir = NULL;
  gboolean version = FALSE;
  gboolean embedded = FALSE;
  Cli cli = { NULL, };
  int status;
  const GOptionEntry entries[] = {
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
      "Keep state in DIR (default: $QUBE_STATE_DIR, else the system's)", "DIR" },
    { "embedded", 0, 0, G_OPTION_ARG_NONE, &embedded,
      "Work on the state directory in-process, even when qubed runs", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version,
      "Print the version and exit", NULL },
    { NULL }
  };

  setlocale (LC_ALL, "");
  g_set_prgname ("qube");

  context = g_option_context_new ("COMMAND [ARGUMENTS…]");
  g_option_context_set_summary (context,
                                "Manage qubes: compartments with templates, properties, "
                                "features and tags.");
  commands = describe_commands ();
  g_option_context_set_description (context, commands);
  g_option_context_add_main_entries (context, entries, NULL);
  /* Stop at the command name: what follows belongs to the command. */
  g_option_context_set_strict_posix (context, TRUE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return cli_usage_error (&cli, "%s", error->message);

  if (version)
    {
      printf ("qube (libqube) %s\n", PACKAGE_VERSION);
      return CLI_EXIT_OK;
    }
  if (argc < 2)
    return cli_usage_error (&cli, "no command given");

  cli.command = find_command (argv[1]);
  if (cli.command == NULL)
    return cli_usage_error (&cli, "unknown command '%s'", argv[1]);
  cli.state_dir = g_steal_pointer (&state_dir);
  cli.embedded = embedded;

  status = cli.command->run (&cli, argc - 1, argv + 1);

  cli_admin_close (&cli);
  g_clear_object (&cli.manager);
  g_free (cli.state_dir);
  return status;
}
