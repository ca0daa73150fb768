/* test-store.c — the state store (core/qube-store.c): schema version,
 * migration of an older store, refusal of a newer one, persistence across
 * reopening, two managers sharing one store, and store errors. */
#include "config.h"

#include <check.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qube-error.h"
#include "qube-manager.h"
#include "qube-store.h"
#include "state-fixture.h"

static char *state_dir;
static char *db_path;

static void
setup (void)
{
  state_dir = fixture_make_state_dir ();
  db_path = g_build_filename (state_dir, "qubes.db", NULL);
}

static void
teardown (void)
{
  fixture_remove_state_dir (state_dir);
  g_clear_pointer (&state_dir, g_free);
  g_clear_pointer (&db_path, g_free);
}

/* Runs SQL on the store file directly, as another program would. */
static void
run_sql (const char *sql)
{
  sqlite3 *db = NULL;
  char *msg = NULL;

  ck_assert_int_eq (sqlite3_open (db_path, &db), SQLITE_OK);
  ck_assert_msg (sqlite3_exec (db, sql, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", sql, msg);
  ck_assert_int_eq (sqlite3_close (db), SQLITE_OK);
}

/* The first column of the first row of a query, as an integer. */
static gint64
query_int (const char *sql)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;
  gint64 value;

  ck_assert_int_eq (sqlite3_open (db_path, &db), SQLITE_OK);
  ck_assert_msg (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL) == SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg (db));
  ck_assert_int_eq (sqlite3_step (stmt), SQLITE_ROW);
  value = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);
  ck_assert_int_eq (sqlite3_close (db), SQLITE_OK);
  return value;
}

