/* test-cli.c — runs the built `qube` command in a temporary state
 * directory and checks what a user sees: standard output (tables and JSON),
 * the single line on standard error, and the exit status of every
 * subcommand. */
#include "config.h"

#include <check.h>
#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "qubed-fixture.h"

typedef struct {
  int status;
  char *out;
  char *err;
} QubeRun;

static char *state_dir;
static char *plugin_dir;   /* QUBE_PLUGIN_PATH for the runs */
/* With QUBE_TEST_CLI_QUBED set, every run talks to a qubed serving the
 * test's state directory: the same assertions then prove that the output
 * is the same either way. */
static GSubprocess *qubed;
static char *qubed_socket;

static void
qube_run_free (QubeRun *run)
{
  g_free (run->out);
  g_free (run->err);
  g_free (run);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubeRun, qube_run_free)

static char *
qube_binary (void)
{
  const char *builddir = g_getenv ("QUBE_TEST_BUILDDIR");

  ck_assert_msg (builddir != NULL, "QUBE_TEST_BUILDDIR is not set");
  return g_build_filename (builddir, "cli", "qube", NULL);
}

/* Runs `qube ARGS...` (NULL-terminated) with the test's state directory. */
static QubeRun *
qube_runv (const char *const *args)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_auto(GStrv) envp = g_get_environ ();
  g_autoptr(GError) error = NULL;
  QubeRun *run = g_new0 (QubeRun, 1);
  int wait_status = 0;

  g_ptr_array_add (argv, qube_binary ());
  for (const char *const *a = args; *a != NULL; a++)
    g_ptr_array_add (argv, g_strdup (*a));
  g_ptr_array_add (argv, NULL);

  envp = g_environ_setenv (envp, "QUBE_STATE_DIR", state_dir, TRUE);
  envp = g_environ_setenv (envp, "QUBE_PLUGIN_PATH", plugin_dir, TRUE);
  envp = g_environ_setenv (envp, "LC_ALL", "C.UTF-8", TRUE);
  envp = g_environ_unsetenv (envp, "G_MESSAGES_DEBUG");
  envp = qubed_socket != NULL ? g_environ_setenv (envp, "QUBED_SOCKET", qubed_socket, TRUE)
                              : g_environ_unsetenv (envp, "QUBED_SOCKET");

  if (!g_spawn_sync (NULL, (char **) argv->pdata, envp, G_SPAWN_DEFAULT, NULL, NULL,
                     &run->out, &run->err, &wait_status, &error))
    ck_abort_msg ("cannot run qube: %s", error->message);
  ck_assert_msg (WIFEXITED (wait_status), "qube did not exit normally (%d): %s",
                 wait_status, run->err);
  run->status = WEXITSTATUS (wait_status);
  return run;
}

#define qube_run(...) qube_runv ((const char *const[]) { __VA_ARGS__, NULL })

/* `text` with the value of each `usage` row or member left out: a file
 * pool's usage is that of its filesystem, which other programs change
 * between two runs. */
static char *
without_usage (const char *text)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);

  for (char **line = lines; *line != NULL; line++)
    {
      char *start = *line + strspn (*line, " ");

      if (g_str_has_prefix (start, "usage "))
        start[strlen ("usage ")] = '\0';
      else if (g_str_has_prefix (start, "\"usage\" :"))
        start[strlen ("\"usage\" :")] = '\0';
    }
  return g_strjoinv ("\n", lines);
}

/* Runs `qube ARGS...` and, when the runs go through qubed, again with
 * --embedded: both must end the same, byte for byte (but the pool's usage
 * when `pool_usage`).  Returns the first run. */
static QubeRun *
qube_run_both_ways_v (gboolean pool_usage, const char *const *args)
{
  QubeRun *run = qube_runv (args);
  g_autoptr(GPtrArray) embedded_args = g_ptr_array_new ();
  g_autoptr(QubeRun) embedded = NULL;
  g_autofree char *out = NULL;
  g_autofree char *embedded_out = NULL;

  if (qubed == NULL)
    return run;
  g_ptr_array_add (embedded_args, "--embedded");
  for (const char *const *a = args; *a != NULL; a++)
    g_ptr_array_add (embedded_args, (gpointer) *a);
  g_ptr_array_add (embedded_args, NULL);
  embedded = qube_runv ((const char *const *) embedded_args->pdata);
  out = pool_usage ? without_usage (run->out) : g_strdup (run->out);
  embedded_out = pool_usage ? without_usage (embedded->out) : g_strdup (embedded->out);
  ck_assert_msg (run->status == embedded->status,
                 "exit status %d through qubed, %d embedded", run->status, embedded->status);
  ck_assert_msg (g_str_equal (out, embedded_out),
                 "output through qubed:\n%s\nembedded:\n%s", run->out, embedded->out);
  ck_assert_msg (g_str_equal (run->err, embedded->err),
                 "stderr through qubed: %s\nembedded: %s", run->err, embedded->err);
  return run;
}

#define qube_run_both_ways(...) \
  qube_run_both_ways_v (FALSE, (const char *const[]) { __VA_ARGS__, NULL })
#define qube_run_pool_both_ways(...) \
  qube_run_both_ways_v (TRUE, (const char *const[]) { __VA_ARGS__, NULL })

/* The command succeeded silently on stderr. */
static void
assert_ok (QubeRun *run)
{
  ck_assert_msg (run->status == 0, "exit status %d, stderr: %s", run->status, run->err);
  ck_assert_str_eq (run->err, "");
}

/* The command failed with `status` and exactly one line on stderr that
 * starts with "qube: " and contains each of the NULL-terminated words. */
static void
assert_fails_with (QubeRun *run, int status, ...)
{
  const char *newline = strchr (run->err, '\n');
  va_list ap;

  ck_assert_msg (run->status == status, "exit status %d, expected %d; stderr: %s",
                 run->status, status, run->err);
  ck_assert_msg (g_str_has_prefix (run->err, "qube: "), "stderr: '%s'", run->err);
  ck_assert_msg (newline != NULL && newline[1] == '\0',
                 "stderr is not exactly one line: '%s'", run->err);
  va_start (ap, status);
  for (const char *word = va_arg (ap, const char *); word != NULL;
       word = va_arg (ap, const char *))
    ck_assert_msg (strstr (run->err, word) != NULL, "stderr '%s' lacks '%s'",
                   run->err, word);
  va_end (ap);
}

/* The whitespace-separated fields of the line of `text` whose first field
 * is `first`, or NULL. */
static char **
find_row (const char *text, const char *first)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);

  for (char **line = lines; *line != NULL; line++)
    {
      g_auto(GStrv) fields = g_strsplit_set (*line, " ", -1);
      g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func (g_free);

      for (char **f = fields; *f != NULL; f++)
        if (**f != '\0')
          g_ptr_array_add (kept, g_strdup (*f));
      if (kept->len > 0 && strcmp (g_ptr_array_index (kept, 0), first) == 0)
        {
          g_ptr_array_add (kept, NULL);
          return (char **) g_ptr_array_free (g_steal_pointer (&kept), FALSE);
        }
    }
  return NULL;
}

static JsonNode *
parse_json (const char *text)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;

  ck_assert_msg (json_parser_load_from_data (parser, text, -1, &error),
                 "not JSON (%s): %s", error ? error->message : "", text);
  return json_node_copy (json_parser_get_root (parser));
}

