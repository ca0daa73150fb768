/* cmd-pool.c — `qube pool add|list|info|remove`: the storage pools that
 * hold the volumes of qubes, as qvm-pool manages them, all through the
 * Admin API (qubed when it runs, else in-process). */
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
  g_autoptr(GString) payload = g_string_new (NULL);
  g_autofree char *done = NULL;
  int status;

  if (!cli_parse (cli, NULL, FALSE, 2, -1, argc, argv, &args, &status))
    return status;
  for (char **option = args + 2; *option != NULL; option++)
    if (strchr (*option, '=') == NULL || **option == '=' || strchr (*option, '\n') != NULL)
      return cli_usage_error (cli, "invalid option '%s': expected KEY=VALUE", *option);
  /* admin.pool.Add+DRIVER: `name=NAME` and the options, a line each. */
  g_string_append_printf (payload, "name=%s\n", args[0]);
  for (char **option = args + 2; *option != NULL; option++)
    g_string_append_printf (payload, "%s\n", *option);
  done = cli_admin_call (cli, "admin.pool.Add", args[1], "dom0", payload->str, &error);
  if (done == NULL)
    return cli_fail (error);
  return CLI_EXIT_OK;
}

/* admin.pool.Info: a table of its keys, and the pool's options.  The
 * reply is the configuration (driver=, name= and the options, sorted),
 * then the figures from size= on and the pool's volumes= last; the
 * options are the configuration's lines but driver= and name=. */
static GHashTable *
pool_info (Cli *cli, const char *name, GStrv *options, GError **error)
{
  g_auto(GStrv) lines = NULL;
  g_autoptr(GHashTable) info = cli_admin_call_info (cli, "admin.pool.Info", name, "dom0", &lines,
                                                    error);
  g_autoptr(GPtrArray) rest = g_ptr_array_new_with_free_func (g_free);

  if (info == NULL)
    return NULL;
  for (char **line = lines; *line != NULL; line++)
    {
      if (g_str_has_prefix (*line, "size=") || g_str_has_prefix (*line, "volumes="))
        break;
      if (!g_str_has_prefix (*line, "driver=") && !g_str_has_prefix (*line, "name="))
        g_ptr_array_add (rest, g_strdup (*line));
    }
  g_ptr_array_add (rest, NULL);
  *options = (GStrv) g_ptr_array_free (g_steal_pointer (&rest), FALSE);
  if (cli_info_string (info, "driver") == NULL)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL,
                   "cannot read pool '%s': its information names no driver", name);
      return NULL;
    }
  return g_steal_pointer (&info);
}

/* A space-separated value of an Info reply as a list. */
static GStrv
info_words (GHashTable *info, const char *key)
{
  const char *value = cli_info_string (info, key);

  return value != NULL ? g_strsplit (value, " ", -1) : g_new0 (char *, 1);
}

static int
run_pool_list (Cli *cli, int argc, char **argv)
{
  static const char *const headers[] = { "NAME", "DRIVER", "OPTIONS" };
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) names = NULL;
  g_autoptr(CliTable) table = cli_table_new (G_N_ELEMENTS (headers), headers);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  int status;

  if (!cli_parse (cli, NULL, TRUE, 0, 0, argc, argv, &args, &status))
    return status;
  names = cli_admin_call_lines (cli, "admin.pool.List", NULL, "dom0", &error);
  if (names == NULL)
    return cli_fail (error);
  json_builder_begin_array (builder);
  for (char **name = names; *name != NULL; name++)
    {
      g_autoptr(GHashTable) info = NULL;
      g_auto(GStrv) options = NULL;
      g_autofree char *joined = NULL;
      const char *driver;

      info = pool_info (cli, *name, &options, &error);
      if (info == NULL)
        return cli_fail (error);
      driver = cli_info_string (info, "driver");
      joined = g_strjoinv (" ", options);
      cli_table_add (table, *name);
      cli_table_add (table, driver);
      cli_table_add (table, joined);

      json_builder_begin_object (builder);
      cli_json_add_string_member (builder, "name", *name);
      cli_json_add_string_member (builder, "driver", driver);
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
  g_autoptr(GHashTable) info = NULL;
  g_autoptr(CliTable) table = cli_table_new (2, NULL);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autofree char *size_s = NULL;
  g_autofree char *usage_s = NULL;
  g_autofree char *options_s = NULL;
  g_auto(GStrv) formats = NULL;
  g_auto(GStrv) options = NULL;
  g_auto(GStrv) volumes = NULL;
  guint64 size, usage;
  int status;

  if (!cli_parse (cli, NULL, TRUE, 1, 1, argc, argv, &args, &status))
    return status;
  info = pool_info (cli, args[0], &options, &error);
  if (info == NULL)
    return cli_fail (error);
  /* Without figures the pool's driver could not be asked. */
  if (!g_hash_table_contains (info, "size"))
    return cli_fail_printf ("cannot query pool '%s': its driver gives no size or usage",
                            args[0]);
  size = cli_info_uint (info, "size");
  usage = cli_info_uint (info, "usage");
  formats = info_words (info, "formats");
  volumes = info_words (info, "volumes");

  size_s = cli_format_bytes (size);
  usage_s = cli_format_bytes (usage);
  options_s = g_strjoinv (" ", options);
  {
    const char *rows[][2] = {
      { "name", cli_info_string (info, "name") },
      { "driver", cli_info_string (info, "driver") },
      { "mode", cli_info_string (info, "mode") },
      { "location", cli_info_string (info, "location") },
      { "size", size_s },
      { "usage", usage_s },
      { "formats", cli_info_string (info, "formats") },
      { "options", options_s },
      { "volumes", cli_info_string (info, "volumes") },
    };
    for (gsize i = 0; i < G_N_ELEMENTS (rows); i++)
      {
        cli_table_add (table, rows[i][0]);
        cli_table_add (table, rows[i][1]);
      }
  }

  json_builder_begin_object (builder);
  cli_json_add_string_member (builder, "name", cli_info_string (info, "name"));
  cli_json_add_string_member (builder, "driver", cli_info_string (info, "driver"));
  cli_json_add_string_member (builder, "mode", cli_info_string (info, "mode"));
  cli_json_add_string_member (builder, "location", cli_info_string (info, "location"));
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
  int status;

  if (!cli_parse (cli, NULL, FALSE, 1, -1, argc, argv, &args, &status))
    return status;
  for (char **name = args; *name != NULL; name++)
    {
      g_autofree char *done = cli_admin_call (cli, "admin.pool.Remove", *name, "dom0", NULL,
                                              &error);

      if (done == NULL)
        return cli_fail (error);
    }
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
