/* cmd-template.c — `qube template build [NAME]`: builds the default minimal
 * template from the host's Debian packages (template/build-template.sh)
 * into STATE_DIR/templates/NAME, makes it the kernel NAME
 * (STATE_DIR/kernels/NAME), and creates or updates the TemplateVM NAME
 * whose root volume receives the built root image. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "qube-cli.h"

#define DEFAULT_TEMPLATE_NAME "debian-minimal"

/* Where the builder and the static guest programs are: a build tree's
 * template/ when this program runs from one, else the installed ones. */
static void
find_builder (char **script, char **bindir)
{
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);

  if (exe != NULL)
    {
      g_autofree char *dir = g_path_get_dirname (exe);
      g_autofree char *top = NULL;
      g_autofree char *candidate = NULL;

      if (g_str_has_suffix (dir, "/.libs"))
        dir[strlen (dir) - strlen ("/.libs")] = '\0';
      top = g_path_get_dirname (dir);
      candidate = g_build_filename (top, "template", "build-template.sh", NULL);
      if (g_file_test (candidate, G_FILE_TEST_IS_REGULAR))
        {
          *script = g_steal_pointer (&candidate);
          *bindir = g_build_filename (top, "template", NULL);
          return;
        }
    }
  *script = g_build_filename (QUBE_PKGDATADIR, "template", "build-template.sh", NULL);
  *bindir = g_build_filename (QUBE_PKGDATADIR, "template", "bin", NULL);
}

static gboolean
run_builder (const char *outdir, GError **error)
{
  g_autofree char *script = NULL;
  g_autofree char *bindir = NULL;
  g_autofree char *agent = NULL;
  g_autofree char *client = NULL;
  int status;

  find_builder (&script, &bindir);
  agent = g_build_filename (bindir, "qube-agent-static", NULL);
  client = g_build_filename (bindir, "qrexec-client-vm-static", NULL);
  {
    const char *argv[] = { "/bin/sh", script, "-a", agent, "-a", client, outdir, NULL };

    if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_CHILD_INHERITS_STDIN, NULL, NULL,
                       NULL, NULL, &status, error)
        || !g_spawn_check_wait_status (status, error))
      {
        g_prefix_error (error, "%s: ", script);
        return FALSE;
      }
  }
  return TRUE;
}

/* STATE_DIR/kernels/NAME → ../templates/NAME, so qubes name it by their
 * kernel property. */
static gboolean
link_kernel (const char *state_dir, const char *name, GError **error)
{
  g_autofree char *kernels = g_build_filename (state_dir, "kernels", NULL);
  g_autofree char *link = g_build_filename (kernels, name, NULL);
  g_autofree char *target = g_build_filename ("..", "templates", name, NULL);

  if (g_mkdir_with_parents (kernels, 0755) < 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "cannot create %s: %s",
                   kernels, g_strerror (errno));
      return FALSE;
    }
  g_unlink (link);
  if (symlink (target, link) < 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "cannot create %s: %s",
                   link, g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

static gboolean
set_if_unset (QubeManager *manager, const char *property, const char *value, GError **error)
{
  g_autofree char *current = qube_manager_get_property (manager, property, NULL, error);

  if (current == NULL)
    return FALSE;
  return *current != '\0' || qube_manager_set_property (manager, property, value, error);
}

static int
run_template_build (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) vm = NULL;
  g_autoptr(QubeVolume) root = NULL;
  g_autofree char *outdir = NULL;
  g_autofree char *image = NULL;
  QubeManager *manager;
  const char *name;
  gint64 t0 = g_get_monotonic_time (), t1;
  int status;

  if (!cli_parse (cli, NULL, FALSE, 1, 2, argc, argv, &args, &status))
    return status;
  if (g_strcmp0 (args[0], "build") != 0)
    return cli_usage_error (cli, "unknown action '%s' (expected build)", args[0]);
  name = args[1] != NULL ? args[1] : DEFAULT_TEMPLATE_NAME;
  if (!qube_name_is_valid (name, &error))
    return cli_fail (error);
  manager = cli_get_manager (cli, &error);
  if (manager == NULL)
    return cli_fail (error);
  vm = qube_manager_lookup (manager, name, NULL);
  if (vm != NULL && !g_str_equal (qube_vm_get_klass (vm), "TemplateVM"))
    return cli_fail_printf ("cannot build template '%s': qube '%s' is a %s", name, name,
                            qube_vm_get_klass (vm));
  if (vm != NULL && !g_str_equal (qube_vm_get_state (vm), "Halted"))
    return cli_fail_printf ("cannot build template '%s': it is running", name);

  outdir = g_build_filename (qube_manager_get_state_dir (manager), "templates", name, NULL);
  if (!run_builder (outdir, &error)
      || !link_kernel (qube_manager_get_state_dir (manager), name, &error))
    {
      g_prefix_error (&error, "cannot build template '%s': ", name);
      return cli_fail (error);
    }
  t1 = g_get_monotonic_time ();

  if (vm == NULL)
    vm = qube_manager_create_vm (manager, "TemplateVM", name, NULL, "black", &error);
  image = g_build_filename (outdir, "root.img", NULL);
  if (vm == NULL
      || !qube_vm_set_property (vm, "kernel", name, &error)
      || (root = qube_vm_get_volume (vm, "root", &error)) == NULL
      || !qube_volume_import_file (root, image, NULL, NULL, &error)
      || !set_if_unset (manager, "default_template", name, &error)
      || !set_if_unset (manager, "default_kernel", name, &error))
    {
      g_prefix_error (&error, "cannot build template '%s': ", name);
      return cli_fail (error);
    }
  g_print ("template '%s': image in %s (%" G_GINT64_FORMAT " ms), root volume imported "
           "(%" G_GINT64_FORMAT " ms)\n", name, outdir, (t1 - t0) / 1000,
           (g_get_monotonic_time () - t1) / 1000);
  return CLI_EXIT_OK;
}

const CliCommand cli_template_commands[] = {
  { "template", "build [NAME]",
    "Build the minimal template NAME (default " DEFAULT_TEMPLATE_NAME ") from the host's packages",
    run_template_build },
  { NULL }
};
