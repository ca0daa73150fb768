/* test-plugin-registry.c — tests of core/qube-plugin-registry.c and
 * core/qube-host.c with the test plugins of tests/plugins/.
 *
 * Every test builds two plugin directories in a temporary directory:
 *   first/   every test plugin, good and bad (symbolic links to the built
 *            modules, plus a text file named like a plugin)
 *   second/  test-good-again.so, another plugin called "test-good"
 * and sets QUBE_PLUGIN_PATH=first:second.
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "qube-plugin-private.h"
#include "test-good.h"

static const char *const first_plugins[] = {
  "test-abi-major", "test-abi-minor", "test-bad-name", "test-bad-table",
  "test-good", "test-init-fails", "test-no-descriptor", "test-unavailable",
  "test-unresolved",
};

static char *tmp_dir;
static char *first_dir;
static char *second_dir;
static char *state_dir;
static char *runtime_dir;

static char *
built_plugin (const char *name)
{
  const char *builddir = g_getenv ("QUBE_TEST_BUILDDIR");

  ck_assert_msg (builddir != NULL, "QUBE_TEST_BUILDDIR is not set");
  return g_strdup_printf ("%s/tests/plugins/.libs/%s.so", builddir, name);
}

static void
link_plugin (const char *dir, const char *name)
{
  g_autofree char *target = built_plugin (name);
  g_autofree char *link = g_strdup_printf ("%s/%s.so", dir, name);

  ck_assert_msg (g_file_test (target, G_FILE_TEST_IS_REGULAR),
                 "test plugin %s was not built", target);
  ck_assert_int_eq (symlink (target, link), 0);
}

static void
write_file (const char *path, const char *contents)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg (g_file_set_contents (path, contents, -1, &error),
                 "%s", error ? error->message : "");
}

static void
setup (void)
{
  const char *srcdir = g_getenv ("QUBE_TEST_SRCDIR");
  g_autofree char *not_elf = NULL;
  g_autofree char *not_elf_copy = NULL;
  g_autofree char *text = NULL;
  g_autofree char *conf = NULL;
  g_autofree char *path = NULL;

  ck_assert_msg (srcdir != NULL, "QUBE_TEST_SRCDIR is not set");
  tmp_dir = g_dir_make_tmp ("qube-test-plugins-XXXXXX", NULL);
  ck_assert_ptr_nonnull (tmp_dir);
  first_dir = g_build_filename (tmp_dir, "first", NULL);
  second_dir = g_build_filename (tmp_dir, "second", NULL);
  state_dir = g_build_filename (tmp_dir, "state", NULL);
  runtime_dir = g_build_filename (tmp_dir, "run", NULL);
  ck_assert_int_eq (g_mkdir (first_dir, 0700), 0);
  ck_assert_int_eq (g_mkdir (second_dir, 0700), 0);
  ck_assert_int_eq (g_mkdir (state_dir, 0700), 0);
  ck_assert_int_eq (g_mkdir (runtime_dir, 0700), 0);

  for (gsize i = 0; i < G_N_ELEMENTS (first_plugins); i++)
    link_plugin (first_dir, first_plugins[i]);
  link_plugin (second_dir, "test-good-again");

  not_elf = g_build_filename (srcdir, "tests/plugins/test-not-elf.so", NULL);
  ck_assert (g_file_get_contents (not_elf, &text, NULL, NULL));
  not_elf_copy = g_build_filename (first_dir, "test-not-elf.so", NULL);
  write_file (not_elf_copy, text);

  conf = g_build_filename (state_dir, "plugins.conf", NULL);
  write_file (conf,
              "[test-good]\n"
              "greeting=hello from plugins.conf\n"
              "\n"
              "[test-unavailable]\n"
              "only-other=not for test-good\n");

  path = g_strdup_printf ("%s:%s", first_dir, second_dir);
  g_setenv ("QUBE_PLUGIN_PATH", path, TRUE);
}

static void
remove_tree (const char *path)
{
  g_autoptr(GDir) dir = NULL;
  const char *name;

  if (!g_file_test (path, G_FILE_TEST_IS_SYMLINK) &&
      g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      dir = g_dir_open (path, 0, NULL);
      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          remove_tree (child);
        }
      g_rmdir (path);
    }
  else
    g_unlink (path);
}

static void
teardown (void)
{
  remove_tree (tmp_dir);
  g_clear_pointer (&tmp_dir, g_free);
  g_clear_pointer (&first_dir, g_free);
  g_clear_pointer (&second_dir, g_free);
  g_clear_pointer (&state_dir, g_free);
  g_clear_pointer (&runtime_dir, g_free);
}

static QubePluginRegistry *
loaded_registry (void)
{
  QubePluginRegistry *registry = qube_plugin_registry_new (state_dir, runtime_dir);

  qube_plugin_registry_load (registry);
  return registry;
}

/* The entry for the file `base` ("test-good.so") of `dir`. */
static QubePluginInfo *
info_for_file (GPtrArray *list, const char *dir, const char *base)
{
  g_autofree char *path = g_build_filename (dir, base, NULL);

  for (guint i = 0; i < list->len; i++)
    {
      QubePluginInfo *info = g_ptr_array_index (list, i);

      if (g_str_equal (qube_plugin_info_get_path (info), path))
        return info;
    }
  ck_abort_msg ("%s is not in the registry's list", path);
  return NULL;
}

