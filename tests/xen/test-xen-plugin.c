/* test-xen-plugin.c — tests of plugins/xen outside Xen: the plugin loads,
 * `qube plugins` shows it as unavailable with the reason (no
 * /proc/xen/privcmd), and asking for the xen backend or the xen vchan
 * transport fails with that reason, and so does starting a qube with
 * backend=xen.
 * Inside a Xen dom0 the behaviour under test cannot happen, so the test
 * skips there (tests/xen covers the real thing). */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "qube-error.h"
#include "qube-lifecycle.h"
#include "qube-manager.h"
#include "qube-plugin-private.h"

static char *tmp_dir;
static QubePluginRegistry *registry;

static void
setup (void)
{
  const char *builddir = g_getenv ("QUBE_TEST_BUILDDIR");
  g_autofree char *plugin_dir = NULL;
  g_autofree char *state_dir = NULL;
  g_autofree char *runtime_dir = NULL;
  g_autoptr(GError) error = NULL;

  ck_assert_msg (builddir != NULL, "QUBE_TEST_BUILDDIR is not set");
  plugin_dir = g_build_filename (builddir, "plugins", "xen", ".libs", NULL);
  tmp_dir = g_dir_make_tmp ("qube-xen-XXXXXX", &error);
  ck_assert_msg (tmp_dir != NULL, "%s", error ? error->message : "");
  state_dir = g_build_filename (tmp_dir, "state", NULL);
  runtime_dir = g_build_filename (tmp_dir, "run", NULL);
  ck_assert_int_eq (g_mkdir (state_dir, 0700), 0);
  ck_assert_int_eq (g_mkdir (runtime_dir, 0700), 0);
  g_setenv ("QUBE_PLUGIN_PATH", plugin_dir, TRUE);
  registry = qube_plugin_registry_new (state_dir, runtime_dir);
}

static void
rm_tree (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR) &&
          !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        rm_tree (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

static void
teardown (void)
{
  g_clear_object (&registry);
  rm_tree (tmp_dir);
  g_clear_pointer (&tmp_dir, g_free);
}

START_TEST (test_listed_unavailable_with_reason)
{
  QubePluginInfo *info;

  qube_plugin_registry_load (registry);
  info = qube_plugin_registry_lookup (registry, "xen");
  ck_assert_msg (info != NULL, "the xen plugin was not found in QUBE_PLUGIN_PATH");
  ck_assert_int_eq (qube_plugin_info_get_status (info), QUBE_PLUGIN_UNAVAILABLE);
  ck_assert_msg ((qube_plugin_info_get_kinds (info) & QUBE_PLUGIN_KIND_BACKEND) != 0,
                 "the xen plugin does not say it is an isolation backend");
  ck_assert_ptr_nonnull (qube_plugin_info_get_reason (info));
  ck_assert_msg (strstr (qube_plugin_info_get_reason (info), "/proc/xen/privcmd") != NULL,
                 "reason does not name /proc/xen/privcmd: %s",
                 qube_plugin_info_get_reason (info));
}
END_TEST

START_TEST (test_backend_xen_refused_with_reason)
{
  g_autoptr(GError) error = NULL;
  QubePluginInfo *info;

  info = _qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_BACKEND, "xen", &error);
  ck_assert_ptr_null (info);
  ck_assert_msg (g_error_matches (error, QUBE_ERROR, QUBE_ERROR_UNAVAILABLE),
                 "unexpected error: %s", error ? error->message : "(none)");
  ck_assert_msg (strstr (error->message, "'xen'") != NULL &&
                 strstr (error->message, "/proc/xen/privcmd") != NULL &&
                 strstr (error->message, "not a Xen dom0") != NULL,
                 "error does not say why: %s", error->message);
}
END_TEST

/* Channels to Xen guests cannot be asked for either. */
START_TEST (test_vchan_xen_refused_with_reason)
{
  g_autoptr(GError) error = NULL;
  QubePluginInfo *info;

  info = _qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_VCHAN, "xen", &error);
  ck_assert_ptr_null (info);
  ck_assert_msg (g_error_matches (error, QUBE_ERROR, QUBE_ERROR_UNAVAILABLE) &&
                 strstr (error->message, "/proc/xen/privcmd") != NULL,
                 "unexpected error: %s", error ? error->message : "(none)");
}
END_TEST

