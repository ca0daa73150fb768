/* cmd-prefs.c — `qube prefs` (properties of one qube) and
 * `qube global-prefs` (properties of the whole system).  Both list, get,
 * set and reset the same way (as qvm-prefs and qubes-prefs do), through a
 * small table of operations on whatever holds the properties. */
#include "config.h"

#include <string.h>

#include "output.h"
#include "qube-cli.h"

typedef struct {
  gpointer target;
  char **(*list) (gpointer target);
  char *(*get) (gpointer target, const char *name, gboolean *is_default,
                QubePropertyType *type, GError **error);
  gboolean (*set) (gpointer target, const char *name, const char *value,
                   GError **error);
  gboolean (*reset) (gpointer target, const char *name, GError **error);
} PropertyHolder;

static char **
vm_list (gpointer target)
{
  return qube_vm_list_properties (target);
}

static char *
vm_get (gpointer target, const char *name, gboolean *is_default,
        QubePropertyType *type, GError **error)
{
  return qube_vm_get_property (target, name, is_default, type, error);
}

static gboolean
vm_set (gpointer target, const char *name, const char *value, GError **error)
{
  return qube_vm_set_property (target, name, value, error);
}

static gboolean
vm_reset (gpointer target, const char *name, GError **error)
{
  return qube_vm_reset_property (target, name, error);
}

static char **
global_list (gpointer target)
{
  return qube_manager_list_properties (target);
}

static char *
global_get (gpointer target, const char *name, gboolean *is_default,
            QubePropertyType *type, GError **error)
{
  g_autofree char *value = qube_manager_get_property (target, name, is_default, error);

  if (value == NULL || !qube_manager_get_property_type (target, name, type, error))
    return NULL;
  return g_steal_pointer (&value);
}

static gboolean
global_set (gpointer target, const char *name, const char *value, GError **error)
{
  return qube_manager_set_property (target, name, value, error);
}

static gboolean
global_reset (gpointer target, const char *name, GError **error)
{
  return qube_manager_reset_property (target, name, error);
}

static const char *
property_type_name (QubePropertyType type)
{
  switch ((int) type)
    {
    case QUBE_PROPERTY_TYPE_STR: return "str";
    case QUBE_PROPERTY_TYPE_INT: return "int";
    case QUBE_PROPERTY_TYPE_BOOL: return "bool";
    case QUBE_PROPERTY_TYPE_VM: return "vm";
    case QUBE_PROPERTY_TYPE_LABEL: return "label";
    default: return NULL;
    }
}

/* JSON keeps the property's type: numbers, booleans, null for "no qube". */
static void
add_json_value (JsonBuilder *builder, const char *value, QubePropertyType type)
{
  gint64 number;

  switch ((int) type)
    {
    case QUBE_PROPERTY_TYPE_INT:
      if (g_ascii_string_to_signed (value, 10, G_MININT64, G_MAXINT64, &number, NULL))
        {
          json_builder_add_int_value (builder, number);
          return;
        }
      break;
    case QUBE_PROPERTY_TYPE_BOOL:
      if (g_ascii_strcasecmp (value, "True") == 0 || g_ascii_strcasecmp (value, "False") == 0)
        {
          json_builder_add_boolean_value (builder, g_ascii_strcasecmp (value, "True") == 0);
          return;
        }
      break;
    case QUBE_PROPERTY_TYPE_VM:
      if (*value == '\0')
        {
          json_builder_add_null_value (builder);
          return;
        }
      break;
    default:
      break;
    }
  json_builder_add_string_value (builder, value);
}

static void
add_json_property (JsonBuilder *builder, const char *name, const char *value,
                   gboolean is_default, QubePropertyType type)
{
  const char *type_name = property_type_name (type);

  json_builder_begin_object (builder);
  cli_json_add_string_member (builder, "name", name);
  json_builder_set_member_name (builder, "value");
  add_json_value (builder, value, type);
  cli_json_add_string_member (builder, "type", type_name);
  json_builder_set_member_name (builder, "default");
  json_builder_add_boolean_value (builder, is_default);
  json_builder_end_object (builder);
}

static int
list_properties (Cli *cli, const PropertyHolder *holder, gboolean hide_default)
{
  g_auto(GStrv) names = holder->list (holder->target);
  g_autoptr(CliTable) table = cli_table_new (3, NULL);
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  /* Sorted, as qvm-prefs lists them. */
  /* An empty value (no netvm) prints as nothing, as in qvm-prefs. */
  cli_table_set_placeholder (table, "");
  cli_strv_sort (names);
  json_builder_begin_array (builder);
  for (char **name = names; *name != NULL; name++)
    {
      g_autoptr(GError) error = NULL;
      gboolean is_default = FALSE;
      QubePropertyType type = QUBE_PROPERTY_TYPE_STR;
      g_autofree char *value = holder->get (holder->target, *name, &is_default,
                                            &type, &error);

      if (value == NULL)
        return cli_fail (error);
      if (hide_default && is_default)
        continue;
      /* As in qvm-prefs: "D" marks a default (or inherited) value, "-" one
       * that was set on purpose. */
      cli_table_add (table, *name);
      cli_table_add (table, is_default ? "D" : "-");
      cli_table_add (table, value);
      add_json_property (builder, *name, value, is_default, type);
    }
  /* A running qube also shows the acceleration its backend uses, read
   * only ("R"): it is the backend's choice, not a property. */
  if (G_TYPE_CHECK_INSTANCE_TYPE (holder->target, QUBE_TYPE_VM))
    {
      g_autofree char *accel = qube_vm_get_accel (holder->target);

      if (accel != NULL)
        {
          cli_table_add (table, "accel");
          cli_table_add (table, "R");
          cli_table_add (table, accel);
          add_json_property (builder, "accel", accel, TRUE, QUBE_PROPERTY_TYPE_STR);
        }
    }
  json_builder_end_array (builder);

  cli_print_listing (cli->json, builder, table);
  return CLI_EXIT_OK;
}

