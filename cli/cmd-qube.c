/* cmd-qube.c — `qube create`, `qube list`, `qube clone`, `qube remove`:
 * making, showing and deleting qubes.  The rules (names, templates in use)
 * are the library's; this file only turns arguments into calls. */
#include "config.h"

#include <string.h>

#include "output.h"
#include "qube-cli.h"

/* The properties of qube `name` shown in a listing, from one
 * admin.vm.property.GetAll: property → value, without the properties the
 * class lacks or that are empty (a qube without netvm).  Each line is
 * "PROPERTY default=… type=… VALUE", with backslash and newline escaped. */
static GHashTable *
get_listed_properties (Cli *cli, const char *name)
{
  g_auto(GStrv) lines = cli_admin_call_lines (cli, "admin.vm.property.GetAll", NULL, name, NULL);
  GHashTable *props = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  for (char **l = lines; l != NULL && *l != NULL; l++)
    {
      /* The value follows the third space. */
      const char *key_end = strchr (*l, ' ');
      const char *value = key_end;

      for (int i = 0; i < 2 && value != NULL; i++)
        value = strchr (value + 1, ' ');
      if (value == NULL || value[1] == '\0')
        continue;
      g_hash_table_replace (props, g_strndup (*l, (gsize) (key_end - *l)),
                            cli_unescape_line (value + 1));
    }
  return props;
}

/* One admin.vm.List line: "NAME class=CLASS state=STATE uuid=UUID". */
typedef struct {
  char *name, *klass, *state, *uuid;
} ListedQube;

static gboolean
parse_listed_qube (char *line, ListedQube *q)
{
  g_auto(GStrv) fields = g_strsplit (line, " ", -1);

  if (g_strv_length (fields) != 4 || !g_str_has_prefix (fields[1], "class=")
      || !g_str_has_prefix (fields[2], "state=") || !g_str_has_prefix (fields[3], "uuid="))
    return FALSE;
  q->name = g_strdup (fields[0]);
  q->klass = g_strdup (fields[1] + strlen ("class="));
  q->state = g_strdup (fields[2] + strlen ("state="));
  q->uuid = g_strdup (fields[3] + strlen ("uuid="));
  return TRUE;
}

