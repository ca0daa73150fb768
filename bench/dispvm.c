/* bench/dispvm — disposables, after Qubes' own dispvm performance test:
 * `qube run --dispvm=TEMPLATE -- uname -n` requests, sequential (12 runs)
 * and 4 at once, each normal (the disposable is started for the request)
 * and preloaded (2 kept in the queue; 4 for the concurrent runs).  Two
 * figures per request: from the request until the command's output
 * arrives, and until the disposable is gone (its cleanup, done off the
 * caller's path, complete); mean and median of each.  The normal runs are
 * the baseline of the preloaded ones, in the same run.
 *
 *   bench dispvm: normal_p50_ms=<n> preload_p50_ms=<n> speedup=<normal/preload>
 *                 concurrent4_preload_p50_ms=<n>
 *
 * The request is the `qube` command itself (its real binary, not the
 * build tree's libtool wrapper), as a person or a script would make it;
 * on its path: its start, taking the preload (the qrexec daemon takes it
 * off the locked queue file and unpauses it), and one qrexec call into
 * the guest.
 * Needs root (the template is built from /boot) and QEMU.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <poll.h>

#include <gio/gio.h>
#include <gio/gunixinputstream.h>
#include <glib/gstdio.h>

#include "qube.h"

#define TEMPLATE "debian-minimal"
#define DVM "bench-dvm"
#define SEQUENTIAL_RUNS 12
#define CONCURRENT 4

static char *state_dir;
static char *qube_binary;
static QubeManager *manager;

typedef struct {
  GArray *output_ms;    /* double */
  GArray *cleanup_ms;
} Figures;

static int
compare_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median (GArray *values)
{
  g_autoptr(GArray) sorted = g_array_copy (values);

  if (sorted->len == 0)
    return 0;
  g_array_sort (sorted, compare_double);
  if (sorted->len % 2 == 1)
    return g_array_index (sorted, double, sorted->len / 2);
  return (g_array_index (sorted, double, sorted->len / 2 - 1)
          + g_array_index (sorted, double, sorted->len / 2)) / 2;
}

static double
mean (GArray *values)
{
  double sum = 0;

  for (guint i = 0; i < values->len; i++)
    sum += g_array_index (values, double, i);
  return values->len > 0 ? sum / values->len : 0;
}

static void
die (const char *what, GError *error)
{
  g_printerr ("bench dispvm: %s: %s\n", what, error != NULL ? error->message : "failed");
  exit (1);
}

static void
set_feature (const char *qube, const char *key, const char *value)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) vm = qube_manager_lookup (manager, qube, &error);

  if (vm == NULL || !qube_vm_set_feature (vm, key, value, &error))
    die ("set a feature", error);
}

static guint
ready_count (void)
{
  g_auto(GStrv) entries = qube_dispvm_preload_list (manager, DVM);
  guint n = 0;

  for (char **e = entries; *e != NULL; e++)
    if (g_str_has_suffix (*e, " ready"))
      n++;
  return n;
}

/* The queue holds `n` ready preloads (the background filler works; a
 * fill here as well, in case none runs). */
static void
wait_ready (guint n)
{
  for (int i = 0; ready_count () < n; i++)
    {
      if (i == 6000)
        die ("the preload queue never filled", NULL);
      if (i % 50 == 0)
        qube_dispvm_preload_fill_detached (manager, NULL);
      g_usleep (100 * 1000);
    }
}

static gboolean
disposable_gone (const char *name)
{
  g_autoptr(QubeVm) vm = qube_manager_lookup (manager, name, NULL);
  g_autofree char *dir = qube_qrexec_qube_runtime_dir (manager, name);
  g_autofree char *console = g_strconcat (dir, ".console.log", NULL);
  g_autofree char *lock = g_strconcat (dir, ".lock", NULL);

  return vm == NULL && !g_file_test (dir, G_FILE_TEST_EXISTS)
         && !g_file_test (console, G_FILE_TEST_EXISTS) && !g_file_test (lock, G_FILE_TEST_EXISTS);
}

/* No preload left: max 0, and fills until the queue is empty (a filler
 * still running keeps the fill lock a while); nothing of the template
 * left running. */
