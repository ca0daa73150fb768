/* qube-cli.c — option parsing, state directory and error reporting shared
 * by every `qube` subcommand (see qube-cli.h). */
#include "config.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "qube-cli.h"

/* Messages go on one line: a script reads the first line of stderr. */
static void
print_one_line (const char *prefix, const char *message)
{
  g_autofree char *line = g_strdup (message);

  g_strdelimit (line, "\r\n", ' ');
  g_strchomp (line);
  fprintf (stderr, "qube: %s%s\n", prefix, line);
}

int
cli_fail (GError *error)
{
  print_one_line ("", error->message);
  return CLI_EXIT_FAILED;
}

int
cli_fail_printf (const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list ap;

  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);
  print_one_line ("", message);
  return CLI_EXIT_FAILED;
}

int
cli_usage_error (Cli *cli, const char *format, ...)
{
  g_autofree char *message = NULL;
  g_autofree char *prefix = NULL;
  g_autofree char *full = NULL;
  va_list ap;

  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);
  if (cli->command != NULL)
    {
      prefix = g_strdup_printf ("%s: ", cli->command->name);
      full = g_strdup_printf ("%s (see 'qube %s --help')", message,
                              cli->command->name);
    }
  else
    {
      prefix = g_strdup ("");
      full = g_strdup_printf ("%s (see 'qube --help')", message);
    }
  print_one_line (prefix, full);
  return CLI_EXIT_USAGE;
}

gboolean
cli_parse (Cli *cli, const GOptionEntry *entries,
                gboolean with_json, int min_args, int max_args,
                int argc, char **argv, char ***args_out, int *status)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *prgname = g_strdup_printf ("qube %s", cli->command->name);
  g_auto(GStrv) args = NULL;
  g_autofree char *state_dir = NULL;
  gboolean json = FALSE;
  int n_args;
  const GOptionEntry common_entries[] = {
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
      "Keep state in DIR (default: $QUBE_STATE_DIR, else the system's)", "DIR" },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &args, NULL, NULL },
    { NULL }
  };
  const GOptionEntry json_entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json,
      "Print JSON instead of a table", NULL },
    { NULL }
  };

  /* The usage line GOption prints begins with the program name. */
  g_set_prgname (prgname);
  context = g_option_context_new (cli->command->params);
  g_option_context_set_summary (context, cli->command->summary);
  if (entries != NULL)
    g_option_context_add_main_entries (context, entries, NULL);
  if (with_json)
    g_option_context_add_main_entries (context, json_entries, NULL);
  g_option_context_add_main_entries (context, common_entries, NULL);

  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      *status = cli_usage_error (cli, "%s", error->message);
      return FALSE;
    }
  if (state_dir != NULL)
    {
      g_free (cli->state_dir);
      cli->state_dir = g_steal_pointer (&state_dir);
    }
  cli->json = json;

  if (args == NULL)
    args = g_new0 (char *, 1);
  n_args = (int) g_strv_length (args);
  if (n_args < min_args)
    {
      *status = cli_usage_error (cli, "missing arguments, expected %s",
                                 cli->command->params);
      return FALSE;
    }
  if (max_args >= 0 && n_args > max_args)
    {
      *status = cli_usage_error (cli, "unexpected argument '%s'",
                                      args[max_args]);
      return FALSE;
    }
  *args_out = g_steal_pointer (&args);
  return TRUE;
}

char *
cli_get_state_dir (Cli *cli)
{
  const char *env = g_getenv ("QUBE_STATE_DIR");

  if (cli->state_dir != NULL)
    return g_strdup (cli->state_dir);
  if (env != NULL && *env != '\0')
    return g_strdup (env);
  return qube_manager_default_state_dir ();
}

QubeManager *
cli_get_manager (Cli *cli, GError **error)
{
  g_autofree char *state_dir = NULL;

  if (cli->manager != NULL)
    return cli->manager;
  state_dir = cli_get_state_dir (cli);
  cli->manager = qube_manager_new (state_dir, error);
  return cli->manager;
}

QubeVm *
cli_lookup_vm (Cli *cli, const char *name, GError **error)
{
  QubeManager *manager = cli_get_manager (cli, error);

  if (manager == NULL)
    return NULL;
  return qube_manager_lookup (manager, name, error);
}

