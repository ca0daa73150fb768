/* kvm-accel.c — the KVM-or-TCG decision and its cache (see kvm-accel.h). */
#include "config.h"

#include "kvm-accel.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

/* A Debian kernel boots to its root-mount panic in well under a second
 * under KVM; a stalled or refused KVM shows long before this. */
#define KVM_PROBE_TIMEOUT_S 8

void
kvm_accel_choice_free (KvmAccelChoice *choice)
{
  if (choice == NULL)
    return;
  g_free (choice->accel);
  g_free (choice->reason);
  g_free (choice);
}

static KvmAccelChoice *
choice_new (const char *accel, char *reason)
{
  KvmAccelChoice *choice = g_new0 (KvmAccelChoice, 1);

  choice->accel = g_strdup (accel);
  choice->reason = reason;
  choice->settled = TRUE;
  return choice;
}

static char *
host_kernel (void)
{
  struct utsname u;

  if (uname (&u) < 0)
    return g_strdup ("unknown");
  return g_strdup (u.release);
}

static gboolean
on_timeout (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
on_exited (GObject *source, GAsyncResult *result, gpointer data)
{
  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  *(gboolean *) data = TRUE;
}

/* Boots `kernel` without a root file system: it must reach the panic that
 * ends its boot (then -no-reboot makes QEMU exit) within the timeout. */
static gboolean
kvm_boots (const char *qemu, const char *kernel, const char *work_dir,
           char **reason)
{
  g_autofree char *console = g_build_filename (work_dir, "probe-console.log", NULL);
  g_autofree char *chardev = g_strdup_printf ("file,id=console,path=%s", console);
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GSource) timer = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *log = NULL;
  gboolean timed_out = FALSE, exited = FALSE;
  const char *argv[] = {
    qemu, "-machine", "microvm,acpi=on", "-accel", "kvm", "-cpu", "host",
    "-m", "128", "-nodefaults", "-no-user-config", "-display", "none",
    "-no-reboot", "-kernel", kernel,
    "-append", "console=ttyS0 panic=-1 quiet",
    "-chardev", chardev, "-serial", "chardev:console", NULL
  };

  g_unlink (console);
  g_main_context_push_thread_default (context);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
                                        G_SUBPROCESS_FLAGS_STDERR_MERGE);
  process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  if (process == NULL)
    {
      g_main_context_pop_thread_default (context);
      *reason = g_strdup_printf ("cannot run %s: %s", qemu, error->message);
      return FALSE;
    }
  timer = g_timeout_source_new_seconds (KVM_PROBE_TIMEOUT_S);
  g_source_set_callback (timer, on_timeout, &timed_out, NULL);
  g_source_attach (timer, context);
  g_subprocess_wait_async (process, NULL, on_exited, &exited);
  while (!timed_out && !exited)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (timer);
  if (!exited)
    {
      g_subprocess_force_exit (process);
      while (!exited)
        g_main_context_iteration (context, TRUE);
    }
  g_main_context_pop_thread_default (context);

  g_file_get_contents (console, &log, NULL, NULL);
  g_unlink (console);
  if (timed_out)
    {
      *reason = g_strdup_printf ("a guest under KVM did not finish booting in %d s",
                                 KVM_PROBE_TIMEOUT_S);
      return FALSE;
    }
  if (log == NULL || strstr (log, "Kernel panic") == NULL)
    {
      *reason = g_strdup_printf ("QEMU could not boot a guest under KVM (exit status %d)",
                                 g_subprocess_get_if_exited (process)
                                   ? g_subprocess_get_exit_status (process)
                                   : 128 + g_subprocess_get_term_sig (process));
      return FALSE;
    }
  *reason = g_strdup ("a guest booted under KVM");
  return TRUE;
}

