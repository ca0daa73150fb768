/* test-storage-file.c — the storage-file pool driver with real files and
 * real data, loaded through the plugin registry.
 *
 * The pool lives under QUBE_TEST_POOL_DIR (default: a temporary directory)
 * with cow=QUBE_TEST_COW (default: auto), so the same suite runs in qcow2
 * mode on ext4 and in reflink mode on XFS (see run-reflink.sh).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "storage-harness.h"

#define MiB (1024 * 1024ull)
#define VOL_SIZE (8 * MiB)

static char *tmp_dir;
static char *pool_dir;
static StorageDriver *driver;
static const QubeStorageOps *ops;
static QubePool *pool;

static const char *
wanted_cow (void)
{
  const char *cow = g_getenv ("QUBE_TEST_COW");

  return cow != NULL && cow[0] != '\0' ? cow : NULL;
}

static char *
make_tmp_dir (void)
{
  const char *base = g_getenv ("QUBE_TEST_POOL_DIR");
  g_autoptr (GError) error = NULL;
  char *dir;

  if (base != NULL && base[0] != '\0')
    {
      dir = g_build_filename (base, "storage-XXXXXX", NULL);
      ck_assert_ptr_nonnull (g_mkdtemp (dir));
      return dir;
    }
  dir = g_dir_make_tmp ("qube-storage-XXXXXX", &error);
  ck_assert_msg (dir != NULL, "%s", error ? error->message : "");
  return dir;
}

static void
setup (void)
{
  g_autoptr (GError) error = NULL;

  tmp_dir = make_tmp_dir ();
  pool_dir = g_build_filename (tmp_dir, "pool", NULL);
  driver = storage_driver_load (tmp_dir, &error);
  ck_assert_msg (driver != NULL, "%s", error ? error->message : "");
  ops = driver->ops;
  pool = storage_pool_open (driver, "test", pool_dir, wanted_cow (), &error);
  ck_assert_msg (pool != NULL, "%s", error ? error->message : "");
}

static void
teardown (void)
{
  /* A failed out-of-space test may have left its small file system. */
  g_autofree char *cmd = g_strdup_printf (
    "if mountpoint -q '%s/small'; then umount '%s/small'; fi; rm -rf '%s'",
    tmp_dir, tmp_dir, tmp_dir);

  if (pool != NULL)
    ops->pool_close (pool);
  pool = NULL;
  g_clear_pointer (&driver, storage_driver_free);
  if (system (cmd) != 0)
    g_warning ("cannot remove %s", tmp_dir);
  g_clear_pointer (&pool_dir, g_free);
  g_clear_pointer (&tmp_dir, g_free);
}

/* --- helpers ------------------------------------------------------------- */

static QubeVolumeSpec
spec (const char *vid, guint32 flags, const char *source, guint32 keep)
{
  QubeVolumeSpec s = { .size = sizeof (QubeVolumeSpec),
                       .vid = vid,
                       .flags = QUBE_VOLUME_RW | flags,
                       .size_bytes = VOL_SIZE,
                       .source = source,
                       .revisions_to_keep = keep };
  return s;
}

#define ORIGIN(vid, keep) spec (vid, QUBE_VOLUME_SAVE_ON_STOP, NULL, keep)
#define SNAPSHOT(vid, src) spec (vid, QUBE_VOLUME_SNAP_ON_START, src, 0)
#define VOLATILE(vid) spec (vid, 0, NULL, 0)

static void
ok (int rc, const char *what)
{
  g_autoptr (GError) error = NULL;

  ck_assert_msg (storage_driver_ok (driver, rc, what, &error), "%s",
                 error ? error->message : "");
}

/* Asserts the call failed with `code` and a message holding `needle`. */
static void
refused (int rc, QubeError code, const char *needle)
{
  g_autoptr (GError) error = NULL;

  ck_assert_int_ne (rc, 0);
  storage_driver_ok (driver, rc, "refused", &error);
  ck_assert_ptr_nonnull (error);
  ck_assert_msg (error->code == (int) code && strstr (error->message, needle),
                 "want code %d with '%s', got %d: %s", code, needle,
                 error->code, error->message);
}

static void
create (const QubeVolumeSpec *s)
{
  ok (ops->volume_create (pool, s), s->vid);
}

static QubeBlockDev
start (const QubeVolumeSpec *s)
{
  QubeBlockDev dev = { .size = sizeof (QubeBlockDev) };

  ok (ops->volume_start (pool, s, &dev), s->vid);
  ck_assert (g_file_test (dev.path, G_FILE_TEST_IS_REGULAR));
  ck_assert (g_str_has_prefix (dev.path, tmp_dir) ||
             strstr (dev.path, "/pool/") != NULL);
  return dev;
}

static void
stop (const QubeVolumeSpec *s)
{
  ok (ops->volume_stop (pool, s), s->vid);
}

static void
fill (const QubeBlockDev *dev, guint64 offset, guint8 byte)
{
  g_autoptr (GError) error = NULL;

  ck_assert_msg (storage_image_fill (dev, offset, MiB, byte, &error), "%s",
                 error ? error->message : "");
}

