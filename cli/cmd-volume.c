/* cmd-volume.c — `qube volume list|info|import|export|revert|resize|
 * revisions`: the volumes of one qube, as qvm-volume manages them.  A
 * volume is named QUBE:VOLUME, e.g. `work:private`.  All but import and
 * export go through the Admin API (qubed when it runs, else in-process);
 * those two move whole images, which the Admin API cannot carry (its
 * Import is bounded by the request size and it has no export), and work
 * on the state directory in-process. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "output.h"
#include "qube-cli.h"

/* Splits QUBE:VOLUME. */
static gboolean
split_spec (const char *spec, char **qube, char **volume, GError **error)
{
  const char *colon = strchr (spec, ':');

  if (colon == NULL || colon == spec || colon[1] == '\0')
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "'%s' does not name a volume: expected QUBE:VOLUME, e.g. work:private", spec);
      return FALSE;
    }
  *qube = g_strndup (spec, colon - spec);
  *volume = g_strdup (colon + 1);
  return TRUE;
}

/* Looks up QUBE:VOLUME. */
static QubeVolume *
lookup_volume (Cli *cli, const char *spec, GError **error)
{
  g_autofree char *qube = NULL;
  g_autofree char *name = NULL;
  g_autoptr(QubeVm) vm = NULL;

  if (!split_spec (spec, &qube, &name, error))
    return NULL;
  vm = cli_lookup_vm (cli, qube, error);
  if (vm == NULL)
    return NULL;
  return qube_vm_get_volume (vm, name, error);
}

/* admin.vm.volume.Info of QUBE's VOLUME as a table of its keys. */
static GHashTable *
volume_info (Cli *cli, const char *qube, const char *volume, GError **error)
{
  return cli_admin_call_info (cli, "admin.vm.volume.Info", volume, qube, NULL, error);
}

static char *
volume_flags (GHashTable *info)
{
  g_autoptr(GPtrArray) flags = g_ptr_array_new ();

  g_ptr_array_add (flags, cli_info_bool (info, "rw") ? "rw" : "ro");
  if (cli_info_bool (info, "snap_on_start"))
    g_ptr_array_add (flags, "snap_on_start");
  if (cli_info_bool (info, "save_on_stop"))
    g_ptr_array_add (flags, "save_on_stop");
  g_ptr_array_add (flags, NULL);
  return g_strjoinv (",", (char **) flags->pdata);
}

static void
add_bool_member (JsonBuilder *builder, const char *member, gboolean value)
{
  json_builder_set_member_name (builder, member);
  json_builder_add_boolean_value (builder, value);
}

/* What `volume list --json` and `volume info --json` both show. */
static void
add_volume_members (JsonBuilder *builder, const char *name, GHashTable *info)
{
  cli_json_add_string_member (builder, "name", name);
  cli_json_add_string_member (builder, "pool", cli_info_string (info, "pool"));
  cli_json_add_string_member (builder, "vid", cli_info_string (info, "vid"));
  add_bool_member (builder, "storage", cli_info_bool (info, "storage"));
  cli_json_add_int_member (builder, "size", (gint64) cli_info_uint (info, "size"));
  cli_json_add_int_member (builder, "usage", (gint64) cli_info_uint (info, "usage"));
  add_bool_member (builder, "rw", cli_info_bool (info, "rw"));
  add_bool_member (builder, "snap_on_start", cli_info_bool (info, "snap_on_start"));
  add_bool_member (builder, "save_on_stop", cli_info_bool (info, "save_on_stop"));
  cli_json_add_string_member (builder, "source", cli_info_string (info, "source"));
}

static char *
format_time (gint64 when)
{
  g_autoptr(GDateTime) date = when > 0 ? g_date_time_new_from_unix_utc (when) : NULL;

  return date != NULL ? g_date_time_format (date, "%Y-%m-%dT%H:%M:%SZ") : NULL;
}