#define ck_assert_reason_has(info, text)                                   \
  ck_assert_msg (qube_plugin_info_get_reason (info) != NULL &&             \
                 strstr (qube_plugin_info_get_reason (info), (text)) != NULL, \
                 "reason of %s is \"%s\", expected it to contain \"%s\"", \
                 qube_plugin_info_get_path (info),                         \
                 qube_plugin_info_get_reason (info), (text))

#define ck_assert_error_is(err, err_code, text)                             \
  do {                                                                      \
    ck_assert_ptr_nonnull (err);                                            \
    ck_assert_msg (g_error_matches ((err), QUBE_ERROR, (err_code)),         \
                   "error \"%s\" has code %d, expected %d",                 \
                   (err)->message, (err)->code, (err_code));                \
    ck_assert_str_eq ((err)->message, (text));                              \
  } while (0)

static QubePluginInfo *
good_plugin (QubePluginRegistry *registry)
{
  QubePluginInfo *info = qube_plugin_registry_lookup (registry, "test-good");

  ck_assert_ptr_nonnull (info);
  ck_assert_int_eq (qube_plugin_info_get_status (info), QUBE_PLUGIN_LOADED);
  return info;
}

START_TEST (test_good_plugin_is_loaded)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  QubePluginInfo *info = good_plugin (registry);
  g_autofree char *path = g_build_filename (first_dir, "test-good.so", NULL);
  const QubeHost *host = _qube_plugin_info_get_host (info);
  TestGoodData *data = _qube_plugin_info_get_data (info);

  ck_assert_str_eq (qube_plugin_info_get_name (info), "test-good");
  ck_assert_str_eq (qube_plugin_info_get_path (info), path);
  ck_assert_ptr_null (qube_plugin_info_get_reason (info));
  ck_assert_str_eq (qube_plugin_info_get_description (info),
                    "a test backend that records its calls");
  ck_assert_str_eq (qube_plugin_info_get_version (info), "1.2.3");
  ck_assert_str_eq (qube_plugin_info_get_license (info), "LGPL-2.1-or-later");
  ck_assert_uint_eq (qube_plugin_info_get_abi_major (info), QUBE_ABI_MAJOR);
  ck_assert_uint_eq (qube_plugin_info_get_abi_minor (info), QUBE_ABI_MINOR);
  ck_assert_int_eq (qube_plugin_info_get_kinds (info),
                    QUBE_PLUGIN_KIND_BACKEND | QUBE_PLUGIN_KIND_STORAGE);
  /* The plugin's own line for `qube plugins`, flattened to one line. */
  {
    g_autofree char *detail = qube_plugin_info_get_detail (info);
    ck_assert_str_eq (detail, "records calls; line two");
  }

  /* init() got this plugin's own host table. */
  ck_assert_ptr_nonnull (data);
  ck_assert_ptr_eq (data->host, host);
  ck_assert_uint_eq (host->size, sizeof (QubeHost));
  ck_assert_uint_eq (host->abi_minor, QUBE_ABI_MINOR);
  ck_assert_str_eq (host->plugin_name, "test-good");
  ck_assert_str_eq (host->state_dir, state_dir);
  ck_assert_str_eq (host->runtime_dir, runtime_dir);
}
END_TEST