static gboolean
holds (const QubeBlockDev *dev, guint64 offset, guint8 byte)
{
  g_autoptr (GError) error = NULL;

  return storage_image_check (dev, offset, MiB, byte, &error);
}

/* Starts, writes `byte` at offset 0, stops: a new committed revision. */
static void
write_revision (const QubeVolumeSpec *s, guint8 byte)
{
  QubeBlockDev dev = start (s);

  fill (&dev, 0, byte);
  stop (s);
}

/* The committed data as exported: holds `byte` at `offset`? */
static gboolean
committed_holds (const QubeVolumeSpec *s, guint64 offset, guint8 byte)
{
  QubeBlockDev dev = { .size = sizeof (QubeBlockDev) };
  gboolean result;

  ok (ops->volume_export_begin (pool, s, &dev), s->vid);
  ck_assert_int_eq (dev.format, QUBE_BLOCK_RAW);
  result = holds (&dev, offset, byte);
  ok (ops->volume_export_end (pool, s), s->vid);
  ck_assert (!g_file_test (dev.path, G_FILE_TEST_EXISTS));
  return result;
}

static QubeVolumeInfo
info (const QubeVolumeSpec *s)
{
  QubeVolumeInfo i = { .size = sizeof (QubeVolumeInfo) };

  ok (ops->volume_info (pool, s, &i), s->vid);
  return i;
}

/* Names in <pool>/<vid>/, sorted, joined by spaces. */
static char *
volume_files (const char *vid)
{
  g_autofree char *dir_path = g_build_filename (pool_dir, vid, NULL);
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, NULL);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, (GCompareFunc) g_strcmp0);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (char **) names->pdata);
}

static guint
count_revision_files (const char *vid)
{
  g_autofree char *files = volume_files (vid);
  g_auto (GStrv) names = g_strsplit (files, " ", -1);
  guint n = 0;

  for (guint i = 0; names[i] != NULL; i++)
    n += g_str_has_prefix (names[i], "rev-");
  return n;
}

/* --- tests --------------------------------------------------------------- */

START_TEST (test_pool_info)
{
  QubePoolInfo pi = { .size = sizeof (QubePoolInfo) };
  g_autofree char *real = realpath (pool_dir, NULL);

  ok (ops->pool_info (pool, &pi), "pool info");
  if (wanted_cow () != NULL && strcmp (wanted_cow (), "auto") != 0)
    ck_assert_str_eq (pi.mode, wanted_cow ());
  ck_assert (strcmp (pi.mode, "reflink") == 0 || strcmp (pi.mode, "qcow2") == 0);
  ck_assert_str_eq (pi.location, real);
  ck_assert_int_gt (pi.size_bytes, 0);
  ck_assert_int_le (pi.usage_bytes, pi.size_bytes);
  ck_assert_int_eq (pi.block_formats, strcmp (pi.mode, "qcow2") == 0
                                        ? QUBE_BLOCK_QCOW2
                                        : QUBE_BLOCK_RAW);
  g_test_message ("pool mode %s", pi.mode);
}
END_TEST

START_TEST (test_pool_options_refused)
{
  g_autofree char *dir = g_build_filename (tmp_dir, "other", NULL);
  QubeKeyValue unknown[] = { { "dir_path", dir }, { "colour", "red" } };
  QubeKeyValue bad_cow[] = { { "dir_path", dir }, { "cow", "magic" } };
  QubePoolInfo pi = { .size = sizeof (QubePoolInfo) };
  QubePool *other = NULL;
  g_autoptr (GError) error = NULL;

  refused (ops->pool_open (driver->data, "other", unknown, 2, TRUE, &other),
           QUBE_ERROR_INVALID, "unknown option 'colour'");
  refused (ops->pool_open (driver->data, "other", bad_cow, 2, TRUE, &other),
           QUBE_ERROR_INVALID, "cow=magic is not one of");
  refused (ops->pool_open (driver->data, "other", NULL, 0, TRUE, &other),
           QUBE_ERROR_INVALID, "dir_path");
  /* Without create, the pool must already be there. */
  refused (ops->pool_open (driver->data, "other", unknown, 1, FALSE, &other),
           QUBE_ERROR_NOT_FOUND, "cannot open directory");
  ck_assert_ptr_null (other);
  /* Where the filesystem cannot share extents, cow=reflink is refused
   * rather than silently copying. */
  ok (ops->pool_info (pool, &pi), "pool info");
  if (strcmp (pi.mode, "qcow2") == 0)
    {
      ck_assert_ptr_null (storage_pool_open (driver, "other", dir, "reflink",
                                             &error));
      ck_assert_msg (error->code == QUBE_ERROR_UNAVAILABLE &&
                       strstr (error->message, "cannot make reflinks"),
                     "%s", error->message);
    }
}
END_TEST