/* The object of a JSON array whose member `key` is `value`, or NULL. */
static JsonObject *
find_json_object (JsonNode *root, const char *key, const char *value)
{
  JsonArray *array;

  ck_assert_msg (JSON_NODE_HOLDS_ARRAY (root), "JSON root is not an array");
  array = json_node_get_array (root);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *object = json_array_get_object_element (array, i);

      if (g_strcmp0 (json_object_get_string_member_with_default (object, key, NULL),
                     value) == 0)
        return object;
    }
  return NULL;
}

static void
remove_tree (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    while ((name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *child = g_build_filename (path, name, NULL);

        if (g_file_test (child, G_FILE_TEST_IS_DIR) &&
            !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
          remove_tree (child);
        else
          g_unlink (child);
      }
  g_rmdir (path);
}

static void
setup (void)
{
  g_autoptr(GError) error = NULL;

  state_dir = g_dir_make_tmp ("qube-cli-XXXXXX", &error);
  ck_assert_msg (state_dir != NULL, "%s", error ? error->message : "");
  /* The storage plugin (qubes get volumes) unless a test says otherwise. */
  plugin_dir = g_build_filename (g_getenv ("QUBE_TEST_BUILDDIR"), "plugins", "storage-file",
                                 ".libs", NULL);
  if (g_getenv ("QUBE_TEST_CLI_QUBED") != NULL)
    {
      g_autofree char *binary = g_build_filename (g_getenv ("QUBE_TEST_BUILDDIR"), "daemon",
                                                  "qubed", NULL);
      g_autofree char *qrexec_socket = g_build_filename (state_dir, "qubed-qrexec.sock", NULL);
      g_autofree char *policy_dir = g_build_filename (state_dir, "policy", NULL);

      g_mkdir (policy_dir, 0700);
      qubed_socket = g_build_filename (state_dir, "qubed.sock", NULL);
      qubed = qubed_fixture_spawn (binary, state_dir, policy_dir, qubed_socket, qrexec_socket,
                                   NULL, NULL, NULL, &error);
      ck_assert_msg (qubed != NULL, "%s", error != NULL ? error->message : "");
    }
}

static void
teardown (void)
{
  if (qubed != NULL)
    {
      g_subprocess_send_signal (qubed, SIGTERM);
      g_subprocess_wait (qubed, NULL, NULL);
      g_clear_object (&qubed);
    }
  g_clear_pointer (&qubed_socket, g_free);
  remove_tree (state_dir);
  g_clear_pointer (&state_dir, g_free);
  g_clear_pointer (&plugin_dir, g_free);
}

/* A template "fedora" and an AppVM "work" based on it. */
static void
create_template_and_appvm (void)
{
  g_autoptr(QubeRun) t = qube_run ("create", "--class", "TemplateVM", "--label", "black", "fedora");
  g_autoptr(QubeRun) a = NULL;

  assert_ok (t);
  ck_assert_str_eq (t->out, "");
  a = qube_run ("create", "--template", "fedora", "--label", "red", "work");
  assert_ok (a);
  ck_assert_str_eq (a->out, "");
}

START_TEST (test_help_and_version)
{
  static const char *const commands[] = {
    "plugins", "create", "list", "prefs", "global-prefs", "features", "tags",
    "clone", "remove",
  };
  g_autoptr(QubeRun) help = qube_run ("--help");
  g_autoptr(QubeRun) prefs_help = qube_run ("prefs", "--help");
  g_autoptr(QubeRun) version = qube_run ("--version");

  assert_ok (help);
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      g_auto(GStrv) row = find_row (help->out, commands[i]);

      /* One line per command: its name, then a summary. */
      g_autofree char *usage = g_strdup_printf ("qube %s [OPTION", commands[i]);
      g_autoptr(QubeRun) command_help = qube_run (commands[i], "--help");

      ck_assert_msg (row != NULL && row[1] != NULL, "--help does not list '%s':\n%s",
                     commands[i], help->out);
      assert_ok (command_help);
      ck_assert_msg (strstr (command_help->out, usage) != NULL, "%s", command_help->out);
    }

  assert_ok (prefs_help);
  ck_assert_msg (strstr (prefs_help->out, "qube prefs") != NULL, "%s", prefs_help->out);
  ck_assert_msg (strstr (prefs_help->out, "--default") != NULL, "%s", prefs_help->out);

  assert_ok (version);
  ck_assert_msg (g_str_has_prefix (version->out, "qube (libqube) " PACKAGE_VERSION "\n"),
                 "%s", version->out);
}
END_TEST

START_TEST (test_usage_errors)
{
  g_autoptr(QubeRun) no_command = qube_run ("--state-dir", state_dir);
  g_autoptr(QubeRun) unknown = qube_run ("frobnicate");
  g_autoptr(QubeRun) unknown_option = qube_run ("list", "--frob");
  g_autoptr(QubeRun) unknown_global = qube_run ("--frob", "list");
  g_autoptr(QubeRun) missing = qube_run ("prefs");
  g_autoptr(QubeRun) extra = qube_run ("clone", "a", "b", "c");
  g_autoptr(QubeRun) bad_property = qube_run ("create", "--class", "TemplateVM",
                                              "--property", "memory", "t1");
  g_autoptr(QubeRun) list_after = NULL;

  assert_fails_with (no_command, 2, "no command", NULL);
  assert_fails_with (unknown, 2, "frobnicate", NULL);
  ck_assert_str_eq (unknown->out, "");
  assert_fails_with (unknown_option, 2, "--frob", NULL);
  assert_fails_with (unknown_global, 2, "--frob", NULL);
  assert_fails_with (missing, 2, "prefs", "missing", NULL);
  assert_fails_with (extra, 2, "'c'", NULL);
  assert_fails_with (bad_property, 2, "memory", "NAME=VALUE", NULL);

  /* A usage error changes nothing. */
  list_after = qube_run ("list", "t1");
  assert_fails_with (list_after, 1, "t1", NULL);
}
END_TEST

START_TEST (test_create_and_list)
{
  g_autoptr(QubeRun) table = NULL;
  g_autoptr(QubeRun) json = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_auto(GStrv) header = NULL;
  g_auto(GStrv) work = NULL;
  g_auto(GStrv) fedora = NULL;
  JsonObject *object;

  create_template_and_appvm ();

  table = qube_run ("list");
  assert_ok (table);
  header = find_row (table->out, "NAME");
  ck_assert_msg (header != NULL, "no header line:\n%s", table->out);
  ck_assert_str_eq (header[1], "STATE");
  ck_assert_str_eq (header[2], "CLASS");
  ck_assert_str_eq (header[3], "LABEL");
  ck_assert_str_eq (header[4], "TEMPLATE");
  ck_assert_str_eq (header[5], "NETVM");
  work = find_row (table->out, "work");
  ck_assert_msg (work != NULL && g_strv_length (work) == 6, "%s", table->out);
  ck_assert_str_eq (work[1], "Halted");
  ck_assert_str_eq (work[2], "AppVM");
  ck_assert_str_eq (work[3], "red");
  ck_assert_str_eq (work[4], "fedora");
  fedora = find_row (table->out, "fedora");
  ck_assert_msg (fedora != NULL && g_strv_length (fedora) == 6, "%s", table->out);
  ck_assert_str_eq (fedora[2], "TemplateVM");
  ck_assert_str_eq (fedora[3], "black");
  ck_assert_str_eq (fedora[4], "-");
  /* Sorted by name. */
  ck_assert_msg (strstr (table->out, "\nfedora") < strstr (table->out, "\nwork"),
                 "not sorted by name:\n%s", table->out);

  json = qube_run ("list", "--json");
  assert_ok (json);
  root = parse_json (json->out);
  object = find_json_object (root, "name", "work");
  ck_assert_msg (object != NULL, "%s", json->out);
  ck_assert_str_eq (json_object_get_string_member (object, "class"), "AppVM");
  ck_assert_str_eq (json_object_get_string_member (object, "state"), "Halted");
  ck_assert_str_eq (json_object_get_string_member (object, "label"), "red");
  ck_assert_str_eq (json_object_get_string_member (object, "template"), "fedora");
  ck_assert_int_eq (strlen (json_object_get_string_member (object, "uuid")), 36);
  object = find_json_object (root, "name", "fedora");
  ck_assert_msg (object != NULL, "%s", json->out);
  ck_assert_str_eq (json_object_get_string_member (object, "class"), "TemplateVM");
  ck_assert (json_object_get_null_member (object, "template"));
}
END_TEST

START_TEST (test_create_errors)
{
  g_autoptr(QubeRun) no_template = NULL;
  g_autoptr(QubeRun) missing_template = NULL;
  g_autoptr(QubeRun) bad_name = NULL;
  g_autoptr(QubeRun) long_name = NULL;
  g_autoptr(QubeRun) duplicate = NULL;
  g_autoptr(QubeRun) bad_property = NULL;
  g_autoptr(QubeRun) list = NULL;

  no_template = qube_run ("create", "--class", "AppVM", "--label", "red", "lonely");
  assert_fails_with (no_template, 1, "lonely", "template", NULL);
  missing_template = qube_run ("create", "--template", "nosuch", "--label", "red", "work");
  assert_fails_with (missing_template, 1, "nosuch", NULL);

  create_template_and_appvm ();
  bad_name = qube_run ("create", "--template", "fedora", "1work");
  assert_fails_with (bad_name, 1, "1work", NULL);
  long_name = qube_run ("create", "--template", "fedora",
                        "a23456789012345678901234567890123");
  assert_fails_with (long_name, 1, "a23456789012345678901234567890123", NULL);
  duplicate = qube_run ("create", "--template", "fedora", "work");
  assert_fails_with (duplicate, 1, "work", NULL);

  /* A property that cannot be set leaves no qube behind. */
  bad_property = qube_run ("create", "--template", "fedora", "--label", "red",
                           "--property", "nosuchproperty=1", "half");
  assert_fails_with (bad_property, 1, "nosuchproperty", NULL);

  list = qube_run ("list");
  assert_ok (list);
  ck_assert_ptr_null (strstr (list->out, "lonely"));
  ck_assert_ptr_null (strstr (list->out, "1work"));
  ck_assert_ptr_null (strstr (list->out, "half"));
}
END_TEST

START_TEST (test_create_with_properties)
{
  g_autoptr(QubeRun) create = NULL;
  g_autoptr(QubeRun) memory = NULL;
  g_autoptr(QubeRun) vcpus = NULL;

  create_template_and_appvm ();
  create = qube_run ("create", "--template", "fedora", "--label", "blue",
                     "--property", "memory=812", "--property", "vcpus=3", "mail");
  assert_ok (create);
  memory = qube_run ("prefs", "mail", "memory");
  assert_ok (memory);
  ck_assert_str_eq (memory->out, "812\n");
  vcpus = qube_run ("prefs", "mail", "vcpus");
  assert_ok (vcpus);
  ck_assert_str_eq (vcpus->out, "3\n");
}
END_TEST

START_TEST (test_prefs)
{
  g_autoptr(QubeRun) list = NULL;
  g_autoptr(QubeRun) get = NULL;
  g_autoptr(QubeRun) set = NULL;
  g_autoptr(QubeRun) inherited = NULL;
  g_autoptr(QubeRun) own = NULL;
  g_autoptr(QubeRun) reset = NULL;
  g_autoptr(QubeRun) after_reset = NULL;
  g_autoptr(QubeRun) json = NULL;
  g_autoptr(QubeRun) json_one = NULL;
  g_autoptr(QubeRun) unknown = NULL;
  g_autoptr(QubeRun) unknown_qube = NULL;
  g_autoptr(QubeRun) bad_value = NULL;
  g_autoptr(QubeRun) hidden = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonNode) one = NULL;
  g_auto(GStrv) label = NULL;
  g_auto(GStrv) memory = NULL;
  JsonObject *object;

  create_template_and_appvm ();

  /* Listing: name, "-" for a value set on the qube, "D" for a default. */
  list = qube_run ("prefs", "work");
  assert_ok (list);
  label = find_row (list->out, "label");
  ck_assert_msg (label != NULL, "%s", list->out);
  ck_assert_str_eq (label[1], "-");
  ck_assert_str_eq (label[2], "red");
  memory = find_row (list->out, "memory");
  ck_assert_msg (memory != NULL, "%s", list->out);
  ck_assert_str_eq (memory[1], "D");
  ck_assert_msg (strstr (list->out, "label") < strstr (list->out, "memory"),
                 "not sorted by name:\n%s", list->out);

  get = qube_run ("prefs", "work", "label");
  assert_ok (get);
  ck_assert_str_eq (get->out, "red\n");

  /* The AppVM inherits memory from its template until it sets its own. */
  set = qube_run ("prefs", "fedora", "memory", "1234");
  assert_ok (set);
  ck_assert_str_eq (set->out, "");
  {
    g_autoptr(QubeRun) relisted = qube_run ("prefs", "work");
    g_auto(GStrv) row = NULL;

    assert_ok (relisted);
    row = find_row (relisted->out, "memory");
    ck_assert_msg (row != NULL && strcmp (row[1], "D") == 0 &&
                   g_strcmp0 (row[2], "1234") == 0, "%s", relisted->out);
  }
  inherited = qube_run ("prefs", "--json", "work", "memory");
  assert_ok (inherited);
  one = parse_json (inherited->out);
  object = json_node_get_object (one);
  ck_assert_str_eq (json_object_get_string_member (object, "name"), "memory");
  ck_assert_int_eq (json_object_get_int_member (object, "value"), 1234);
  ck_assert_str_eq (json_object_get_string_member (object, "type"), "int");
  ck_assert (json_object_get_boolean_member (object, "default"));

  {
    g_autoptr(QubeRun) set_own = qube_run ("prefs", "work", "memory", "2000");
    assert_ok (set_own);
  }
  own = qube_run ("prefs", "work", "memory");
  assert_ok (own);
  ck_assert_str_eq (own->out, "2000\n");

  reset = qube_run ("prefs", "-D", "work", "memory");
  assert_ok (reset);
  after_reset = qube_run ("prefs", "work", "memory");
  assert_ok (after_reset);
  ck_assert_str_eq (after_reset->out, "1234\n");

  json = qube_run ("prefs", "work", "--json");
  assert_ok (json);
  root = parse_json (json->out);
  object = find_json_object (root, "name", "label");
  ck_assert_msg (object != NULL, "%s", json->out);
  ck_assert_str_eq (json_object_get_string_member (object, "value"), "red");
  ck_assert_str_eq (json_object_get_string_member (object, "type"), "label");
  ck_assert (!json_object_get_boolean_member (object, "default"));
  object = find_json_object (root, "name", "template");
  ck_assert_msg (object != NULL, "%s", json->out);
  ck_assert_str_eq (json_object_get_string_member (object, "type"), "vm");
  ck_assert_str_eq (json_object_get_string_member (object, "value"), "fedora");

  hidden = qube_run ("prefs", "--hide-default", "work");
  assert_ok (hidden);
  ck_assert_ptr_nonnull (strstr (hidden->out, "label"));
  ck_assert_ptr_null (strstr (hidden->out, "memory"));

  unknown = qube_run ("prefs", "work", "nosuchproperty");
  assert_fails_with (unknown, 1, "nosuchproperty", NULL);
  unknown_qube = qube_run ("prefs", "nosuchqube");
  assert_fails_with (unknown_qube, 1, "nosuchqube", NULL);
  bad_value = qube_run ("prefs", "work", "memory", "lots");
  assert_fails_with (bad_value, 1, "memory", "lots", NULL);
}
END_TEST