static int
run_volume_list (Cli *cli, int argc, char **argv)
{
  static const char *const headers[] = { "VOLUME", "POOL", "SIZE", "USAGE", "FLAGS", "SOURCE" };
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) names = NULL;
  g_autoptr(CliTable) table = cli_table_new (G_N_ELEMENTS (headers), headers);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  int status;

  if (!cli_parse (cli, NULL, TRUE, 1, 1, argc, argv, &args, &status))
    return status;
  names = cli_admin_call_lines (cli, "admin.vm.volume.List", NULL, args[0], &error);
  if (names == NULL)
    return cli_fail (error);

  json_builder_begin_array (builder);
  for (char **name = names; *name != NULL; name++)
    {
      g_autoptr(GHashTable) info = volume_info (cli, args[0], *name, &error);
      g_autofree char *flags = NULL;
      g_autofree char *size = NULL;
      g_autofree char *usage = NULL;

      if (info == NULL)
        return cli_fail (error);
      flags = volume_flags (info);
      if (cli_info_bool (info, "storage"))
        {
          size = cli_format_size (cli_info_uint (info, "size"));
          usage = cli_format_size (cli_info_uint (info, "usage"));
        }
      cli_table_add (table, *name);
      cli_table_add (table, cli_info_string (info, "pool"));
      cli_table_add (table, size);
      cli_table_add (table, usage);
      cli_table_add (table, flags);
      cli_table_add (table, cli_info_string (info, "source"));

      json_builder_begin_object (builder);
      add_volume_members (builder, *name, info);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  cli_print_listing (cli->json, builder, table);
  return CLI_EXIT_OK;
}

/* The kept revisions in an Info reply: its `revision.NAME=CREATED` lines,
 * newest first. */
static GPtrArray *
info_revisions (char **lines)
{
  GPtrArray *revisions = g_ptr_array_new_with_free_func (g_free);

  for (char **line = lines; *line != NULL; line++)
    if (g_str_has_prefix (*line, "revision.") && strrchr (*line, '=') != NULL)
      g_ptr_array_add (revisions, g_strdup (*line + strlen ("revision.")));
  return revisions;
}

static int
run_volume_info (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *qube = NULL;
  g_autofree char *name = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GHashTable) info = NULL;
  g_autoptr(GPtrArray) revisions = NULL;
  g_autoptr(CliTable) table = cli_table_new (2, NULL);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autofree char *size_s = NULL;
  g_autofree char *usage_s = NULL;
  g_autofree char *revisions_s = NULL;
  g_autofree char *created_s = NULL;
  gboolean storage;
  int status;

  if (!cli_parse (cli, NULL, TRUE, 1, 1, argc, argv, &args, &status))
    return status;
  if (!split_spec (args[0], &qube, &name, &error)
      || (info = cli_admin_call_info (cli, "admin.vm.volume.Info", name, qube, &lines,
                                      &error)) == NULL)
    return cli_fail (error);
  revisions = info_revisions (lines);
  storage = cli_info_bool (info, "storage");
  size_s = cli_format_bytes (cli_info_uint (info, "size"));
  usage_s = cli_format_bytes (cli_info_uint (info, "usage"));
  revisions_s = g_strdup_printf ("%u", revisions->len);
  created_s = format_time ((gint64) cli_info_uint (info, "created"));
  {
    const char *rows[][2] = {
      { "qube", qube },
      { "name", name },
      { "pool", cli_info_string (info, "pool") },
      { "vid", cli_info_string (info, "vid") },
      { "storage", storage ? "yes" : "none (kernel files)" },
      { "size", size_s },
      { "usage", usage_s },
      { "rw", cli_info_bool (info, "rw") ? "True" : "False" },
      { "snap_on_start", cli_info_bool (info, "snap_on_start") ? "True" : "False" },
      { "save_on_stop", cli_info_bool (info, "save_on_stop") ? "True" : "False" },
      { "source", cli_info_string (info, "source") },
      { "revisions_to_keep", cli_info_string (info, "revisions_to_keep") },
      { "revisions", revisions_s },
      { "created", created_s },
      { "started", cli_info_bool (info, "started") ? "True" : "False" },
      { "is_outdated", cli_info_bool (info, "is_outdated") ? "True" : "False" },
    };
    for (gsize i = 0; i < G_N_ELEMENTS (rows); i++)
      {
        cli_table_add (table, rows[i][0]);
        cli_table_add (table, rows[i][1]);
      }
  }

  json_builder_begin_object (builder);
  cli_json_add_string_member (builder, "qube", qube);
  add_volume_members (builder, name, info);
  cli_json_add_int_member (builder, "revisions_to_keep",
                          (gint64) cli_info_uint (info, "revisions_to_keep"));
  cli_json_add_int_member (builder, "revisions", revisions->len);
  cli_json_add_string_member (builder, "created", created_s);
  add_bool_member (builder, "started", cli_info_bool (info, "started"));
  add_bool_member (builder, "is_outdated", cli_info_bool (info, "is_outdated"));
  json_builder_end_object (builder);

  cli_print_listing (cli->json, builder, table);
  return CLI_EXIT_OK;
}

/* The progress line of an import or export, on a terminal only. */
typedef struct {
  const char *what;
  int last_percent;
  gint64 last_shown;
} Progress;