START_TEST (test_template_changes_reach_appvm_at_next_start)
{
  QubeVolumeSpec troot = ORIGIN ("fedora/root", 1);
  QubeVolumeSpec aroot = SNAPSHOT ("work/root", "fedora/root");
  QubeBlockDev dev, tdev;

  create (&troot);
  create (&aroot);
  write_revision (&troot, 0xaa);

  dev = start (&aroot);
  ck_assert (holds (&dev, 0, 0xaa));
  ck_assert_int_eq (info (&aroot).outdated, 0);
  /* The template changes while the AppVM runs: not visible yet. */
  tdev = start (&troot);
  fill (&tdev, 0, 0xcc);
  stop (&troot);
  ck_assert (holds (&dev, 0, 0xaa));
  ck_assert_int_eq (info (&aroot).outdated, 1);
  /* Root writes are discarded at stop. */
  fill (&dev, MiB, 0xbb);
  stop (&aroot);

  dev = start (&aroot);
  ck_assert (holds (&dev, 0, 0xcc));
  ck_assert (holds (&dev, MiB, 0x00));
  ck_assert_int_eq (info (&aroot).outdated, 0);
  ck_assert_int_eq (info (&aroot).started, 1);
  stop (&aroot);
  ck_assert_int_eq (info (&aroot).started, 0);
  /* The template's own data never saw the AppVM's writes. */
  ck_assert (committed_holds (&troot, MiB, 0x00));
}
END_TEST

START_TEST (test_private_survives_volatile_does_not)
{
  QubeVolumeSpec priv = ORIGIN ("work/private", 1);
  QubeVolumeSpec vol = VOLATILE ("work/volatile");
  QubeBlockDev dev;

  create (&priv);
  create (&vol);
  write_revision (&priv, 0x11);
  dev = start (&priv);
  ck_assert (holds (&dev, 0, 0x11));
  stop (&priv);
  ck_assert (committed_holds (&priv, 0, 0x11));

  dev = start (&vol);
  ck_assert (holds (&dev, 0, 0x00));
  fill (&dev, 0, 0x22);
  stop (&vol);
  ck_assert (!g_file_test (dev.path, G_FILE_TEST_EXISTS));
  dev = start (&vol);
  ck_assert (holds (&dev, 0, 0x00));
  stop (&vol);
}
END_TEST

START_TEST (test_both_flags_keep_a_snapshot)
{
  QubeVolumeSpec troot = ORIGIN ("fedora/root", 0);
  QubeVolumeSpec kept = spec ("standalone/root",
                              QUBE_VOLUME_SNAP_ON_START |
                                QUBE_VOLUME_SAVE_ON_STOP,
                              "fedora/root", 1);
  QubeBlockDev dev;

  create (&troot);
  create (&kept);
  write_revision (&troot, 0x31);
  dev = start (&kept);
  ck_assert (holds (&dev, 0, 0x31));
  fill (&dev, MiB, 0x32);
  stop (&kept);
  ck_assert (committed_holds (&kept, 0, 0x31));
  ck_assert (committed_holds (&kept, MiB, 0x32));
  write_revision (&troot, 0x33);
  ck_assert_int_eq (info (&kept).outdated, 1);
}
END_TEST

START_TEST (test_revisions_and_revert)
{
  QubeVolumeSpec priv = ORIGIN ("work/private", 2);
  g_autofree QubeRevision *revs = NULL;
  uint32_t n = 0;
  char oldest[64];

  create (&priv);
  for (guint8 b = 1; b <= 4; b++)
    write_revision (&priv, b);
  ck_assert_int_eq (info (&priv).n_revisions, 2);
  ck_assert_int_eq (count_revision_files ("work/private"), 3);
  ok (ops->volume_revisions (pool, &priv, &revs, &n), "revisions");
  ck_assert_int_eq (n, 2);
  ck_assert (g_ascii_strtoull (revs[0].name, NULL, 10) >
             g_ascii_strtoull (revs[1].name, NULL, 10));
  ck_assert_int_gt (revs[0].created, 0);
  g_strlcpy (oldest, revs[1].name, sizeof oldest);

  /* A revision that does not exist: refused, nothing changes. */
  refused (ops->volume_revert (pool, &priv, "12345"), QUBE_ERROR_NOT_FOUND,
           "no revision '12345'");
  ck_assert (committed_holds (&priv, 0, 4));

  ok (ops->volume_revert (pool, &priv, NULL), "revert");
  ck_assert (committed_holds (&priv, 0, 3));
  ok (ops->volume_revert (pool, &priv, oldest), "revert to oldest");
  ck_assert (committed_holds (&priv, 0, 2));
  ck_assert_int_le (info (&priv).n_revisions, 2);
  /* The reverted-to data is what the qube sees next. */
  {
    QubeBlockDev dev = start (&priv);

    ck_assert (holds (&dev, 0, 2));
    stop (&priv);
  }
}
END_TEST

