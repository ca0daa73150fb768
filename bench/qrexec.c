/* qrexec.c — qrexec benchmark over the socket vchan transport.
 *
 * Pretends one qube with tests/qrexec/fixture-qubes (qube-agent on this
 * host, the real daemon), then in the same run:
 *  - 500 (BENCH_CALLS) sequential calls of a service that does nothing,
 *    from dom0 (qube_qrexec_run, as `qube run --service` does);
 *  - BENCH_MIB (default 1024) MiB streamed through a call's stdout;
 *  - the same bytes through a raw unix socket pair, as the baseline.
 * The stream and the baseline alternate, BENCH_ROUNDS (default 5) times
 * each, and the medians are printed: on a shared host a single transfer
 * of either can be off by a factor of two, and alternating exposes both
 * to the same disturbances.
 * Prints
 *   bench qrexec: calls_per_s=<n> stream_MBps=<n> raw_MBps=<n> ratio=<stream/raw>
 * Runs from the build tree (paths compiled in; QUBE_TEST_BUILDDIR wins).
 */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "qube.h"

#define CALLS 500
#define ROUNDS 5
#define MAX_ROUNDS 100
#define RAW_CHUNK (64 * 1024)

static void G_GNUC_NORETURN
die (const char *what, GError *error)
{
  fprintf (stderr, "bench qrexec: %s: %s\n", what, error != NULL ? error->message : g_strerror (errno));
  exit (1);
}

static void
write_service (const char *dir, const char *name, const char *script)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autofree char *text = g_strdup_printf ("#!/bin/sh\n%s\n", script);
  g_autoptr(GError) error = NULL;

  if (!g_file_set_contents (path, text, -1, &error) || g_chmod (path, 0755) < 0)
    die ("cannot write a service", error);
}

/* The raw baseline: `total` bytes through a unix socket pair, written in
 * 64 KiB pieces by a child process, read by this one. */