static void
show_progress (guint64 done, guint64 total, gpointer user_data)
{
  Progress *progress = user_data;
  gint64 now = g_get_monotonic_time ();
  g_autofree char *done_s = cli_format_size (done);

  if (total > 0)
    {
      int percent = (int) (done * 100 / total);
      g_autofree char *total_s = cli_format_size (total);
      int filled = percent * 30 / 100;

      if (percent == progress->last_percent)
        return;
      progress->last_percent = percent;
      fprintf (stderr, "\r%s [%.*s%*s] %3d%% %s of %s", progress->what, filled,
               "##############################", 30 - filled, "", percent, done_s, total_s);
    }
  else
    {
      /* Unknown total: at most a few updates a second. */
      if (now - progress->last_shown < G_USEC_PER_SEC / 4)
        return;
      fprintf (stderr, "\r%s %s", progress->what, done_s);
    }
  progress->last_shown = now;
  fflush (stderr);
}

static int
run_transfer (Cli *cli, int argc, char **argv, gboolean import)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVolume) volume = NULL;
  g_autofree char *what = NULL;
  gboolean no_progress = FALSE;
  Progress progress = { NULL, -1, 0 };
  QubeProgressFunc progress_func = NULL;
  gboolean ok;
  int status;
  const GOptionEntry entries[] = {
    { "no-progress", 0, 0, G_OPTION_ARG_NONE, &no_progress,
      "Show no progress bar even on a terminal", NULL },
    { NULL }
  };

  if (!cli_parse (cli, entries, FALSE, 2, 2, argc, argv, &args, &status))
    return status;
  volume = lookup_volume (cli, args[0], &error);
  if (volume == NULL)
    return cli_fail (error);
  what = g_strdup_printf ("%s %s", import ? "importing into" : "exporting", args[0]);
  progress.what = what;
  if (!no_progress && isatty (STDERR_FILENO))
    progress_func = show_progress;

  if (import)
    ok = strcmp (args[1], "-") == 0
         ? qube_volume_import_fd (volume, STDIN_FILENO, 0, progress_func, &progress, &error)
         : qube_volume_import_file (volume, args[1], progress_func, &progress, &error);
  else
    ok = strcmp (args[1], "-") == 0
         ? qube_volume_export_fd (volume, STDOUT_FILENO, progress_func, &progress, &error)
         : qube_volume_export_file (volume, args[1], progress_func, &progress, &error);
  if (progress_func != NULL && progress.last_shown != 0)
    fputc ('\n', stderr);
  if (!ok)
    return cli_fail (error);
  return CLI_EXIT_OK;
}

static int
run_volume_import (Cli *cli, int argc, char **argv)
{
  return run_transfer (cli, argc, argv, TRUE);
}

static int
run_volume_export (Cli *cli, int argc, char **argv)
{
  return run_transfer (cli, argc, argv, FALSE);
}

/* Through the Admin API: admin.vm.volume.Revert wants a revision, so
 * none given means the newest kept one (ListSnapshots lists newest
 * first). */
static int
run_volume_revert (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *qube = NULL;
  g_autofree char *volume = NULL;
  g_autofree char *done = NULL;
  g_auto(GStrv) revisions = NULL;
  const char *revision;
  int status;

  if (!cli_parse (cli, NULL, FALSE, 1, 2, argc, argv, &args, &status))
    return status;
  if (!split_spec (args[0], &qube, &volume, &error))
    return cli_fail (error);
  revision = args[1];
  if (revision == NULL)
    {
      revisions = cli_admin_call_lines (cli, "admin.vm.volume.ListSnapshots", volume, qube,
                                        &error);
      if (revisions == NULL)
        return cli_fail (error);
      if (revisions[0] == NULL)
        return cli_fail_printf ("cannot revert volume '%s' of qube '%s': it has no kept "
                                "revision", volume, qube);
      revision = revisions[0];
    }
  done = cli_admin_call (cli, "admin.vm.volume.Revert", volume, qube, revision, &error);
  if (done == NULL)
    return cli_fail (error);
  return CLI_EXIT_OK;
}

/* "10G", "512M", "1.5GiB", "4096": binary units, bytes without one. */
static gboolean
parse_size (const char *text, guint64 *out)
{
  static const struct {
    const char *suffix;
    int shift;
  } units[] = {
    { "", 0 }, { "B", 0 }, { "K", 10 }, { "KiB", 10 }, { "M", 20 }, { "MiB", 20 },
    { "G", 30 }, { "GiB", 30 }, { "T", 40 }, { "TiB", 40 },
  };
  char *end = NULL;
  gdouble number;

  if (!g_ascii_isdigit (*text))
    return FALSE;
  number = g_ascii_strtod (text, &end);
  for (gsize i = 0; i < G_N_ELEMENTS (units); i++)
    if (g_ascii_strcasecmp (end, units[i].suffix) == 0)
      {
        gdouble bytes = number * (gdouble) (G_GUINT64_CONSTANT (1) << units[i].shift);

        if (bytes <= 0 || bytes >= 18446744073709551615.0)
          return FALSE;
        *out = (guint64) bytes;
        return TRUE;
      }
  return FALSE;
}