START_TEST (test_global_prefs)
{
  g_autoptr(QubeRun) list = NULL;
  g_autoptr(QubeRun) set = NULL;
  g_autoptr(QubeRun) get = NULL;
  g_autoptr(QubeRun) appvm = NULL;
  g_autoptr(QubeRun) reset = NULL;
  g_autoptr(QubeRun) json = NULL;
  g_autoptr(QubeRun) unknown = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_auto(GStrv) row = NULL;
  JsonObject *object;

  create_template_and_appvm ();

  set = qube_run ("global-prefs", "default_template", "fedora");
  assert_ok (set);
  get = qube_run ("global-prefs", "default_template");
  assert_ok (get);
  ck_assert_str_eq (get->out, "fedora\n");
  list = qube_run ("global-prefs");
  assert_ok (list);
  row = find_row (list->out, "default_template");
  ck_assert_msg (row != NULL, "%s", list->out);
  ck_assert_str_eq (row[1], "-");
  ck_assert_str_eq (row[2], "fedora");

  /* An AppVM created without --template takes the default template. */
  appvm = qube_run ("create", "--label", "green", "personal");
  assert_ok (appvm);

  json = qube_run ("global-prefs", "--json");
  assert_ok (json);
  root = parse_json (json->out);
  object = find_json_object (root, "name", "default_template");
  ck_assert_msg (object != NULL, "%s", json->out);
  ck_assert (!json_object_get_boolean_member (object, "default"));

  object = find_json_object (root, "name", "default_template");
  ck_assert_str_eq (json_object_get_string_member (object, "type"), "vm");
  ck_assert_str_eq (json_object_get_string_member (object, "value"), "fedora");

  reset = qube_run ("global-prefs", "--default", "default_template");
  assert_ok (reset);
  {
    g_autoptr(QubeRun) after = qube_run ("global-prefs", "default_template", "--json");
    g_autoptr(JsonNode) one = NULL;

    assert_ok (after);
    one = parse_json (after->out);
    object = json_node_get_object (one);
    /* No qube is JSON null. */
    ck_assert (json_object_get_null_member (object, "value"));
    ck_assert (json_object_get_boolean_member (object, "default"));
  }
  unknown = qube_run ("global-prefs", "nosuchproperty");
  assert_fails_with (unknown, 1, "nosuchproperty", NULL);
}
END_TEST

