/* qube-cli.c — option parsing, state directory and error reporting shared
 * by every `qube` subcommand (see qube-cli.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qube-cli.h"

/* Messages go on one line: a script reads the first line of stderr. */
static void
print_one_line (const char *prefix, const char *message)
{
  g_autofree char *line = g_strdup (message);

  g_strdelimit (line, "\r\n", ' ');
  g_strchomp (line);
  fprintf (stderr, "qube: %s%s\n", prefix, line);
}

int
cli_fail (GError *error)
{
  print_one_line ("", error->message);
  return CLI_EXIT_FAILED;
}

int
cli_fail_printf (const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list ap;

  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);
  print_one_line ("", message);
  return CLI_EXIT_FAILED;
}

int
cli_usage_error (Cli *cli, const char *format, ...)
{
  g_autofree char *message = NULL;
  g_autofree char *prefix = NULL;
  g_autofree char *full = NULL;
  va_list ap;

  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);
  if (cli->command != NULL)
    {
      prefix = g_strdup_printf ("%s: ", cli->command->name);
      full = g_strdup_printf ("%s (see 'qube %s --help')", message,
                              cli->command->name);
    }
  else
    {
      prefix = g_strdup ("");
      full = g_strdup_printf ("%s (see 'qube --help')", message);
    }
  print_one_line (prefix, full);
  return CLI_EXIT_USAGE;
}

gboolean
cli_parse (Cli *cli, const GOptionEntry *entries,
                gboolean with_json, int min_args, int max_args,
                int argc, char **argv, char ***args_out, int *status)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *prgname = g_strdup_printf ("qube %s", cli->command->name);
  g_auto(GStrv) args = NULL;
  g_autofree char *state_dir = NULL;
  gboolean json = FALSE;
  int n_args;
  const GOptionEntry common_entries[] = {
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
      "Keep state in DIR (default: $QUBE_STATE_DIR, else the system's)", "DIR" },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &args, NULL, NULL },
    { NULL }
  };
  const GOptionEntry json_entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json,
      "Print JSON instead of a table", NULL },
    { NULL }
  };

  /* The usage line GOption prints begins with the program name. */
  g_set_prgname (prgname);
  context = g_option_context_new (cli->command->params);
  g_option_context_set_summary (context, cli->command->summary);
  if (entries != NULL)
    g_option_context_add_main_entries (context, entries, NULL);
  if (with_json)
    g_option_context_add_main_entries (context, json_entries, NULL);
  g_option_context_add_main_entries (context, common_entries, NULL);

  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      *status = cli_usage_error (cli, "%s", error->message);
      return FALSE;
    }
  if (state_dir != NULL)
    {
      g_free (cli->state_dir);
      cli->state_dir = g_steal_pointer (&state_dir);
    }
  cli->json = json;

  if (args == NULL)
    args = g_new0 (char *, 1);
  n_args = (int) g_strv_length (args);
  if (n_args < min_args)
    {
      *status = cli_usage_error (cli, "missing arguments, expected %s",
                                 cli->command->params);
      return FALSE;
    }
  if (max_args >= 0 && n_args > max_args)
    {
      *status = cli_usage_error (cli, "unexpected argument '%s'",
                                      args[max_args]);
      return FALSE;
    }
  *args_out = g_steal_pointer (&args);
  return TRUE;
}

char *
cli_get_state_dir (Cli *cli)
{
  const char *env = g_getenv ("QUBE_STATE_DIR");

  if (cli->state_dir != NULL)
    return g_strdup (cli->state_dir);
  if (env != NULL && *env != '\0')
    return g_strdup (env);
  return qube_manager_default_state_dir ();
}

QubeManager *
cli_get_manager (Cli *cli, GError **error)
{
  g_autofree char *state_dir = NULL;

  if (cli->manager != NULL)
    return cli->manager;
  state_dir = cli_get_state_dir (cli);
  cli->manager = qube_manager_new (state_dir, error);
  return cli->manager;
}

QubeVm *
cli_lookup_vm (Cli *cli, const char *name, GError **error)
{
  QubeManager *manager = cli_get_manager (cli, error);

  if (manager == NULL)
    return NULL;
  return qube_manager_lookup (manager, name, error);
}

int
cli_run_group (Cli *cli, const CliCommand *subs, int argc, char **argv)
{
  const char *group = cli->command->name;
  gsize prefix = strlen (group) + 1;

  if (argc < 2)
    return cli_usage_error (cli, "no subcommand given");
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)
    {
      gsize width = 0;

      for (const CliCommand *c = subs; c->name != NULL; c++)
        width = MAX (width, strlen (c->name + prefix));
      printf ("Usage:\n  qube %s SUBCOMMAND [OPTION…] [ARGUMENTS…]\n\n%s\n\nSubcommands:\n",
              group, cli->command->summary);
      for (const CliCommand *c = subs; c->name != NULL; c++)
        printf ("  %-*s  %s\n", (int) width, c->name + prefix, c->summary);
      printf ("\nRun 'qube %s SUBCOMMAND --help' for the options of one.\n", group);
      return CLI_EXIT_OK;
    }
  for (const CliCommand *c = subs; c->name != NULL; c++)
    if (strcmp (c->name + prefix, argv[1]) == 0)
      {
        cli->command = c;
        return c->run (cli, argc - 1, argv + 1);
      }
  return cli_usage_error (cli, "unknown subcommand '%s'", argv[1]);
}
