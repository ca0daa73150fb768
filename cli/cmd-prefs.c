/* cmd-prefs.c — `qube prefs` (properties of one qube) and
 * `qube global-prefs` (properties of the whole system).  Both list, get,
 * set and reset the same way (as qvm-prefs and qubes-prefs do), through
 * the Admin API's admin.vm.property.* and admin.property.* calls. */
#include "config.h"

#include <string.h>

#include "output.h"
#include "qube-cli.h"

/* Whose properties: a qube's (admin.vm.property.*) or the global ones
 * (admin.property.* on dom0). */
typedef struct {
  const char *dest;
  const char *methods;
} PropertyHolder;

static char *
holder_call (Cli *cli, const PropertyHolder *holder, const char *what, const char *name,
             const char *payload, GError **error)
{
  g_autofree char *method = g_strconcat (holder->methods, what, NULL);

  return cli_admin_call (cli, method, name, holder->dest, payload, error);
}

/* A property as qubesd serializes it: "default=True|False type=TYPE VALUE". */
static char *
parse_property (const char *text, gboolean *is_default, QubePropertyType *type,
                GError **error)
{
  static const char *const types[] = { "str", "int", "bool", "vm", "label" };
  static const QubePropertyType type_values[] = {
    QUBE_PROPERTY_TYPE_STR, QUBE_PROPERTY_TYPE_INT, QUBE_PROPERTY_TYPE_BOOL,
    QUBE_PROPERTY_TYPE_VM, QUBE_PROPERTY_TYPE_LABEL,
  };
  const char *type_name, *value;

  if (g_str_has_prefix (text, "default=True "))
    *is_default = TRUE;
  else if (g_str_has_prefix (text, "default=False "))
    *is_default = FALSE;
  else
    goto bad;
  type_name = strchr (text, ' ') + 1;
  value = g_str_has_prefix (type_name, "type=") ? strchr (type_name, ' ') : NULL;
  if (value == NULL)
    goto bad;
  type_name += strlen ("type=");
  for (gsize i = 0; i < G_N_ELEMENTS (types); i++)
    if (strlen (types[i]) == (gsize) (value - type_name)
        && strncmp (type_name, types[i], value - type_name) == 0)
      {
        *type = type_values[i];
        return g_strdup (value + 1);
      }
bad:
  g_set_error (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL, "malformed property reply '%s'", text);
  return NULL;
}

static char *
holder_get (Cli *cli, const PropertyHolder *holder, const char *name, gboolean *is_default,
            QubePropertyType *type, GError **error)
{
  g_autofree char *reply = holder_call (cli, holder, "Get", name, NULL, error);

  return reply != NULL ? parse_property (reply, is_default, type, error) : NULL;
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
  g_autoptr(GError) error = NULL;
  g_autofree char *method = g_strconcat (holder->methods, "GetAll", NULL);
  g_auto(GStrv) lines = cli_admin_call_lines (cli, method, NULL, holder->dest, &error);
  g_autoptr(CliTable) table = cli_table_new (3, NULL);
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  if (lines == NULL)
    return cli_fail (error);
  /* Sorted, as qvm-prefs lists them (and as GetAll answers). */
  cli_strv_sort (lines);
  /* An empty value (no netvm) prints as nothing, as in qvm-prefs. */
  cli_table_set_placeholder (table, "");
  json_builder_begin_array (builder);
  for (char **line = lines; *line != NULL; line++)
    {
      g_autofree char *unescaped = cli_unescape_line (*line);
      char *serialized = strchr (unescaped, ' ');
      gboolean is_default = FALSE;
      QubePropertyType type = QUBE_PROPERTY_TYPE_STR;
      g_autofree char *value = NULL;

      if (serialized == NULL)
        return cli_fail_printf ("malformed property list line '%s'", *line);
      *serialized++ = '\0';
      value = parse_property (serialized, &is_default, &type, &error);
      if (value == NULL)
        return cli_fail (error);
      if (hide_default && is_default)
        continue;
      /* As in qvm-prefs: "D" marks a default (or inherited) value, "-" one
       * that was set on purpose. */
      cli_table_add (table, unescaped);
      cli_table_add (table, is_default ? "D" : "-");
      cli_table_add (table, value);
      add_json_property (builder, unescaped, value, is_default, type);
    }
  /* A running qube also shows the acceleration its backend uses, read
   * only ("R"): it is the backend's choice, not a property. */
  if (!g_str_equal (holder->dest, "dom0"))
    {
      g_autoptr(QubeVm) vm = cli_lookup_vm (cli, holder->dest, NULL);
      g_autofree char *accel = vm != NULL ? qube_vm_get_accel (vm) : NULL;

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
  g_autofree char *value = holder_get (cli, holder, name, &is_default, &type, &error);

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
set_property (Cli *cli, const PropertyHolder *holder, const char *name, const char *value)
{
  g_autoptr(GError) error = NULL;
  gboolean is_default = FALSE;
  QubePropertyType type = QUBE_PROPERTY_TYPE_STR;
  g_autofree char *old = holder_get (cli, holder, name, &is_default, &type, &error);
  g_autofree char *done = NULL;

  if (old == NULL)
    return cli_fail (error);
  /* qvm-prefs accepts "none" for "no qube" (e.g. netvm none). */
  if (type == QUBE_PROPERTY_TYPE_VM && g_ascii_strcasecmp (value, "none") == 0)
    value = "";
  done = holder_call (cli, holder, "Set", name, value, &error);
  return done != NULL ? CLI_EXIT_OK : cli_fail (error);
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
      g_autofree char *done = holder_call (cli, holder, "Reset", args[0], NULL, &error);

      return done != NULL ? CLI_EXIT_OK : cli_fail (error);
    }
  if (n_args == 0)
    return list_properties (cli, holder, hide_default);
  if (n_args == 1)
    return get_property (cli, holder, args[0]);
  return set_property (cli, holder, args[0], args[1]);
}

/* `prefs NAME [PROP [VALUE]]` when `of_qube`, else
 * `global-prefs [PROP [VALUE]]`: the same options and the same output. */
static int
run_prefs_of (Cli *cli, int argc, char **argv, gboolean of_qube)
{
  g_auto(GStrv) args = NULL;
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
  PropertyHolder holder = { "dom0", "admin.property." };

  if (!cli_parse (cli, entries, TRUE, of_qube ? 1 : 0, of_qube ? 3 : 2,
                       argc, argv, &args, &status))
    return status;
  if (of_qube)
    {
      holder = (PropertyHolder) { args[0], "admin.vm.property." };
      return run_properties (cli, &holder, args + 1, reset, hide_default);
    }
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
