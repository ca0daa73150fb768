/* cmd-tags.c — `qube tags`: list, add and remove the tags of a qube (the
 * names qrexec policy matches with @tag:NAME), as qvm-tags does. */
#include "config.h"

#include <string.h>

#include "output.h"
#include "qube-cli.h"

static int
list_tags (Cli *cli, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) tags = cli_admin_call_lines (cli, "admin.vm.tag.List", NULL, name, &error);

  if (tags == NULL)
    return cli_fail (error);
  cli_strv_sort (tags);
  if (cli->json)
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_array (builder);
      for (char **tag = tags; *tag != NULL; tag++)
        json_builder_add_string_value (builder, *tag);
      json_builder_end_array (builder);
      cli_json_print_builder (builder);
    }
  else
    for (char **tag = tags; *tag != NULL; tag++)
      g_print ("%s\n", *tag);
  return CLI_EXIT_OK;
}

static int
run_tags (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  const char *action;
  int status;

  if (!cli_parse (cli, NULL, TRUE, 1, -1, argc, argv, &args, &status))
    return status;
  action = args[1] != NULL ? args[1] : "list";
  if (strcmp (action, "list") != 0 && strcmp (action, "add") != 0 &&
      strcmp (action, "del") != 0)
    return cli_usage_error (cli, "unknown action '%s' (expected list, add or del)",
                                 action);
  if (strcmp (action, "list") == 0 && args[1] != NULL && args[2] != NULL)
    return cli_usage_error (cli, "unexpected argument '%s'", args[2]);
  if (strcmp (action, "list") != 0 && args[2] == NULL)
    return cli_usage_error (cli, "%s needs at least one tag", action);

  if (strcmp (action, "list") == 0)
    return list_tags (cli, args[0]);

  for (char **tag = args + 2; *tag != NULL; tag++)
    {
      g_autofree char *done = cli_admin_call (cli, strcmp (action, "add") == 0
                                                   ? "admin.vm.tag.Set" : "admin.vm.tag.Remove",
                                              *tag, args[0], NULL, &error);
      if (done == NULL)
        return cli_fail (error);
    }
  return CLI_EXIT_OK;
}

const CliCommand cli_tag_commands[] = {
  { "tags", "NAME [list | add TAG… | del TAG…]", "List, add or remove a qube's tags", run_tags },
  { NULL }
};