START_TEST (test_features)
{
  g_autoptr(QubeRun) set = NULL;
  g_autoptr(QubeRun) set2 = NULL;
  g_autoptr(QubeRun) get = NULL;
  g_autoptr(QubeRun) list = NULL;
  g_autoptr(QubeRun) json = NULL;
  g_autoptr(QubeRun) unset = NULL;
  g_autoptr(QubeRun) missing = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_auto(GStrv) row = NULL;
  JsonObject *object;

  create_template_and_appvm ();

  set = qube_run ("features", "work", "service.cups", "1");
  assert_ok (set);
  set2 = qube_run ("features", "work", "gui", "");
  assert_ok (set2);
  get = qube_run ("features", "work", "service.cups");
  assert_ok (get);
  ck_assert_str_eq (get->out, "1\n");

  list = qube_run ("features", "work");
  assert_ok (list);
  row = find_row (list->out, "service.cups");
  ck_assert_msg (row != NULL && g_strcmp0 (row[1], "1") == 0, "%s", list->out);

  json = qube_run ("features", "--json", "work");
  assert_ok (json);
  root = parse_json (json->out);
  object = json_node_get_object (root);
  ck_assert_str_eq (json_object_get_string_member (object, "service.cups"), "1");
  ck_assert_str_eq (json_object_get_string_member (object, "gui"), "");

  unset = qube_run ("features", "--unset", "work", "service.cups");
  assert_ok (unset);
  missing = qube_run ("features", "work", "service.cups");
  assert_fails_with (missing, 1, "work", "service.cups", NULL);
}
END_TEST

START_TEST (test_tags)
{
  g_autoptr(QubeRun) add = NULL;
  g_autoptr(QubeRun) list = NULL;
  g_autoptr(QubeRun) del = NULL;
  g_autoptr(QubeRun) json = NULL;
  g_autoptr(QubeRun) bad_action = NULL;
  g_autoptr(QubeRun) no_tag = NULL;
  g_autoptr(JsonNode) root = NULL;
  JsonArray *array;

  create_template_and_appvm ();

  add = qube_run ("tags", "work", "add", "printing", "audio");
  assert_ok (add);
  list = qube_run ("tags", "work");
  assert_ok (list);
  ck_assert_ptr_nonnull (strstr (list->out, "audio\n"));
  ck_assert_ptr_nonnull (strstr (list->out, "printing\n"));

  del = qube_run ("tags", "work", "del", "audio");
  assert_ok (del);
  json = qube_run ("tags", "work", "--json");
  assert_ok (json);
  root = parse_json (json->out);
  array = json_node_get_array (root);
  for (guint i = 0; i < json_array_get_length (array); i++)
    ck_assert_str_ne (json_array_get_string_element (array, i), "audio");
  {
    gboolean found = FALSE;

    for (guint i = 0; i < json_array_get_length (array); i++)
      found |= strcmp (json_array_get_string_element (array, i), "printing") == 0;
    ck_assert_msg (found, "%s", json->out);
  }

  bad_action = qube_run ("tags", "work", "frob", "x");
  assert_fails_with (bad_action, 2, "frob", NULL);
  no_tag = qube_run ("tags", "work", "add");
  assert_fails_with (no_tag, 2, "add", NULL);
}
END_TEST

START_TEST (test_clone)
{
  g_autoptr(QubeRun) tag = NULL;
  g_autoptr(QubeRun) clone = NULL;
  g_autoptr(QubeRun) list = NULL;
  g_autoptr(QubeRun) tags = NULL;
  g_autoptr(QubeRun) exists = NULL;
  g_autoptr(QubeRun) missing = NULL;
  g_auto(GStrv) row = NULL;

  create_template_and_appvm ();
  tag = qube_run ("tags", "work", "add", "printing");
  assert_ok (tag);

  clone = qube_run ("clone", "work", "work2");
  assert_ok (clone);
  list = qube_run ("list");
  assert_ok (list);
  row = find_row (list->out, "work2");
  ck_assert_msg (row != NULL && g_strv_length (row) == 6, "%s", list->out);
  ck_assert_str_eq (row[2], "AppVM");
  ck_assert_str_eq (row[3], "red");
  ck_assert_str_eq (row[4], "fedora");
  tags = qube_run ("tags", "work2");
  assert_ok (tags);
  ck_assert_ptr_nonnull (strstr (tags->out, "printing\n"));

  exists = qube_run ("clone", "work", "fedora");
  assert_fails_with (exists, 1, "fedora", NULL);
  missing = qube_run ("clone", "nosuchqube", "other");
  assert_fails_with (missing, 1, "nosuchqube", NULL);
}
END_TEST