/* ---- the Admin API, embedded or through qubed ---- */

/* qubed's socket when this run should use it, else NULL. */
static char *
find_qubed_socket (Cli *cli)
{
  const char *env = g_getenv ("QUBED_SOCKET");
  const char *state_env = g_getenv ("QUBE_STATE_DIR");
  g_autofree char *path = NULL;

  /* An explicit state directory is that store, not qubed's. */
  if (cli->embedded || cli->state_dir != NULL)
    return NULL;
  if (env != NULL && *env != '\0')
    path = g_strdup (env);
  else if (state_env != NULL && *state_env != '\0')
    return NULL;
  else
    path = qube_admin_default_socket ();
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    return NULL;
  return g_steal_pointer (&path);
}

static GBytes *
call_qubed (const char *path, GBytes *request, GError **error)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr(GSocketConnection) conn = NULL;
  g_autoptr(GOutputStream) sink = NULL;
  gsize len;
  const void *data = g_bytes_get_data (request, &len);

  conn = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL, error);
  if (conn == NULL
      || !g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (conn)),
                                     data, len, NULL, NULL, error)
      || !g_socket_shutdown (g_socket_connection_get_socket (conn), FALSE, TRUE, error))
    {
      g_prefix_error (error, "cannot reach qubed at %s (use --embedded to work without it): ",
                      path);
      return NULL;
    }
  sink = g_memory_output_stream_new_resizable ();
  if (g_output_stream_splice (sink, g_io_stream_get_input_stream (G_IO_STREAM (conn)),
                              G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, NULL, error) < 0)
    {
      g_prefix_error (error, "no reply from qubed at %s: ", path);
      return NULL;
    }
  return g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (sink));
}

static int
error_code_for (const char *exception)
{
  if (g_str_has_suffix (exception, "NotFoundError") || g_str_equal (exception, "QubesNoSuchPropertyError"))
    return QUBE_ERROR_NOT_FOUND;
  if (g_str_equal (exception, "QubesValueError"))
    return QUBE_ERROR_INVALID;
  if (g_str_equal (exception, "QubesVMInUseError"))
    return QUBE_ERROR_IN_USE;
  if (g_str_equal (exception, "QubesVMNotHaltedError"))
    return QUBE_ERROR_RUNNING;
  if (g_str_equal (exception, "QubesVMNotRunningError"))
    return QUBE_ERROR_NOT_RUNNING;
  if (g_str_equal (exception, "PermissionDenied"))
    return QUBE_ERROR_DENIED;
  if (g_str_equal (exception, "ProtocolError"))
    return QUBE_ERROR_PROTOCOL;
  return QUBE_ERROR_FAILED;
}

char *
cli_admin_call (Cli *cli, const char *method, const char *arg, const char *dest,
                const char *payload, GError **error)
{
  g_autoptr(GByteArray) request = g_byte_array_new ();
  g_autoptr(GBytes) request_bytes = NULL;
  g_autoptr(GBytes) reply = NULL;
  g_autoptr(GBytes) content = NULL;
  g_autofree char *exception = NULL;
  g_autofree char *message = NULL;
  g_autofree char *header = NULL;
  gboolean to_host = g_str_equal (dest, "dom0");
  gsize len;
  const char *data;

  header = g_strdup_printf ("%s%s%s dom0 %s %s", method, arg != NULL ? "+" : "",
                            arg != NULL ? arg : "", to_host ? "keyword" : "name",
                            to_host ? "adminvm" : dest);
  g_byte_array_append (request, (const guint8 *) header, strlen (header) + 1);
  if (payload != NULL)
    g_byte_array_append (request, (const guint8 *) payload, strlen (payload));
  request_bytes = g_byte_array_free_to_bytes (g_steal_pointer (&request));

  if (cli->admin == NULL && cli->qubed_socket == NULL)
    {
      cli->qubed_socket = find_qubed_socket (cli);
      if (cli->qubed_socket == NULL)
        {
          QubeManager *manager = cli_get_manager (cli, error);

          if (manager == NULL)
            return NULL;
          cli->admin = qube_admin_new (manager, NULL);
        }
    }
  reply = cli->admin != NULL ? qube_admin_handle_request (cli->admin, request_bytes, FALSE)
                             : call_qubed (cli->qubed_socket, request_bytes, error);
  if (reply == NULL)
    return NULL;
  content = qube_admin_reply_get_content (reply, &exception, &message);
  if (content == NULL)
    {
      g_set_error_literal (error, QUBE_ERROR, error_code_for (exception), message);
      return NULL;
    }
  data = g_bytes_get_data (content, &len);
  return g_strndup (data != NULL ? data : "", len);
}

