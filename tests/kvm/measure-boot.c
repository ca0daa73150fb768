/* measure-boot.c — measures the kvm backend on this host: time from
 * create() to the guest's ready marker, and QEMU's host memory per qube
 * (resident size, and the part beyond guest RAM that info() reports).
 *
 *   measure-boot TEMPLATE_DIR [RUNS]
 *
 * Run from the build tree (it loads plugins/kvm/.libs/kvm.so through the
 * plugin registry).  Prints one line per run and a summary. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "qube-plugin-private.h"

static guint64
vm_rss_kib (const char *pidfile)
{
  g_autofree char *pid = NULL;
  g_autofree char *path = NULL;
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents (pidfile, &pid, NULL, NULL))
    return 0;
  path = g_strdup_printf ("/proc/%d/status", atoi (pid));
  if (!g_file_get_contents (path, &status, NULL, NULL) ||
      (line = strstr (status, "VmRSS:")) == NULL)
    return 0;
  return g_ascii_strtoull (line + 6, NULL, 10);
}

/* When the ready marker appeared on `console` (monotonic time), or 0
 * when it did not within two minutes of `start`. */
static gint64
wait_ready (const char *console, gint64 start)
{
  while (g_get_monotonic_time () - start < 120 * G_USEC_PER_SEC)
    {
      g_autofree char *text = NULL;

      if (g_file_get_contents (console, &text, NULL, NULL) &&
          strstr (text, "qube-guest: ready") != NULL)
        return g_get_monotonic_time ();
      g_usleep (5000);
    }
  return 0;
}

/* The baseline: the same kernel, initramfs and root volume booted by
 * QEMU run directly (TCG, no QMP, no sandbox, no plugin) to the marker. */
static double
raw_boot (const char *template_dir, const char *dir)
{
  g_autofree char *kernel = g_build_filename (template_dir, "vmlinux", NULL);
  g_autofree char *initramfs = g_build_filename (template_dir, "initramfs.img", NULL);
  g_autofree char *root = g_build_filename (template_dir, "root.img", NULL);
  g_autofree char *console = g_build_filename (dir, "raw-console.log", NULL);
  g_autofree char *chardev = g_strdup_printf ("file,id=console,path=%s", console);
  g_autofree char *drive = g_strdup_printf ("file=%s,format=raw,if=none,id=root,readonly=on", root);
  const char *argv[] = {
    "qemu-system-x86_64", "-machine", "microvm,acpi=on,pcie=off", "-accel", "tcg",
    "-m", "256M", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
    "-no-reboot", "-chardev", chardev, "-serial", "chardev:console",
    "-kernel", kernel, "-initrd", initramfs,
    "-append", "console=ttyS0 panic=-1 quiet pci=off tsc_early_khz=2600000",
    "-drive", drive, "-device", "virtio-blk-device,drive=root,serial=root", NULL
  };
  g_autoptr(GSubprocess) qemu = NULL;
  gint64 start = g_get_monotonic_time (), ready;

  qemu = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_SILENCE, NULL);
  if (qemu == NULL)
    return 0;
  ready = wait_ready (console, start);
  g_subprocess_force_exit (qemu);
  g_subprocess_wait (qemu, NULL, NULL);
  return ready != 0 ? (double) (ready - start) / 1000.0 : 0;
}