START_TEST (test_remove)
{
  g_autoptr(QubeRun) in_use = NULL;
  g_autoptr(QubeRun) remove_work = NULL;
  g_autoptr(QubeRun) remove_template = NULL;
  g_autoptr(QubeRun) missing = NULL;
  g_autoptr(QubeRun) list = NULL;

  create_template_and_appvm ();

  in_use = qube_run ("remove", "fedora");
  assert_fails_with (in_use, 1, "cannot remove qube 'fedora'", "template", "'work'", NULL);
  ck_assert_str_eq (in_use->out, "");

  remove_work = qube_run ("remove", "-f", "work");
  assert_ok (remove_work);
  remove_template = qube_run ("remove", "fedora");
  assert_ok (remove_template);
  list = qube_run ("list");
  assert_ok (list);
  ck_assert_ptr_null (find_row (list->out, "work"));
  ck_assert_ptr_null (find_row (list->out, "fedora"));

  missing = qube_run ("remove", "work");
  assert_fails_with (missing, 1, "work", NULL);
}
END_TEST

START_TEST (test_state_dir_option)
{
  g_autofree char *other = g_build_filename (state_dir, "other", NULL);
  g_autoptr(QubeRun) create = NULL;
  g_autoptr(QubeRun) in_other = NULL;
  g_autoptr(QubeRun) in_other_global = NULL;
  g_autoptr(QubeRun) in_default = NULL;

  g_mkdir (other, 0700);
  create = qube_run ("create", "--state-dir", other, "--class", "TemplateVM", "fedora");
  assert_ok (create);
  in_other = qube_run ("list", "--state-dir", other);
  assert_ok (in_other);
  ck_assert_ptr_nonnull (find_row (in_other->out, "fedora"));
  in_other_global = qube_run ("--state-dir", other, "list");
  assert_ok (in_other_global);
  ck_assert_ptr_nonnull (find_row (in_other_global->out, "fedora"));
  /* QUBE_STATE_DIR still points at the first directory. */
  in_default = qube_run ("list");
  assert_ok (in_default);
  ck_assert_ptr_null (find_row (in_default->out, "fedora"));
}
END_TEST

START_TEST (test_plugins_empty)
{
  g_autoptr(QubeRun) table = qube_run ("plugins");
  g_autoptr(QubeRun) json = qube_run ("plugins", "--json");
  g_autoptr(JsonNode) root = NULL;
  g_auto(GStrv) header = NULL;

  assert_ok (table);
  header = find_row (table->out, "NAME");
  ck_assert_msg (header != NULL && g_strcmp0 (header[1], "STATUS") == 0, "%s", table->out);
  assert_ok (json);
  root = parse_json (json->out);
  ck_assert (JSON_NODE_HOLDS_ARRAY (root));
}
END_TEST

/* The plugin of `qube plugins --json` read from the file `basename`. */
static JsonObject *
find_plugin (JsonNode *root, const char *basename)
{
  JsonArray *array = json_node_get_array (root);

  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *object = json_array_get_object_element (array, i);
      g_autofree char *file = g_path_get_basename (json_object_get_string_member (object, "path"));

      if (strcmp (file, basename) == 0)
        return object;
    }
  ck_abort_msg ("qube plugins does not list %s", basename);
  return NULL;
}

static void
assert_plugin (JsonNode *root, const char *basename, const char *status,
               const char *reason_part)
{
  JsonObject *plugin = find_plugin (root, basename);
  const char *reason = json_object_get_string_member_with_default (plugin, "reason", NULL);

  ck_assert_str_eq (json_object_get_string_member (plugin, "status"), status);
  if (reason_part == NULL)
    ck_assert_msg (json_object_get_null_member (plugin, "reason"),
                   "%s has a reason: %s", basename, reason);
  else
    ck_assert_msg (reason != NULL && strstr (reason, reason_part) != NULL,
                   "%s: reason '%s' lacks '%s'", basename, reason, reason_part);
}

START_TEST (test_plugins)
{
  g_autoptr(QubeRun) table = NULL;
  g_autoptr(QubeRun) json = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_auto(GStrv) unavailable = NULL;
  JsonObject *good;
  JsonArray *kinds;

  g_free (plugin_dir);
  plugin_dir = g_build_filename (g_getenv ("QUBE_TEST_BUILDDIR"), "tests", "plugins",
                                 ".libs", NULL);

  json = qube_run ("plugins", "--json");
  assert_ok (json);
  root = parse_json (json->out);
  /* The first file that claims a name wins; the second is refused. */
  assert_plugin (root, "test-good-again.so", "loaded", NULL);
  assert_plugin (root, "test-good.so", "refused", "test-good-again.so");
  assert_plugin (root, "test-unavailable.so", "unavailable", "/dev/qube-test-device is missing");
  assert_plugin (root, "test-init-fails.so", "refused", "permission denied");
  assert_plugin (root, "test-no-descriptor.so", "refused", "qube_plugin_descriptor");
  assert_plugin (root, "test-abi-major.so", "refused", "2.0");
  assert_plugin (root, "test-abi-minor.so", "refused", "newer than this libqube's plugin ABI 1.2");
  assert_plugin (root, "test-bad-table.so", "refused", "table");
  assert_plugin (root, "test-bad-name.so", "refused", "Test_Bad_Name");
  assert_plugin (root, "test-unresolved.so", "refused", "qube_test_symbol_nobody_defines");

  good = find_plugin (root, "test-good-again.so");
  ck_assert_str_eq (json_object_get_string_member (good, "name"), "test-good");
  ck_assert_str_eq (json_object_get_string_member (good, "version"), "9.9");
  ck_assert_int_eq (json_object_get_int_member (good, "abi_major"), 1);
  kinds = json_object_get_array_member (good, "kinds");
  ck_assert_int_eq (json_array_get_length (kinds), 1);
  ck_assert_str_eq (json_array_get_string_element (kinds, 0), "backend");

  /* The table shows the same, the reason last. */
  table = qube_run ("plugins");
  assert_ok (table);
  unavailable = find_row (table->out, "test-unavailable");
  ck_assert_msg (unavailable != NULL, "%s", table->out);
  ck_assert_str_eq (unavailable[1], "unavailable");
  ck_assert_str_eq (unavailable[2], "backend");
  ck_assert_msg (g_str_has_suffix (unavailable[4], "/test-unavailable.so"), "%s", table->out);
  ck_assert_msg (g_strv_length (unavailable) == 8 &&
                 strcmp (unavailable[5], "/dev/qube-test-device") == 0 &&
                 strcmp (unavailable[7], "missing") == 0, "%s", table->out);
}
END_TEST

/* ---- qube pool, qube volume ---- */

/* Runs `script` with sh, $QUBE naming the built command and the test's
 * environment (for redirections such as `$QUBE volume import X - < F`). */