START_TEST (test_new_store)
{
  g_autoptr(QubeManager) manager = fixture_open (state_dir);

  ck_assert_int_eq (query_int ("PRAGMA user_version"), QUBE_STORE_SCHEMA_VERSION);
  ck_assert (g_file_test (db_path, G_FILE_TEST_IS_REGULAR));
  /* WAL is a property of the file: a fresh connection sees it */
  {
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    ck_assert_int_eq (sqlite3_open (db_path, &db), SQLITE_OK);
    ck_assert_int_eq (sqlite3_prepare_v2 (db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
    ck_assert_int_eq (sqlite3_step (stmt), SQLITE_ROW);
    ck_assert_str_eq ((const char *) sqlite3_column_text (stmt, 0), "wal");
    sqlite3_finalize (stmt);
    sqlite3_close (db);
  }
  ck_assert_int_eq (query_int ("SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                               "AND name = 'properties_by_value'"), 1);
}
END_TEST

/* What libqube with schema version 1 wrote: the tables and dom0, no
 * reverse-lookup indexes. */
static const char schema_v1[] =
  "CREATE TABLE qubes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
  "  uuid TEXT NOT NULL UNIQUE, class TEXT NOT NULL);"
  "CREATE TABLE properties (qube_id INTEGER NOT NULL REFERENCES qubes (id) ON DELETE CASCADE,"
  "  name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (qube_id, name)) WITHOUT ROWID;"
  "CREATE TABLE features (qube_id INTEGER NOT NULL REFERENCES qubes (id) ON DELETE CASCADE,"
  "  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (qube_id, key)) WITHOUT ROWID;"
  "CREATE TABLE tags (qube_id INTEGER NOT NULL REFERENCES qubes (id) ON DELETE CASCADE,"
  "  tag TEXT NOT NULL, PRIMARY KEY (qube_id, tag)) WITHOUT ROWID;"
  "CREATE TABLE globals (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
  "INSERT INTO qubes (id, name, uuid, class) VALUES"
  "  (1, 'dom0', '00000000-0000-0000-0000-000000000000', 'AdminVM'),"
  "  (2, 'fedora', '6a1bbe2f-6d0b-4f3c-a4d5-3e0c1d9f0a01', 'TemplateVM'),"
  "  (3, 'work', '6a1bbe2f-6d0b-4f3c-a4d5-3e0c1d9f0a02', 'AppVM');"
  "INSERT INTO properties VALUES (1, 'label', 'black'), (3, 'template', 'fedora'),"
  "  (3, 'memory', '1234');"
  "INSERT INTO features VALUES (3, 'gui', '1');"
  "INSERT INTO tags VALUES (3, 'audited');"
  "INSERT INTO globals VALUES ('default_template', 'fedora');"
  "PRAGMA user_version = 1;";

START_TEST (test_migrate_from_v1)
{
  g_autoptr(QubeManager) manager = NULL;
  g_autoptr(QubeVm) work = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *memory = NULL;
  g_autofree char *feature = NULL;
  g_autofree char *default_template = NULL;

  run_sql (schema_v1);
  ck_assert_int_eq (query_int ("SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                               "AND name = 'properties_by_value'"), 0);

  manager = fixture_open (state_dir);
  ck_assert_int_eq (query_int ("PRAGMA user_version"), QUBE_STORE_SCHEMA_VERSION);
  ck_assert_int_eq (query_int ("SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                               "AND name IN ('properties_by_value', 'tags_by_tag')"), 2);

  /* the data written by the older version is all there */
  work = qube_manager_lookup (manager, "work", &error);
  ck_assert_msg (work != NULL, "%s", error != NULL ? error->message : "");
  ck_assert_str_eq (qube_vm_get_uuid (work), "6a1bbe2f-6d0b-4f3c-a4d5-3e0c1d9f0a02");
  memory = fixture_get (work, "memory", NULL);
  ck_assert_str_eq (memory, "1234");
  feature = qube_vm_get_feature (work, "gui");
  ck_assert_str_eq (feature, "1");
  ck_assert (qube_vm_has_tag (work, "audited"));
  default_template = qube_manager_get_property (manager, "default_template", NULL, &error);
  ck_assert_str_eq (default_template, "fedora");
  ck_assert (!qube_manager_remove_vm (manager, "fedora", &error));
  fixture_assert_error (&error, QUBE_ERROR_IN_USE,
                        "cannot remove qube 'fedora': it is the template of 'work'; "
                        "it is the global default_template");
}
END_TEST

START_TEST (test_refuse_newer)
{
  g_autoptr(QubeManager) manager = fixture_open (state_dir);
  g_autoptr(QubeManager) again = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *message = NULL;

  g_clear_object (&manager);
  run_sql ("PRAGMA user_version = 99");
  again = qube_manager_new (state_dir, &error);
  ck_assert_ptr_null (again);
  message = g_strdup_printf ("state store %s has schema version 99, newer than this libqube "
                             "understands (%d): use a newer libqube",
                             db_path, QUBE_STORE_SCHEMA_VERSION);
  fixture_assert_error (&error, QUBE_ERROR_STORE, message);
  /* and left it alone */
  ck_assert_int_eq (query_int ("PRAGMA user_version"), 99);
}
END_TEST

START_TEST (test_persistence)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) manager = fixture_open (state_dir);
  g_autoptr(QubeVm) work = NULL;
  g_autofree char *uuid = NULL;
  g_autofree char *vcpus = NULL;
  g_autofree char *feature = NULL;
  g_autofree char *kernel = NULL;

  g_object_unref (fixture_create (manager, "TemplateVM", "fedora", NULL));
  work = fixture_create (manager, "AppVM", "work", "fedora");
  uuid = g_strdup (qube_vm_get_uuid (work));
  fixture_set (work, "vcpus", "3");
  ck_assert (qube_vm_set_feature (work, "gui", "1", &error));
  ck_assert (qube_vm_add_tag (work, "audited", &error));
  ck_assert (qube_manager_set_property (manager, "default_kernel", "6.1", &error));
  g_clear_object (&work);
  g_clear_object (&manager);

  manager = fixture_open (state_dir);
  work = qube_manager_lookup (manager, "work", &error);
  ck_assert_msg (work != NULL, "%s", error != NULL ? error->message : "");
  ck_assert_str_eq (qube_vm_get_uuid (work), uuid);
  ck_assert_str_eq (qube_vm_get_klass (work), "AppVM");
  vcpus = fixture_get (work, "vcpus", NULL);
  ck_assert_str_eq (vcpus, "3");
  feature = qube_vm_get_feature (work, "gui");
  ck_assert_str_eq (feature, "1");
  ck_assert (qube_vm_has_tag (work, "audited"));
  kernel = fixture_get (work, "kernel", NULL);
  ck_assert_str_eq (kernel, "6.1");
}
END_TEST

START_TEST (test_two_managers)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) one = fixture_open (state_dir);
  g_autoptr(QubeManager) two = fixture_open (state_dir);
  g_autoptr(QubeVm) work1 = NULL;
  g_autoptr(QubeVm) work2 = NULL;
  g_autofree char *memory = NULL;
  g_autofree char *label = NULL;

  g_object_unref (fixture_create (one, "TemplateVM", "fedora", NULL));
  work1 = fixture_create (one, "AppVM", "work", "fedora");
  work2 = qube_manager_lookup (two, "work", &error);
  ck_assert_msg (work2 != NULL, "%s", error != NULL ? error->message : "");

  fixture_set (work2, "memory", "512");
  memory = fixture_get (work1, "memory", NULL);
  ck_assert_str_eq (memory, "512");
  fixture_set (work1, "label", "purple");
  label = fixture_get (work2, "label", NULL);
  ck_assert_str_eq (label, "purple");

  /* a rule checked in one sees the other's qubes */
  ck_assert (!qube_manager_remove_vm (two, "fedora", &error));
  fixture_assert_error (&error, QUBE_ERROR_IN_USE,
                        "cannot remove qube 'fedora': it is the template of 'work'");

  ck_assert (qube_manager_remove_vm (two, "work", &error));
  ck_assert (!qube_vm_set_property (work1, "memory", "600", &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND, "qube 'work' no longer exists");
  ck_assert (qube_manager_remove_vm (one, "fedora", &error));
  ck_assert_ptr_null (error);
}
END_TEST

START_TEST (test_remove_leaves_no_rows)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) manager = fixture_open (state_dir);
  g_autoptr(QubeVm) fedora = fixture_create (manager, "TemplateVM", "fedora", NULL);

  fixture_set (fedora, "memory", "500");
  ck_assert (qube_vm_set_feature (fedora, "gui", "1", &error));
  ck_assert (qube_vm_add_tag (fedora, "t", &error));
  ck_assert (qube_manager_remove_vm (manager, "fedora", &error));
  ck_assert_int_eq (query_int ("SELECT count(*) FROM properties WHERE qube_id NOT IN "
                               "(SELECT id FROM qubes)"), 0);
  ck_assert_int_eq (query_int ("SELECT count(*) FROM features"), 0);
  ck_assert_int_eq (query_int ("SELECT count(*) FROM tags"), 0);
}
END_TEST

START_TEST (test_open_errors)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) manager = NULL;
  g_autofree char *message = NULL;

  /* not a database */
  ck_assert (g_file_set_contents (db_path, "this is not a database, but it is long enough "
                                  "to fill the header of one, and some more bytes too.....",
                                  -1, NULL));
  manager = qube_manager_new (state_dir, &error);
  ck_assert_ptr_null (manager);
  ck_assert_msg (error != NULL && error->domain == QUBE_ERROR && error->code == QUBE_ERROR_STORE,
                 "expected a store error");
  message = g_strdup_printf ("state store %s: cannot ", db_path);
  ck_assert_msg (g_str_has_prefix (error->message, message), "%s", error->message);
  ck_assert_msg (g_str_has_suffix (error->message, ": file is not a database"), "%s",
                 error->message);
  g_clear_error (&error);

  /* a directory where the file should be */
  ck_assert_int_eq (g_unlink (db_path), 0);
  ck_assert_int_eq (g_mkdir (db_path, 0700), 0);
  manager = qube_manager_new (state_dir, &error);
  ck_assert_ptr_null (manager);
  g_clear_pointer (&message, g_free);
  message = g_strdup_printf ("state store %s: cannot open: unable to open database file", db_path);
  fixture_assert_error (&error, QUBE_ERROR_STORE, message);
  ck_assert_int_eq (g_rmdir (db_path), 0);

  /* a state directory that cannot be made */
  {
    g_autofree char *file = g_build_filename (state_dir, "plain", NULL);
    g_autofree char *below = g_build_filename (file, "state", NULL);
    ck_assert (g_file_set_contents (file, "", 0, NULL));
    manager = qube_manager_new (below, &error);
    ck_assert_ptr_null (manager);
    g_clear_pointer (&message, g_free);
    message = g_strdup_printf ("cannot create state directory %s: Not a directory", below);
    fixture_assert_error (&error, QUBE_ERROR_IO, message);
  }
}
END_TEST

START_TEST (test_integrity_check)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeStore) store = _qube_store_open (db_path, &error);

  ck_assert_msg (store != NULL, "%s", error != NULL ? error->message : "");
  ck_assert (_qube_store_check_integrity (store, &error));
  ck_assert_int_eq (_qube_store_get_schema_version (store, &error), QUBE_STORE_SCHEMA_VERSION);
  ck_assert_ptr_null (error);
}
END_TEST