/* Each refused file, with what its reason must say. */
static const struct {
  const char *file;
  const char *name;
  const char *reason[3];
} refusals[] = {
  { "test-no-descriptor.so", "test-no-descriptor",
    { "not a libqube plugin", "'qube_plugin_descriptor'" } },
  { "test-not-elf.so", "test-not-elf",
    { "cannot be loaded as a shared object", "invalid ELF header" } },
  { "test-unresolved.so", "test-unresolved",
    { "cannot be loaded as a shared object",
      "undefined symbol: qube_test_symbol_nobody_defines" } },
  { "test-abi-major.so", "test-abi-major",
    { "built for plugin ABI 2.0", "this libqube has plugin ABI 1.2",
      "major version must match" } },
  { "test-abi-minor.so", "test-abi-minor",
    { "built for plugin ABI 1.3", "newer than this libqube's plugin ABI 1.2" } },
  { "test-bad-name.so", "test-bad-name",
    { "name 'Test_Bad_Name' is not valid", "a-z, 0-9 and '-'" } },
  { "test-bad-table.so", "test-bad-table",
    { "isolation backend table says it is 8 bytes" } },
  { "test-init-fails.so", "test-init-fails",
    { "its initialisation failed: cannot open ",
      "/state/test-init-fails/lock: permission denied" } },
};

START_TEST (test_bad_plugin_is_refused_with_reason)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  g_autoptr(GPtrArray) list = qube_plugin_registry_list (registry);
  QubePluginInfo *info = info_for_file (list, first_dir, refusals[_i].file);

  ck_assert_int_eq (qube_plugin_info_get_status (info), QUBE_PLUGIN_REFUSED);
  ck_assert_str_eq (qube_plugin_info_get_name (info), refusals[_i].name);
  for (gsize j = 0; j < G_N_ELEMENTS (refusals[_i].reason); j++)
    if (refusals[_i].reason[j] != NULL)
      ck_assert_reason_has (info, refusals[_i].reason[j]);
  /* A refused plugin hands out nothing to call. */
  ck_assert_ptr_null (_qube_plugin_info_get_desc (info));
  ck_assert_ptr_null (qube_plugin_info_get_detail (info));
}
END_TEST

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

START_TEST (test_every_file_is_listed_in_order)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  g_autoptr(GPtrArray) list = qube_plugin_registry_list (registry);
  g_autoptr(GPtrArray) expected = g_ptr_array_new_with_free_func (g_free);
  guint n = 0;

  /* first/ in byte order, then second/: bad files before test-good.so did
   * not stop it, nor anything after it. */
  for (gsize i = 0; i < G_N_ELEMENTS (first_plugins); i++)
    g_ptr_array_add (expected, g_strdup_printf ("%s/%s.so", first_dir,
                                                first_plugins[i]));
  g_ptr_array_add (expected, g_strdup_printf ("%s/test-not-elf.so", first_dir));
  g_ptr_array_sort (expected, compare_strings);
  g_ptr_array_add (expected, g_strdup_printf ("%s/test-good-again.so", second_dir));

  for (guint i = 0; i < list->len; i++)
    {
      const char *path = qube_plugin_info_get_path (g_ptr_array_index (list, i));

      /* Plugins installed on this machine may follow ours. */
      if (!g_str_has_prefix (path, tmp_dir))
        continue;
      ck_assert_uint_lt (n, expected->len);
      ck_assert_str_eq (path, g_ptr_array_index (expected, n));
      n++;
    }
  ck_assert_uint_eq (n, expected->len);
}
END_TEST

START_TEST (test_duplicate_name_is_refused)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  g_autoptr(GPtrArray) list = qube_plugin_registry_list (registry);
  QubePluginInfo *first = info_for_file (list, first_dir, "test-good.so");
  QubePluginInfo *again = info_for_file (list, second_dir, "test-good-again.so");
  g_autofree char *first_path = g_build_filename (first_dir, "test-good.so", NULL);
  g_autofree char *reason = g_strdup_printf ("a plugin named 'test-good' was "
                                             "already found at %s",
                                             first_path);

  ck_assert_int_eq (qube_plugin_info_get_status (first), QUBE_PLUGIN_LOADED);
  ck_assert_int_eq (qube_plugin_info_get_status (again), QUBE_PLUGIN_REFUSED);
  ck_assert_str_eq (qube_plugin_info_get_name (again), "test-good");
  ck_assert_reason_has (again, reason);
  ck_assert_ptr_eq (qube_plugin_registry_lookup (registry, "test-good"), first);
}
END_TEST