static QubeRun *
qube_run_shell (const char *script)
{
  g_autofree char *binary = qube_binary ();
  g_auto(GStrv) envp = g_get_environ ();
  g_autoptr(GError) error = NULL;
  const char *argv[] = { "/bin/sh", "-c", script, NULL };
  QubeRun *run = g_new0 (QubeRun, 1);
  int wait_status = 0;

  envp = g_environ_setenv (envp, "QUBE", binary, TRUE);
  envp = g_environ_setenv (envp, "QUBE_STATE_DIR", state_dir, TRUE);
  envp = g_environ_setenv (envp, "QUBE_PLUGIN_PATH", plugin_dir, TRUE);
  envp = g_environ_setenv (envp, "LC_ALL", "C.UTF-8", TRUE);
  if (!g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &run->out,
                     &run->err, &wait_status, &error))
    ck_abort_msg ("cannot run sh: %s", error->message);
  ck_assert_msg (WIFEXITED (wait_status), "sh did not exit normally");
  run->status = WEXITSTATUS (wait_status);
  return run;
}

/* The first `len` bytes of a file, and its size. */
static char *
read_prefix (const char *path, gsize len, guint64 *size)
{
  g_autofree char *data = g_malloc0 (len);
  FILE *f = fopen (path, "r");

  ck_assert_msg (f != NULL, "cannot open %s", path);
  ck_assert_uint_eq (fread (data, 1, len, f), len);
  ck_assert_int_eq (fseeko (f, 0, SEEK_END), 0);
  *size = (guint64) ftello (f);
  fclose (f);
  return g_steal_pointer (&data);
}

/* The value of `key` in a two-column `info` listing. */
static char *
info_value (const char *text, const char *key)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);

  for (char **line = lines; *line != NULL; line++)
    if (g_str_has_prefix (*line, key) && (*line)[strlen (key)] == ' ')
      return g_strdup (g_strstrip (*line + strlen (key)));
  return NULL;
}

/* The power commands on qubes that cannot run here (no kernel, no
 * backend plugin; tests/kvm starts real ones): one-line errors naming the
 * qube, in-process and through qubed. */
START_TEST (test_power_errors)
{
  g_autoptr(QubeRun) start = NULL;
  g_autoptr(QubeRun) pause = NULL;
  g_autoptr(QubeRun) unpause = NULL;
  g_autoptr(QubeRun) kill_run = NULL;
  g_autoptr(QubeRun) shutdown = NULL;
  g_autoptr(QubeRun) missing = NULL;
  g_autoptr(QubeRun) admin_qube = NULL;
  g_autoptr(QubeRun) bad_option = NULL;
  g_autoptr(QubeRun) list = NULL;

  create_template_and_appvm ();
  start = qube_run ("start", "work");
  assert_fails_with (start, 1, "cannot start qube 'work'", NULL);
  pause = qube_run ("pause", "work");
  assert_fails_with (pause, 1, "cannot pause qube 'work'", NULL);
  unpause = qube_run ("unpause", "work");
  assert_fails_with (unpause, 1, "cannot unpause qube 'work'", NULL);
  kill_run = qube_run ("kill", "work");
  assert_fails_with (kill_run, 1, "cannot kill qube 'work'", NULL);
  shutdown = qube_run ("shutdown", "--wait", "work");
  assert_fails_with (shutdown, 1, "cannot shut down qube 'work'", NULL);
  missing = qube_run ("start", "nosuch");
  assert_fails_with (missing, 1, "nosuch", NULL);
  admin_qube = qube_run ("start", "dom0");
  assert_fails_with (admin_qube, 1, "cannot start qube 'dom0': it is the admin qube", NULL);
  bad_option = qube_run ("shutdown", "--now", "work");
  assert_fails_with (bad_option, 2, "--now", NULL);
  /* Nothing was left half-started. */
  list = qube_run ("list");
  assert_ok (list);
  ck_assert_msg (strstr (list->out, "Halted") != NULL && strstr (list->out, "Running\n") == NULL
                 && strstr (list->out, "Transient") == NULL, "%s", list->out);
}
END_TEST

START_TEST (test_pool_commands)
{
  g_autofree char *dir = g_build_filename (state_dir, "fast", NULL);
  g_autofree char *dir_option = g_strconcat ("dir_path=", dir, NULL);
  g_autoptr(QubeRun) add = qube_run ("pool", "add", "fast", "file", dir_option, "cow=copy");
  g_autoptr(QubeRun) again = qube_run ("pool", "add", "fast", "file", dir_option);
  g_autoptr(QubeRun) bad = qube_run ("pool", "add", "broken", "file", "dir_path=not/absolute");
  g_autoptr(QubeRun) bad_syntax = qube_run ("pool", "add", "broken", "file", "frob");
  g_autoptr(QubeRun) list = qube_run_both_ways ("pool", "list");
  g_autoptr(QubeRun) json = qube_run_both_ways ("pool", "list", "--json");
  g_autoptr(QubeRun) info = qube_run_pool_both_ways ("pool", "info", "fast");
  g_autoptr(QubeRun) info_json = qube_run_pool_both_ways ("pool", "info", "fast", "--json");
  g_autoptr(QubeRun) prefs = qube_run ("global-prefs", "default_pool", "fast");
  g_autoptr(QubeRun) create = qube_run ("create", "--class", "TemplateVM", "deb");
  g_autoptr(QubeRun) in_use = qube_run ("pool", "remove", "fast");
  g_autoptr(QubeRun) help = qube_run ("pool", "--help");
  g_autoptr(QubeRun) unknown = qube_run ("pool", "frob");
  g_autoptr(QubeRun) removed_qube = NULL;
  g_autoptr(QubeRun) removed = NULL;
  g_autoptr(QubeRun) list_after = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonNode) info_root = NULL;
  g_auto(GStrv) row = NULL;
  g_autofree char *mode = NULL;
  g_autofree char *location = NULL;
  g_autofree char *real_dir = NULL;
  JsonObject *fast;

  assert_ok (add);
  assert_fails_with (again, 1, "cannot add pool 'fast'", "already exists", NULL);
  assert_fails_with (bad, 1, "cannot add pool 'broken'", "dir_path", "absolute", NULL);
  assert_fails_with (bad_syntax, 2, "pool add", "'frob'", "KEY=VALUE", NULL);

  assert_ok (list);
  row = find_row (list->out, "fast");
  ck_assert_msg (row != NULL && g_strcmp0 (row[1], "file") == 0, "%s", list->out);
  ck_assert_msg (find_row (list->out, "broken") == NULL, "a refused pool is listed:\n%s",
                 list->out);
  assert_ok (json);
  root = parse_json (json->out);
  fast = find_json_object (root, "name", "fast");
  ck_assert (fast != NULL);
  ck_assert_str_eq (json_object_get_string_member (fast, "driver"), "file");
  ck_assert_str_eq (json_object_get_string_member (json_object_get_object_member (fast, "options"),
                                                   "cow"), "copy");

  assert_ok (info);
  mode = info_value (info->out, "mode");
  location = info_value (info->out, "location");
  real_dir = realpath (dir, NULL);
  ck_assert_str_eq (mode, "copy");
  ck_assert_str_eq (location, real_dir);
  ck_assert_msg (info_value (info->out, "size") != NULL && info_value (info->out, "usage"),
                 "%s", info->out);
  assert_ok (info_json);
  info_root = parse_json (info_json->out);
  ck_assert_int_gt (json_object_get_int_member (json_node_get_object (info_root), "size"), 0);
  ck_assert_str_eq (json_object_get_string_member (json_node_get_object (info_root), "driver"),
                    "file");

  /* Volumes live in it: refused, naming them. */
  assert_ok (prefs);
  assert_ok (create);
  assert_fails_with (in_use, 1, "cannot remove pool 'fast'", "deb:private", "deb:root",
                     "deb:volatile", NULL);

  assert_ok (help);
  ck_assert_msg (strstr (help->out, "qube pool") && strstr (help->out, "add")
                 && strstr (help->out, "remove"), "%s", help->out);
  assert_fails_with (unknown, 2, "unknown subcommand 'frob'", NULL);

  removed_qube = qube_run ("remove", "deb");
  assert_ok (removed_qube);
  removed = qube_run ("pool", "remove", "fast");
  assert_ok (removed);
  list_after = qube_run_both_ways ("pool", "list");
  ck_assert_msg (find_row (list_after->out, "fast") == NULL, "%s", list_after->out);
}
END_TEST

