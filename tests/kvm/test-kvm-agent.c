/* test-kvm-agent.c — the qrexec daemon of the core reaches qube-agent in a
 * real qube over the kvm vchan transport: a qube booted under QEMU (TCG
 * here) runs qube-agent with the transport "virtio:org.qubes.vchan", and
 * qube_qrexec_daemon_connect(..., "kvm") completes the MSG_HELLO exchange
 * on the control channel (vchan port 512).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "kvm-vchan-fixture.h"
#include "qube-manager.h"
#include "qube-qrexec-daemon.h"

#define HELLO_TIMEOUT_S 60

static KvmTestQube q;
static char *script_dir;

START_TEST (test_daemon_hello_over_virtio)
{
  g_autofree char *state = g_build_filename (q.tmp_dir, "qubes", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) manager = qube_manager_new (state, &error);
  g_autoptr(QubeVm) vm = NULL;
  g_autoptr(QubeQrexecDaemon) daemon = NULL;
  g_autofree char *runtime_dir = NULL;
  gint64 deadline;

  ck_assert_msg (manager != NULL, "%s", error ? error->message : "");
  vm = qube_manager_create_vm (manager, "StandaloneVM", "work", NULL, NULL, &error);
  ck_assert_msg (vm != NULL, "%s", error ? error->message : "");
  /* The qube runs in the runtime directory the daemon looks in. */
  runtime_dir = qube_qrexec_qube_runtime_dir (manager, "work");
  ck_assert_msg (kvm_test_qube_boot (&q, "work", runtime_dir, "qube.run=qube-agent-virtio",
                                     &error), "%s", error ? error->message : "");

  daemon = qube_qrexec_daemon_new (manager);
  ck_assert_msg (qube_qrexec_daemon_connect (daemon, "work", "kvm", &error), "%s",
                 error ? error->message : "");
  deadline = g_get_monotonic_time () + HELLO_TIMEOUT_S * G_USEC_PER_SEC;
  while (!qube_qrexec_daemon_is_connected (daemon, "work"))
    {
      ck_assert_msg (g_get_monotonic_time () < deadline,
                     "no MSG_HELLO from the qube's agent in %d s", HELLO_TIMEOUT_S);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (20 * 1000);
    }
  qube_qrexec_daemon_disconnect (daemon, "work");
  kvm_test_qube_kill (&q);
}
END_TEST

int
main (void)
{
  g_autofree char *qemu = g_find_program_in_path ("qemu-system-x86_64");
  g_autofree char *agent = kvm_test_build_path ("tests/kvm/qube-agent-static");
  g_autofree char *script = NULL;
  g_autoptr(GError) error = NULL;
  int failed = 1;

  if (qemu == NULL)
    {
      printf ("SKIP: qemu-system-x86_64 is not installed (Debian package qemu-system-x86)\n");
      return 77;
    }
  script_dir = g_dir_make_tmp ("qube-kvm-agent-XXXXXX", &error);
  g_assert_no_error (error);
  script = g_build_filename (script_dir, "qube-agent-virtio", NULL);
  g_file_set_contents (script,
                       "#!/bin/sh\n"
                       "mkdir -p /var/run/qubes\n"
                       "exec /bin/qube-agent --transport=virtio:org.qubes.vchan\n", -1, &error);
  g_assert_no_error (error);
  g_chmod (script, 0755);
  {
    g_autofree char *installed = g_build_filename (script_dir, "qube-agent", NULL);
    g_autofree char *data = NULL;
    gsize len;

    /* The initramfs gets it as /bin/qube-agent. */
    if (!g_file_get_contents (agent, &data, &len, &error) ||
        !g_file_set_contents (installed, data, (gssize) len, &error))
      {
        g_printerr ("%s\n", error->message);
        return 1;
      }
    g_chmod (installed, 0755);
    {
      const char *extra[] = { installed, script, NULL };

      if (!kvm_test_qube_prepare (&q, extra, &error))
        g_printerr ("%s\n", error->message);
      else
        {
          Suite *suite = suite_create ("kvm-agent");
          TCase *tc = tcase_create ("qrexec");
          SRunner *runner;

          tcase_set_timeout (tc, 300);
          tcase_add_test (tc, test_daemon_hello_over_virtio);
          suite_add_tcase (suite, tc);
          runner = srunner_create (suite);
          srunner_run_all (runner, CK_NORMAL);
          failed = srunner_ntests_failed (runner);
          srunner_free (runner);
        }
    }
    g_unlink (installed);
  }
  kvm_test_qube_destroy (&q);
  g_unlink (script);
  g_rmdir (script_dir);
  return failed == 0 ? 0 : 1;
}