START_TEST (test_first_directory_wins)
{
  g_autofree char *path = g_strdup_printf ("%s:%s", second_dir, first_dir);
  g_autoptr(QubePluginRegistry) registry = NULL;
  g_autoptr(GPtrArray) list = NULL;
  QubePluginInfo *info;

  g_setenv ("QUBE_PLUGIN_PATH", path, TRUE);
  registry = loaded_registry ();
  list = qube_plugin_registry_list (registry);

  info = qube_plugin_registry_lookup (registry, "test-good");
  ck_assert_int_eq (qube_plugin_info_get_status (info), QUBE_PLUGIN_LOADED);
  ck_assert_str_eq (qube_plugin_info_get_description (info),
                    "the second copy of test-good");
  info = info_for_file (list, first_dir, "test-good.so");
  ck_assert_int_eq (qube_plugin_info_get_status (info), QUBE_PLUGIN_REFUSED);
  ck_assert_reason_has (info, second_dir);
}
END_TEST

START_TEST (test_same_file_twice_is_one_plugin)
{
  g_autofree char *path = g_strdup_printf ("%s::%s:%s", first_dir, tmp_dir, first_dir);
  g_autofree char *link = g_build_filename (tmp_dir, "link-to-good.so", NULL);
  g_autofree char *target = built_plugin ("test-good");
  g_autoptr(QubePluginRegistry) registry = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_auto(GStrv) search_path = NULL;
  guint good = 0;

  ck_assert_int_eq (symlink (target, link), 0);
  g_setenv ("QUBE_PLUGIN_PATH", path, TRUE);
  registry = loaded_registry ();
  list = qube_plugin_registry_list (registry);

  /* Empty elements are skipped; the installed directory comes last. */
  search_path = qube_plugin_registry_get_search_path (registry);
  ck_assert_uint_eq (g_strv_length (search_path), 4);
  ck_assert_str_eq (search_path[0], first_dir);
  ck_assert_str_eq (search_path[1], tmp_dir);
  ck_assert_str_eq (search_path[2], first_dir);
  ck_assert_str_eq (search_path[3], QUBE_PLUGIN_DIR);

  for (guint i = 0; i < list->len; i++)
    if (strstr (qube_plugin_info_get_path (g_ptr_array_index (list, i)), "good"))
      good++;
  ck_assert_uint_eq (good, 1);
  ck_assert_int_eq (qube_plugin_info_get_status (good_plugin (registry)),
                    QUBE_PLUGIN_LOADED);
}
END_TEST

START_TEST (test_unavailable_plugin_stays_loaded)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  QubePluginInfo *info = qube_plugin_registry_lookup (registry, "test-unavailable");
  g_autoptr(GError) error = NULL;

  ck_assert_ptr_nonnull (info);
  ck_assert_int_eq (qube_plugin_info_get_status (info), QUBE_PLUGIN_UNAVAILABLE);
  ck_assert_str_eq (qube_plugin_info_get_reason (info),
                    "/dev/qube-test-device is missing");
  ck_assert_ptr_nonnull (_qube_plugin_info_get_desc (info));

  ck_assert_ptr_null (_qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_BACKEND,
                                                  "test-unavailable", &error));
  ck_assert_error_is (error, QUBE_ERROR_UNAVAILABLE,
                      "plugin 'test-unavailable' cannot be used: not available "
                      "on this host: /dev/qube-test-device is missing");
}
END_TEST

/* Finding a refused plugin's backend gives its reason. */
static void
assert_refused_plugin_not_found (QubePluginRegistry *registry,
                                 const char *name,
                                 const char *reason_start)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *prefix = g_strdup_printf ("plugin '%s' was refused: %s",
                                             name, reason_start);

  ck_assert_ptr_null (_qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_BACKEND,
                                                  name, &error));
  ck_assert_ptr_nonnull (error);
  ck_assert_int_eq (error->code, QUBE_ERROR_UNAVAILABLE);
  ck_assert_msg (g_str_has_prefix (error->message, prefix),
                 "\"%s\" does not start with \"%s\"", error->message, prefix);
}