START_TEST (test_bad_requests_leave_data_untouched)
{
  QubeVolumeSpec priv = ORIGIN ("work/private", 1);
  QubeBlockDev dev = { .size = sizeof (QubeBlockDev) };
  int fd;

  create (&priv);
  write_revision (&priv, 0x44);

  refused (ops->volume_resize (pool, &priv, VOL_SIZE / 2),
           QUBE_ERROR_INVALID, "shrinking from 8 MiB to 4 MiB is refused");
  ck_assert_int_eq (info (&priv).size_bytes, VOL_SIZE);
  ck_assert (committed_holds (&priv, 0, 0x44));

  /* More data than the volume holds, announced or just written. */
  refused (ops->volume_import_begin (pool, &priv, VOL_SIZE + MiB, &dev),
           QUBE_ERROR_INVALID, "does not fit");
  ok (ops->volume_import_begin (pool, &priv, VOL_SIZE, &dev), "import");
  fd = open (dev.path, O_WRONLY);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (pwrite (fd, "x", 1, VOL_SIZE + 4096), 1);
  close (fd);
  refused (ops->volume_import_end (pool, &priv, 1), QUBE_ERROR_INVALID,
           "more than its 8 MiB");
  ck_assert (committed_holds (&priv, 0, 0x44));
  ck_assert_int_eq (info (&priv).n_revisions, 1);

  /* In use: no remove, no revert, no import. */
  dev = start (&priv);
  refused (ops->volume_remove (pool, &priv), QUBE_ERROR_IN_USE, "started");
  refused (ops->volume_revert (pool, &priv, NULL), QUBE_ERROR_IN_USE,
           "started");
  refused (ops->volume_import_begin (pool, &priv, MiB, &dev),
           QUBE_ERROR_IN_USE, "started");
  ck_assert_int_eq (info (&priv).exists, 1);
  stop (&priv);
  ck_assert (committed_holds (&priv, 0, 0x44));

  /* Growing works and keeps the data; the new space reads as zeros. */
  ok (ops->volume_resize (pool, &priv, 2 * VOL_SIZE), "grow");
  ck_assert_int_eq (info (&priv).size_bytes, 2 * VOL_SIZE);
  ck_assert (committed_holds (&priv, 0, 0x44));
  ck_assert (committed_holds (&priv, 2 * VOL_SIZE - MiB, 0x00));
  dev = start (&priv);
  ck_assert (holds (&dev, 0, 0x44));
  fill (&dev, 2 * VOL_SIZE - MiB, 0x45);
  stop (&priv);
  ck_assert (committed_holds (&priv, 2 * VOL_SIZE - MiB, 0x45));

  refused (ops->volume_create (pool, &priv), QUBE_ERROR_EXISTS, "exists");
  ok (ops->volume_remove (pool, &priv), "remove");
  ck_assert_int_eq (info (&priv).exists, 0);
  refused (ops->volume_remove (pool, &priv), QUBE_ERROR_NOT_FOUND,
           "no such volume");
}
END_TEST

START_TEST (test_import_export)
{
  QubeVolumeSpec priv = ORIGIN ("work/private", 1);
  QubeBlockDev dev = { .size = sizeof (QubeBlockDev) };
  g_autoptr (GError) error = NULL;

  create (&priv);
  ok (ops->volume_import_begin (pool, &priv, 2 * MiB, &dev), "import");
  ck_assert_int_eq (dev.format, QUBE_BLOCK_RAW);
  ck_assert (storage_image_fill (&dev, 0, 2 * MiB, 0x5a, &error));
  ok (ops->volume_import_end (pool, &priv, 1), "import end");
  ck_assert (committed_holds (&priv, 0, 0x5a));
  ck_assert (committed_holds (&priv, MiB, 0x5a));
  ck_assert (committed_holds (&priv, 2 * MiB, 0x00));
  ck_assert_int_eq (info (&priv).n_revisions, 1);

  /* An import thrown away changes nothing. */
  ok (ops->volume_import_begin (pool, &priv, MiB, &dev), "import");
  ck_assert (storage_image_fill (&dev, 0, MiB, 0x5b, &error));
  ok (ops->volume_import_end (pool, &priv, 0), "import end");
  ck_assert (!g_file_test (dev.path, G_FILE_TEST_EXISTS));
  ck_assert (committed_holds (&priv, 0, 0x5a));
  refused (ops->volume_import_end (pool, &priv, 1), QUBE_ERROR_INVALID,
           "no import is in progress");
  ok (ops->volume_verify (pool, &priv), "verify");
}
END_TEST

START_TEST (test_clone)
{
  QubeVolumeSpec src = ORIGIN ("fedora/root", 1);
  QubeVolumeSpec dst = ORIGIN ("fedora-clone/root", 1);

  create (&src);
  write_revision (&src, 0x61);
  ok (ops->volume_clone (pool, &dst, pool, &src), "clone");
  ck_assert (committed_holds (&dst, 0, 0x61));
  write_revision (&src, 0x62);
  ck_assert (committed_holds (&dst, 0, 0x61));
  write_revision (&dst, 0x63);
  ck_assert (committed_holds (&src, 0, 0x62));
  refused (ops->volume_clone (pool, &dst, pool, &src), QUBE_ERROR_EXISTS,
           "exists");
}
END_TEST

START_TEST (test_verify_notices_missing_data)
{
  QubeVolumeSpec priv = ORIGIN ("work/private", 0);
  g_autofree char *files = NULL;
  g_auto (GStrv) names = NULL;
  g_autofree char *victim = NULL;

  create (&priv);
  write_revision (&priv, 0x71);
  ok (ops->volume_verify (pool, &priv), "verify");
  files = volume_files ("work/private");
  names = g_strsplit (files, " ", -1);
  for (guint i = 0; names[i] != NULL; i++)
    if (g_str_has_prefix (names[i], "rev-"))
      victim = g_build_filename (pool_dir, "work/private", names[i], NULL);
  ck_assert_ptr_nonnull (victim);
  ck_assert_int_eq (unlink (victim), 0);
  refused (ops->volume_verify (pool, &priv), QUBE_ERROR_IO,
           "missing or unreadable");
}
END_TEST

