/* cmd-pool.c — `qube pool add|list|info|remove`: the storage pools that
 * hold the volumes of qubes, as qvm-pool manages them. */
#include "config.h"

#include <string.h>

#include "output.h"
#include "qube-cli.h"

/* "options": { "key": "value", ... } from key=value strings. */
static void
add_options_member (JsonBuilder *builder, char **options)
{
  json_builder_set_member_name (builder, "options");
  json_builder_begin_object (builder);
  for (char **option = options; *option != NULL; option++)
    {
      g_auto(GStrv) kv = g_strsplit (*option, "=", 2);
      cli_json_add_string_member (builder, kv[0], kv[1]);
    }
  json_builder_end_object (builder);
}

static int
run_pool_add (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeStoragePool) pool = NULL;
  QubeManager *manager;
  int status;

  if (!cli_parse (cli, NULL, FALSE, 2, -1, argc, argv, &args, &status))
    return status;
  for (char **option = args + 2; *option != NULL; option++)
    if (strchr (*option, '=') == NULL || **option == '=')
      return cli_usage_error (cli, "invalid option '%s': expected KEY=VALUE", *option);
  manager = cli_get_manager (cli, &error);
  if (manager == NULL)
    return cli_fail (error);
  pool = qube_manager_add_pool (manager, args[0], args[1], (const char *const *) args + 2,
                                &error);
  if (pool == NULL)
    return cli_fail (error);
  return CLI_EXIT_OK;
}

static int
run_pool_list (Cli *cli, int argc, char **argv)
{
  static const char *const headers[] = { "NAME", "DRIVER", "OPTIONS" };
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) pools = NULL;
  g_autoptr(CliTable) table = cli_table_new (G_N_ELEMENTS (headers), headers);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  QubeManager *manager;
  int status;

  if (!cli_parse (cli, NULL, TRUE, 0, 0, argc, argv, &args, &status))
    return status;
  manager = cli_get_manager (cli, &error);
  if (manager == NULL)
    return cli_fail (error);
  pools = qube_manager_list_pools (manager, &error);
  if (pools == NULL)
    return cli_fail (error);

  json_builder_begin_array (builder);
  for (guint i = 0; i < pools->len; i++)
    {
      QubeStoragePool *pool = pools->pdata[i];
      g_auto(GStrv) options = qube_storage_pool_get_options (pool);
      g_autofree char *joined = g_strjoinv (" ", options);

      cli_table_add (table, qube_storage_pool_get_name (pool));
      cli_table_add (table, qube_storage_pool_get_driver (pool));
      cli_table_add (table, joined);

      json_builder_begin_object (builder);
      cli_json_add_string_member (builder, "name", qube_storage_pool_get_name (pool));
      cli_json_add_string_member (builder, "driver", qube_storage_pool_get_driver (pool));
      add_options_member (builder, options);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  cli_print_listing (cli->json, builder, table);
  return CLI_EXIT_OK;
}

static int
run_pool_info (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeStoragePool) pool = NULL;
  g_autoptr(CliTable) table = cli_table_new (2, NULL);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autofree char *mode = NULL;
  g_autofree char *location = NULL;
  g_autofree char *size_s = NULL;
  g_autofree char *usage_s = NULL;
  g_autofree char *formats_s = NULL;
  g_autofree char *options_s = NULL;
  g_autofree char *volumes_s = NULL;
  g_auto(GStrv) formats = NULL;
  g_auto(GStrv) options = NULL;
  g_auto(GStrv) volumes = NULL;
  guint64 size = 0, usage = 0;
  QubeManager *manager;
  int status;

  if (!cli_parse (cli, NULL, TRUE, 1, 1, argc, argv, &args, &status))
    return status;
  manager = cli_get_manager (cli, &error);
  if (manager == NULL)
    return cli_fail (error);
  pool = qube_manager_lookup_pool (manager, args[0], &error);
  if (pool == NULL
      || !qube_storage_pool_query (pool, &size, &usage, &mode, &location, &formats, &error)
      || (volumes = qube_storage_pool_list_volumes (pool, &error)) == NULL)
    return cli_fail (error);
  options = qube_storage_pool_get_options (pool);

  size_s = cli_format_bytes (size);
  usage_s = cli_format_bytes (usage);
  formats_s = g_strjoinv (" ", formats);
  options_s = g_strjoinv (" ", options);
  volumes_s = g_strjoinv (" ", volumes);
  {
    const char *rows[][2] = {
      { "name", qube_storage_pool_get_name (pool) },
      { "driver", qube_storage_pool_get_driver (pool) },
      { "mode", mode },
      { "location", location },
      { "size", size_s },
      { "usage", usage_s },
      { "formats", formats_s },
      { "options", options_s },
      { "volumes", volumes_s },
    };
    for (gsize i = 0; i < G_N_ELEMENTS (rows); i++)
      {
        cli_table_add (table, rows[i][0]);
        cli_table_add (table, rows[i][1]);
      }
  }

  json_builder_begin_object (builder);
  cli_json_add_string_member (builder, "name", qube_storage_pool_get_name (pool));
  cli_json_add_string_member (builder, "driver", qube_storage_pool_get_driver (pool));
  cli_json_add_string_member (builder, "mode", mode);
  cli_json_add_string_member (builder, "location", location);
  cli_json_add_int_member (builder, "size", (gint64) size);
  cli_json_add_int_member (builder, "usage", (gint64) usage);
  json_builder_set_member_name (builder, "formats");
  json_builder_begin_array (builder);
  for (char **f = formats; *f != NULL; f++)
    json_builder_add_string_value (builder, *f);
  json_builder_end_array (builder);
  add_options_member (builder, options);
  json_builder_set_member_name (builder, "volumes");
  json_builder_begin_array (builder);
  for (char **v = volumes; *v != NULL; v++)
    json_builder_add_string_value (builder, *v);
  json_builder_end_array (builder);
  json_builder_end_object (builder);

  cli_print_listing (cli->json, builder, table);
  return CLI_EXIT_OK;
}

static int
run_pool_remove (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  QubeManager *manager;
  int status;

  if (!cli_parse (cli, NULL, FALSE, 1, -1, argc, argv, &args, &status))
    return status;
  manager = cli_get_manager (cli, &error);
  if (manager == NULL)
    return cli_fail (error);
  for (char **name = args; *name != NULL; name++)
    if (!qube_manager_remove_pool (manager, *name, &error))
      return cli_fail (error);
  return CLI_EXIT_OK;
}

static const CliCommand pool_subcommands[] = {
  { "pool add", "NAME DRIVER [KEY=VALUE…]",
    "Add a storage pool (driver file: dir_path=DIR, cow=auto|reflink|qcow2|copy)",
    run_pool_add },
  { "pool list", "", "List storage pools with their driver and options", run_pool_list },
  { "pool info", "NAME", "Show a pool's driver, mode, location, size, usage and options",
    run_pool_info },
  { "pool remove", "NAME…", "Remove storage pools that hold no volume", run_pool_remove },
  { NULL }
};

static int
run_pool (Cli *cli, int argc, char **argv)
{
  return cli_run_group (cli, pool_subcommands, argc, argv);
}

const CliCommand cli_pool_commands[] = {
  { "pool", "SUBCOMMAND [ARGUMENTS…]", "Manage storage pools (add, list, info, remove)",
    run_pool },
  { NULL }
};