START_TEST (test_find_says_why_not)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  QubePluginInfo *good = good_plugin (registry);
  g_autoptr(GError) error = NULL;
  g_autofree char *searched = NULL;
  g_autofree char *expected = NULL;

  ck_assert_ptr_eq (_qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_BACKEND,
                                                "test-good", &error), good);
  ck_assert_ptr_null (error);
  /* A storage plugin is found by its driver name. */
  ck_assert_ptr_eq (_qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_STORAGE,
                                                "testfs", &error), good);
  ck_assert_ptr_null (error);

  ck_assert_ptr_null (_qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_BACKEND,
                                                  "kvm", &error));
  searched = g_strjoin (", ", first_dir, second_dir, QUBE_PLUGIN_DIR, NULL);
  expected = g_strdup_printf ("no plugin provides isolation backend 'kvm' "
                              "(searched: %s)", searched);
  ck_assert_error_is (error, QUBE_ERROR_NOT_FOUND, expected);
  g_clear_error (&error);

  assert_refused_plugin_not_found (registry, "test-abi-major",
                                   "it was built for plugin ABI 2.0");
  assert_refused_plugin_not_found (registry, "test-init-fails",
                                   "its initialisation failed: cannot open ");

  ck_assert_ptr_null (_qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_VCHAN,
                                                  "test-good", &error));
  ck_assert_error_is (error, QUBE_ERROR_NOT_SUPPORTED,
                      "plugin 'test-good' does not provide a vchan transport");
}
END_TEST

/* The plugin files the registry read, from its debug messages. */
static GPtrArray *files_read;

static GLogWriterOutput
capture_reads (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
               gpointer user_data)
{
  for (gsize i = 0; i < n_fields; i++)
    if (g_str_equal (fields[i].key, "MESSAGE") && fields[i].length < 0
        && g_str_has_prefix (fields[i].value, "plugin ")
        && strstr (fields[i].value, ".so)") != NULL)
      g_ptr_array_add (files_read, g_strdup (fields[i].value));
  return G_LOG_WRITER_HANDLED;
}

/* A backend asked for by name reads its own file only; listing then reads
 * the others, and the plugin found first is listed once, in its place. */
START_TEST (test_find_reads_only_the_named_file)
{
  g_autoptr(QubePluginRegistry) registry = qube_plugin_registry_new (state_dir, runtime_dir);
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *good_path = g_build_filename (first_dir, "test-good.so", NULL);
  QubePluginInfo *found;
  guint good = 0;

  files_read = g_ptr_array_new_with_free_func (g_free);
  g_log_set_writer_func (capture_reads, NULL, NULL);
  found = _qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_BACKEND, "test-good", &error);
  ck_assert_ptr_null (error);
  ck_assert_ptr_nonnull (found);
  ck_assert_str_eq (qube_plugin_info_get_path (found), good_path);
  ck_assert_uint_eq (files_read->len, 1);
  ck_assert_msg (strstr (g_ptr_array_index (files_read, 0), good_path) != NULL, "%s",
                 (char *) g_ptr_array_index (files_read, 0));

  /* A plugin no file is named after is looked for in all of them. */
  ck_assert_ptr_null (_qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_BACKEND, "kvm",
                                                  &error));
  ck_assert_int_eq (error->code, QUBE_ERROR_NOT_FOUND);
  ck_assert_uint_gt (files_read->len, 1);

  list = qube_plugin_registry_list (registry);
  ck_assert_ptr_eq (info_for_file (list, first_dir, "test-good.so"), found);
  ck_assert_ptr_eq (qube_plugin_registry_lookup (registry, "test-good"), found);
  for (guint i = 0; i < list->len; i++)
    if (g_str_equal (qube_plugin_info_get_path (g_ptr_array_index (list, i)), good_path))
      good++;
  ck_assert_uint_eq (good, 1);
  ck_assert_int_eq (qube_plugin_info_get_status (info_for_file (list, second_dir,
                                                                "test-good-again.so")),
                    QUBE_PLUGIN_REFUSED);
  g_clear_pointer (&files_read, g_ptr_array_unref);
}
END_TEST

/* With QUBE_PLUGIN_PATH=`search_path`, the backend "test-good" asked for
 * by name comes from the file `expected`, test-good-again.so's copy. */