#define WRITERS_QUBES 40

/* Creates qubes <prefix>0 .. <prefix>N-1, each with a property and a tag:
 * several transactions a qube, all waiting on the other writer's lock. */
static gboolean
write_qubes (const char *prefix, GError **error)
{
  g_autoptr(QubeManager) manager = qube_manager_new (state_dir, error);

  if (manager == NULL)
    return FALSE;
  for (int i = 0; i < WRITERS_QUBES; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s%d", prefix, i);
      g_autoptr(QubeVm) vm = qube_manager_create_vm (manager, "StandaloneVM", name, NULL,
                                                     NULL, error);
      if (vm == NULL || !qube_vm_set_property (vm, "vcpus", "3", error)
          || !qube_vm_add_tag (vm, prefix, error))
        return FALSE;
    }
  return TRUE;
}

START_TEST (test_two_writing_processes)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) manager = fixture_open (state_dir);
  g_autoptr(GPtrArray) vms = NULL;
  int status = 0;
  pid_t pid;

  /* the store exists before both start, so neither migrates it */
  g_clear_object (&manager);
  pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0)
    {
      g_autoptr(GError) child_error = NULL;
      if (!write_qubes ("child", &child_error))
        {
          g_printerr ("child: %s\n", child_error->message);
          _exit (1);
        }
      _exit (0);
    }
  ck_assert_msg (write_qubes ("parent", &error), "parent: %s", error->message);
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                 "the child writer failed (status %d)", status);

  manager = fixture_open (state_dir);
  vms = qube_manager_list_vms (manager);
  ck_assert_uint_eq (vms->len, 1 + 2 * WRITERS_QUBES);
  for (guint i = 0; i < vms->len; i++)
    {
      QubeVm *vm = vms->pdata[i];
      if (g_str_equal (qube_vm_get_name (vm), "dom0"))
        continue;
      g_autofree char *vcpus = fixture_get (vm, "vcpus", NULL);
      ck_assert_str_eq (vcpus, "3");
      ck_assert (qube_vm_has_tag (vm, g_str_has_prefix (qube_vm_get_name (vm), "child")
                                      ? "child" : "parent"));
    }
}
END_TEST