static int
run_volume_resize (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *qube = NULL;
  g_autofree char *volume = NULL;
  g_autofree char *bytes = NULL;
  g_autofree char *done = NULL;
  guint64 size;
  int status;

  if (!cli_parse (cli, NULL, FALSE, 2, 2, argc, argv, &args, &status))
    return status;
  if (!parse_size (args[1], &size))
    return cli_usage_error (cli, "invalid size '%s': expected bytes or a number with "
                            "K, M, G or T (e.g. 10G, 512M)", args[1]);
  if (!split_spec (args[0], &qube, &volume, &error))
    return cli_fail (error);
  bytes = g_strdup_printf ("%" G_GUINT64_FORMAT, size);
  done = cli_admin_call (cli, "admin.vm.volume.Resize", volume, qube, bytes, &error);
  if (done == NULL)
    return cli_fail (error);
  return CLI_EXIT_OK;
}

/* The names from admin.vm.volume.ListSnapshots (newest first), their
 * times from the revision.NAME= keys of admin.vm.volume.Info. */
static int
run_volume_revisions (Cli *cli, int argc, char **argv)
{
  static const char *const headers[] = { "REVISION", "CREATED" };
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *qube = NULL;
  g_autofree char *volume = NULL;
  g_auto(GStrv) names = NULL;
  g_autoptr(GHashTable) info = NULL;
  g_autoptr(CliTable) table = cli_table_new (G_N_ELEMENTS (headers), headers);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  int status;

  if (!cli_parse (cli, NULL, TRUE, 1, 1, argc, argv, &args, &status))
    return status;
  if (!split_spec (args[0], &qube, &volume, &error)
      || (info = volume_info (cli, qube, volume, &error)) == NULL)
    return cli_fail (error);
  /* ListSnapshots lists none for kernel files: say why instead. */
  if (!cli_info_bool (info, "storage"))
    return cli_fail_printf ("cannot list the revisions of volume '%s' of qube '%s': it has no "
                            "storage (kernel files)", volume, qube);
  names = cli_admin_call_lines (cli, "admin.vm.volume.ListSnapshots", volume, qube, &error);
  if (names == NULL)
    return cli_fail (error);
  json_builder_begin_array (builder);
  for (char **name = names; *name != NULL; name++)
    {
      g_autofree char *key = g_strconcat ("revision.", *name, NULL);
      g_autofree char *created = format_time ((gint64) cli_info_uint (info, key));

      cli_table_add (table, *name);
      cli_table_add (table, created);
      json_builder_begin_object (builder);
      cli_json_add_string_member (builder, "name", *name);
      cli_json_add_string_member (builder, "created", created);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  cli_print_listing (cli->json, builder, table);
  return CLI_EXIT_OK;
}

static const CliCommand volume_subcommands[] = {
  { "volume list", "QUBE", "List a qube's volumes with pool, size, usage, flags and source",
    run_volume_list },
  { "volume info", "QUBE:VOLUME", "Show everything about one volume", run_volume_info },
  { "volume import", "QUBE:VOLUME FILE|-",
    "Replace a volume's data with a raw image (- reads standard input)", run_volume_import },
  { "volume export", "QUBE:VOLUME FILE|-",
    "Write a volume's data as a raw image (- writes standard output)", run_volume_export },
  { "volume revert", "QUBE:VOLUME [REVISION]",
    "Make a kept revision (default: the newest) the volume's data again", run_volume_revert },
  { "volume resize", "QUBE:VOLUME SIZE", "Grow a volume (SIZE like 10G, 512M, or bytes)",
    run_volume_resize },
  { "volume revisions", "QUBE:VOLUME", "List a volume's kept revisions, newest first",
    run_volume_revisions },
  { NULL }
};

static int
run_volume (Cli *cli, int argc, char **argv)
{
  return cli_run_group (cli, volume_subcommands, argc, argv);
}

const CliCommand cli_volume_commands[] = {
  { "volume", "SUBCOMMAND [ARGUMENTS…]",
    "Manage the volumes of qubes (list, info, import, export, revert, resize, revisions)",
    run_volume },
  { NULL }
};