START_TEST (test_volume_list_and_info)
{
  g_autoptr(QubeRun) list = NULL;
  g_autoptr(QubeRun) json = NULL;
  g_autoptr(QubeRun) info = NULL;
  g_autoptr(QubeRun) info_json = NULL;
  g_autoptr(QubeRun) missing = NULL;
  g_autoptr(QubeRun) bad_name = NULL;
  g_autoptr(QubeRun) kernel = NULL;
  g_autoptr(QubeRun) pool = NULL;
  g_autofree char *storage = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonNode) info_root = NULL;
  g_auto(GStrv) root_row = NULL;
  g_auto(GStrv) private_row = NULL;
  g_autofree char *source = NULL;
  JsonObject *object;

  create_template_and_appvm ();
  list = qube_run_both_ways ("volume", "list", "work");
  assert_ok (list);
  root_row = find_row (list->out, "root");
  private_row = find_row (list->out, "private");
  /* VOLUME POOL SIZE(2 fields) USAGE(2 fields) FLAGS SOURCE */
  ck_assert_msg (root_row != NULL && g_strv_length (root_row) == 8, "%s", list->out);
  ck_assert_str_eq (root_row[1], "default");
  ck_assert_str_eq (root_row[2], "20.0");
  ck_assert_str_eq (root_row[6], "rw,snap_on_start");
  ck_assert_str_eq (root_row[7], "fedora/root");
  ck_assert_str_eq (private_row[6], "rw,save_on_stop");
  ck_assert_msg (find_row (list->out, "volatile") && find_row (list->out, "kernel"), "%s",
                 list->out);

  json = qube_run_both_ways ("volume", "list", "work", "--json");
  assert_ok (json);
  root = parse_json (json->out);
  object = find_json_object (root, "name", "private");
  ck_assert (object != NULL);
  ck_assert_int_eq (json_object_get_int_member (object, "size"), 2147483648);
  ck_assert (json_object_get_boolean_member (object, "save_on_stop"));

  info = qube_run_both_ways ("volume", "info", "work:root");
  assert_ok (info);
  source = info_value (info->out, "source");
  ck_assert_str_eq (source, "fedora/root");
  info_json = qube_run_both_ways ("volume", "info", "work:private", "--json");
  assert_ok (info_json);
  info_root = parse_json (info_json->out);
  object = json_node_get_object (info_root);
  ck_assert_str_eq (json_object_get_string_member (object, "pool"), "default");
  ck_assert_int_eq (json_object_get_int_member (object, "revisions_to_keep"), 1);
  ck_assert (!json_object_get_boolean_member (object, "started"));

  /* The kernel volume is files, not storage. */
  kernel = qube_run_both_ways ("volume", "info", "work:kernel");
  assert_ok (kernel);
  storage = info_value (kernel->out, "storage");
  ck_assert_str_eq (storage, "none (kernel files)");
  /* The default pool lists the qubes' volumes. */
  pool = qube_run_pool_both_ways ("pool", "info", "default", "--json");
  assert_ok (pool);
  ck_assert_msg (strstr (pool->out, "\"work:private\"") != NULL, "%s", pool->out);

  missing = qube_run_both_ways ("volume", "info", "work:swap");
  assert_fails_with (missing, 1, "qube 'work' has no volume 'swap'", NULL);
  bad_name = qube_run ("volume", "info", "work");
  assert_fails_with (bad_name, 1, "QUBE:VOLUME", NULL);
}
END_TEST

START_TEST (test_volume_import_export_revert_resize)
{
  g_autofree char *in = g_build_filename (state_dir, "in.img", NULL);
  g_autofree char *out = g_build_filename (state_dir, "out.img", NULL);
  g_autofree char *big = g_build_filename (state_dir, "big.img", NULL);
  g_autofree char *script = NULL;
  g_autofree char *data = NULL;
  g_autofree char *got = NULL;
  g_autoptr(QubeRun) import = NULL;
  g_autoptr(QubeRun) export = NULL;
  g_autoptr(QubeRun) piped = NULL;
  g_autoptr(QubeRun) revisions = NULL;
  g_autoptr(QubeRun) revert_missing = NULL;
  g_autoptr(QubeRun) revert = NULL;
  g_autoptr(QubeRun) shrink = NULL;
  g_autoptr(QubeRun) grow = NULL;
  g_autoptr(QubeRun) bad_size = NULL;
  g_autoptr(QubeRun) too_big = NULL;
  g_autoptr(QubeRun) info = NULL;
  g_autoptr(QubeRun) revisions_json = NULL;
  g_autoptr(JsonNode) revisions_root = NULL;
  g_autofree char *kept = NULL;
  g_autofree char *size = NULL;
  gsize len = 1 << 20;
  guint64 got_len;
  FILE *f;

  create_template_and_appvm ();
  data = g_malloc (len);
  for (gsize i = 0; i < len; i++)
    data[i] = (char) (i * 31 + 7);
  ck_assert (g_file_set_contents (in, data, (gssize) len, NULL));

  /* A file in, through a pipe out: the same bytes (no progress bar: not a
   * terminal), then zeros up to the volume's size. */
  import = qube_run ("volume", "import", "work:private", in);
  assert_ok (import);
  script = g_strdup_printf ("\"$QUBE\" volume export work:private - | head -c %zu > '%s'", len,
                            out);
  export = qube_run_shell (script);
  ck_assert_msg (export->status == 0, "%s", export->err);
  got = read_prefix (out, len, &got_len);
  ck_assert_uint_eq (got_len, len);
  ck_assert (memcmp (got, data, len) == 0);

  /* Standard input in, a file out. */
  g_free (script);
  script = g_strdup_printf ("printf 'second revision' | \"$QUBE\" volume import work:private -");
  piped = qube_run_shell (script);
  ck_assert_msg (piped->status == 0 && piped->err[0] == '\0', "%s", piped->err);
  g_clear_pointer (&export, qube_run_free);
  export = qube_run ("volume", "export", "work:private", out);
  assert_ok (export);
  g_clear_pointer (&got, g_free);
  got = read_prefix (out, 16, &got_len);
  ck_assert_uint_eq (got_len, 2147483648u);
  ck_assert (memcmp (got, "second revision", 15) == 0 && got[15] == '\0');
  g_clear_pointer (&got, g_free);

  /* The first import is the kept revision; reverting to it brings it back. */
  revisions = qube_run_both_ways ("volume", "revisions", "work:private");
  assert_ok (revisions);
  ck_assert_msg (g_strv_length (g_strsplit (revisions->out, "\n", -1)) == 3, "%s", revisions->out);
  /* The kept revision has a time; the volume counts it. */
  revisions_json = qube_run_both_ways ("volume", "revisions", "work:private", "--json");
  assert_ok (revisions_json);
  revisions_root = parse_json (revisions_json->out);
  ck_assert_int_eq (json_array_get_length (json_node_get_array (revisions_root)), 1);
  ck_assert_msg (g_str_has_prefix (json_object_get_string_member (
                   json_array_get_object_element (json_node_get_array (revisions_root), 0),
                   "created"), "20"), "%s", revisions_json->out);
  info = qube_run_both_ways ("volume", "info", "work:private");
  assert_ok (info);
  kept = info_value (info->out, "revisions");
  ck_assert_str_eq (kept, "1");
  g_clear_pointer (&info, qube_run_free);
  revert_missing = qube_run ("volume", "revert", "work:private", "1999");
  assert_fails_with (revert_missing, 1, "qube 'work'", "pool 'default'", "work/private",
                     "no revision '1999'", NULL);
  revert = qube_run ("volume", "revert", "work:private");
  assert_ok (revert);
  g_free (script);
  script = g_strdup_printf ("\"$QUBE\" volume export work:private - | head -c %zu > '%s'", len,
                            out);
  g_clear_pointer (&export, qube_run_free);
  export = qube_run_shell (script);
  got = read_prefix (out, len, &got_len);
  ck_assert (got_len == len && memcmp (got, data, len) == 0);

  /* Resize: shrinking refused, growing shown. */
  shrink = qube_run ("volume", "resize", "work:private", "1G");
  assert_fails_with (shrink, 1, "volume 'private'", "qube 'work'", "pool 'default'",
                     "shrinking", NULL);
  bad_size = qube_run ("volume", "resize", "work:private", "lots");
  assert_fails_with (bad_size, 2, "invalid size 'lots'", NULL);
  grow = qube_run ("volume", "resize", "work:private", "3G");
  assert_ok (grow);
  info = qube_run ("volume", "info", "work:private");
  size = info_value (info->out, "size");
  ck_assert_str_eq (size, "3.0 GiB (3221225472 bytes)");

  /* More than the volume holds: refused, nothing changed. */
  f = fopen (big, "w");
  ck_assert (f != NULL);
  ck_assert_int_eq (ftruncate (fileno (f), (off_t) 4 << 30), 0);
  fclose (f);
  too_big = qube_run ("volume", "import", "work:private", big);
  assert_fails_with (too_big, 1, "volume 'private'", "qube 'work'", "pool 'default'",
                     "does not fit", NULL);
  g_clear_pointer (&export, qube_run_free);
  export = qube_run_shell (script);
  g_clear_pointer (&got, g_free);
  got = read_prefix (out, len, &got_len);
  ck_assert (got_len == len && memcmp (got, data, len) == 0);
}
END_TEST

