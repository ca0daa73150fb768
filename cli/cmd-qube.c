/* cmd-qube.c — `qube create`, `qube list`, `qube clone`, `qube remove`:
 * making, showing and deleting qubes.  The rules (names, templates in use)
 * are the library's; this file only turns arguments into calls. */
#include "config.h"

#include <string.h>

#include "output.h"
#include "qube-cli.h"

/* A property shown in a listing, or NULL when the class has no such
 * property or it is empty (a qube without netvm). */
static char *
get_listed_property (QubeVm *vm, const char *property)
{
  g_autofree char *value = qube_vm_get_property (vm, property, NULL, NULL, NULL);

  if (value == NULL || *value == '\0')
    return NULL;
  return g_steal_pointer (&value);
}

static int
compare_vm_names (gconstpointer a, gconstpointer b)
{
  QubeVm *vm_a = *(QubeVm **) a;
  QubeVm *vm_b = *(QubeVm **) b;

  return strcmp (qube_vm_get_name (vm_a), qube_vm_get_name (vm_b));
}

static int
run_create (Cli *cli, int argc, char **argv)
{
  g_autofree char *klass = NULL;
  g_autofree char *template_name = NULL;
  g_autofree char *label = NULL;
  g_auto(GStrv) properties = NULL;
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) vm = NULL;
  QubeManager *manager;
  int status;
  const GOptionEntry entries[] = {
    { "class", 'C', 0, G_OPTION_ARG_STRING, &klass,
      "The qube's class: AppVM (default), TemplateVM, StandaloneVM, DispVM", "CLASS" },
    { "template", 't', 0, G_OPTION_ARG_STRING, &template_name,
      "The template to base the qube on", "TEMPLATE" },
    { "label", 'l', 0, G_OPTION_ARG_STRING, &label,
      "The qube's label (colour)", "LABEL" },
    { "property", 0, 0, G_OPTION_ARG_STRING_ARRAY, &properties,
      "Set a property (may be repeated)", "NAME=VALUE" },
    { NULL }
  };

  if (!cli_parse (cli, entries, FALSE, 1, 1, argc, argv, &args, &status))
    return status;

  for (char **p = properties; p != NULL && *p != NULL; p++)
    if (strchr (*p, '=') == NULL || **p == '=')
      return cli_usage_error (cli, "invalid --property '%s': expected NAME=VALUE", *p);

  manager = cli_get_manager (cli, &error);
  if (manager == NULL)
    return cli_fail (error);
  vm = qube_manager_create_vm (manager, klass != NULL ? klass : "AppVM", args[0],
                               template_name, label, &error);
  if (vm == NULL)
    return cli_fail (error);

  for (char **p = properties; p != NULL && *p != NULL; p++)
    {
      g_autofree char *property = g_strdup (*p);
      char *value = strchr (property, '=');

      *value++ = '\0';
      if (!qube_vm_set_property (vm, property, value, &error))
        {
          /* Leave nothing half-made behind. */
          g_clear_object (&vm);
          qube_manager_remove_vm (manager, args[0], NULL);
          return cli_fail (error);
        }
    }
  return CLI_EXIT_OK;
}

static int
run_list (Cli *cli, int argc, char **argv)
{
  static const char *const headers[] = { "NAME", "STATE", "CLASS", "LABEL", "TEMPLATE", "NETVM" };
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) vms = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(CliTable) table = cli_table_new (G_N_ELEMENTS (headers), headers);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  QubeManager *manager;
  int status;

  if (!cli_parse (cli, NULL, TRUE, 0, -1, argc, argv, &args, &status))
    return status;
  manager = cli_get_manager (cli, &error);
  if (manager == NULL)
    return cli_fail (error);

  if (args[0] == NULL)
    {
      g_autoptr(GPtrArray) all = qube_manager_list_vms (manager);

      for (guint i = 0; i < all->len; i++)
        g_ptr_array_add (vms, g_object_ref (g_ptr_array_index (all, i)));
      g_ptr_array_sort (vms, compare_vm_names);
    }
  else
    for (char **name = args; *name != NULL; name++)
      {
        QubeVm *vm = cli_lookup_vm (cli, *name, &error);

        if (vm == NULL)
          return cli_fail (error);
        g_ptr_array_add (vms, vm);
      }

  json_builder_begin_array (builder);
  for (guint i = 0; i < vms->len; i++)
    {
      QubeVm *vm = g_ptr_array_index (vms, i);
      g_autofree char *label = get_listed_property (vm, "label");
      g_autofree char *template_name = get_listed_property (vm, "template");
      g_autofree char *netvm = get_listed_property (vm, "netvm");

      cli_table_add (table, qube_vm_get_name (vm));
      cli_table_add (table, qube_vm_get_state (vm));
      cli_table_add (table, qube_vm_get_klass (vm));
      cli_table_add (table, label);
      cli_table_add (table, template_name);
      cli_table_add (table, netvm);

      json_builder_begin_object (builder);
      cli_json_add_string_member (builder, "name", qube_vm_get_name (vm));
      cli_json_add_string_member (builder, "class", qube_vm_get_klass (vm));
      cli_json_add_string_member (builder, "state", qube_vm_get_state (vm));
      cli_json_add_string_member (builder, "uuid", qube_vm_get_uuid (vm));
      cli_json_add_string_member (builder, "label", label);
      cli_json_add_string_member (builder, "template", template_name);
      cli_json_add_string_member (builder, "netvm", netvm);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);

  cli_print_listing (cli->json, builder, table);
  return CLI_EXIT_OK;
}

static int
run_clone (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) vm = NULL;
  QubeManager *manager;
  int status;

  if (!cli_parse (cli, NULL, FALSE, 2, 2, argc, argv, &args, &status))
    return status;
  manager = cli_get_manager (cli, &error);
  if (manager == NULL)
    return cli_fail (error);
  vm = qube_manager_clone_vm (manager, args[0], args[1], &error);
  if (vm == NULL)
    return cli_fail (error);
  return CLI_EXIT_OK;
}

static int
run_remove (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  gboolean force = FALSE;
  QubeManager *manager;
  int status;
  const GOptionEntry entries[] = {
    /* Removal never asks; -f is accepted so qvm-remove habits work. */
    { "force", 'f', 0, G_OPTION_ARG_NONE, &force,
      "Do not ask for confirmation (never asked anyway)", NULL },
    { NULL }
  };

  if (!cli_parse (cli, entries, FALSE, 1, -1, argc, argv, &args, &status))
    return status;
  manager = cli_get_manager (cli, &error);
  if (manager == NULL)
    return cli_fail (error);
  for (char **name = args; *name != NULL; name++)
    if (!qube_manager_remove_vm (manager, *name, &error))
      return cli_fail (error);
  return CLI_EXIT_OK;
}

const CliCommand cli_qube_commands[] = {
  { "create", "NAME", "Create a qube", run_create },
  { "list", "[NAME…]", "List qubes with their state, class, label, template and netvm", run_list },
  { "clone", "SOURCE DESTINATION", "Copy a qube under a new name", run_clone },
  { "remove", "NAME…", "Remove qubes", run_remove },
  { NULL }
};
