/* kvm-qube-fixture.c — the shared set-up of the kvm qube suites (see
 * kvm-qube-fixture.h). */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "kvm-qube-fixture.h"
#include "qube.h"

static gboolean
build_template (const char *builddir, const char *state_dir)
{
  g_autofree char *qube = g_build_filename (builddir, "cli", "qube", NULL);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  const char *argv[] = { qube, "--state-dir", state_dir, "template", "build", KVM_QUBE_TEMPLATE,
                         NULL };
  int status;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL, &out, &err, &status, &error)
      || !g_spawn_check_wait_status (status, &error))
    {
      g_printerr ("qube template build: %s\n%s%s", error->message, out ? out : "", err ? err : "");
      return FALSE;
    }
  return TRUE;
}

/* The environment, a state directory `qube-NAME-XXXXXX` with the
 * template built, and `policy` as the qrexec policy its daemon reads.
 * Returns 0 when ready, 77 (the reason printed) when QEMU or root is
 * missing, 1 on failure. */
int
kvm_qube_fixture_setup (const char *name, const char *policy, char **state_dir, char **builddir)
{
  g_autofree char *qemu = g_find_program_in_path ("qemu-system-x86_64");
  g_autofree char *plugin_path = NULL;
  g_autofree char *daemon = NULL;
  g_autofree char *tmpl = g_strdup_printf ("qube-%s-XXXXXX", name);
  g_autoptr(GError) error = NULL;
  const char *env_builddir = g_getenv ("QUBE_TEST_BUILDDIR");
  const char *old_path = g_getenv ("QUBE_PLUGIN_PATH");

  if (qemu == NULL)
    {
      printf ("SKIP: qemu-system-x86_64 is not installed (Debian package qemu-system-x86)\n");
      return 77;
    }
  if (!g_file_test ("/boot", G_FILE_TEST_IS_DIR) || geteuid () != 0)
    {
      printf ("SKIP: building the template needs root (to read /boot/vmlinuz-*)\n");
      return 77;
    }
  *builddir = g_strdup (env_builddir != NULL ? env_builddir : ".");
  plugin_path = g_strdup_printf ("%s/plugins/kvm/.libs:%s/plugins/storage-file/.libs%s%s",
                                 *builddir, *builddir, old_path ? ":" : "",
                                 old_path ? old_path : "");
  g_setenv ("QUBE_PLUGIN_PATH", plugin_path, TRUE);
  daemon = g_build_filename (*builddir, "cli", "qube-qrexec-daemon", NULL);
  g_setenv ("QUBE_QREXEC_DAEMON", daemon, TRUE);
  g_unsetenv ("QUBE_RUNTIME_DIR");
  *state_dir = g_dir_make_tmp (tmpl, &error);
  if (*state_dir == NULL)
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  if (!build_template (*builddir, *state_dir))
    return 1;
  /* The policy the qrexec daemon (spawned by the first start) reads. */
  {
    g_autofree char *policy_dir = g_build_filename (*state_dir, "policy.d", NULL);
    g_autofree char *path = g_build_filename (policy_dir, "30-test.policy", NULL);

    g_mkdir_with_parents (policy_dir, 0700);
    if (!g_file_set_contents (path, policy, -1, &error))
      {
        g_printerr ("%s\n", error->message);
        return 1;
      }
    g_setenv ("QUBE_POLICY_DIR", policy_dir, TRUE);
  }
  return 0;
}

/* Kills what a failed case left running; removes the state directory
 * when every case passed (kept for a look otherwise). */
void
kvm_qube_fixture_teardown (const char *state_dir, gboolean passed)
{
  g_autoptr(QubeManager) manager = qube_manager_new (state_dir, NULL);
  g_autoptr(GPtrArray) vms = manager != NULL ? qube_manager_list_vms (manager) : NULL;

  for (guint i = 0; vms != NULL && i < vms->len; i++)
    if (!g_str_equal (qube_vm_get_state (vms->pdata[i]), "Halted")
        && !g_str_equal (qube_vm_get_klass (vms->pdata[i]), "AdminVM"))
      qube_vm_kill (vms->pdata[i], NULL);
  if (passed)
    {
      g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", state_dir);
      g_autofree char *pidfile = manager != NULL
        ? g_build_filename (qube_manager_get_runtime_dir (manager), "qrexec-daemon.pid", NULL)
        : NULL;
      int status;

      /* The qrexec daemon (and the disposable workers it spawns) end a
       * few seconds after the last qube; then nothing writes there. */
      for (int i = 0; pidfile != NULL && i < 300 && g_file_test (pidfile, G_FILE_TEST_EXISTS); i++)
        g_usleep (100 * 1000);
      g_spawn_command_line_sync (cmd, NULL, NULL, &status, NULL);
    }
}

/* The test's state directory, opened (asserted, in a test case). */
QubeManager *
kvm_qube_fixture_open_manager (const char *state_dir)
{
  g_autoptr(GError) error = NULL;
  QubeManager *manager = qube_manager_new (state_dir, &error);

  ck_assert_msg (manager != NULL, "%s", error ? error->message : "");
  return manager;
}

/* QEMU processes (not zombies) of the qube `name` of `state_dir`: their
 * command line tags the qube (-name ...,process=qube-NAME) and uses the
 * state directory's runtime files, so that suites booting qubes of the
 * same name at the same time do not see each other's.  `pid`, unless
 * NULL, gets one of theirs (0 when there is none). */
guint
kvm_qube_fixture_qemu_count (const char *state_dir, const char *name, pid_t *pid)
{
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  g_autofree char *qemu_tag = g_strdup_printf (",process=qube-%s", name);
  const char *entry;
  guint n = 0;

  if (pid != NULL)
    *pid = 0;
  while (proc != NULL && (entry = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *path = NULL;
      g_autofree char *cmdline = NULL;
      g_autofree char *status_path = NULL;
      g_autofree char *status = NULL;
      gboolean named = FALSE, ours = FALSE;
      gsize len;

      if (!g_ascii_isdigit (entry[0]))
        continue;
      path = g_strdup_printf ("/proc/%s/cmdline", entry);
      status_path = g_strdup_printf ("/proc/%s/status", entry);
      if (!g_file_get_contents (path, &cmdline, &len, NULL) || len == 0)
        continue;
      /* A zombie waiting for its parent runs nothing. */
      if (g_file_get_contents (status_path, &status, NULL, NULL) &&
          strstr (status, "State:\tZ") != NULL)
        continue;
      for (gsize off = 0; off < len; off += strlen (cmdline + off) + 1)
        {
          const char *arg = cmdline + off;

          named = named || g_str_has_suffix (arg, qemu_tag);
          ours = ours || strstr (arg, state_dir) != NULL;
        }
      if (named && ours)
        {
          n++;
          if (pid != NULL)
            *pid = (pid_t) atoi (entry);
        }
    }
  return n;
}
