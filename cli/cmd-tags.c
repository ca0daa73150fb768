/* cmd-tags.c — `qube tags`: list, add and remove the tags of a qube (the
 * names qrexec policy matches with @tag:NAME), as qvm-tags does. */
#include "config.h"

#include <string.h>

#include "output.h"
#include "qube-cli.h"

static int
list_tags (Cli *cli, QubeVm *vm)
{
  g_auto(GStrv) tags = qube_vm_list_tags (vm);

  cli_strv_sort (tags);
  if (cli->json)
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_array (builder);
      for (char **tag = tags; tag != NULL && *tag != NULL; tag++)
        json_builder_add_string_value (builder, *tag);
      json_builder_end_array (builder);
      cli_json_print_builder (builder);
    }
  else
    for (char **tag = tags; tag != NULL && *tag != NULL; tag++)
      g_print ("%s\n", *tag);
  return CLI_EXIT_OK;
}

static int
run_tags (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) vm = NULL;
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

  vm = cli_lookup_vm (cli, args[0], &error);
  if (vm == NULL)
    return cli_fail (error);
  if (strcmp (action, "list") == 0)
    return list_tags (cli, vm);

  for (char **tag = args + 2; *tag != NULL; tag++)
    {
      gboolean ok = strcmp (action, "add") == 0
                      ? qube_vm_add_tag (vm, *tag, &error)
                      : qube_vm_remove_tag (vm, *tag, &error);
      if (!ok)
        return cli_fail (error);
    }
  return CLI_EXIT_OK;
}

const CliCommand cli_tag_commands[] = {
  { "tags", "NAME [list | add TAG… | del TAG…]", "List, add or remove a qube's tags", run_tags },
  { NULL }
};