static void
drain (void)
{
  set_feature (DVM, "preload-dispvm-max", "0");
  for (int i = 0; i < 1200; i++)
    {
      g_auto(GStrv) entries = NULL;

      qube_dispvm_preload_fill (manager, NULL);
      entries = qube_dispvm_preload_list (manager, DVM);
      if (entries[0] == NULL)
        break;
      g_usleep (100 * 1000);
    }
  {
    g_autoptr(GPtrArray) vms = qube_manager_list_vms (manager);

    for (guint i = 0; i < vms->len; i++)
      if (g_str_equal (qube_vm_get_klass (vms->pdata[i]), "DispVM"))
        qube_dispvm_destroy (vms->pdata[i], NULL);
  }
}

typedef struct {
  GSubprocess *proc;
  GInputStream *out;
  GString *text;
  gint64 t_output;
  gint64 t_exit;
  char *name;
  gboolean gone;
} Request;

/* `count` requests at once; each one's figures added to `figures`. */
static void
run_requests (guint count, Figures *figures)
{
  g_autofree Request *reqs = g_new0 (Request, count);
  gint64 t0 = g_get_monotonic_time ();
  guint exited = 0, gone = 0;
  char buf[256];

  for (guint i = 0; i < count; i++)
    {
      g_autoptr(GError) error = NULL;

      reqs[i].proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, qube_binary,
                                       "--state-dir", state_dir, "run", "--dispvm=" DVM, "--",
                                       "uname", "-n", NULL);
      if (reqs[i].proc == NULL)
        die ("run qube", error);
      reqs[i].out = g_subprocess_get_stdout_pipe (reqs[i].proc);
      reqs[i].text = g_string_new (NULL);
    }
  /* Output first (read until EOF: the command ended), then cleanup. */
  while (exited < count)
    {
      g_autofree struct pollfd *pfd = g_new0 (struct pollfd, count);
      guint n_pfd = 0;

      for (guint i = 0; i < count; i++)
        if (reqs[i].t_exit == 0)
          pfd[n_pfd++] = (struct pollfd) { .fd = g_unix_input_stream_get_fd (
                                             G_UNIX_INPUT_STREAM (reqs[i].out)),
                                           .events = POLLIN };
      poll (pfd, n_pfd, 1000);
      for (guint i = 0; i < count; i++)
        {
          Request *r = &reqs[i];
          gssize n;

          if (r->t_exit != 0)
            continue;
          n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (r->out), buf,
                                                        sizeof buf, NULL, NULL);
          if (n > 0)
            {
              if (r->t_output == 0)
                r->t_output = g_get_monotonic_time ();
              g_string_append_len (r->text, buf, n);
            }
          else if (n == 0)
            {
              g_autoptr(GError) error = NULL;

              if (!g_subprocess_wait_check (r->proc, NULL, &error))
                die ("qube run --dispvm", error);
              r->t_exit = g_get_monotonic_time ();
              r->name = g_strdup (g_strchomp (r->text->str));
              exited++;
            }
        }
    }
  while (gone < count)
    {
      for (guint i = 0; i < count; i++)
        if (!reqs[i].gone && disposable_gone (reqs[i].name))
          {
            double out_ms = (reqs[i].t_output - t0) / 1000.0;
            double clean_ms = (g_get_monotonic_time () - t0) / 1000.0;

            reqs[i].gone = TRUE;
            gone++;
            g_array_append_val (figures->output_ms, out_ms);
            g_array_append_val (figures->cleanup_ms, clean_ms);
          }
      g_usleep (10 * 1000);
    }
  for (guint i = 0; i < count; i++)
    {
      g_object_unref (reqs[i].proc);
      g_string_free (reqs[i].text, TRUE);
      g_free (reqs[i].name);
    }
}

static Figures *
figures_new (void)
{
  Figures *f = g_new0 (Figures, 1);

  f->output_ms = g_array_new (FALSE, FALSE, sizeof (double));
  f->cleanup_ms = g_array_new (FALSE, FALSE, sizeof (double));
  return f;
}

static void
report (const char *label, Figures *f)
{
  printf ("%-22s output: mean %7.0f ms  median %7.0f ms   cleanup done: mean %7.0f ms  "
          "median %7.0f ms  (%u requests)\n", label, mean (f->output_ms), median (f->output_ms),
          mean (f->cleanup_ms), median (f->cleanup_ms), f->output_ms->len);
  fflush (stdout);
}