START_TEST (test_vid_cannot_leave_the_pool)
{
  static const char *const bad[] = { "../x", "a/../b", "a/b/c", "/etc/passwd",
                                     ".hidden/x", "a/.b", "a", "a/", "/a",
                                     "a/..", "..", "", "a/b c", "a/b\n" };
  g_autofree char *outside = g_build_filename (tmp_dir, "outside", NULL);
  g_autofree char *evil = g_build_filename (pool_dir, "evil", NULL);
  g_autofree char *work_dir = g_build_filename (pool_dir, "work", NULL);
  g_autofree char *evil_vol = g_build_filename (work_dir, "private", NULL);
  QubeVolumeSpec s;
  g_autoptr (GDir) dir = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      s = ORIGIN (bad[i], 1);
      refused (ops->volume_create (pool, &s), QUBE_ERROR_INVALID,
               "invalid volume id");
    }
  /* Symlinks planted in the pool are refused, not followed. */
  ck_assert_int_eq (g_mkdir (outside, 0700), 0);
  ck_assert_int_eq (symlink (outside, evil), 0);
  s = ORIGIN ("evil/private", 1);
  refused (ops->volume_create (pool, &s), QUBE_ERROR_INVALID, "symlink");
  ck_assert_int_eq (g_mkdir (work_dir, 0700), 0);
  ck_assert_int_eq (symlink (outside, evil_vol), 0);
  s = ORIGIN ("work/private", 1);
  refused (ops->volume_create (pool, &s), QUBE_ERROR_INVALID, "symlink");
  {
    QubeBlockDev dev = { .size = sizeof (QubeBlockDev) };

    refused (ops->volume_start (pool, &s, &dev), QUBE_ERROR_INVALID,
             "symlink");
  }
  dir = g_dir_open (outside, 0, NULL);
  ck_assert_ptr_null (g_dir_read_name (dir));
}
END_TEST

START_TEST (test_copy_mode_and_pool_lifecycle)
{
  g_autofree char *dir = g_build_filename (tmp_dir, "copies", NULL);
  g_autoptr (GError) error = NULL;
  QubePool *main_pool = pool;
  QubePoolInfo pi = { .size = sizeof (QubePoolInfo) };
  QubeVolumeSpec troot = ORIGIN ("fedora/root", 0);
  QubeVolumeSpec aroot = SNAPSHOT ("work/root", "fedora/root");
  QubeBlockDev dev;

  pool = storage_pool_open (driver, "copies", dir, "copy", &error);
  ck_assert_msg (pool != NULL, "%s", error ? error->message : "");
  ok (ops->pool_info (pool, &pi), "pool info");
  ck_assert_str_eq (pi.mode, "copy");
  ck_assert_int_eq (pi.block_formats, QUBE_BLOCK_RAW);

  create (&troot);
  create (&aroot);
  write_revision (&troot, 0x91);
  dev = start (&aroot);
  ck_assert_int_eq (dev.format, QUBE_BLOCK_RAW);
  ck_assert (holds (&dev, 0, 0x91));
  fill (&dev, MiB, 0x92);
  stop (&aroot);
  ck_assert (committed_holds (&troot, MiB, 0x00));

  /* A pool keeps the mode it was made in. */
  ck_assert_ptr_null (storage_pool_open (driver, "copies", dir, "qcow2",
                                         &error));
  ck_assert_msg (error->code == QUBE_ERROR_INVALID &&
                   strstr (error->message, "was made in mode copy"),
                 "%s", error->message);

  refused (ops->pool_destroy (pool), QUBE_ERROR_IN_USE, "holds volumes");
  ok (ops->volume_remove (pool, &aroot), "remove");
  ok (ops->volume_remove (pool, &troot), "remove");
  ok (ops->pool_destroy (pool), "destroy");
  ops->pool_close (pool);
  pool = main_pool;
  ck_assert (!g_file_test (dir, G_FILE_TEST_EXISTS));
}
END_TEST

/* Runs one operation on volume `s` in a separate process (this program,
 * run with --op) with the fault hook armed at `step`: that process must die
 * there. */
static void
op_killed_at (const char *op, const QubeVolumeSpec *s, const char *step)
{
  g_autofree char *flags = g_strdup_printf ("%u", s->flags);
  g_autofree char *keep = g_strdup_printf ("%u", s->revisions_to_keep);
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  const char *argv[] = { self, "--op", op, pool_dir,
                         wanted_cow () ? wanted_cow () : "auto", s->vid,
                         flags, keep, s->source ? s->source : "", NULL };
  g_auto (GStrv) env = g_environ_setenv (g_get_environ (),
                                         "QUBE_STORAGE_FILE_FAULT", step,
                                         TRUE);
  g_autoptr (GError) error = NULL;
  int status;

  ck_assert_msg (g_spawn_sync (NULL, (char **) argv, env, G_SPAWN_DEFAULT,
                               NULL, NULL, NULL, NULL, &status, &error),
                 "%s", error ? error->message : "");
  ck_assert_msg (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL,
                 "%s did not reach step %s (status %d)", op, step, status);
}

