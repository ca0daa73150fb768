/* test-pool.c — storage pools (core/qube-pool.c) with the real
 * storage-file plugin of the build tree: the default pool made on first
 * use, adding (a refusal leaves no record), listing, figures, removing
 * (refused while volumes live in it), and the record shared by two
 * managers of one state directory. */
#include "config.h"

#include <check.h>
#include <glib/gstdio.h>
#include <string.h>

#include "qube-error.h"
#include "qube-storage-private.h"
#include "state-fixture.h"

static char *
list_pool_names (QubeManager *manager)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) pools = qube_manager_list_pools (manager, &error);
  g_autoptr(GString) names = g_string_new (NULL);

  ck_assert_msg (pools != NULL, "%s", error ? error->message : "");
  for (guint i = 0; i < pools->len; i++)
    g_string_append_printf (names, "%s%s", i > 0 ? " " : "",
                            qube_storage_pool_get_name (pools->pdata[i]));
  return g_strdup (names->str);
}

static QubeStoragePool *
add_pool (const char *name, const char *const *options)
{
  g_autoptr(GError) error = NULL;
  QubeStoragePool *pool = qube_manager_add_pool (fixture_manager, name, "file", options, &error);

  ck_assert_msg (pool != NULL, "cannot add pool %s: %s", name, error ? error->message : "");
  return pool;
}

START_TEST (test_default_pool_on_first_use)
{
  g_autofree char *names = list_pool_names (fixture_manager);
  g_autofree char *dir = g_build_filename (fixture_state_dir, "pools", "default", NULL);
  g_autofree char *expected_option = g_strconcat ("dir_path=", dir, NULL);
  g_autoptr(QubeVm) t = NULL;
  g_autoptr(QubeStoragePool) pool = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) options = NULL;
  g_auto(GStrv) formats = NULL;
  g_autofree char *mode = NULL;
  g_autofree char *location = NULL;
  g_autofree char *real_dir = NULL;
  guint64 size = 0, usage = 0;

  ck_assert_str_eq (names, "");
  ck_assert (!g_file_test (dir, G_FILE_TEST_EXISTS));
  t = fixture_create (fixture_manager, "TemplateVM", "deb", NULL);
  g_free (names);
  names = list_pool_names (fixture_manager);
  ck_assert_str_eq (names, "default");
  ck_assert (g_file_test (dir, G_FILE_TEST_IS_DIR));

  pool = qube_manager_lookup_pool (fixture_manager, "default", &error);
  ck_assert (pool != NULL);
  ck_assert_str_eq (qube_storage_pool_get_driver (pool), "file");
  options = qube_storage_pool_get_options (pool);
  ck_assert_uint_eq (g_strv_length (options), 1);
  ck_assert_str_eq (options[0], expected_option);

  ck_assert_msg (qube_storage_pool_query (pool, &size, &usage, &mode, &location, &formats,
                                          &error), "%s", error ? error->message : "");
  real_dir = realpath (dir, NULL);
  ck_assert_str_eq (location, real_dir);
  ck_assert_msg (strcmp (mode, "qcow2") == 0 || strcmp (mode, "reflink") == 0, "mode %s", mode);
  ck_assert_str_eq (formats[0], strcmp (mode, "qcow2") == 0 ? "qcow2" : "raw");
  ck_assert_uint_gt (size, 0);
  ck_assert_uint_le (usage, size);
}
END_TEST

START_TEST (test_add_list_info)
{
  g_autofree char *dir = g_build_filename (fixture_state_dir, "elsewhere", "fast", NULL);
  g_autofree char *dir_option = g_strconcat ("dir_path=", dir, NULL);
  const char *options[] = { "cow=copy", dir_option, NULL };
  g_autoptr(QubeStoragePool) pool = add_pool ("fast", options);
  g_autoptr(QubeStoragePool) again = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) stored = NULL;
  g_autofree char *mode = NULL;
  g_autofree char *names = NULL;

  /* Options are kept sorted by key. */
  stored = qube_storage_pool_get_options (pool);
  ck_assert_str_eq (stored[0], "cow=copy");
  ck_assert_str_eq (stored[1], dir_option);
  ck_assert (g_file_test (dir, G_FILE_TEST_IS_DIR));
  ck_assert (qube_storage_pool_query (pool, NULL, NULL, &mode, NULL, NULL, &error));
  ck_assert_str_eq (mode, "copy");

  again = qube_manager_add_pool (fixture_manager, "fast", "file", options, &error);
  ck_assert (again == NULL);
  fixture_assert_error (&error, QUBE_ERROR_EXISTS, "cannot add pool 'fast': it already exists");

  names = list_pool_names (fixture_manager);
  ck_assert_str_eq (names, "fast");

  /* Another manager of the same state directory sees it and can use it. */
  {
    g_autoptr(QubeManager) other = fixture_open (fixture_state_dir);
    g_autoptr(QubeStoragePool) seen = qube_manager_lookup_pool (other, "fast", &error);
    g_autofree char *seen_mode = NULL;

    ck_assert (seen != NULL);
    ck_assert (qube_storage_pool_query (seen, NULL, NULL, &seen_mode, NULL, NULL, &error));
    ck_assert_str_eq (seen_mode, "copy");
  }
}
END_TEST

