/* bench/storage — how long creating and starting an AppVM's volumes takes
 * with the storage-file driver, from a template root of 1 GiB and of 8 GiB
 * of written data, in each copy-on-write mode available here, beside a
 * plain `cp` of the 8 GiB root.  Prints one line per mode:
 *
 *   bench storage-<mode>: start_1g=<ms> start_8g=<ms> ratio=<8g/1g> cp_8g=<ms>
 *
 * qcow2 mode runs in the build directory; reflink mode on an XFS file
 * system (reflink=1) loop-mounted for the run (root only).  Every file it
 * makes is removed before it exits.
 */
#include "config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage-harness.h"

#define GiB (1024 * 1024 * 1024ull)
#define MiB (1024 * 1024ull)
#define ROUNDS 11

static StorageDriver *driver;
static char *work_dir;   /* everything the run makes is below it */
static char *xfs_mount;  /* set while an XFS file system is mounted */

static void
die_on (int rc, const char *what)
{
  g_autoptr (GError) error = NULL;

  if (!storage_driver_ok (driver, rc, what, &error))
    {
      g_printerr ("bench storage: %s\n", error->message);
      exit (1);
    }
}

static gint64
now_us (void)
{
  return g_get_monotonic_time ();
}

/* Writes `size` bytes of a non-zero repeating pattern: the template's data
 * must really be there, not holes. */
static void
write_pattern (const char *path, guint64 size)
{
  const gsize chunk = 4 * MiB;
  g_autofree guint8 *buf = g_malloc (chunk);
  int fd = open (path, O_WRONLY | O_CLOEXEC);

  for (gsize i = 0; i < chunk; i++)
    buf[i] = (guint8) (i * 131 + 7) | 1;
  if (fd < 0)
    {
      g_printerr ("bench storage: cannot open %s\n", path);
      exit (1);
    }
  for (guint64 off = 0; off < size; off += chunk)
    {
      buf[0] = (guint8) (off / chunk); /* no two chunks alike */
      if (pwrite (fd, buf, chunk, (off_t) off) != (ssize_t) chunk)
        {
          g_printerr ("bench storage: cannot write %s\n", path);
          exit (1);
        }
    }
  fsync (fd);
  close (fd);
}

static void
make_template (QubePool *pool, const char *vid, guint64 size)
{
  QubeVolumeSpec root = { .size = sizeof root, .vid = vid,
                          .flags = QUBE_VOLUME_RW | QUBE_VOLUME_SAVE_ON_STOP,
                          .size_bytes = size, .revisions_to_keep = 0 };
  QubeBlockDev dev = { .size = sizeof dev };

  die_on (driver->ops->volume_create (pool, &root), "create template root");
  die_on (driver->ops->volume_import_begin (pool, &root, size, &dev),
          "import");
  write_pattern (dev.path, size);
  die_on (driver->ops->volume_import_end (pool, &root, 1), "import end");
}

static int
cmp_gint64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

/* One AppVM start: create the AppVM's root (snapshot of `template`),
 * private and volatile, and start all three; then stop and remove them
 * (not timed).  In microseconds. */
static gint64
appvm_start_once (QubePool *pool, const char *template)
{
  QubeVolumeSpec vols[] = {
    { .size = sizeof (QubeVolumeSpec), .vid = "bench-app/root",
      .flags = QUBE_VOLUME_RW | QUBE_VOLUME_SNAP_ON_START,
      .size_bytes = 1 * GiB, .source = template },
    { .size = sizeof (QubeVolumeSpec), .vid = "bench-app/private",
      .flags = QUBE_VOLUME_RW | QUBE_VOLUME_SAVE_ON_STOP,
      .size_bytes = 1 * GiB, .revisions_to_keep = 1 },
    { .size = sizeof (QubeVolumeSpec), .vid = "bench-app/volatile",
      .flags = QUBE_VOLUME_RW, .size_bytes = 1 * GiB },
  };
  gint64 t0 = now_us (), took;

  for (guint i = 0; i < G_N_ELEMENTS (vols); i++)
    {
      QubeBlockDev dev = { .size = sizeof dev };

      die_on (driver->ops->volume_create (pool, &vols[i]), "create");
      die_on (driver->ops->volume_start (pool, &vols[i], &dev), "start");
    }
  took = now_us () - t0;
  for (guint i = 0; i < G_N_ELEMENTS (vols); i++)
    {
      die_on (driver->ops->volume_stop (pool, &vols[i]), "stop");
      die_on (driver->ops->volume_remove (pool, &vols[i]), "remove");
    }
  return took;
}

static double
median_ms (gint64 *took)
{
  qsort (took, ROUNDS, sizeof took[0], cmp_gint64);
  return (double) took[ROUNDS / 2] / 1000.0;
}

/* Medians over ROUNDS AppVM starts from each template, alternating so that
 * background writeback weighs on both alike. */
static void
time_appvm_starts (QubePool *pool, const char *tpl_1g, const char *tpl_8g,
                   double *start_1g, double *start_8g)
{
  gint64 took_1g[ROUNDS], took_8g[ROUNDS];

  for (guint r = 0; r < ROUNDS; r++)
    {
      took_1g[r] = appvm_start_once (pool, tpl_1g);
      took_8g[r] = appvm_start_once (pool, tpl_8g);
    }
  *start_1g = median_ms (took_1g);
  *start_8g = median_ms (took_8g);
}