START_TEST (test_queries_use_indexes)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeStore) store = _qube_store_open (db_path, &error);
  g_autofree char *message = NULL;

  ck_assert_msg (store != NULL, "%s", error != NULL ? error->message : "");
  ck_assert_msg (_qube_store_check_query_plans (store, &error), "%s",
                 error != NULL ? error->message : "");

  /* without the reverse-lookup index, finding a qube's users scans */
  g_clear_pointer (&store, _qube_store_close);
  run_sql ("DROP INDEX properties_by_value");
  store = _qube_store_open (db_path, &error);
  ck_assert_msg (store != NULL, "%s", error != NULL ? error->message : "");
  ck_assert (!_qube_store_check_query_plans (store, &error));
  message = g_strdup_printf ("state store %s: the query to find the users of a qube reads a "
                             "whole table: SCAN ", db_path);
  ck_assert_msg (error != NULL && g_str_has_prefix (error->message, message), "%s",
                 error != NULL ? error->message : "(no error)");
}
END_TEST

int
main (void)
{
  Suite *suite = suite_create ("store");
  TCase *tc = tcase_create ("store");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_new_store);
  tcase_add_test (tc, test_migrate_from_v1);
  tcase_add_test (tc, test_refuse_newer);
  tcase_add_test (tc, test_persistence);
  tcase_add_test (tc, test_two_managers);
  tcase_add_test (tc, test_two_writing_processes);
  tcase_add_test (tc, test_remove_leaves_no_rows);
  tcase_add_test (tc, test_open_errors);
  tcase_add_test (tc, test_integrity_check);
  tcase_add_test (tc, test_queries_use_indexes);
  suite_add_tcase (suite, tc);
  return fixture_run_suite (suite);
}