/* A proxy in front of qubed that notes the method of every Admin API
 * call passing through it (one call per connection). */
typedef struct {
  int listen_fd;
  const char *qubed_socket;
  GPtrArray *methods;
} CallCounter;

static gpointer
call_counter_thread (gpointer data)
{
  CallCounter *counter = data;
  int client;

  while ((client = accept (counter->listen_fd, NULL, NULL)) >= 0)
    {
      g_autoptr(GByteArray) request = qubed_fixture_read_all (client);
      g_autoptr(GByteArray) reply = NULL;
      int server = qubed_fixture_connect (counter->qubed_socket);
      gsize end = strcspn ((const char *) request->data, "+ ");

      ck_assert_int_ge (server, 0);
      g_ptr_array_add (counter->methods, g_strndup ((const char *) request->data,
                                                    MIN (end, request->len)));
      ck_assert (qubed_fixture_write_all (server, request->data, request->len));
      shutdown (server, SHUT_WR);
      reply = qubed_fixture_read_all (server);
      ck_assert (qubed_fixture_write_all (client, reply->data, reply->len));
      close (server);
      close (client);
    }
  return NULL;
}

/* Runs `qube ARGS…` through the proxy; the methods it called. */
static GPtrArray *
qube_run_counting_calls (QubeRun **run, const char *const *args)
{
  g_autofree char *real = g_steal_pointer (&qubed_socket);
  CallCounter counter = { -1, real, g_ptr_array_new_with_free_func (g_free) };
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  GThread *thread;

  /* The runs go to the proxy, the proxy to qubed. */
  qubed_socket = g_build_filename (state_dir, "counting.sock", NULL);
  counter.listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_strlcpy (addr.sun_path, qubed_socket, sizeof addr.sun_path);
  ck_assert (bind (counter.listen_fd, (struct sockaddr *) &addr, sizeof addr) == 0
             && listen (counter.listen_fd, 8) == 0);
  thread = g_thread_new ("call-counter", call_counter_thread, &counter);
  *run = qube_runv (args);
  shutdown (counter.listen_fd, SHUT_RDWR);
  g_thread_join (thread);
  close (counter.listen_fd);
  g_unlink (qubed_socket);
  g_free (qubed_socket);
  qubed_socket = g_steal_pointer (&real);
  return counter.methods;
}

static guint
count_method (GPtrArray *methods, const char *method)
{
  guint n = 0;

  for (guint i = 0; i < methods->len; i++)
    n += g_str_equal (methods->pdata[i], method);
  return n;
}

/* `qube list` through qubed asks for each qube's properties in one call
 * (admin.vm.property.GetAll), not one call per column. */
START_TEST (test_list_calls_per_qube)
{
  g_autoptr(QubeRun) run = NULL;
  g_autoptr(GPtrArray) methods = NULL;
  g_autoptr(QubeRun) c = NULL;

  create_template_and_appvm ();
  c = qube_run ("create", "--template", "fedora", "--label", "blue", "mail");
  assert_ok (c);
  methods = qube_run_counting_calls (&run, (const char *const[]) { "list", NULL });
  assert_ok (run);
  ck_assert_msg (strstr (run->out, "\nmail ") != NULL, "%s", run->out);
  /* dom0, fedora, mail, work: the list, then for each its properties and
   * whether it is internal. */
  ck_assert_uint_eq (count_method (methods, "admin.vm.List"), 1);
  ck_assert_uint_eq (count_method (methods, "admin.vm.property.GetAll"), 4);
  ck_assert_uint_eq (count_method (methods, "admin.vm.feature.Get"), 4);
  ck_assert_msg (methods->len == 9, "%u calls for a list of 4 qubes", methods->len);
}
END_TEST

static Suite *
cli_suite (void)
{
  Suite *suite = suite_create ("cli");
  TCase *tc = tcase_create ("qube");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_help_and_version);
  tcase_add_test (tc, test_usage_errors);
  tcase_add_test (tc, test_create_and_list);
  tcase_add_test (tc, test_create_errors);
  tcase_add_test (tc, test_create_with_properties);
  tcase_add_test (tc, test_prefs);
  tcase_add_test (tc, test_global_prefs);
  tcase_add_test (tc, test_features);
  tcase_add_test (tc, test_tags);
  tcase_add_test (tc, test_clone);
  tcase_add_test (tc, test_remove);
  tcase_add_test (tc, test_state_dir_option);
  tcase_add_test (tc, test_plugins_empty);
  tcase_add_test (tc, test_plugins);
  tcase_add_test (tc, test_power_errors);
  tcase_add_test (tc, test_pool_commands);
  tcase_add_test (tc, test_volume_list_and_info);
  tcase_add_test (tc, test_volume_import_export_revert_resize);
  /* Calls are counted between the CLI and qubed. */
  if (g_getenv ("QUBE_TEST_CLI_QUBED") != NULL)
    tcase_add_test (tc, test_list_calls_per_qube);
  suite_add_tcase (suite, tc);
  return suite;
}

int
main (void)
{
  SRunner *runner = srunner_create (cli_suite ());
  int failed;

  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
