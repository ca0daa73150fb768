/* bench/start — cold start of an AppVM until a `true` call through qrexec
 * returns, 10 runs (the AppVM is halted before each, its private volume
 * made at a first, unmeasured start), beside a raw baseline in the same run: the very QEMU
 * command the kvm plugin ran (read back from /proc), kernel and initramfs
 * booting to the guest's ready marker on the serial console, started by
 * hand with no libqube involved (nor its qrexec agent in the guest).
 *
 * Breakdown per run: storage (the qube's volumes started), compartment
 * (QEMU spawned until QMP answers), agent (boot until the agent's HELLO
 * reached the qrexec daemon), first call (`true` through qrexec; the
 * command waits for the guest to finish its start).
 *
 *   bench start: accel=<tcg|kvm> p50_ms=<n> raw_p50_ms=<n> overhead_ms=<n> host_rss_mib=<n>
 *
 * host_rss_mib: host memory a running qube costs beyond its guest RAM, the
 * memory only it holds: QEMU's anonymous memory other than guest RAM (what
 * the backend reports as host_overhead_kib: TCG's translation cache,
 * QEMU's heap and stacks) plus the qrexec daemon's anonymous memory (one
 * daemon serves every qube; with one qube running, all of it).  Not
 * counted: pages of files (QEMU's and the daemon's program and library
 * text, the kernel image QEMU keeps mapped), which are page cache shared
 * by every qube and reclaimable.  The same resident figures in full
 * (QEMU's and the daemon's VmRSS, less guest RAM) are printed too.  Needs
 * root (the template is built from /boot).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "qube.h"
#include "qube-plugin-private.h"

#define RUNS 10
#define TEMPLATE "debian-minimal"

static char *state_dir;

static int
compare_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median (GArray *values)
{
  if (values->len == 0)
    return 0;
  g_array_sort (values, compare_double);
  return g_array_index (values, double, values->len / 2);
}

/* A field (kB) of /proc/PID/FILE for the pid in `pidfile`. */
static guint64
proc_kib (const char *pidfile, const char *file, const char *field)
{
  g_autofree char *pid = NULL;
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  const char *line;

  if (!g_file_get_contents (pidfile, &pid, NULL, NULL))
    return 0;
  path = g_strdup_printf ("/proc/%d/%s", atoi (pid), file);
  if (!g_file_get_contents (path, &text, NULL, NULL) || (line = strstr (text, field)) == NULL)
    return 0;
  return g_ascii_strtoull (line + strlen (field), NULL, 10);
}

static gint64
time_of (const char *times, const char *key)
{
  const char *p = strstr (times, key);

  return p != NULL ? g_ascii_strtoll (p + strlen (key) + 1, NULL, 10) : 0;
}

/* The QEMU command the plugin ran for the qube, argument by argument. */
static GPtrArray *
qemu_argv (const char *runtime_dir)
{
  g_autofree char *pidfile = g_build_filename (runtime_dir, "qemu.pid", NULL);
  g_autofree char *pid = NULL;
  g_autofree char *path = NULL;
  g_autofree char *cmdline = NULL;
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);
  gsize len;

  if (!g_file_get_contents (pidfile, &pid, NULL, NULL))
    return argv;
  path = g_strdup_printf ("/proc/%d/cmdline", atoi (pid));
  if (!g_file_get_contents (path, &cmdline, &len, NULL))
    return argv;
  for (gsize off = 0; off < len; off += strlen (cmdline + off) + 1)
    g_ptr_array_add (argv, g_strdup (cmdline + off));
  return argv;
}

static char *
replace_all (const char *text, const char *from, const char *to)
{
  g_auto(GStrv) parts = g_strsplit (text, from, -1);

  return g_strjoinv (to, parts);
}

/* The same command for the raw baseline: not held at start (-S), its
 * runtime files in `raw_dir`, only the template's root image as disk (the
 * qube's started volumes are gone by then), and the guest's qrexec agent
 * not started (qube.agent=off). */