static void
run_shell (const char *what, const char *const *argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL, &out, &err, &status, &error)
      || !g_spawn_check_wait_status (status, &error))
    {
      g_printerr ("%s%s", out != NULL ? out : "", err != NULL ? err : "");
      die (what, error);
    }
}

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *builddir = g_strdup (QUBE_BENCH_BUILDDIR);
  g_autofree char *plugin_path = NULL;
  g_autofree char *daemon = NULL;
  g_autofree char *libpath = NULL;
  g_autofree char *wrapper = NULL;
  g_autoptr(QubeVm) dvm = NULL;
  Figures *normal = figures_new (), *preload = figures_new ();
  Figures *normal4 = figures_new (), *preload4 = figures_new ();
  double speedup;

  if (geteuid () != 0 || g_find_program_in_path ("qemu-system-x86_64") == NULL)
    {
      printf ("bench dispvm: needs root and qemu-system-x86_64\n");
      return 77;
    }
  plugin_path = g_strdup_printf ("%s/plugins/kvm/.libs:%s/plugins/storage-file/.libs", builddir,
                                 builddir);
  g_setenv ("QUBE_PLUGIN_PATH", plugin_path, TRUE);
  /* The real binaries, as installed ones would run: the build tree's
   * libtool wrappers cost a shell and a sed at every start, on the CPUs
   * the measured call needs. */
  daemon = g_build_filename (builddir, "cli", ".libs", "qube-qrexec-daemon", NULL);
  if (!g_file_test (daemon, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_free (daemon);
      daemon = g_build_filename (builddir, "cli", "qube-qrexec-daemon", NULL);
    }
  g_setenv ("QUBE_QREXEC_DAEMON", daemon, TRUE);
  libpath = g_build_filename (builddir, "core", ".libs", NULL);
  g_setenv ("LD_LIBRARY_PATH", libpath, TRUE);
  g_unsetenv ("QUBE_RUNTIME_DIR");
  qube_binary = g_build_filename (builddir, "cli", ".libs", "qube", NULL);
  wrapper = g_build_filename (builddir, "cli", "qube", NULL);
  if (!g_file_test (qube_binary, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_free (qube_binary);
      qube_binary = g_strdup (wrapper);
    }
  state_dir = g_dir_make_tmp ("qube-bench-dispvm-XXXXXX", &error);
  if (state_dir == NULL)
    die ("make a state directory", error);
  {
    const char *argv[] = { qube_binary, "--state-dir", state_dir, "template", "build", TEMPLATE,
                           NULL };

    run_shell ("qube template build", argv);
  }
  manager = qube_manager_new (state_dir, &error);
  if (manager == NULL)
    die ("open the state directory", error);
  dvm = qube_manager_create_vm (manager, "AppVM", DVM, TEMPLATE, NULL, &error);
  if (dvm == NULL || !qube_vm_set_property (dvm, "template_for_dispvms", "True", &error))
    die ("make the disposable template", error);

  /* One unmeasured request: caches (page cache, the accel probe) warm. */
  {
    Figures *warm = figures_new ();

    run_requests (1, warm);
  }

  for (int i = 0; i < SEQUENTIAL_RUNS; i++)
    run_requests (1, normal);
  report ("sequential normal", normal);

  set_feature (DVM, "preload-dispvm-max", "2");
  if (!qube_dispvm_preload_fill (manager, &error))
    die ("preload", error);
  for (int i = 0; i < SEQUENTIAL_RUNS; i++)
    {
      wait_ready (2);
      run_requests (1, preload);
    }
  report ("sequential preloaded", preload);

  drain ();
  run_requests (CONCURRENT, normal4);
  report ("4 concurrent normal", normal4);

  set_feature (DVM, "preload-dispvm-max", "4");
  wait_ready (4);
  run_requests (CONCURRENT, preload4);
  report ("4 concurrent preloaded", preload4);

  drain ();
  {
    g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", state_dir);
    g_autofree char *pidfile = g_build_filename (qube_manager_get_runtime_dir (manager),
                                                 "qrexec-daemon.pid", NULL);

    /* The qrexec daemon ends a few seconds after its last qube: then
     * nothing writes in the state directory any more. */
    for (int i = 0; i < 300 && g_file_test (pidfile, G_FILE_TEST_EXISTS); i++)
      g_usleep (100 * 1000);

    g_spawn_command_line_sync (cmd, NULL, NULL, NULL, NULL);
  }

  speedup = median (preload->output_ms) > 0 ? median (normal->output_ms) / median (preload->output_ms) : 0;
  printf ("bench dispvm: normal_p50_ms=%.0f preload_p50_ms=%.0f speedup=%.1f "
          "concurrent4_preload_p50_ms=%.0f\n", median (normal->output_ms),
          median (preload->output_ms), speedup, median (preload4->output_ms));
  return 0;
}