static void
assert_test_good_found_at (const char *search_path, const char *expected)
{
  g_autoptr(QubePluginRegistry) registry = NULL;
  g_autoptr(GError) error = NULL;
  QubePluginInfo *found;

  g_setenv ("QUBE_PLUGIN_PATH", search_path, TRUE);
  registry = qube_plugin_registry_new (state_dir, runtime_dir);
  found = _qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_BACKEND, "test-good", &error);
  ck_assert_ptr_null (error);
  ck_assert_ptr_nonnull (found);
  ck_assert_str_eq (qube_plugin_info_get_path (found), expected);
  ck_assert_str_eq (qube_plugin_info_get_description (found), "the second copy of test-good");
  ck_assert_ptr_eq (qube_plugin_registry_lookup (registry, "test-good"), found);
}

/* A plugin asked for by name is the one a full load would choose, even
 * when a file of another name that is read before NAME.so declares the
 * same name: in an earlier directory, or earlier in the same one. */
START_TEST (test_find_by_name_follows_load_order)
{
  g_autofree char *path = g_strdup_printf ("%s:%s", second_dir, first_dir);
  g_autofree char *again = g_build_filename (second_dir, "test-good-again.so", NULL);
  g_autofree char *copy = g_build_filename (first_dir, "test-a-copy.so", NULL);
  g_autofree char *target = built_plugin ("test-good-again");

  /* second/test-good-again.so is read before first/test-good.so. */
  assert_test_good_found_at (path, again);
  /* One directory, where test-a-copy.so comes before test-good.so. */
  ck_assert_int_eq (symlink (target, copy), 0);
  assert_test_good_found_at (first_dir, copy);
}
END_TEST

/* A file named after what is asked for that declares another name does
 * not take that name from the file a full load gives it to: asking for
 * "test-zz" (test-zz.so declares "test-good") leaves "test-good" to
 * test-good.so, read before it. */
START_TEST (test_find_misnamed_file_keeps_load_order)
{
  g_autoptr(QubePluginRegistry) registry = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *zz = g_build_filename (first_dir, "test-zz.so", NULL);
  g_autofree char *good_path = g_build_filename (first_dir, "test-good.so", NULL);
  g_autofree char *target = built_plugin ("test-good-again");
  QubePluginInfo *owner;

  ck_assert_int_eq (symlink (target, zz), 0);
  g_setenv ("QUBE_PLUGIN_PATH", first_dir, TRUE);
  registry = qube_plugin_registry_new (state_dir, runtime_dir);
  ck_assert_ptr_null (_qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_BACKEND, "test-zz",
                                                  &error));
  ck_assert_int_eq (error->code, QUBE_ERROR_NOT_FOUND);
  owner = qube_plugin_registry_lookup (registry, "test-good");
  ck_assert_ptr_nonnull (owner);
  ck_assert_str_eq (qube_plugin_info_get_path (owner), good_path);
}
END_TEST

START_TEST (test_calls_reach_the_plugin)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  QubePluginInfo *info = good_plugin (registry);
  const QubePluginDesc *desc = _qube_plugin_info_get_desc (info);
  TestGoodData *data = _qube_plugin_info_get_data (info);
  QubeDomainConfig config = { .size = sizeof config };
  g_autofree char *backend_id = NULL;

  config.ref.size = sizeof config.ref;
  config.ref.name = "work";

  ck_assert_int_eq (desc->backend->create (data, &config, &backend_id), 0);
  ck_assert_str_eq (backend_id, "id-work");
  config.ref.backend_id = backend_id;
  ck_assert_int_eq (desc->backend->start (data, &config.ref), 0);
  ck_assert_str_eq (data->calls, "create work;start work;");
}
END_TEST

START_TEST (test_unset_slot_is_not_supported)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  QubePluginInfo *info = good_plugin (registry);
  g_autoptr(GError) error = NULL;

  ck_assert_ptr_null (_qube_plugin_info_get_desc (info)->backend->kill);
  ck_assert (!_qube_plugin_not_supported (info, "killing a qube", &error));
  ck_assert_error_is (error, QUBE_ERROR_NOT_SUPPORTED,
                      "killing a qube is not supported by plugin 'test-good'");
}
END_TEST

static int
call_pause (QubePluginInfo *info, const char *qube)
{
  QubeDomainRef ref = { .size = sizeof ref, .name = qube };

  return _qube_plugin_info_get_desc (info)->backend->pause (
    _qube_plugin_info_get_data (info), &ref);
}