static int
get_property (Cli *cli, const PropertyHolder *holder, const char *name)
{
  g_autoptr(GError) error = NULL;
  gboolean is_default = FALSE;
  QubePropertyType type = QUBE_PROPERTY_TYPE_STR;
  g_autofree char *value = holder->get (holder->target, name, &is_default,
                                        &type, &error);

  if (value == NULL)
    return cli_fail (error);
  if (cli->json)
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      add_json_property (builder, name, value, is_default, type);
      cli_json_print_builder (builder);
    }
  else
    g_print ("%s\n", value);
  return CLI_EXIT_OK;
}

static int
set_property (const PropertyHolder *holder, const char *name, const char *value)
{
  g_autoptr(GError) error = NULL;
  gboolean is_default = FALSE;
  QubePropertyType type = QUBE_PROPERTY_TYPE_STR;
  g_autofree char *old = holder->get (holder->target, name, &is_default,
                                      &type, &error);

  if (old == NULL)
    return cli_fail (error);
  /* qvm-prefs accepts "none" for "no qube" (e.g. netvm none). */
  if (type == QUBE_PROPERTY_TYPE_VM && g_ascii_strcasecmp (value, "none") == 0)
    value = "";
  if (!holder->set (holder->target, name, value, &error))
    return cli_fail (error);
  return CLI_EXIT_OK;
}

/* The shared part of both commands: args are [PROP [VALUE]]. */
static int
run_properties (Cli *cli, const PropertyHolder *holder, char **args,
                gboolean reset, gboolean hide_default)
{
  g_autoptr(GError) error = NULL;
  guint n_args = g_strv_length (args);

  if (reset)
    {
      if (n_args != 1)
        return cli_usage_error (cli, "--default needs exactly one property name");
      if (!holder->reset (holder->target, args[0], &error))
        return cli_fail (error);
      return CLI_EXIT_OK;
    }
  if (n_args == 0)
    return list_properties (cli, holder, hide_default);
  if (n_args == 1)
    return get_property (cli, holder, args[0]);
  return set_property (holder, args[0], args[1]);
}

/* `prefs NAME [PROP [VALUE]]` when `of_qube`, else
 * `global-prefs [PROP [VALUE]]`: the same options and the same output. */
static int
run_prefs_of (Cli *cli, int argc, char **argv, gboolean of_qube)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) vm = NULL;
  gboolean reset = FALSE;
  gboolean hide_default = FALSE;
  int status;
  const GOptionEntry entries[] = {
    { "default", 'D', 0, G_OPTION_ARG_NONE, &reset,
      "Reset PROPERTY to its default value", NULL },
    { "hide-default", 0, 0, G_OPTION_ARG_NONE, &hide_default,
      "When listing, leave out properties that have their default value", NULL },
    { NULL }
  };
  PropertyHolder holder = { NULL, vm_list, vm_get, vm_set, vm_reset };
  const PropertyHolder global_holder = {
    NULL, global_list, global_get, global_set, global_reset
  };

  if (!cli_parse (cli, entries, TRUE, of_qube ? 1 : 0, of_qube ? 3 : 2,
                       argc, argv, &args, &status))
    return status;
  if (of_qube)
    {
      vm = cli_lookup_vm (cli, args[0], &error);
      if (vm == NULL)
        return cli_fail (error);
      holder.target = vm;
      return run_properties (cli, &holder, args + 1, reset, hide_default);
    }

  holder = global_holder;
  holder.target = cli_get_manager (cli, &error);
  if (holder.target == NULL)
    return cli_fail (error);
  return run_properties (cli, &holder, args, reset, hide_default);
}

static int
run_prefs (Cli *cli, int argc, char **argv)
{
  return run_prefs_of (cli, argc, argv, TRUE);
}

static int
run_global_prefs (Cli *cli, int argc, char **argv)
{
  return run_prefs_of (cli, argc, argv, FALSE);
}

const CliCommand cli_prefs_commands[] = {
  { "prefs", "NAME [PROPERTY [VALUE]]", "List, get, set or reset a qube's properties", run_prefs },
  { "global-prefs", "[PROPERTY [VALUE]]", "List, get, set or reset the global properties", run_global_prefs },
  { NULL }
};
