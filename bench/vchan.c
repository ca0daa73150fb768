/* vchan.c — throughput of the kvm vchan transport between the host and a
 * real qube (QEMU, TCG where KVM does not work), both ways, beside the
 * socket transport measured in the same run (bench/vchan-socket).
 *
 * BENCH_MIB (default 64) MiB each way through the kvm transport, every
 * byte checked; the socket figure is bench/vchan-socket's a-to-b rate with
 * BENCH_SOCKET_MIB (default 256).  Prints
 *   bench vchan: kvm_h2g_MBps=<n> kvm_g2h_MBps=<n> socket_MBps=<n>
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "kvm-vchan-fixture.h"
#include "qube-error.h"

static int
fail (KvmTestQube *q, const char *what, GError *error)
{
  fprintf (stderr, "bench vchan: %s: %s\n", what, error != NULL ? error->message : "failed");
  kvm_test_qube_destroy (q);
  return 1;
}

/* bench/vchan-socket's a-to-b rate. */
static double
socket_mbps (GError **error)
{
  g_autofree char *prog = kvm_test_build_path ("bench/vchan-socket");
  const char *argv[] = { prog, NULL };
  g_auto(GStrv) envp = g_environ_setenv (g_get_environ (), "BENCH_MIB",
                                         g_getenv ("BENCH_SOCKET_MIB") ?: "256", TRUE);
  g_autofree char *out = NULL;
  const char *field;
  int status;

  if (!g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &out, NULL,
                     &status, error) ||
      !g_spawn_check_wait_status (status, error))
    return -1;
  field = strstr (out, "MBps_a_to_b=");
  if (field == NULL)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED, "unexpected output: %s", out);
      return -1;
    }
  return g_ascii_strtod (field + strlen ("MBps_a_to_b="), NULL);
}

int
main (void)
{
  gsize bytes = (gsize) g_ascii_strtoull (g_getenv ("BENCH_MIB") ?: "64", NULL, 10) << 20;
  g_autofree char *qemu = g_find_program_in_path ("qemu-system-x86_64");
  g_autofree char *peer_prog = NULL;
  g_autofree char *runtime_dir = NULL;
  g_autoptr(GError) error = NULL;
  KvmTestQube q = { 0 };
  QubeVchan *ctrl;
  double h2g = 0, g2h = 0, sock;

  if (qemu == NULL)
    {
      fprintf (stderr, "bench vchan: skipped: qemu-system-x86_64 is not installed\n");
      return 0;
    }
  if (g_getenv ("QUBE_TEST_BUILDDIR") == NULL)
    g_setenv ("QUBE_TEST_BUILDDIR", QUBE_BENCH_BUILDDIR, TRUE);
  if (g_getenv ("QUBE_TEST_SRCDIR") == NULL)
    g_setenv ("QUBE_TEST_SRCDIR", QUBE_BENCH_SRCDIR, TRUE);
  bytes -= bytes % (256 * 1024);

  sock = socket_mbps (&error);
  if (sock < 0)
    return fail (&q, "socket transport", error);

  peer_prog = kvm_test_build_path ("tests/kvm/vchan-peer");
  {
    const char *extra[] = { peer_prog, NULL };

    if (!kvm_test_qube_prepare (&q, extra, &error))
      return fail (&q, "guest image", error);
  }
  runtime_dir = g_build_filename (q.tmp_dir, "run", "bench", NULL);
  if (!kvm_test_qube_boot (&q, "bench", runtime_dir, "qube.run=vchan-peer", &error))
    return fail (&q, "boot", error);
  ctrl = kvm_test_peer_connect (&q, 60, &error);
  if (ctrl == NULL)
    return fail (&q, "connect", error);
  if (!kvm_test_stream (&q, ctrl, TRUE, 30, bytes, &h2g, &error))
    return fail (&q, "host to guest", error);
  if (!kvm_test_stream (&q, ctrl, FALSE, 31, bytes, &g2h, &error))
    return fail (&q, "guest to host", error);
  q.ops->close (ctrl);
  kvm_test_qube_destroy (&q);

  printf ("bench vchan: kvm_h2g_MBps=%.0f kvm_g2h_MBps=%.0f socket_MBps=%.0f\n", h2g, g2h, sock);
  return 0;
}