static void
assert_add_refused (const char *name, const char *driver, const char *const *options, int code,
                    const char *message)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeStoragePool) pool = qube_manager_add_pool (fixture_manager, name, driver,
                                                           options, &error);
  g_autofree char *names = NULL;

  ck_assert_msg (pool == NULL, "pool %s was added", name);
  ck_assert_msg (error->code == code && strstr (error->message, message) != NULL,
                 "expected code %d and '%s', got %d: %s", code, message, error->code,
                 error->message);
  names = list_pool_names (fixture_manager);
  ck_assert_msg (strcmp (names, "") == 0, "a refused pool left a record: %s", names);
}

START_TEST (test_refused_add_leaves_no_record)
{
  g_autofree char *file = g_build_filename (fixture_state_dir, "a-file", NULL);
  g_autofree char *under_file = g_strconcat ("dir_path=", file, "/pool", NULL);
  const char *relative[] = { "dir_path=relative/dir", NULL };
  const char *unknown[] = { "dir_path=/tmp/x", "frob=1", NULL };
  const char *twice[] = { "cow=copy", "cow=qcow2", NULL };
  const char *bad_syntax[] = { "dir_path", NULL };
  const char *blocked[] = { under_file, NULL };

  ck_assert (g_file_set_contents (file, "x", -1, NULL));
  assert_add_refused ("p", "file", relative, QUBE_ERROR_INVALID,
                      "cannot add pool 'p': cannot open pool 'p' (driver file): pool 'p': "
                      "option dir_path (an absolute directory) is required");
  assert_add_refused ("p", "file", unknown, QUBE_ERROR_INVALID, "unknown option 'frob'");
  assert_add_refused ("p", "file", twice, QUBE_ERROR_INVALID,
                      "cannot add pool 'p': option 'cow' given twice");
  assert_add_refused ("p", "file", bad_syntax, QUBE_ERROR_INVALID,
                      "cannot add pool 'p': invalid option 'dir_path': expected KEY=VALUE");
  assert_add_refused ("p", "file", blocked, QUBE_ERROR_INVALID, "cannot make directory");
  assert_add_refused ("p", "nosuch", NULL, QUBE_ERROR_NOT_FOUND,
                      "no plugin provides storage driver 'nosuch'");
  assert_add_refused ("../p", "file", NULL, QUBE_ERROR_INVALID_NAME, "pool name");
}
END_TEST

START_TEST (test_remove_refused_while_volumes_live)
{
  g_autofree char *dir = g_build_filename (fixture_state_dir, "second", NULL);
  g_autofree char *dir_option = g_strconcat ("dir_path=", dir, NULL);
  const char *options[] = { dir_option, NULL };
  g_autoptr(QubeStoragePool) pool = add_pool ("second", options);
  g_autoptr(QubeVm) t = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *names = NULL;
  g_autofree char *deb_dir = g_build_filename (dir, "deb", NULL);

  ck_assert (qube_manager_set_property (fixture_manager, "default_pool", "second", &error));
  t = fixture_create (fixture_manager, "TemplateVM", "deb", NULL);
  ck_assert (g_file_test (deb_dir, G_FILE_TEST_IS_DIR));

  ck_assert (!qube_manager_remove_pool (fixture_manager, "second", &error));
  fixture_assert_error (&error, QUBE_ERROR_IN_USE,
                        "cannot remove pool 'second': volumes live in it: deb:private, "
                        "deb:root, deb:volatile");
  ck_assert (g_file_test (deb_dir, G_FILE_TEST_IS_DIR));

  ck_assert (qube_manager_remove_vm (fixture_manager, "deb", &error));
  ck_assert_msg (qube_manager_remove_pool (fixture_manager, "second", &error), "%s",
                 error ? error->message : "");
  ck_assert_msg (!g_file_test (dir, G_FILE_TEST_EXISTS), "%s is left", dir);
  names = list_pool_names (fixture_manager);
  ck_assert_str_eq (names, "");

  ck_assert (!qube_manager_remove_pool (fixture_manager, "second", &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND,
                        "cannot remove pool 'second': no such pool 'second'");
}
END_TEST

START_TEST (test_query_plans_use_indexes)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (fixture_state_dir, "qubes.db", NULL);
  QubeStore *store = _qube_store_open (path, &error);

  ck_assert (store != NULL);
  ck_assert_msg (_qube_store_check_query_plans (store, &error), "%s", error->message);
  _qube_store_close (store);
}
END_TEST

static Suite *
pool_suite (void)
{
  Suite *suite = suite_create ("pool");
  TCase *tc = tcase_create ("pool");

  tcase_add_checked_fixture (tc, fixture_setup_manager, fixture_teardown_manager);
  tcase_add_test (tc, test_default_pool_on_first_use);
  tcase_add_test (tc, test_add_list_info);
  tcase_add_test (tc, test_refused_add_leaves_no_record);
  tcase_add_test (tc, test_remove_refused_while_volumes_live);
  tcase_add_test (tc, test_query_plans_use_indexes);
  suite_add_tcase (suite, tc);
  return suite;
}

int
main (void)
{
  return fixture_run_suite (pool_suite ());
}
