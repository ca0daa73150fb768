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
/* Stands in for /dev/kvm: a file that opens, or a path that does not. */
static char *device;
static char *no_device;

static void
setup (void)
{
  tmp_dir = g_dir_make_tmp ("qube-kvm-accel-XXXXXX", NULL);
  ck_assert_ptr_nonnull (tmp_dir);
  cache_path = g_build_filename (tmp_dir, "accel", NULL);
  device = g_build_filename (tmp_dir, "kvm", NULL);
  no_device = g_build_filename (tmp_dir, "no-kvm", NULL);
  ck_assert (g_file_set_contents (device, "", 0, NULL));
}

static void
teardown (void)
{
  g_autofree char *console = g_build_filename (tmp_dir, "probe-console.log", NULL);

  g_unlink (console);
  g_unlink (cache_path);
  g_unlink (device);
  g_rmdir (tmp_dir);
  g_clear_pointer (&tmp_dir, g_free);
  g_clear_pointer (&cache_path, g_free);
  g_clear_pointer (&device, g_free);
  g_clear_pointer (&no_device, g_free);
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
                                           "qemu=%s\nhost-kernel=%s\ndevice=%s\n",
                                           accel, qemu_id, kernel, device);
  ck_assert (g_file_set_contents (cache_path, text, -1, NULL));
}

/* An override wins over everything and is never cached. */
START_TEST (test_forced)
{
  g_autoptr(KvmAccelChoice) choice = NULL;

  write_cache ("tcg", "QEMU 1", "any");
  choice = kvm_accel_choose ("kvm", tmp_dir, "/bin/false", "QEMU 1", "/nonexistent", device);
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
  choice = kvm_accel_choose (NULL, tmp_dir, "/bin/false", "QEMU 1", "/nonexistent", device);
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
  choice = kvm_accel_choose (NULL, tmp_dir, "/bin/false", "QEMU 1", "/nonexistent", device);
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
  choice = kvm_accel_choose (NULL, tmp_dir, "/bin/false", "QEMU 1", "/nonexistent", device);
  ck_assert_str_eq (choice->accel, "tcg");
}
END_TEST

/* Without the device the answer is TCG, whatever the cache says, and
 * nothing is written; once the device is there, it is measured (the fake
 * QEMU fails under KVM) and only then cached. */
START_TEST (test_device_missing_then_there)
{
  g_autofree char *kernel = host_kernel ();
  g_autoptr(KvmAccelChoice) missing = NULL;
  g_autoptr(KvmAccelChoice) appeared = NULL;
  g_autoptr(GKeyFile) cache = g_key_file_new ();
  g_autofree char *cached_device = NULL;

  missing = kvm_accel_choose (NULL, tmp_dir, "/bin/false", "QEMU 1", "/nonexistent", no_device);
  ck_assert_str_eq (missing->accel, "tcg");
  ck_assert_ptr_nonnull (strstr (missing->reason, "cannot open"));
  ck_assert (!g_file_test (cache_path, G_FILE_TEST_EXISTS));

  appeared = kvm_accel_choose (NULL, tmp_dir, "/bin/false", "QEMU 1", "/nonexistent", device);
  ck_assert_str_eq (appeared->accel, "tcg");
  ck_assert_ptr_nonnull (strstr (appeared->reason, "could not boot a guest under KVM"));
  ck_assert (g_key_file_load_from_file (cache, cache_path, G_KEY_FILE_NONE, NULL));
  cached_device = g_key_file_get_string (cache, "probe", "device", NULL);
  ck_assert_str_eq (cached_device, device);
}
END_TEST

/* A cached answer made before the device was recorded (or with another
 * device) is measured again. */
START_TEST (test_cache_without_device)
{
  g_autofree char *kernel = host_kernel ();
  g_autofree char *text = g_strdup_printf ("[probe]\naccel=tcg\nreason=cannot open /dev/kvm\n"
                                           "qemu=QEMU 1\nhost-kernel=%s\n", kernel);
  g_autoptr(KvmAccelChoice) choice = NULL;

  ck_assert (g_file_set_contents (cache_path, text, -1, NULL));
  choice = kvm_accel_choose (NULL, tmp_dir, "/bin/false", "QEMU 1", "/nonexistent", device);
  ck_assert_ptr_null (strstr (choice->reason, "measured earlier"));
  ck_assert_ptr_nonnull (strstr (choice->reason, "could not boot a guest under KVM"));
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
  tcase_add_test (tc, test_device_missing_then_there);
  tcase_add_test (tc, test_cache_without_device);
  suite_add_tcase (suite, tc);
  runner = srunner_create (suite);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
