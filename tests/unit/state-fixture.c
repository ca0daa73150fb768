/* state-fixture.c — temporary state directories for the unit tests of the
 * qube model and the state store. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <glib/gstdio.h>

#include "qube-error.h"
#include "state-fixture.h"

char *fixture_state_dir;
QubeManager *fixture_manager;

void
fixture_setup_manager (void)
{
  fixture_state_dir = fixture_make_state_dir ();
  fixture_manager = fixture_open (fixture_state_dir);
}

void
fixture_teardown_manager (void)
{
  g_clear_object (&fixture_manager);
  fixture_remove_state_dir (fixture_state_dir);
  g_clear_pointer (&fixture_state_dir, g_free);
}

int
fixture_run_suite (Suite *suite)
{
  SRunner *runner = srunner_create (suite);
  int failed;

  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}

char *
fixture_make_state_dir (void)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp ("qube-unit-XXXXXX", &error);

  ck_assert_msg (dir != NULL, "cannot make a temporary directory: %s",
                 error != NULL ? error->message : "?");
  return dir;
}

static void
remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);

  if (dir != NULL)
    {
      const char *entry;
      while ((entry = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, entry, NULL);
          if (g_file_test (child, G_FILE_TEST_IS_DIR)
              && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            remove_tree (child);
          else
            g_unlink (child);
        }
      g_dir_close (dir);
    }
  if (g_remove (path) != 0 && errno != ENOENT)
    g_printerr ("cannot remove %s: %s\n", path, g_strerror (errno));
}

void
fixture_remove_state_dir (const char *dir)
{
  if (dir != NULL)
    remove_tree (dir);
}

QubeManager *
fixture_open (const char *dir)
{
  g_autoptr(GError) error = NULL;
  QubeManager *manager = qube_manager_new (dir, &error);

  ck_assert_msg (manager != NULL, "cannot open %s: %s", dir,
                 error != NULL ? error->message : "?");
  return manager;
}

QubeVm *
fixture_create (QubeManager *manager, const char *klass, const char *name,
                const char *template_name)
{
  g_autoptr(GError) error = NULL;
  QubeVm *vm = qube_manager_create_vm (manager, klass, name, template_name, NULL, &error);

  ck_assert_msg (vm != NULL, "cannot create %s %s: %s", klass, name,
                 error != NULL ? error->message : "?");
  return vm;
}

void
fixture_set (QubeVm *vm, const char *name, const char *value)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg (qube_vm_set_property (vm, name, value, &error),
                 "cannot set %s of %s to %s: %s", name, qube_vm_get_name (vm), value,
                 error != NULL ? error->message : "?");
}

char *
fixture_get (QubeVm *vm, const char *name, gboolean *is_default)
{
  g_autoptr(GError) error = NULL;
  char *value = qube_vm_get_property (vm, name, is_default, NULL, &error);

  ck_assert_msg (value != NULL, "cannot read %s of %s: %s", name, qube_vm_get_name (vm),
                 error != NULL ? error->message : "?");
  return value;
}

void
fixture_assert_error_at (GError **error, int code, const char *message,
                         const char *file, int line)
{
  ck_assert_msg (*error != NULL, "%s:%d: expected the error \"%s\", got success",
                 file, line, message);
  ck_assert_msg ((*error)->domain == QUBE_ERROR && (*error)->code == code,
                 "%s:%d: expected error code %d, got %s %d: %s", file, line, code,
                 g_quark_to_string ((*error)->domain), (*error)->code, (*error)->message);
  ck_assert_msg (g_strcmp0 ((*error)->message, message) == 0,
                 "%s:%d: expected the error\n  \"%s\"\ngot\n  \"%s\"", file, line,
                 message, (*error)->message);
  g_clear_error (error);
}

void
fixture_assert_set_fails_at (QubeVm *vm, const char *name, const char *value, int code,
                             const char *message, const char *file, int line)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg (!qube_vm_set_property (vm, name, value, &error),
                 "%s:%d: %s=%s accepted on %s", file, line, name, value,
                 qube_vm_get_name (vm));
  fixture_assert_error_at (&error, code, message, file, line);
}
