/* kvm-qube-env.c — see kvm-qube-env.h. */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "kvm-qube-env.h"
#include "qube.h"

static gboolean
build_template (const char *builddir, const char *state_dir, const char *template_name)
{
  g_autofree char *qube = g_build_filename (builddir, "cli", "qube", NULL);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  const char *argv[] = { qube, "--state-dir", state_dir, "template", "build", template_name,
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

int
kvm_qube_env_setup (const char *dir_template, const char *template_name, char **builddir,
                    char **state_dir)
{
  g_autofree char *qemu = g_find_program_in_path ("qemu-system-x86_64");
  g_autofree char *plugin_path = NULL;
  g_autofree char *daemon = NULL;
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
  *state_dir = g_dir_make_tmp (dir_template, &error);
  if (*state_dir == NULL)
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  return build_template (*builddir, *state_dir, template_name) ? 0 : 1;
}

void
kvm_qube_env_kill_running (const char *state_dir)
{
  g_autoptr(QubeManager) manager = qube_manager_new (state_dir, NULL);
  g_autoptr(GPtrArray) vms = manager != NULL ? qube_manager_list_vms (manager) : NULL;

  for (guint i = 0; vms != NULL && i < vms->len; i++)
    if (!g_str_equal (qube_vm_get_state (vms->pdata[i]), "Halted")
        && !g_str_equal (qube_vm_get_klass (vms->pdata[i]), "AdminVM"))
      qube_vm_kill (vms->pdata[i], NULL);
}