/* The first line of `qemu --version`, for a person reading the cache. */
static char *
qemu_version (const char *qemu)
{
  const char *argv[] = { qemu, "--version", NULL };
  g_autoptr(GSubprocess) process = NULL;
  g_autofree char *out = NULL;
  char *nl;

  process = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                               G_SUBPROCESS_FLAGS_STDERR_SILENCE, NULL);
  if (process == NULL ||
      !g_subprocess_communicate_utf8 (process, NULL, NULL, &out, NULL, NULL) ||
      out == NULL || *out == '\0')
    return g_strdup ("unknown");
  nl = strchr (out, '\n');
  if (nl != NULL)
    *nl = '\0';
  return g_steal_pointer (&out);
}

KvmAccelChoice *
kvm_accel_choose (const char *forced, const char *cache_dir, const char *qemu,
                  const char *qemu_id, const char *kernel, const char *kvm_device)
{
  g_autofree char *cache = g_build_filename (cache_dir, "accel", NULL);
  g_autofree char *kernel_release = host_kernel ();
  g_autoptr(GKeyFile) keys = g_key_file_new ();
  g_autofree char *reason = NULL;
  g_autofree char *data = NULL;
  const char *accel;
  int fd;

  if (forced != NULL)
    return choice_new (forced, g_strdup_printf ("%s chosen by configuration", forced));

  /* Checked before the cache, which only ever holds what a probe found
   * with the device there: a device that appears or goes away later is
   * noticed at once. */
  fd = open (kvm_device, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return choice_new ("tcg", g_strdup_printf ("cannot open %s: %s", kvm_device,
                                               g_strerror (errno)));
  close (fd);

  if (g_key_file_load_from_file (keys, cache, G_KEY_FILE_NONE, NULL))
    {
      g_autofree char *c_accel = g_key_file_get_string (keys, "probe", "accel", NULL);
      g_autofree char *c_qemu = g_key_file_get_string (keys, "probe", "qemu", NULL);
      g_autofree char *c_kernel = g_key_file_get_string (keys, "probe", "host-kernel", NULL);
      g_autofree char *c_device = g_key_file_get_string (keys, "probe", "device", NULL);
      g_autofree char *c_reason = g_key_file_get_string (keys, "probe", "reason", NULL);

      if (c_accel != NULL && (g_str_equal (c_accel, "kvm") || g_str_equal (c_accel, "tcg")) &&
          g_strcmp0 (c_qemu, qemu_id) == 0 &&
          g_strcmp0 (c_kernel, kernel_release) == 0 &&
          g_strcmp0 (c_device, kvm_device) == 0)
        return choice_new (c_accel, g_strdup_printf ("%s; measured earlier",
                                                     c_reason ? c_reason : c_accel));
    }

  if (kernel == NULL)
    {
      KvmAccelChoice *guess = choice_new ("tcg", g_strdup ("KVM not measured yet"));
      guess->settled = FALSE;
      return guess;
    }
  if (g_mkdir_with_parents (cache_dir, 0755) < 0)
    return choice_new ("tcg", g_strdup_printf ("cannot create %s: %s", cache_dir,
                                               g_strerror (errno)));
  accel = kvm_boots (qemu, kernel, cache_dir, &reason) ? "kvm" : "tcg";

  g_key_file_set_string (keys, "probe", "accel", accel);
  g_key_file_set_string (keys, "probe", "reason", reason);
  g_key_file_set_string (keys, "probe", "qemu", qemu_id);
  {
    g_autofree char *version = qemu_version (qemu);
    g_key_file_set_string (keys, "probe", "qemu-version", version);
  }
  g_key_file_set_string (keys, "probe", "host-kernel", kernel_release);
  g_key_file_set_string (keys, "probe", "device", kvm_device);
  g_key_file_set_string (keys, "probe", "guest-kernel", kernel);
  data = g_key_file_to_data (keys, NULL, NULL);
  g_file_set_contents (cache, data, -1, NULL);
  return choice_new (accel, g_steal_pointer (&reason));
}