static GPtrArray *
raw_argv (GPtrArray *qube_argv, const char *qube_dir, const char *raw_dir, const char *root_img)
{
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; i < qube_argv->len; i++)
    {
      const char *arg = qube_argv->pdata[i];

      if (g_str_equal (arg, "-S"))
        continue;
      /* The plugin hands QEMU its monitor's socket as a descriptor; here
       * QEMU makes one at the same place of its own runtime directory. */
      if (g_str_equal (arg, "-chardev") && i + 1 < qube_argv->len
          && g_str_has_prefix (qube_argv->pdata[i + 1], "socket,id=monitor,fd="))
        {
          g_autofree char *qmp = g_build_filename (raw_dir, "qmp.sock", NULL);

          i++;
          g_ptr_array_add (argv, g_strdup (arg));
          g_ptr_array_add (argv, g_strdup_printf ("socket,id=monitor,path=%s,server=on,wait=off", qmp));
          continue;
        }
      if (g_str_equal (arg, "-drive") && i + 1 < qube_argv->len)
        {
          const char *spec = qube_argv->pdata[i + 1];

          i++;
          if (strstr (spec, "id=disk-root,") != NULL)
            {
              g_ptr_array_add (argv, g_strdup ("-drive"));
              g_ptr_array_add (argv, g_strdup_printf ("file=%s,format=raw,if=none,id=disk-root,"
                                                      "readonly=on", root_img));
            }
          continue;
        }
      if (g_str_equal (arg, "-device") && i + 1 < qube_argv->len
          && g_str_has_prefix (qube_argv->pdata[i + 1], "virtio-blk-device,")
          && strstr (qube_argv->pdata[i + 1], "drive=disk-root,") == NULL)
        {
          i++;
          continue;
        }
      if (g_str_equal (arg, "-append") && i + 1 < qube_argv->len)
        {
          /* Nothing of libqube in the guest either: no qrexec agent. */
          g_ptr_array_add (argv, g_strdup (arg));
          g_ptr_array_add (argv, g_strdup_printf ("%s qube.agent=off",
                                                  (const char *) qube_argv->pdata[++i]));
          continue;
        }
      g_ptr_array_add (argv, replace_all (arg, qube_dir, raw_dir));
    }
  g_ptr_array_add (argv, NULL);
  return argv;
}

/* Boots the raw command until the ready marker; ms, or 0 on failure. */
static double
raw_boot (GPtrArray *argv, const char *raw_dir)
{
  g_autofree char *console = g_build_filename (raw_dir, "console.log", NULL);
  g_autoptr(GSubprocess) qemu = NULL;
  gint64 start = g_get_monotonic_time (), ready = 0;

  g_unlink (console);
  qemu = g_subprocess_newv ((const char *const *) argv->pdata,
                            G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE, NULL);
  if (qemu == NULL)
    return 0;
  while (g_get_monotonic_time () - start < 120 * G_USEC_PER_SEC)
    {
      g_autofree char *text = NULL;

      if (g_file_get_contents (console, &text, NULL, NULL) && strstr (text, "qube-guest: ready") != NULL)
        {
          ready = g_get_monotonic_time ();
          break;
        }
      g_usleep (2000);
    }
  g_subprocess_force_exit (qemu);
  g_subprocess_wait (qemu, NULL, NULL);
  return ready != 0 ? (double) (ready - start) / 1000.0 : 0;
}

/* host_overhead_kib as the backend reports it for the running qube. */
static guint64
backend_overhead_kib (QubeManager *manager, QubeVm *vm, const char *dir, char *accel, gsize accel_len)
{
  QubePluginInfo *info = _qube_plugin_registry_find (qube_manager_get_plugins (manager),
                                                     QUBE_PLUGIN_KIND_BACKEND, "kvm", NULL);
  QubeDomainRef ref = { sizeof ref, qube_vm_get_name (vm), qube_vm_get_uuid (vm), dir, NULL };
  QubeDomainInfo out = { .size = sizeof out };

  if (info == NULL || _qube_plugin_info_get_desc (info)->backend->info (_qube_plugin_info_get_data (info),
                                                                         &ref, &out) != 0)
    return 0;
  out.accel[sizeof out.accel - 1] = '\0';
  g_strlcpy (accel, out.accel, accel_len);
  return out.host_overhead_kib;
}