START_TEST (test_plugin_error_reaches_gerror)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  QubePluginInfo *info = good_plugin (registry);
  g_autoptr(GError) error = NULL;
  int rc = call_pause (info, "work");

  ck_assert_int_eq (rc, QUBE_ABI_E_BUSY);
  ck_assert (!_qube_plugin_take_error (info, rc, "cannot pause qube 'work'", &error));
  ck_assert_error_is (error, QUBE_ERROR_IN_USE,
                      "cannot pause qube 'work': domain 'work' is busy");
  g_clear_error (&error);

  /* Taken means gone: a later failure without a message does not reuse it. */
  _qube_plugin_take_error (info, QUBE_ABI_E_TIMEOUT, "cannot pause qube 'work'", &error);
  ck_assert_error_is (error, QUBE_ERROR_TIMEOUT,
                      "cannot pause qube 'work': plugin 'test-good' failed "
                      "(error 10) without saying why");
}
END_TEST

typedef struct {
  QubePluginInfo *info;
  GError *error;
} ThreadCall;

/* Fails an operation on this thread and reads the error here. */
static gpointer
pause_and_take (gpointer user_data)
{
  ThreadCall *call = user_data;
  int rc = call_pause (call->info, "mail");

  _qube_plugin_take_error (call->info, rc, "cannot pause qube 'mail'", &call->error);
  return NULL;
}

/* Fails an operation on this thread and leaves the error unread. */
static gpointer
pause_only (gpointer user_data)
{
  ThreadCall *call = user_data;

  call_pause (call->info, "other-thread");
  return NULL;
}

START_TEST (test_errors_stay_on_their_thread)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  QubePluginInfo *info = good_plugin (registry);
  ThreadCall call = { .info = info };
  g_autoptr(GError) error = NULL;
  int rc;

  /* This thread's error is not seen by another thread... */
  rc = call_pause (info, "work");
  g_thread_join (g_thread_new ("pause-and-take", pause_and_take, &call));
  ck_assert_error_is (call.error, QUBE_ERROR_IN_USE,
                      "cannot pause qube 'mail': domain 'mail' is busy");
  g_clear_error (&call.error);

  /* ...nor is another thread's error seen here. */
  g_thread_join (g_thread_new ("pause-only", pause_only, &call));
  _qube_plugin_take_error (info, rc, "cannot pause qube 'work'", &error);
  ck_assert_error_is (error, QUBE_ERROR_IN_USE,
                      "cannot pause qube 'work': domain 'work' is busy");
}
END_TEST

START_TEST (test_host_run_captures_output_and_status)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  QubePluginInfo *info = good_plugin (registry);
  const QubeHost *host = _qube_plugin_info_get_host (info);
  const char *const script[] = {
    "sh", "-c", "tr a-z A-Z; echo 'to stderr' >&2; exit 3", NULL
  };
  const char *const killed[] = { "sh", "-c", "kill -TERM $$", NULL };
  const char *const missing[] = { "qube-test-no-such-command", NULL };
  QubeRunResult result;
  g_autoptr(GError) error = NULL;
  int rc;

  ck_assert_int_eq (host->run (host, script, "input\n", 6, &result), 0);
  ck_assert_int_eq (result.exit_status, 3);
  ck_assert_str_eq (result.out, "INPUT\n");
  ck_assert_uint_eq (result.out_len, 6);
  ck_assert_str_eq (result.err, "to stderr\n");
  ck_assert_uint_eq (result.err_len, 10);
  free (result.out);
  free (result.err);

  ck_assert_int_eq (host->run (host, killed, NULL, 0, &result), 0);
  ck_assert_int_eq (result.exit_status, 128 + SIGTERM);
  ck_assert_str_eq (result.out, "");
  free (result.out);
  free (result.err);

  rc = host->run (host, missing, NULL, 0, &result);
  ck_assert_int_eq (rc, QUBE_ABI_E_NOT_FOUND);
  _qube_plugin_take_error (info, rc, "cannot make the test volume", &error);
  ck_assert_int_eq (error->code, QUBE_ERROR_NOT_FOUND);
  ck_assert (g_str_has_prefix (error->message, "cannot make the test volume: "
                               "cannot run 'qube-test-no-such-command': "));
}
END_TEST

START_TEST (test_config_comes_from_plugins_conf)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  QubePluginInfo *info = good_plugin (registry);
  const QubeHost *host = _qube_plugin_info_get_host (info);
  TestGoodData *data = _qube_plugin_info_get_data (info);

  ck_assert_str_eq (data->greeting, "hello from plugins.conf");
  ck_assert_str_eq (host->config_get (host, "greeting"), "hello from plugins.conf");
  ck_assert_ptr_null (host->config_get (host, "no-such-key"));
  /* Another plugin's group is not this plugin's configuration. */
  ck_assert_ptr_null (host->config_get (host, "only-other"));
}
END_TEST

