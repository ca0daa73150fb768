/* xen-driver.c — drives an isolation backend through the plugin registry,
 * one operation per run, for the tests run inside Xen (tests/xen): the same
 * path the core takes (registry lookup, the backend table, the plugin's
 * error turned into a GError), without the rest of the core.
 *
 *   xen-driver [--backend NAME] create QUBE --kernel PATH [--initrd PATH]
 *              [--cmdline TEXT] [--memory MIB] [--virt-mode MODE]
 *              [--disk PATH:FORMAT[:ro]]... [--set KEY=VALUE]...
 *   xen-driver [--backend NAME] start|pause|unpause|shutdown|kill|info QUBE
 *
 * The qube's runtime directory is $XENTEST_RUNTIME_DIR/QUBE (default
 * /run/qube/QUBE); its UUID is derived from its name so every run agrees.
 * `create` prints the backend id; `info` prints "state=... memory_kib=...
 * maxmem_kib=... vcpus=... accel=...".  Errors go to stderr, exit status 1.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "qube-error.h"
#include "qube-plugin-private.h"

static const char *const state_names[] = {
  [QUBE_DOMAIN_HALTED] = "halted",
  [QUBE_DOMAIN_CREATED] = "created",
  [QUBE_DOMAIN_RUNNING] = "running",
  [QUBE_DOMAIN_PAUSED] = "paused",
  [QUBE_DOMAIN_SHUTTING_DOWN] = "shutting-down",
  [QUBE_DOMAIN_CRASHED] = "crashed",
};

static gboolean
parse_disk (const char *arg, QubeDiskSpec *disk, GError **error)
{
  g_auto(GStrv) parts = g_strsplit (arg, ":", 3);

  if (g_strv_length (parts) < 2)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--disk %s: expected PATH:FORMAT[:ro]", arg);
      return FALSE;
    }
  disk->size = sizeof *disk;
  disk->volume = g_path_get_basename (parts[0]);
  disk->path = g_strdup (parts[0]);
  if (g_str_equal (parts[1], "raw"))
    disk->format = QUBE_BLOCK_RAW;
  else if (g_str_equal (parts[1], "qcow2"))
    disk->format = QUBE_BLOCK_QCOW2;
  else
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--disk %s: format must be raw or qcow2", arg);
      return FALSE;
    }
  disk->readonly = parts[2] != NULL && g_str_equal (parts[2], "ro");
  return TRUE;
}

int
main (int argc, char **argv)
{
  g_autofree char *backend = NULL;
  g_autofree char *kernel = NULL;
  g_autofree char *initrd = NULL;
  g_autofree char *cmdline = NULL;
  g_autofree char *virt_mode = NULL;
  g_auto(GStrv) disk_args = NULL;
  g_auto(GStrv) set_args = NULL;
  gint memory = 128;
  GOptionEntry entries[] = {
    { "backend", 0, 0, G_OPTION_ARG_STRING, &backend, "isolation backend (xen)", "NAME" },
    { "kernel", 0, 0, G_OPTION_ARG_FILENAME, &kernel, "kernel", "PATH" },
    { "initrd", 0, 0, G_OPTION_ARG_FILENAME, &initrd, "initramfs", "PATH" },
    { "cmdline", 0, 0, G_OPTION_ARG_STRING, &cmdline, "kernel options", "TEXT" },
    { "memory", 0, 0, G_OPTION_ARG_INT, &memory, "memory", "MIB" },
    { "virt-mode", 0, 0, G_OPTION_ARG_STRING, &virt_mode, "pv or pvh", "MODE" },
    { "disk", 0, 0, G_OPTION_ARG_STRING_ARRAY, &disk_args, "volume", "PATH:FORMAT[:ro]" },
    { "set", 0, 0, G_OPTION_ARG_STRING_ARRAY, &set_args, "backend setting", "KEY=VALUE" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("OPERATION QUBE");
  g_autoptr(GError) error = NULL;
  g_autoptr(QubePluginRegistry) registry = NULL;
  g_autofree char *runtime_dir = NULL;
  g_autofree char *qube_dir = NULL;
  g_autofree char *uuid = NULL;
  g_autofree char *what = NULL;
  g_autofree QubeDiskSpec *disks = NULL;
  g_autofree QubeKeyValue *extra = NULL;
  const QubeBackendOps *ops;
  QubePluginInfo *info;
  void *data;
  const char *op, *name, *base;
  QubeDomainRef ref = { .size = sizeof ref };
  int rc = 0;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || argc != 3)
    {
      fprintf (stderr, "xen-driver: %s\n",
               error != NULL ? error->message : "usage: xen-driver OPERATION QUBE");
      return 2;
    }
  op = argv[1];
  name = argv[2];
  base = g_getenv ("XENTEST_RUNTIME_DIR");
  runtime_dir = g_strdup (base != NULL ? base : "/run/qube");
  qube_dir = g_build_filename (runtime_dir, name, NULL);
  if (g_mkdir_with_parents (qube_dir, 0700) != 0)
    {
      fprintf (stderr, "xen-driver: cannot create %s: %s\n", qube_dir, g_strerror (errno));
      return 1;
    }
  /* A name-based UUID: every run of the driver names the same qube alike. */
  {
    g_autofree char *sum = g_compute_checksum_for_string (G_CHECKSUM_SHA1, name, -1);

    uuid = g_strdup_printf ("%.8s-%.4s-5%.3s-8%.3s-%.12s", sum, sum + 8,
                            sum + 12, sum + 15, sum + 18);
  }
  ref.name = name;
  ref.uuid = uuid;
  ref.runtime_dir = qube_dir;

  registry = qube_plugin_registry_new ("/var/lib/qube", runtime_dir);
  info = _qube_plugin_registry_find (registry, QUBE_PLUGIN_KIND_BACKEND,
                                     backend != NULL ? backend : "xen", &error);
  if (info == NULL)
    {
      fprintf (stderr, "xen-driver: cannot %s qube '%s': %s\n", op, name, error->message);
      return 1;
    }
  ops = _qube_plugin_info_get_desc (info)->backend;
  data = _qube_plugin_info_get_data (info);
  what = g_strdup_printf ("cannot %s qube '%s'", op, name);

  if (g_str_equal (op, "create"))
    {
      QubeDomainConfig config = { .size = sizeof config };
      guint n_disks = disk_args != NULL ? g_strv_length (disk_args) : 0;
      guint n_extra = set_args != NULL ? g_strv_length (set_args) : 0;
      char *backend_id = NULL;

      disks = g_new0 (QubeDiskSpec, MAX (n_disks, 1));
      for (guint i = 0; i < n_disks; i++)
        if (!parse_disk (disk_args[i], &disks[i], &error))
          {
            fprintf (stderr, "xen-driver: %s\n", error->message);
            return 2;
          }
      extra = g_new0 (QubeKeyValue, MAX (n_extra, 1));
      for (guint i = 0; i < n_extra; i++)
        {
          char *eq = strchr (set_args[i], '=');

          if (eq == NULL)
            {
              fprintf (stderr, "xen-driver: --set %s: expected KEY=VALUE\n", set_args[i]);
              return 2;
            }
          *eq = '\0';
          extra[i].key = set_args[i];
          extra[i].value = eq + 1;
        }
      config.ref = ref;
      config.klass = "AppVM";
      config.memory_mib = (uint64_t) MAX (memory, 1);
      config.maxmem_mib = config.memory_mib;
      config.vcpus = 1;
      config.virt_mode = virt_mode != NULL ? virt_mode : "pv";
      config.kernel = kernel;
      config.initramfs = initrd;
      config.kernelopts = cmdline;
      config.disks = disks;
      config.n_disks = n_disks;
      config.extra = extra;
      config.n_extra = n_extra;
      rc = ops->create (data, &config, &backend_id);
      if (rc == 0)
        {
          printf ("%s\n", backend_id != NULL ? backend_id : "");
          free (backend_id);
        }
    }
  else if (g_str_equal (op, "start"))
    rc = ops->start (data, &ref);
  else if (g_str_equal (op, "pause"))
    rc = ops->pause (data, &ref);
  else if (g_str_equal (op, "unpause"))
    rc = ops->unpause (data, &ref);
  else if (g_str_equal (op, "shutdown"))
    rc = ops->shutdown (data, &ref);
  else if (g_str_equal (op, "kill"))
    rc = ops->kill (data, &ref);
  else if (g_str_equal (op, "info"))
    {
      QubeDomainInfo di = { .size = sizeof di };

      rc = ops->info (data, &ref, &di);
      if (rc == 0)
        printf ("state=%s memory_kib=%" G_GUINT64_FORMAT " maxmem_kib=%" G_GUINT64_FORMAT
                " vcpus=%u accel=%s\n",
                di.state < G_N_ELEMENTS (state_names) ? state_names[di.state] : "?",
                di.memory_kib, di.maxmem_kib, di.vcpus, di.accel);
    }
  else
    {
      fprintf (stderr, "xen-driver: unknown operation '%s'\n", op);
      return 2;
    }

  if (rc != 0)
    {
      _qube_plugin_take_error (info, rc, what, &error);
      fprintf (stderr, "xen-driver: %s\n", error->message);
      return 1;
    }
  return 0;
}