static void
listed_qube_clear (ListedQube *q)
{
  g_free (q->name);
  g_free (q->klass);
  g_free (q->state);
  g_free (q->uuid);
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
  g_autofree char *method = NULL;
  g_autofree char *payload = NULL;
  g_autofree char *done = NULL;
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

  method = g_strconcat ("admin.vm.Create.", klass != NULL ? klass : "AppVM", NULL);
  payload = label != NULL ? g_strdup_printf ("name=%s label=%s", args[0], label)
                          : g_strdup_printf ("name=%s", args[0]);
  done = cli_admin_call (cli, method, template_name, "dom0", payload, &error);
  if (done == NULL)
    return cli_fail (error);

  for (char **p = properties; p != NULL && *p != NULL; p++)
    {
      g_autofree char *property = g_strdup (*p);
      g_autofree char *set = NULL;
      char *value = strchr (property, '=');

      *value++ = '\0';
      set = cli_admin_call (cli, "admin.vm.property.Set", property, args[0], value, &error);
      if (set == NULL)
        {
          /* Leave nothing half-made behind. */
          g_autofree char *removed = cli_admin_call (cli, "admin.vm.Remove", NULL, args[0],
                                                     NULL, NULL);
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
  g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(CliTable) table = cli_table_new (G_N_ELEMENTS (headers), headers);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  gboolean all = FALSE;
  int status;
  const GOptionEntry entries[] = {
    { "all", 'a', 0, G_OPTION_ARG_NONE, &all,
      "Also list internal qubes (preloaded disposables waiting in their queue)", NULL },
    { NULL }
  };

  if (!cli_parse (cli, entries, TRUE, 0, -1, argc, argv, &args, &status))
    return status;

  /* All qubes (sorted by name), or the ones named, in that order. */
  for (char **name = args; name == args || *name != NULL; name++)
    {
      g_auto(GStrv) listed = cli_admin_call_lines (cli, "admin.vm.List", NULL,
                                                   *name != NULL ? *name : "dom0", &error);

      if (listed == NULL)
        return cli_fail (error);
      for (char **l = listed; *l != NULL; l++)
        {
          g_autofree char *prefix = g_strconcat (*name != NULL ? *name : "", " ", NULL);

          /* A qube's own entry: listing dom0 lists every qube. */
          if (*name == NULL || g_str_has_prefix (*l, prefix))
            g_ptr_array_add (lines, g_strdup (*l));
        }
      if (*name == NULL)
        break;
    }

  json_builder_begin_array (builder);
  for (guint i = 0; i < lines->len; i++)
    {
      ListedQube q = { NULL };
      g_autoptr(GHashTable) props = NULL;
      const char *label, *template_name, *netvm;

      if (!parse_listed_qube (lines->pdata[i], &q))
        return cli_fail_printf ("malformed qube list line '%s'", (char *) lines->pdata[i]);
      /* Hidden unless asked for, or named. */
      if (!all && args[0] == NULL)
        {
          g_autofree char *internal = cli_admin_call (cli, "admin.vm.feature.Get", "internal",
                                                      q.name, NULL, NULL);

          if (internal != NULL && *internal != '\0' && !g_str_equal (internal, "0"))
            {
              listed_qube_clear (&q);
              continue;
            }
        }
      props = get_listed_properties (cli, q.name);
      label = g_hash_table_lookup (props, "label");
      template_name = g_hash_table_lookup (props, "template");
      netvm = g_hash_table_lookup (props, "netvm");

      cli_table_add (table, q.name);
      cli_table_add (table, q.state);
      cli_table_add (table, q.klass);
      cli_table_add (table, label);
      cli_table_add (table, template_name);
      cli_table_add (table, netvm);

      json_builder_begin_object (builder);
      cli_json_add_string_member (builder, "name", q.name);
      cli_json_add_string_member (builder, "class", q.klass);
      cli_json_add_string_member (builder, "state", q.state);
      cli_json_add_string_member (builder, "uuid", q.uuid);
      cli_json_add_string_member (builder, "label", label);
      cli_json_add_string_member (builder, "template", template_name);
      cli_json_add_string_member (builder, "netvm", netvm);
      json_builder_end_object (builder);
      listed_qube_clear (&q);
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
  g_autofree char *payload = NULL;
  g_autofree char *done = NULL;
  int status;

  if (!cli_parse (cli, NULL, FALSE, 2, 2, argc, argv, &args, &status))
    return status;
  payload = g_strdup_printf ("name=%s", args[1]);
  done = cli_admin_call (cli, "admin.vm.Clone", NULL, args[0], payload, &error);
  if (done == NULL)
    return cli_fail (error);
  return CLI_EXIT_OK;
}

static int
run_remove (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  gboolean force = FALSE;
  int status;
  const GOptionEntry entries[] = {
    /* Removal never asks; -f is accepted so qvm-remove habits work. */
    { "force", 'f', 0, G_OPTION_ARG_NONE, &force,
      "Do not ask for confirmation (never asked anyway)", NULL },
    { NULL }
  };

  if (!cli_parse (cli, entries, FALSE, 1, -1, argc, argv, &args, &status))
    return status;
  for (char **name = args; *name != NULL; name++)
    {
      g_autofree char *done = cli_admin_call (cli, "admin.vm.Remove", NULL, *name, NULL, &error);

      if (done == NULL)
        return cli_fail (error);
    }
  return CLI_EXIT_OK;
}

const CliCommand cli_qube_commands[] = {
  { "create", "NAME", "Create a qube", run_create },
  { "list", "[--all] [NAME…]", "List qubes with their state, class, label, template and netvm", run_list },
  { "clone", "SOURCE DESTINATION", "Copy a qube under a new name", run_clone },
  { "remove", "NAME…", "Remove qubes", run_remove },
  { NULL }
};