static int
compare (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  g_autofree char *tmp = g_dir_make_tmp ("qube-kvm-measure-XXXXXX", NULL);
  g_autofree char *state = g_build_filename (tmp, "state", NULL);
  g_autofree char *run = g_build_filename (tmp, "run", NULL);
  g_autofree char *plugin_dir = g_build_filename ("plugins", "kvm", ".libs", NULL);
  g_autoptr(QubePluginRegistry) registry = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) raw_times = g_array_new (FALSE, FALSE, sizeof (double));
  QubePluginInfo *info;
  const QubeBackendOps *ops;
  void *data;
  int runs = argc > 2 ? atoi (argv[2]) : 5;
  guint64 rss = 0, overhead = 0;
  char accel[16] = "";

  if (argc < 2)
    {
      fprintf (stderr, "usage: measure-boot TEMPLATE_DIR [RUNS]\n");
      return 2;
    }
  g_mkdir_with_parents (state, 0755);
  g_setenv ("QUBE_PLUGIN_PATH", plugin_dir, TRUE);
  registry = qube_plugin_registry_new (state, run);
  info = _qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_BACKEND, "kvm", &error);
  if (info == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }
  ops = _qube_plugin_info_get_desc (info)->backend;
  data = _qube_plugin_info_get_data (info);

  for (int i = 0; i < runs; i++)
    {
      g_autofree char *name = g_strdup_printf ("measure%d", i);
      g_autofree char *dir = g_build_filename (run, name, NULL);
      g_autofree char *console = g_build_filename (dir, "console.log", NULL);
      g_autofree char *pidfile = g_build_filename (dir, "qemu.pid", NULL);
      g_autofree char *uuid = g_uuid_string_random ();
      g_autofree char *kernel = g_build_filename (argv[1], "vmlinux", NULL);
      g_autofree char *initramfs = g_build_filename (argv[1], "initramfs.img", NULL);
      g_autofree char *root = g_build_filename (argv[1], "root.img", NULL);
      QubeDiskSpec disk = { .size = sizeof disk, .volume = "root", .path = root,
                            .format = QUBE_BLOCK_RAW, .readonly = 1 };
      QubeDomainConfig config = {
        .size = sizeof config, .ref = { sizeof (QubeDomainRef), name, uuid, dir, NULL },
        .memory_mib = 256, .maxmem_mib = 256, .vcpus = 1, .kernel = kernel,
        .initramfs = initramfs, .disks = &disk, .n_disks = 1,
      };
      QubeDomainInfo di = { .size = sizeof di };
      char *backend_id = NULL;
      gint64 start, created, ready;
      double ms, raw_ms;
      int rc;

      g_mkdir_with_parents (dir, 0755);
      start = g_get_monotonic_time ();
      rc = ops->create (data, &config, &backend_id);
      created = g_get_monotonic_time ();
      if (rc == 0)
        rc = ops->start (data, &config.ref);
      if (rc != 0)
        {
          _qube_plugin_take_error (info, rc, "boot", &error);
          fprintf (stderr, "%s\n", error->message);
          return 1;
        }
      free (backend_id);
      ready = wait_ready (console, start);
      ops->info (data, &config.ref, &di);
      g_strlcpy (accel, di.accel, sizeof accel);
      rss = vm_rss_kib (pidfile);
      overhead = di.host_overhead_kib;
      ops->kill (data, &config.ref);
      if (ready == 0)
        {
          fprintf (stderr, "run %d: no ready marker\n", i);
          return 1;
        }
      ms = (double) (ready - start) / 1000.0;
      g_array_append_val (times, ms);
      raw_ms = raw_boot (argv[1], dir);
      g_array_append_val (raw_times, raw_ms);
      printf ("run %d: create-to-ready %.0f ms (create %.0f ms), raw QEMU %.0f ms, "
              "QEMU RSS %" G_GUINT64_FORMAT " KiB, beyond guest RAM %" G_GUINT64_FORMAT " KiB\n",
              i, ms, (double) (created - start) / 1000.0, raw_ms, rss, overhead);
    }
  g_array_sort (times, compare);
  g_array_sort (raw_times, compare);
  printf ("kvm boot: accel=%s runs=%d p50_ms=%.0f raw_p50_ms=%.0f min_ms=%.0f max_ms=%.0f "
          "last_rss_mib=%" G_GUINT64_FORMAT " last_overhead_mib=%" G_GUINT64_FORMAT "\n",
          accel, runs, g_array_index (times, double, times->len / 2),
          g_array_index (raw_times, double, raw_times->len / 2),
          g_array_index (times, double, 0), g_array_index (times, double, times->len - 1),
          rss / 1024, overhead / 1024);
  {
    const char *rm[] = { "rm", "-rf", tmp, NULL };
    g_spawn_sync (NULL, (char **) rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
  }
  return 0;
}