/* The --op mode of this program:
 *   --op create|start|stop POOL_DIR COW VID FLAGS KEEP SOURCE */
static int
volume_op_main (char **argv)
{
  g_autoptr (GError) error = NULL;
  /* Beside the pool, so that the test's teardown removes it even though
   * this process is killed. */
  g_autofree char *parent = g_path_get_dirname (argv[3]);
  g_autofree char *state = g_build_filename (parent, "op-state", NULL);
  g_autoptr (StorageDriver) d = NULL;
  QubeBlockDev dev = { .size = sizeof dev };
  QubeVolumeSpec s;
  QubePool *p;
  int rc;

  g_mkdir_with_parents (state, 0700);
  d = storage_driver_load (state, &error);
  if (d == NULL)
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  driver = d;
  p = storage_pool_open (d, "test", argv[3],
                         strcmp (argv[4], "auto") ? argv[4] : NULL, &error);
  if (p == NULL)
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  s = spec (argv[5], (guint32) atoi (argv[6]),
            argv[8][0] ? argv[8] : NULL, (guint32) atoi (argv[7]));
  if (strcmp (argv[2], "create") == 0)
    rc = d->ops->volume_create (p, &s);
  else if (strcmp (argv[2], "start") == 0)
    rc = d->ops->volume_start (p, &s, &dev);
  else
    rc = d->ops->volume_stop (p, &s);
  if (rc != 0 && !storage_driver_ok (d, rc, argv[2], &error))
    g_printerr ("%s\n", error->message);
  d->ops->pool_close (p);
  driver = NULL;
  return rc == 0 ? 0 : 1;
}

START_TEST (test_killed_while_creating_or_starting)
{
  QubeVolumeSpec troot = ORIGIN ("fedora/root", 1);
  QubeVolumeSpec aroot = SNAPSHOT ("work/root", "fedora/root");
  QubeVolumeSpec priv = ORIGIN ("work/private", 1);
  QubeVolumeSpec vol = VOLATILE ("work/volatile");
  const QubeVolumeSpec *started[] = { &aroot, &priv, &vol };
  g_autofree char *qube_dir = g_build_filename (pool_dir, "work", NULL);
  g_autoptr (GDir) dir = NULL;
  const char *name;

  /* A create killed half-way leaves no volume, and can be redone. */
  op_killed_at ("create", &priv, "create-made");
  ck_assert_int_eq (info (&priv).exists, 0);
  refused (ops->volume_remove (pool, &priv), QUBE_ERROR_NOT_FOUND,
           "no such volume");
  create (&priv);
  create (&troot);
  create (&aroot);
  create (&vol);
  write_revision (&troot, 0x51);
  write_revision (&priv, 0x52);

  /* A start killed before it was recorded leaves the volume stopped, its
   * committed data as it was, and its image removed by the next operation. */
  for (guint i = 0; i < G_N_ELEMENTS (started); i++)
    {
      g_autofree char *files = NULL;
      QubeBlockDev dev;

      op_killed_at ("start", started[i], "start-made");
      ck_assert_int_eq (info (started[i]).started, 0);
      files = volume_files (started[i]->vid);
      ck_assert_msg (strstr (files, "work.") == NULL &&
                       strstr (files, "base.") == NULL,
                     "%s kept a half-made start: %s", started[i]->vid, files);
      dev = start (started[i]);
      ck_assert (holds (&dev, 0, started[i] == &vol ? 0x00
                                 : started[i] == &priv ? 0x52 : 0x51));
      stop (started[i]);
    }
  ck_assert (committed_holds (&priv, 0, 0x52));
  ck_assert (committed_holds (&troot, 0, 0x51));
  /* No half-made volume directory either. */
  dir = g_dir_open (qube_dir, 0, NULL);
  while ((name = g_dir_read_name (dir)) != NULL)
    ck_assert_msg (name[0] != '.', "left %s", name);
}
END_TEST

START_TEST (test_killed_while_committing)
{
  static const struct
  {
    const char *step;
    gboolean committed;     /* the new data is the committed revision */
  } steps[] = {
    { "commit-begin", FALSE },   { "commit-written", FALSE },
    { "commit-renamed", FALSE }, { "meta-written", FALSE },
    { "commit-saved", TRUE },
  };
  QubeVolumeSpec priv = ORIGIN ("work/private", 1);

  create (&priv);
  write_revision (&priv, 0x01);
  for (guint i = 0; i < G_N_ELEMENTS (steps); i++)
    {
      guint8 old = (guint8) (0x10 + i), new = (guint8) (0x80 + i);
      QubeBlockDev dev;
      g_autofree char *files = NULL;

      write_revision (&priv, old);
      dev = start (&priv);
      fill (&dev, 0, new);
      op_killed_at ("stop", &priv, steps[i].step);

      /* The previous revision is intact (or the new one fully made). */
      ck_assert_int_eq (info (&priv).started, !steps[i].committed);
      ck_assert_msg (committed_holds (&priv, 0, steps[i].committed ? new : old),
                     "wrong committed data after a kill at %s",
                     steps[i].step);
      ok (ops->volume_verify (pool, &priv), steps[i].step);
      /* The next start cleans up and loses nothing: an interrupted stop
       * left the working image with the qube's data. */
      dev = start (&priv);
      files = volume_files ("work/private");
      ck_assert_msg (strstr (files, ".part") == NULL &&
                       count_revision_files ("work/private") <= 2,
                     "leftovers after a kill at %s: %s", steps[i].step, files);
      ck_assert (holds (&dev, 0, new));
      stop (&priv);
      ck_assert (committed_holds (&priv, 0, new));
      ck_assert_int_eq (count_revision_files ("work/private"), 2);
    }
}
END_TEST