/* The plugin refuses by itself too, should a caller skip the probe. */
START_TEST (test_operations_refuse_outside_xen)
{
  g_autoptr(GError) error = NULL;
  QubePluginInfo *info;
  const QubePluginDesc *desc;
  QubeDomainRef ref = { .size = sizeof ref, .name = "work",
                        .uuid = "3b1f0f3e-6f0d-4a57-9d59-1d2c3b4a5e6f",
                        .runtime_dir = tmp_dir };
  QubeDomainConfig config = { .size = sizeof config, .ref = ref,
                              .klass = "AppVM", .memory_mib = 128,
                              .maxmem_mib = 128, .vcpus = 1,
                              .virt_mode = "pv", .kernel = "/boot/vmlinuz" };
  char *backend_id = NULL;
  int rc;

  qube_plugin_registry_load (registry);
  info = qube_plugin_registry_lookup (registry, "xen");
  ck_assert_ptr_nonnull (info);
  desc = _qube_plugin_info_get_desc (info);
  ck_assert_ptr_nonnull (desc->backend);
  ck_assert_uint_eq (desc->backend->block_formats, QUBE_BLOCK_RAW);
  rc = desc->backend->create (_qube_plugin_info_get_data (info), &config, &backend_id);
  ck_assert_int_eq (rc, QUBE_ABI_E_UNAVAILABLE);
  ck_assert_ptr_null (backend_id);
  ck_assert (!_qube_plugin_take_error (info, rc, "cannot start qube 'work'", &error));
  ck_assert_msg (strstr (error->message, "/proc/xen/privcmd") != NULL,
                 "create() error does not say why: %s", error->message);
}
END_TEST

/* Through the core: a qube with backend=xen does not start, the error
 * says why, and the start leaves nothing behind. */
START_TEST (test_start_refused_outside_xen)
{
  const char *builddir = g_getenv ("QUBE_TEST_BUILDDIR");
  g_autofree char *path = g_strdup_printf ("%s/plugins/xen/.libs:%s/plugins/storage-file/.libs",
                                           builddir, builddir);
  g_autofree char *state_dir = g_build_filename (tmp_dir, "state", NULL);
  g_autofree char *runtime_dir = NULL;
  g_autoptr(QubeManager) manager = NULL;
  g_autoptr(QubeVm) vm = NULL;
  g_autoptr(GError) error = NULL;

  g_setenv ("QUBE_PLUGIN_PATH", path, TRUE);
  manager = qube_manager_new (state_dir, &error);
  ck_assert_msg (manager != NULL, "%s", error ? error->message : "");
  vm = qube_manager_create_vm (manager, "StandaloneVM", "work", NULL, "red", &error);
  ck_assert_msg (vm != NULL, "%s", error ? error->message : "");
  ck_assert_msg (qube_vm_set_property (vm, "backend", "xen", &error), "%s", error->message);
  ck_assert (!qube_vm_start (vm, &error));
  ck_assert_msg (strstr (error->message, "cannot start qube 'work'") != NULL &&
                 strstr (error->message, "/proc/xen/privcmd") != NULL,
                 "the start error does not say why: %s", error->message);
  ck_assert_str_eq (qube_vm_get_state (vm), "Halted");
  runtime_dir = g_build_filename (qube_manager_get_runtime_dir (manager), "qubes", "work", NULL);
  ck_assert_msg (!g_file_test (runtime_dir, G_FILE_TEST_EXISTS), "%s was left", runtime_dir);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("xen-plugin");
  TCase *tc = tcase_create ("outside-xen");
  SRunner *sr;
  int failed;

  if (access ("/proc/xen/privcmd", F_OK) == 0)
    {
      printf ("SKIP: this host is a Xen dom0; tests/xen runs the plugin for real\n");
      return 77;
    }
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_listed_unavailable_with_reason);
  tcase_add_test (tc, test_backend_xen_refused_with_reason);
  tcase_add_test (tc, test_vchan_xen_refused_with_reason);
  tcase_add_test (tc, test_operations_refuse_outside_xen);
  tcase_add_test (tc, test_start_refused_outside_xen);
  suite_add_tcase (s, tc);
  sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
