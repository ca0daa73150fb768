/* cmd-features.c — `qube features`: list, get, set and remove the
 * free-form features (string key/value pairs) of a qube, as qvm-features
 * does. */
#include "config.h"

#include "output.h"
#include "qube-cli.h"

static int
list_features (Cli *cli, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) keys = cli_admin_call_lines (cli, "admin.vm.feature.List", NULL, name, &error);
  g_autoptr(CliTable) table = cli_table_new (2, NULL);
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  if (keys == NULL)
    return cli_fail (error);
  cli_strv_sort (keys);
  json_builder_begin_object (builder);
  for (char **key = keys; *key != NULL; key++)
    {
      g_autofree char *value = cli_admin_call (cli, "admin.vm.feature.Get", *key, name, NULL,
                                               NULL);

      /* Removed meanwhile. */
      if (value == NULL)
        continue;
      cli_table_add (table, *key);
      cli_table_add (table, value);
      json_builder_set_member_name (builder, *key);
      json_builder_add_string_value (builder, value);
    }
  json_builder_end_object (builder);

  cli_print_listing (cli->json, builder, table);
  return CLI_EXIT_OK;
}

static int
run_features (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *value = NULL;
  gboolean unset = FALSE;
  int status;
  const GOptionEntry entries[] = {
    { "unset", 'D', 0, G_OPTION_ARG_NONE, &unset,
      "Remove the feature KEY", NULL },
    { NULL }
  };

  if (!cli_parse (cli, entries, TRUE, 1, 3, argc, argv, &args, &status))
    return status;
  if (unset && g_strv_length (args) != 2)
    return cli_usage_error (cli, "--unset needs exactly one feature name");

  if (unset)
    {
      g_autofree char *done = cli_admin_call (cli, "admin.vm.feature.Remove", args[1], args[0],
                                              NULL, &error);
      return done != NULL ? CLI_EXIT_OK : cli_fail (error);
    }
  if (args[1] == NULL)
    return list_features (cli, args[0]);
  if (args[2] != NULL)
    {
      g_autofree char *done = cli_admin_call (cli, "admin.vm.feature.Set", args[1], args[0],
                                              args[2], &error);
      return done != NULL ? CLI_EXIT_OK : cli_fail (error);
    }

  value = cli_admin_call (cli, "admin.vm.feature.Get", args[1], args[0], NULL, &error);
  if (value == NULL)
    return cli_fail (error);
  if (cli->json)
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, args[1]);
      json_builder_add_string_value (builder, value);
      json_builder_end_object (builder);
      cli_json_print_builder (builder);
    }
  else
    g_print ("%s\n", value);
  return CLI_EXIT_OK;
}

const CliCommand cli_feature_commands[] = {
  { "features", "NAME [KEY [VALUE]]", "List, get, set or remove a qube's features", run_features },
  { NULL }
};