/* A plain copy of the 8 GiB template root's committed image, flushed. */
static double
time_cp (QubePool *pool, const char *dir, const char *vid)
{
  QubeVolumeSpec root = { .size = sizeof root, .vid = vid,
                          .flags = QUBE_VOLUME_RW | QUBE_VOLUME_SAVE_ON_STOP };
  QubeVolumeInfo info = { .size = sizeof info };
  g_autofree char *vol_dir = g_build_filename (dir, vid, NULL);
  g_autoptr (GDir) d = g_dir_open (vol_dir, 0, NULL);
  g_autofree char *src = NULL;
  g_autofree char *dst = g_build_filename (dir, "cp-copy", NULL);
  const char *name;
  gint64 t0;
  int status;

  die_on (driver->ops->volume_info (pool, &root, &info), "info");
  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    if (g_str_has_prefix (name, "rev-"))
      src = g_build_filename (vol_dir, name, NULL);
  if (src == NULL)
    {
      g_printerr ("bench storage: no committed image in %s\n", vol_dir);
      exit (1);
    }
  {
    /* --reflink=never: coreutils would otherwise share extents on XFS. */
    const char *argv[] = { "sh", "-c", "cp --reflink=never \"$1\" \"$2\" && sync \"$2\"",
                           "sh", src, dst, NULL };

    t0 = now_us ();
    if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                       NULL, NULL, NULL, &status, NULL) ||
        !g_spawn_check_wait_status (status, NULL))
      {
        g_printerr ("bench storage: cp of %s failed\n", src);
        unlink (dst);
        exit (1);
      }
  }
  t0 = now_us () - t0;
  unlink (dst);
  return (double) t0 / 1000.0;
}

static void
bench_mode (const char *mode, const char *dir)
{
  g_autoptr (GError) error = NULL;
  QubePool *pool = storage_pool_open (driver, "bench", dir, mode, &error);
  double start_1g, start_8g, cp_8g;
  const char *templates[] = { "bench-tpl1g/root", "bench-tpl8g/root" };

  if (pool == NULL)
    {
      g_print ("bench storage-%s: skipped (%s)\n", mode, error->message);
      return;
    }
  make_template (pool, templates[0], 1 * GiB);
  make_template (pool, templates[1], 8 * GiB);
  time_appvm_starts (pool, templates[0], templates[1], &start_1g, &start_8g);
  cp_8g = time_cp (pool, dir, templates[1]);
  g_print ("bench storage-%s: start_1g=%.1f start_8g=%.1f ratio=%.2f "
           "cp_8g=%.0f\n", mode, start_1g, start_8g, start_8g / start_1g,
           cp_8g);
  for (guint i = 0; i < G_N_ELEMENTS (templates); i++)
    {
      QubeVolumeSpec root = { .size = sizeof root, .vid = templates[i],
                              .flags = QUBE_VOLUME_SAVE_ON_STOP };

      die_on (driver->ops->volume_remove (pool, &root), "remove");
    }
  driver->ops->pool_destroy (pool);
  driver->ops->pool_close (pool);
}

static gboolean
run_sh (const char *script, const char *arg)
{
  const char *argv[] = { "sh", "-c", script, "sh", arg, NULL };
  int status;

  return g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                       NULL, NULL, NULL, &status, NULL) &&
         g_spawn_check_wait_status (status, NULL);
}

/* Also on exit(1) half-way: nothing may stay mounted or on disk. */
static void
clean_up (void)
{
  if (xfs_mount != NULL)
    run_sh ("umount \"$1\"", xfs_mount);
  if (work_dir != NULL)
    run_sh ("rm -rf \"$1\"", work_dir);
}

int
main (void)
{
  const char *builddir = g_getenv ("QUBE_TEST_BUILDDIR");
  g_autoptr (GError) error = NULL;
  char *work; /* freed by nobody: clean_up() uses it at exit */
  g_autofree char *qcow2_dir = NULL;
  char *xfs_dir;

  if (builddir == NULL)
    builddir = QUBE_BUILDDIR;
  work = g_build_filename (builddir, "bench", "storage-XXXXXX", NULL);
  if (g_mkdtemp (work) == NULL)
    {
      g_printerr ("bench storage: cannot make a directory in %s\n", builddir);
      return 1;
    }
  work_dir = work;
  atexit (clean_up);
  driver = storage_driver_load (work, &error);
  if (driver == NULL)
    {
      g_printerr ("bench storage: %s\n", error->message);
      return 1;
    }

  qcow2_dir = g_build_filename (work, "qcow2", NULL);
  bench_mode ("qcow2", qcow2_dir);

  xfs_dir = g_build_filename (work, "xfs", NULL);
  if (geteuid () != 0)
    g_print ("bench storage-reflink: skipped (loop-mounting XFS needs root)\n");
  else if (!run_sh ("mkdir \"$1\" && truncate -s 24G \"$1.img\" && "
                    "mkfs.xfs -q -m reflink=1 \"$1.img\" && "
                    "mount -o loop \"$1.img\" \"$1\"",
                    xfs_dir))
    g_print ("bench storage-reflink: skipped (cannot loop-mount an XFS "
             "file system with reflink=1)\n");
  else
    {
      g_autofree char *pool_dir = g_build_filename (xfs_dir, "pool", NULL);

      xfs_mount = xfs_dir;
      bench_mode ("reflink", pool_dir);
    }
  g_clear_pointer (&driver, storage_driver_free);
  return 0;
}