START_TEST (test_missing_plugins_conf_means_no_values)
{
  g_autofree char *conf = g_build_filename (state_dir, "plugins.conf", NULL);
  g_autoptr(QubePluginRegistry) registry = NULL;
  QubePluginInfo *info;
  const QubeHost *host;

  ck_assert_int_eq (g_unlink (conf), 0);
  registry = loaded_registry ();
  info = good_plugin (registry);
  host = _qube_plugin_info_get_host (info);
  ck_assert_ptr_null (host->config_get (host, "greeting"));
  ck_assert_ptr_null (((TestGoodData *) _qube_plugin_info_get_data (info))->greeting);
}
END_TEST

static char *logged_domain;
static char *logged_message;

static GLogWriterOutput
capture_log (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
             gpointer user_data)
{
  const char *domain = NULL;
  const char *message = NULL;

  for (gsize i = 0; i < n_fields; i++)
    {
      if (g_str_equal (fields[i].key, "GLIB_DOMAIN"))
        domain = fields[i].value;
      else if (g_str_equal (fields[i].key, "MESSAGE"))
        message = fields[i].value;
    }
  if (domain != NULL && g_str_has_prefix (domain, "qube-plugin-"))
    {
      g_free (logged_domain);
      g_free (logged_message);
      logged_domain = g_strdup (domain);
      logged_message = g_strdup (message);
    }
  return G_LOG_WRITER_HANDLED;
}

START_TEST (test_log_uses_plugin_domain)
{
  g_autoptr(QubePluginRegistry) registry = loaded_registry ();
  const QubeHost *host = _qube_plugin_info_get_host (good_plugin (registry));

  g_log_set_writer_func (capture_log, NULL, NULL);
  host->log (host, QUBE_LOG_WARNING, "volume %s is %d%% full", "private", 95);
  ck_assert_str_eq (logged_domain, "qube-plugin-test-good");
  ck_assert_str_eq (logged_message, "volume private is 95% full");
}
END_TEST

static Suite *
plugin_registry_suite (void)
{
  Suite *suite = suite_create ("plugin-registry");
  TCase *loading = tcase_create ("loading");
  TCase *calls = tcase_create ("calls");
  TCase *host = tcase_create ("host");

  tcase_add_checked_fixture (loading, setup, teardown);
  tcase_add_test (loading, test_good_plugin_is_loaded);
  tcase_add_loop_test (loading, test_bad_plugin_is_refused_with_reason,
                       0, G_N_ELEMENTS (refusals));
  tcase_add_test (loading, test_every_file_is_listed_in_order);
  tcase_add_test (loading, test_duplicate_name_is_refused);
  tcase_add_test (loading, test_first_directory_wins);
  tcase_add_test (loading, test_same_file_twice_is_one_plugin);
  tcase_add_test (loading, test_unavailable_plugin_stays_loaded);
  tcase_add_test (loading, test_find_says_why_not);
  tcase_add_test (loading, test_find_reads_only_the_named_file);
  tcase_add_test (loading, test_find_by_name_follows_load_order);
  tcase_add_test (loading, test_find_misnamed_file_keeps_load_order);
  suite_add_tcase (suite, loading);

  tcase_add_checked_fixture (calls, setup, teardown);
  tcase_add_test (calls, test_calls_reach_the_plugin);
  tcase_add_test (calls, test_unset_slot_is_not_supported);
  tcase_add_test (calls, test_plugin_error_reaches_gerror);
  tcase_add_test (calls, test_errors_stay_on_their_thread);
  suite_add_tcase (suite, calls);

  tcase_add_checked_fixture (host, setup, teardown);
  tcase_add_test (host, test_host_run_captures_output_and_status);
  tcase_add_test (host, test_config_comes_from_plugins_conf);
  tcase_add_test (host, test_missing_plugins_conf_means_no_values);
  tcase_add_test (host, test_log_uses_plugin_domain);
  suite_add_tcase (suite, host);

  return suite;
}

int
main (void)
{
  SRunner *runner = srunner_create (plugin_registry_suite ());
  int failed;

  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
