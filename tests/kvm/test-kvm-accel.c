/* test-kvm-accel.c — unit tests of plugins/kvm/kvm-accel.c: the choice
 * between KVM and TCG, its override and its cache.  A QEMU that cannot run
 * a guest is stood in for by /bin/false (a fake, named as one); booting a
 * real guest under the probe is covered by tests/kvm/test-kvm.
 */
#include "config.h"

#include <check.h>
#include <string.h>
#include <sys/utsname.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "kvm-accel.h"

static char *tmp_dir;
static char *cache_path;

static void
setup (void)
{
  tmp_dir = g_dir_make_tmp ("qube-kvm-accel-XXXXXX", NULL);
  ck_assert_ptr_nonnull (tmp_dir);
  cache_path = g_build_filename (tmp_dir, "accel", NULL);
}

static void
teardown (void)
{
  g_autofree char *console = g_build_filename (tmp_dir, "probe-console.log", NULL);

  g_unlink (console);
  g_unlink (cache_path);
  g_rmdir (tmp_dir);
  g_clear_pointer (&tmp_dir, g_free);
  g_clear_pointer (&cache_path, g_free);
}

static char *
host_kernel (void)
{
  struct utsname u;

  ck_assert_int_eq (uname (&u), 0);
  return g_strdup (u.release);
}

static void
write_cache (const char *accel, const char *qemu_id, const char *kernel)
{
  g_autofree char *text = g_strdup_printf ("[probe]\naccel=%s\nreason=measured by hand\n"
                                           "qemu=%s\nhost-kernel=%s\n",
                                           accel, qemu_id, kernel);
  ck_assert (g_file_set_contents (cache_path, text, -1, NULL));
}

/* An override wins over everything and is never cached. */
START_TEST (test_forced)
{
  g_autoptr(KvmAccelChoice) choice = NULL;

  write_cache ("tcg", "QEMU 1", "any");
  choice = kvm_accel_choose ("kvm", tmp_dir, "/bin/false", "QEMU 1", "/nonexistent");
  ck_assert_str_eq (choice->accel, "kvm");
  ck_assert_ptr_nonnull (strstr (choice->reason, "configuration"));
}
END_TEST

/* A cached answer for this QEMU and host kernel is used without probing
 * (the fake QEMU would have said tcg). */
START_TEST (test_cache_used)
{
  g_autofree char *kernel = host_kernel ();
  g_autoptr(KvmAccelChoice) choice = NULL;

  write_cache ("kvm", "QEMU 1", kernel);
  choice = kvm_accel_choose (NULL, tmp_dir, "/bin/false", "QEMU 1", "/nonexistent");
  ck_assert_str_eq (choice->accel, "kvm");
  ck_assert_ptr_nonnull (strstr (choice->reason, "measured earlier"));
}
END_TEST

/* A cache made with another QEMU is measured again, and a QEMU that cannot
 * run a guest under KVM means TCG, recorded with the new version. */
START_TEST (test_cache_outdated)
{
  g_autofree char *kernel = host_kernel ();
  g_autoptr(KvmAccelChoice) choice = NULL;
  g_autoptr(GKeyFile) cache = g_key_file_new ();
  g_autofree char *accel = NULL;
  g_autofree char *version = NULL;

  write_cache ("kvm", "QEMU 0", kernel);
  choice = kvm_accel_choose (NULL, tmp_dir, "/bin/false", "QEMU 1", "/nonexistent");
  ck_assert_str_eq (choice->accel, "tcg");
  ck_assert (g_key_file_load_from_file (cache, cache_path, G_KEY_FILE_NONE, NULL));
  accel = g_key_file_get_string (cache, "probe", "accel", NULL);
  version = g_key_file_get_string (cache, "probe", "qemu", NULL);
  ck_assert_str_eq (accel, "tcg");
  ck_assert_str_eq (version, "QEMU 1");
}
END_TEST

/* A cache that says something other than kvm or tcg is not believed. */
START_TEST (test_cache_garbage)
{
  g_autofree char *kernel = host_kernel ();
  g_autoptr(KvmAccelChoice) choice = NULL;

  write_cache ("xen; rm -rf /", "QEMU 1", kernel);
  choice = kvm_accel_choose (NULL, tmp_dir, "/bin/false", "QEMU 1", "/nonexistent");
  ck_assert_str_eq (choice->accel, "tcg");
}
END_TEST

int
main (void)
{
  Suite *suite = suite_create ("kvm-accel");
  TCase *tc = tcase_create ("accel");
  SRunner *runner;
  int failed;

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_forced);
  tcase_add_test (tc, test_cache_used);
  tcase_add_test (tc, test_cache_outdated);
  tcase_add_test (tc, test_cache_garbage);
  suite_add_tcase (suite, tc);
  runner = srunner_create (suite);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