char *
cli_unescape_line (const char *text)
{
  GString *out = g_string_new (NULL);

  for (const char *p = text; *p != '\0'; p++)
    {
      if (p[0] == '\\' && (p[1] == 'n' || p[1] == '\\'))
        {
          p++;
          g_string_append_c (out, *p == 'n' ? '\n' : '\\');
        }
      else
        g_string_append_c (out, *p);
    }
  return g_string_free (out, FALSE);
}

char **
cli_admin_call_lines (Cli *cli, const char *method, const char *arg, const char *dest,
                      GError **error)
{
  g_autofree char *content = cli_admin_call (cli, method, arg, dest, NULL, error);
  char **lines;
  guint n;

  if (content == NULL)
    return NULL;
  lines = g_strsplit (content, "\n", -1);
  /* The last line ends with a newline: drop the empty piece after it. */
  n = g_strv_length (lines);
  if (n > 0 && *lines[n - 1] == '\0')
    g_clear_pointer (&lines[n - 1], g_free);
  return lines;
}

GHashTable *
cli_admin_call_info (Cli *cli, const char *method, const char *arg, const char *dest,
                     char ***lines_out, GError **error)
{
  g_auto(GStrv) lines = cli_admin_call_lines (cli, method, arg, dest, error);
  GHashTable *info;

  if (lines == NULL)
    return NULL;
  info = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  for (char **line = lines; *line != NULL; line++)
    {
      const char *eq = strchr (*line, '=');

      /* The first of a key counts; a line without '=' is no key's. */
      if (eq != NULL)
        {
          g_autofree char *key = g_strndup (*line, eq - *line);

          if (!g_hash_table_contains (info, key))
            g_hash_table_insert (info, g_steal_pointer (&key), g_strdup (eq + 1));
        }
    }
  if (lines_out != NULL)
    *lines_out = g_steal_pointer (&lines);
  return info;
}

gboolean
cli_info_bool (GHashTable *info, const char *key)
{
  return g_strcmp0 (g_hash_table_lookup (info, key), "True") == 0;
}

guint64
cli_info_uint (GHashTable *info, const char *key)
{
  const char *value = g_hash_table_lookup (info, key);

  return value != NULL ? g_ascii_strtoull (value, NULL, 10) : 0;
}

const char *
cli_info_string (GHashTable *info, const char *key)
{
  const char *value = g_hash_table_lookup (info, key);

  return value != NULL && *value != '\0' ? value : NULL;
}

void
cli_admin_close (Cli *cli)
{
  g_clear_object (&cli->admin);
  g_clear_pointer (&cli->qubed_socket, g_free);
}

int
cli_run_group (Cli *cli, const CliCommand *subs, int argc, char **argv)
{
  const char *group = cli->command->name;
  gsize prefix = strlen (group) + 1;

  if (argc < 2)
    return cli_usage_error (cli, "no subcommand given");
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)
    {
      gsize width = 0;

      for (const CliCommand *c = subs; c->name != NULL; c++)
        width = MAX (width, strlen (c->name + prefix));
      printf ("Usage:\n  qube %s SUBCOMMAND [OPTION…] [ARGUMENTS…]\n\n%s\n\nSubcommands:\n",
              group, cli->command->summary);
      for (const CliCommand *c = subs; c->name != NULL; c++)
        printf ("  %-*s  %s\n", (int) width, c->name + prefix, c->summary);
      printf ("\nRun 'qube %s SUBCOMMAND --help' for the options of one.\n", group);
      return CLI_EXIT_OK;
    }
  for (const CliCommand *c = subs; c->name != NULL; c++)
    if (strcmp (c->name + prefix, argv[1]) == 0)
      {
        cli->command = c;
        return c->run (cli, argc - 1, argv + 1);
      }
  return cli_usage_error (cli, "unknown subcommand '%s'", argv[1]);
}
