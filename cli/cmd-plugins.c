/* cmd-plugins.c — `qube plugins`: what the plugin registry found, what it
 * loaded, and why it refused or cannot use the others. */
#include "config.h"

#include "output.h"
#include "qube-cli.h"

static const char *
status_name (QubePluginStatus status)
{
  switch (status)
    {
    case QUBE_PLUGIN_LOADED: return "loaded";
    case QUBE_PLUGIN_UNAVAILABLE: return "unavailable";
    case QUBE_PLUGIN_REFUSED: return "refused";
    default: return "unknown";
    }
}

static const struct {
  QubePluginKind kind;
  const char *name;
} kind_names[] = {
  { QUBE_PLUGIN_KIND_BACKEND, "backend" },
  { QUBE_PLUGIN_KIND_VCHAN, "vchan" },
  { QUBE_PLUGIN_KIND_STORAGE, "storage" },
  { QUBE_PLUGIN_KIND_NET, "net" },
};

static int
run_plugins (Cli *cli, int argc, char **argv)
{
  static const char *const headers[] = { "NAME", "STATUS", "KINDS", "VERSION", "PATH", "DETAIL" };
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  QubeManager *manager;
  g_autoptr(GPtrArray) plugins = NULL;
  g_autoptr(CliTable) table = cli_table_new (G_N_ELEMENTS (headers), headers);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  int status;

  if (!cli_parse (cli, NULL, TRUE, 0, 0, argc, argv, &args, &status))
    return status;

  manager = cli_get_manager (cli, &error);
  if (manager == NULL)
    return cli_fail (error);
  plugins = qube_plugin_registry_list (qube_manager_get_plugins (manager));

  json_builder_begin_array (builder);
  for (guint i = 0; plugins != NULL && i < plugins->len; i++)
    {
      QubePluginInfo *info = g_ptr_array_index (plugins, i);
      QubePluginKind kinds = qube_plugin_info_get_kinds (info);
      QubePluginStatus plugin_status = qube_plugin_info_get_status (info);
      const char *reason = qube_plugin_info_get_reason (info);
      g_autoptr(GPtrArray) kind_list = g_ptr_array_new ();
      g_autofree char *kinds_text = NULL;
      g_autofree char *detail = NULL;

      for (gsize k = 0; k < G_N_ELEMENTS (kind_names); k++)
        if (kinds & kind_names[k].kind)
          g_ptr_array_add (kind_list, (gpointer) kind_names[k].name);
      g_ptr_array_add (kind_list, NULL);
      kinds_text = g_strjoinv (",", (char **) kind_list->pdata);
      /* Why it is not usable, or else how it works here (e.g. kvm's
       * acceleration). */
      if (plugin_status == QUBE_PLUGIN_LOADED)
        {
          reason = NULL;
          detail = qube_plugin_info_get_detail (info);
        }

      cli_table_add (table, qube_plugin_info_get_name (info));
      cli_table_add (table, status_name (plugin_status));
      cli_table_add (table, kinds_text);
      cli_table_add (table, qube_plugin_info_get_version (info));
      cli_table_add (table, qube_plugin_info_get_path (info));
      cli_table_add (table, reason != NULL ? reason : detail);

      json_builder_begin_object (builder);
      cli_json_add_string_member (builder, "name", qube_plugin_info_get_name (info));
      cli_json_add_string_member (builder, "status", status_name (plugin_status));
      json_builder_set_member_name (builder, "kinds");
      json_builder_begin_array (builder);
      for (guint k = 0; k + 1 < kind_list->len; k++)
        json_builder_add_string_value (builder, g_ptr_array_index (kind_list, k));
      json_builder_end_array (builder);
      cli_json_add_string_member (builder, "version", qube_plugin_info_get_version (info));
      cli_json_add_string_member (builder, "description", qube_plugin_info_get_description (info));
      cli_json_add_string_member (builder, "license", qube_plugin_info_get_license (info));
      cli_json_add_int_member (builder, "abi_major", qube_plugin_info_get_abi_major (info));
      cli_json_add_int_member (builder, "abi_minor", qube_plugin_info_get_abi_minor (info));
      cli_json_add_string_member (builder, "path", qube_plugin_info_get_path (info));
      cli_json_add_string_member (builder, "reason", reason);
      cli_json_add_string_member (builder, "detail", detail);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);

  cli_print_listing (cli->json, builder, table);
  return CLI_EXIT_OK;
}

const CliCommand cli_plugin_commands[] = {
  { "plugins", "", "List plugins: loaded, unavailable or refused, and why", run_plugins },
  { NULL }
};