static gboolean
build_template (const char *builddir)
{
  g_autofree char *qube = g_build_filename (builddir, "cli", "qube", NULL);
  g_autoptr(GError) error = NULL;
  const char *argv[] = { qube, "--state-dir", state_dir, "template", "build", TEMPLATE, NULL };
  int status;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                     NULL, &status, &error) || !g_spawn_check_wait_status (status, &error))
    {
      g_printerr ("bench start: qube template build: %s\n", error->message);
      return FALSE;
    }
  return TRUE;
}

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) manager = NULL;
  g_autoptr(GArray) ours = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) raw = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GPtrArray) raw_cmd = NULL;
  g_autofree char *plugin_path = g_strdup_printf ("%s/plugins/kvm/.libs:%s/plugins/storage-file/.libs",
                                                  QUBE_BENCH_BUILDDIR, QUBE_BENCH_BUILDDIR);
  g_autofree char *daemon = g_build_filename (QUBE_BENCH_BUILDDIR, "cli", "qube-qrexec-daemon", NULL);
  g_autofree char *raw_dir = NULL;
  g_autofree char *root_img = NULL;
  g_autoptr(QubeVm) vm = NULL;
  const char *name = "bench";
  double sums[4] = { 0 };
  guint64 host_kib = 0;
  char accel[16] = "unknown";
  int failures = 0;

  if (geteuid () != 0)
    {
      printf ("bench start: skipped (needs root: the template is built from /boot)\n");
      return 0;
    }
  g_setenv ("QUBE_PLUGIN_PATH", plugin_path, TRUE);
  g_setenv ("QUBE_QREXEC_DAEMON", daemon, TRUE);
  g_unsetenv ("QUBE_RUNTIME_DIR");
  state_dir = g_dir_make_tmp ("qube-bench-start-XXXXXX", &error);
  g_assert_no_error (error);
  raw_dir = g_build_filename (state_dir, "raw", NULL);
  g_mkdir_with_parents (raw_dir, 0700);
  root_img = g_build_filename (state_dir, "templates", TEMPLATE, "root.img", NULL);
  if (!build_template (QUBE_BENCH_BUILDDIR))
    return 1;
  manager = qube_manager_new (state_dir, &error);
  g_assert_no_error (error);

  vm = qube_manager_create_vm (manager, "AppVM", name, TEMPLATE, "blue", &error);
  g_assert_no_error (error);
  for (int run = -1; run < RUNS; run++)
    {
      g_autofree char *dir = qube_qrexec_qube_runtime_dir (manager, name);
      g_autofree char *times_path = g_build_filename (dir, "start-times", NULL);
      /* One daemon serves every qube of the state directory. */
      g_autofree char *daemon_pid = g_build_filename (qube_manager_get_runtime_dir (manager),
                                                      "qrexec-daemon.pid", NULL);
      g_autofree char *times = NULL;
      gint64 t0, t_started, t_called;
      int exit_code = -1;
      double total;

      t0 = g_get_monotonic_time ();
      if (!qube_vm_start (vm, &error))
        {
          g_printerr ("bench start: %s\n", error->message);
          return 1;
        }
      t_started = g_get_monotonic_time ();
      if (!qube_qrexec_run (manager, name, NULL, "true", QUBE_QREXEC_RUN_NO_STDIN, -1, 1, 2,
                            &exit_code, &error) || exit_code != 0)
        {
          g_printerr ("bench start: the first call failed: %s\n",
                      error != NULL ? error->message : "true did not exit 0");
          g_clear_error (&error);
          failures++;
        }
      t_called = g_get_monotonic_time ();
      g_file_get_contents (times_path, &times, NULL, NULL);
      if (run == -1)
        {
          /* The warm-up run: its command becomes the baseline's. */
          g_autoptr(GPtrArray) argv = qemu_argv (dir);

          raw_cmd = raw_argv (argv, dir, raw_dir, root_img);
          g_autofree char *qemu_pid = g_build_filename (dir, "qemu.pid", NULL);
          guint64 qemu_rss = proc_kib (qemu_pid, "status", "VmRSS:");
          guint64 daemon_rss = proc_kib (daemon_pid, "status", "VmRSS:");
          guint64 overhead_kib = backend_overhead_kib (manager, vm, dir, accel, sizeof accel);
          guint64 anon_kib = proc_kib (qemu_pid, "smaps_rollup", "Anonymous:");
          guint64 guest_kib = anon_kib > overhead_kib ? anon_kib - overhead_kib : 0;

          host_kib = overhead_kib + proc_kib (daemon_pid, "smaps_rollup", "Anonymous:");
          printf ("  memory: QEMU resident %" G_GUINT64_FORMAT " MiB of which guest RAM %"
                  G_GUINT64_FORMAT " MiB; qrexec daemon resident %" G_GUINT64_FORMAT " MiB\n",
                  qemu_rss / 1024, guest_kib / 1024, daemon_rss / 1024);
        }
      else
        {
          total = (double) (t_called - t0) / 1000.0;
          g_array_append_val (ours, total);
          sums[0] += (double) time_of (times ? times : "", "storage_us") / 1000.0;
          sums[1] += (double) time_of (times ? times : "", "compartment_us") / 1000.0;
          sums[2] += (double) time_of (times ? times : "", "agent_us") / 1000.0;
          sums[3] += (double) (t_called - t_started) / 1000.0;
          printf ("  run %2d: %.0f ms (storage %.0f, compartment %.0f, agent %.0f, first call %.0f)\n",
                  run + 1, total, time_of (times ? times : "", "storage_us") / 1000.0,
                  time_of (times ? times : "", "compartment_us") / 1000.0,
                  time_of (times ? times : "", "agent_us") / 1000.0,
                  (double) (t_called - t_started) / 1000.0);
        }
      if (!qube_vm_kill (vm, &error))
        {
          g_printerr ("bench start: %s\n", error->message);
          return 1;
        }
      if (run >= 0)
        {
          double r = raw_boot (raw_cmd, raw_dir);

          if (r > 0)
            g_array_append_val (raw, r);
          printf ("  raw %2d: %.0f ms\n", run + 1, r);
        }
    }

  {
    double p50 = median (ours), raw_p50 = median (raw);

    printf ("  mean breakdown: storage %.0f ms, QEMU spawn to QMP ready %.0f ms, boot to agent "
            "HELLO %.0f ms, first call %.0f ms%s\n", sums[0] / RUNS, sums[1] / RUNS, sums[2] / RUNS,
            sums[3] / RUNS, failures > 0 ? " (some first calls failed)" : "");
    printf ("bench start: accel=%s p50_ms=%.0f raw_p50_ms=%.0f overhead_ms=%.0f host_rss_mib=%.0f\n",
            accel, p50, raw_p50, p50 - raw_p50, (double) host_kib / 1024.0);
  }
  {
    g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", state_dir);
    int status;

    g_spawn_command_line_sync (cmd, NULL, NULL, &status, NULL);
  }
  return failures > 0 ? 1 : 0;
}