/* Mounts a small filesystem for an out-of-space pool: tmpfs, or XFS with
 * reflinks when the suite runs in reflink mode. */
static char *
mount_small_fs (void)
{
  g_autofree char *mnt = g_build_filename (tmp_dir, "small", NULL);
  g_autofree char *img = g_build_filename (tmp_dir, "small.img", NULL);
  g_autofree char *cmd = NULL;

  ck_assert_int_eq (g_mkdir (mnt, 0700), 0);
  if (g_strcmp0 (wanted_cow (), "reflink") == 0)
    cmd = g_strdup_printf ("truncate -s 320M '%s' && mkfs.xfs -q -m reflink=1 "
                           "'%s' && mount -o loop '%s' '%s'",
                           img, img, img, mnt);
  else
    cmd = g_strdup_printf ("mount -t tmpfs -o size=48M tmpfs '%s'", mnt);
  if (system (cmd) != 0)
    return NULL;
  return g_steal_pointer (&mnt);
}

START_TEST (test_out_of_space)
{
  g_autofree char *mnt = mount_small_fs ();
  g_autofree char *dir = NULL;
  g_autofree char *filler = NULL;
  g_autoptr (GError) error = NULL;
  QubeVolumeSpec big = ORIGIN ("work/private", 1);
  QubeVolumeSpec priv = ORIGIN ("work/data", 1);
  QubeVolumeSpec vol = VOLATILE ("work/volatile");
  QubePool *small;
  QubeBlockDev dev = { .size = sizeof (QubeBlockDev) };
  g_autofree char *cmd = NULL;
  guint64 free_mib;
  QubePoolInfo pi = { .size = sizeof (QubePoolInfo) };

  if (mnt == NULL)
    {
      /* check(1) has no skip: say why and pass. */
      g_printerr ("test_out_of_space skipped: cannot mount a small filesystem\n");
      return;
    }
  dir = g_build_filename (mnt, "pool", NULL);
  small = storage_pool_open (driver, "small", dir, wanted_cow (), &error);
  ck_assert_msg (small != NULL, "%s", error ? error->message : "");
  ok (ops->pool_info (small, &pi), "pool info");
  free_mib = (pi.size_bytes - pi.usage_bytes) / MiB;
  g_test_message ("small pool: %" G_GUINT64_FORMAT " MiB free", free_mib);

  big.size_bytes = 2048 * MiB;
  refused (ops->volume_create (small, &big), QUBE_ERROR_NO_SPACE,
           "pool 'small': cannot create volume 'work/private' of 2048 MiB: ");
  refused (ops->volume_create (small, &big), QUBE_ERROR_NO_SPACE, " free");
  {
    g_autofree char *qube_dir = g_build_filename (dir, "work", NULL);
    g_autoptr (GDir) d = g_dir_open (qube_dir, 0, NULL);

    ck_assert (d == NULL || g_dir_read_name (d) == NULL);
  }

  /* A volume with real data, then the filesystem fills up. */
  priv.size_bytes = 16 * MiB;
  ok (ops->volume_create (small, &priv), "create");
  ok (ops->volume_start (small, &priv, &dev), "start");
  ck_assert (storage_image_fill (&dev, 0, 8 * MiB, 0x77, &error));
  ok (ops->volume_stop (small, &priv), "stop");
  ok (ops->volume_start (small, &priv, &dev), "start");
  ck_assert (storage_image_fill (&dev, 0, 8 * MiB, 0x78, &error));
  filler = g_build_filename (dir, "filler", NULL);
  cmd = g_strdup_printf ("fallocate -l $(( $(stat -f -c '%%a*%%S' '%s') - 2*1024*1024 )) '%s'",
                         dir, filler);
  ck_assert_int_eq (system (cmd), 0);

  vol.size_bytes = 64 * MiB;
  refused (ops->volume_start (small, &vol, &dev), QUBE_ERROR_NOT_FOUND,
           "no such volume");
  ok (ops->volume_create (small, &vol), "create volatile");
  refused (ops->volume_start (small, &vol, &dev), QUBE_ERROR_NO_SPACE,
           "cannot start volume 'work/volatile' of 64 MiB: ");
  ck_assert_int_eq (info (&vol).started, 0);
  {
    int rc = ops->volume_stop (small, &priv);

    /* qcow2 mode must rewrite the data to commit it and cannot; reflink
     * mode commits without writing data. */
    if (rc != 0)
      {
        g_autofree char *files = NULL;
        QubeVolumeInfo vi = { .size = sizeof (QubeVolumeInfo) };

        refused (rc, QUBE_ERROR_NO_SPACE, "cannot stop volume 'work/data'");
        ok (ops->volume_info (small, &priv, &vi), "info");
        ck_assert_int_eq (vi.started, 1);
        {
          g_autofree char *vdir = g_build_filename (dir, "work", "data", NULL);
          g_autoptr (GDir) d = g_dir_open (vdir, 0, NULL);
          const char *name;

          while ((name = g_dir_read_name (d)) != NULL)
            ck_assert_msg (!g_str_has_suffix (name, ".part"), "left %s", name);
        }
        unlink (filler);
        ok (ops->volume_stop (small, &priv), "stop with space again");
      }
  }
  unlink (filler);
  ok (ops->volume_export_begin (small, &priv, &dev), "export");
  ck_assert (storage_image_check (&dev, 0, 8 * MiB, 0x78, &error));
  ok (ops->volume_export_end (small, &priv), "export end");
  ops->pool_close (small);
  g_free (cmd);
  cmd = g_strdup_printf ("umount '%s'", mnt);
  ck_assert_int_eq (system (cmd), 0);
}
END_TEST