static double
raw_mbps (guint64 total)
{
  int sv[2];
  pid_t pid;
  char *buf = g_malloc (4 * RAW_CHUNK);
  guint64 got = 0;
  gint64 start;
  double secs;

  if (socketpair (AF_UNIX, SOCK_STREAM, 0, sv) < 0)
    die ("socketpair", NULL);
  pid = fork ();
  if (pid == 0)
    {
      guint64 sent = 0;

      close (sv[0]);
      memset (buf, 'x', RAW_CHUNK);
      while (sent < total)
        {
          ssize_t n = write (sv[1], buf, MIN ((guint64) RAW_CHUNK, total - sent));

          if (n <= 0)
            _exit (1);
          sent += (guint64) n;
        }
      _exit (0);
    }
  close (sv[1]);
  start = g_get_monotonic_time ();
  while (got < total)
    {
      ssize_t n = read (sv[0], buf, 4 * RAW_CHUNK);

      if (n <= 0)
        die ("raw read", NULL);
      got += (guint64) n;
    }
  secs = (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC;
  close (sv[0]);
  waitpid (pid, NULL, 0);
  g_free (buf);
  return (double) total / 1e6 / secs;
}

static int
compare_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
median (double *values, int n)
{
  qsort (values, (size_t) n, sizeof *values, compare_double);
  return values[n / 2];
}

int
main (void)
{
  const char *env_builddir = g_getenv ("QUBE_TEST_BUILDDIR");
  const char *builddir = env_builddir != NULL ? env_builddir : QUBE_BUILDDIR;
  const char *mib_env = g_getenv ("BENCH_MIB");
  guint64 mib = mib_env != NULL ? g_ascii_strtoull (mib_env, NULL, 10) : 1024;
  guint64 total = mib * 1024 * 1024;
  /* BENCH_CALLS=0 leaves the calls out, e.g. to profile the stream. */
  const char *calls_env = g_getenv ("BENCH_CALLS");
  int calls = calls_env != NULL ? atoi (calls_env) : CALLS;
  const char *rounds_env = g_getenv ("BENCH_ROUNDS");
  int rounds = CLAMP (rounds_env != NULL ? atoi (rounds_env) : ROUNDS, 1, MAX_ROUNDS);
  double streams[MAX_ROUNDS], raws[MAX_ROUNDS];
  g_autoptr(GError) error = NULL;
  g_autofree char *tmp = g_dir_make_tmp ("qube-bench-qrexec-XXXXXX", &error);
  g_autofree char *state = NULL;
  g_autofree char *rpc = NULL;
  g_autofree char *fixture_path = g_build_filename (builddir, "tests/qrexec/fixture-qubes", NULL);
  /* Every qube gets volumes: the file pool's plugin is needed too. */
  g_autofree char *plugins = g_strdup_printf ("%s/plugins/socket/.libs:%s/plugins/storage-file/.libs",
                                              builddir, builddir);
  g_autofree char *state_arg = NULL;
  g_autofree char *stream_cmd = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) fixture = NULL;
  g_autoptr(GDataInputStream) fixture_out = NULL;
  g_autofree char *line = NULL;
  g_autoptr(QubeManager) manager = NULL;
  g_autofree char *rm = NULL;
  int null_fd = open ("/dev/null", O_RDWR);
  gint64 start;
  double calls_per_s, stream, raw;
  int code = -1;

  if (tmp == NULL)
    die ("cannot make a temporary directory", error);
  state = g_build_filename (tmp, "state", NULL);
  rpc = g_build_filename (state, "rpc", "bench", NULL);
  g_mkdir_with_parents (rpc, 0755);
  write_service (rpc, "bench.Null", "exit 0");
  stream_cmd = g_strdup_printf ("exec dd if=/dev/zero bs=1M count=%" G_GUINT64_FORMAT " status=none", mib);
  write_service (rpc, "bench.Stream", stream_cmd);

  g_setenv ("QUBE_PLUGIN_PATH", plugins, TRUE);
  g_setenv ("QUBE_TEST_BUILDDIR", builddir, TRUE);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  state_arg = g_strdup_printf ("--state-dir=%s", state);
  fixture = g_subprocess_launcher_spawn (launcher, &error, fixture_path, state_arg, "bench", NULL);
  if (fixture == NULL)
    die ("cannot start the fixture", error);
  fixture_out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (fixture));
  line = g_data_input_stream_read_line (fixture_out, NULL, NULL, &error);
  if (g_strcmp0 (line, "ready") != 0)
    die ("the fixture did not start", error);
  manager = qube_manager_new (state, &error);
  if (manager == NULL)
    die ("cannot open the state", error);

  start = g_get_monotonic_time ();
  for (int i = 0; i < calls; i++)
    if (!qube_qrexec_run (manager, "bench", NULL, "QUBESRPC bench.Null dom0", QUBE_QREXEC_RUN_NO_STDIN,
                          null_fd, null_fd, null_fd, &code, &error) || code != 0)
      die ("a call of bench.Null failed", error);
  calls_per_s = calls > 0 ? calls / ((double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC) : 0;

  for (int r = 0; r < rounds; r++)
    {
      start = g_get_monotonic_time ();
      if (!qube_qrexec_run (manager, "bench", NULL, "QUBESRPC bench.Stream dom0", QUBE_QREXEC_RUN_NO_STDIN,
                            null_fd, null_fd, null_fd, &code, &error) || code != 0)
        die ("the stream call failed", error);
      streams[r] = (double) total / 1e6 / ((double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC);
      raws[r] = raw_mbps (total);
      fprintf (stderr, "  round %d: stream %.0f MB/s, raw %.0f MB/s\n", r + 1, streams[r], raws[r]);
    }
  stream = median (streams, rounds);
  raw = median (raws, rounds);
  printf ("bench qrexec: calls_per_s=%.0f stream_MBps=%.0f raw_MBps=%.0f ratio=%.2f\n",
          calls_per_s, stream, raw, stream / raw);

  g_subprocess_send_signal (fixture, SIGTERM);
  g_subprocess_wait (fixture, NULL, NULL);
  rm = g_strdup_printf ("rm -rf '%s'", tmp);
  (void) !system (rm);
  return 0;
}