START_TEST (test_leftovers_removed_on_open)
{
  QubeVolumeSpec priv = ORIGIN ("work/private", 1);
  static const char *const strays[] = { "work.img.part", "rev-1.img",
                                        "rev-2.qcow2", "volume.conf.part",
                                        "export.img", "import.img" };
  g_autoptr (GError) error = NULL;
  g_autofree char *files = NULL;
  g_autofree char *creating = g_build_filename (pool_dir, "work",
                                                ".root.creating", NULL);

  guint n_revs;

  create (&priv);
  write_revision (&priv, 0x21);
  n_revs = count_revision_files ("work/private");
  ck_assert_int_eq (n_revs, 2); /* the current one and one kept */
  for (guint i = 0; i < G_N_ELEMENTS (strays); i++)
    {
      g_autofree char *path = g_build_filename (pool_dir, "work/private",
                                                strays[i], NULL);

      ck_assert (g_file_set_contents (path, "stray", -1, NULL));
    }
  ck_assert_int_eq (g_mkdir (creating, 0700), 0);
  ops->pool_close (pool);
  pool = storage_pool_open (driver, "test", pool_dir, wanted_cow (), &error);
  ck_assert_msg (pool != NULL, "%s", error ? error->message : "");
  files = volume_files ("work/private");
  ck_assert_int_eq (count_revision_files ("work/private"), n_revs);
  ck_assert_msg (strstr (files, "stray") == NULL && strstr (files, ".part") == NULL
                   && strstr (files, "import") == NULL
                   && strstr (files, "export") == NULL,
                 "left: %s", files);
  ck_assert (!g_file_test (creating, G_FILE_TEST_EXISTS));
  ck_assert (committed_holds (&priv, 0, 0x21));
}
END_TEST

static Suite *
storage_file_suite (void)
{
  Suite *s = suite_create ("storage-file");
  TCase *tc = tcase_create ("volumes");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_pool_info);
  tcase_add_test (tc, test_pool_options_refused);
  tcase_add_test (tc, test_template_changes_reach_appvm_at_next_start);
  tcase_add_test (tc, test_private_survives_volatile_does_not);
  tcase_add_test (tc, test_both_flags_keep_a_snapshot);
  tcase_add_test (tc, test_revisions_and_revert);
  tcase_add_test (tc, test_bad_requests_leave_data_untouched);
  tcase_add_test (tc, test_import_export);
  tcase_add_test (tc, test_clone);
  tcase_add_test (tc, test_verify_notices_missing_data);
  tcase_add_test (tc, test_vid_cannot_leave_the_pool);
  tcase_add_test (tc, test_copy_mode_and_pool_lifecycle);
  tcase_add_test (tc, test_killed_while_committing);
  tcase_add_test (tc, test_killed_while_creating_or_starting);
  tcase_add_test (tc, test_out_of_space);
  tcase_add_test (tc, test_leftovers_removed_on_open);
  suite_add_tcase (s, tc);
  return s;
}

int
main (int argc, char **argv)
{
  SRunner *runner;
  int failed;

  if (argc == 9 && strcmp (argv[1], "--op") == 0)
    return volume_op_main (argv);
  /* The suite itself never runs with the fault hook armed (it would kill
   * every test, and the tests that start this program again). */
  if (g_getenv ("QUBE_STORAGE_FILE_FAULT") != NULL)
    {
      g_printerr ("QUBE_STORAGE_FILE_FAULT is set: refusing to run the suite\n");
      return 99;
    }
  runner = srunner_create (storage_file_suite ());

  g_printerr ("storage-file suite: pool under %s, cow=%s\n",
              g_getenv ("QUBE_TEST_POOL_DIR") ? g_getenv ("QUBE_TEST_POOL_DIR")
                                              : g_get_tmp_dir (),
              wanted_cow () ? wanted_cow () : "auto");
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
