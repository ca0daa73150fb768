/* qube-lifecycle.c — start, shutdown, kill, pause and unpause of qubes, and
 * their power state as the isolation backend sees it.
 *
 * Start: volumes (storage plugin) → compartment (backend create, start) →
 * the qrexec daemon (qube-qrexec-daemon, one detached process serving
 * every running qube of the state directory, spawned when not running)
 * told to serve the qube, which answers "ready" once the guest's agent
 * has answered MSG_HELLO.  Any failure
 * unwinds everything made, so a failed start leaves nothing behind.
 *
 * Runtime files, in the qube's runtime directory (RUNTIME/qubes/NAME),
 * besides the backend's and the qrexec daemon's own:
 *   start-times         how long the start's steps took (volumes, the
 *                       compartment, the guest until its agent answered)
 * and beside it RUNTIME/qubes/NAME.lock, locked (flock) while a process
 * starts or tears down the qube, and RUNTIME/qubes/NAME.console.log, the
 * console of the qube's last run once it stopped.
 *
 * A qube whose compartment is gone while its runtime directory is still
 * there (the guest powered off, QEMU was killed) is cleaned up by the
 * first process that looks at its state: volumes stopped (an origin
 * commits), daemon ended, runtime directory removed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/types.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixinputstream.h>
#include <glib/gstdio.h>

#include "qube-lifecycle.h"
#include "qube-plugin-private.h"
#include "qube-property.h"
#include "qube-qrexec-client.h"
#include "qube-qrexec-daemon.h"
#include "qube-storage-private.h"
#include "qube-vm-private.h"

/* Qubes' defaults (properties qrexec_timeout and shutdown_timeout); the
 * features `qrexec-timeout` and `shutdown-timeout` change them per qube. */
#define DEFAULT_START_TIMEOUT_S 60
#define DEFAULT_SHUTDOWN_TIMEOUT_S 60
#define CONSOLE_TAIL_LINES 12
#define DAEMON_LOG "qrexec-daemon.log"
/* How long each step of the last start took, for whoever measures. */
#define START_TIMES "start-times"
/* A shutdown asks the guest's agent first (this service, as root: the
 * guest's own clean power-off, the same on every backend), and uses the
 * backend's shutdown when the agent has not answered in this time. */
#define POWER_OFF_SERVICE "qubes.PowerOff"
#define AGENT_ANSWER_S 10

/* A qube's backend and runtime directory. */
typedef struct {
  QubeVm *vm;                   /* borrowed */
  char *name;
  char *dir;                    /* runtime directory */
  char *lock_path;
  int lock_fd;
  QubePluginInfo *info;
  const QubeBackendOps *ops;
  void *data;
  char *backend_name;
  QubeDomainRef ref;
} Domain;

static void
domain_free (Domain *d)
{
  if (d->lock_fd >= 0)
    close (d->lock_fd);
  g_free (d->name);
  g_free (d->dir);
  g_free (d->lock_path);
  g_free (d->backend_name);
  g_free ((char *) d->ref.backend_id);
  g_free (d);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Domain, domain_free)

/* The qube's domain on its backend (property `backend`). */
static Domain *
domain_open (QubeVm *vm, GError **error)
{
  QubeManager *manager = _qube_vm_get_manager (vm);
  g_autoptr(Domain) d = g_new0 (Domain, 1);
  g_autoptr(GError) local_error = NULL;
  const QubePluginDesc *desc;

  d->vm = vm;
  d->lock_fd = -1;
  d->name = g_strdup (qube_vm_get_name (vm));
  d->dir = qube_qrexec_qube_runtime_dir (manager, d->name);
  d->lock_path = g_strconcat (d->dir, ".lock", NULL);
  d->backend_name = qube_vm_get_property (vm, "backend", NULL, NULL, error);
  if (d->backend_name == NULL)
    return NULL;
  d->info = _qube_plugin_registry_find (qube_manager_get_plugins (manager),
                                        QUBE_PLUGIN_KIND_BACKEND, d->backend_name, &local_error);
  if (d->info == NULL)
    {
      g_set_error (error, QUBE_ERROR, g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_UNAVAILABLE)
                   ? QUBE_ERROR_UNAVAILABLE : QUBE_ERROR_NOT_FOUND,
                   "isolation backend '%s': %s", d->backend_name, local_error->message);
      return NULL;
    }
  desc = _qube_plugin_info_get_desc (d->info);
  d->ops = desc->backend;
  d->data = _qube_plugin_info_get_data (d->info);
  d->ref.size = sizeof d->ref;
  d->ref.name = d->name;
  d->ref.uuid = qube_vm_get_uuid (vm);
  d->ref.runtime_dir = d->dir;
  return g_steal_pointer (&d);
}

/* The start lock: one process at a time builds or tears down a qube. */
static gboolean
domain_lock (Domain *d, const char *doing, GError **error)
{
  g_autofree char *parent = g_path_get_dirname (d->dir);

  if (g_mkdir_with_parents (parent, 0700) < 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IO, "cannot %s qube '%s': cannot create %s: %s",
                   doing, d->name, parent, g_strerror (errno));
      return FALSE;
    }
  d->lock_fd = open (d->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (d->lock_fd < 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IO, "cannot %s qube '%s': cannot open %s: %s",
                   doing, d->name, d->lock_path, g_strerror (errno));
      return FALSE;
    }
  if (flock (d->lock_fd, LOCK_EX | LOCK_NB) < 0)
    {
      close (d->lock_fd);
      d->lock_fd = -1;
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IN_USE,
                   "cannot %s qube '%s': another process is starting or stopping it (%s)",
                   doing, d->name, d->lock_path);
      return FALSE;
    }
  return TRUE;
}

/* The start lock, waited for a few seconds: the qube's daemon may be
 * cleaning up after the guest powered off. */
static gboolean
domain_lock_wait (Domain *d, const char *doing, GError **error)
{
  for (int i = 0; i < 100; i++)
    {
      if (domain_lock (d, doing, i == 99 ? error : NULL))
        return TRUE;
      g_usleep (100 * 1000);
    }
  return FALSE;
}

static QubeDomainState
domain_info (Domain *d, QubeDomainInfo *info, GError **error)
{
  GRecMutex *lock = _qube_plugin_info_get_lock (d->info);
  int rc;

  memset (info, 0, sizeof *info);
  info->size = sizeof *info;
  if (d->ops->info == NULL)
    {
      _qube_plugin_not_supported (d->info, "info", error);
      return QUBE_DOMAIN_HALTED;
    }
  g_rec_mutex_lock (lock);
  rc = d->ops->info (d->data, &d->ref, info);
  g_rec_mutex_unlock (lock);
  if (rc != 0)
    {
      g_autofree char *what = g_strdup_printf ("cannot query qube '%s'", d->name);
      _qube_plugin_take_error (d->info, rc, what, error);
      return QUBE_DOMAIN_HALTED;
    }
  return info->state;
}

/* Calls one of the backend's per-domain operations. */
static gboolean
domain_call (Domain *d, int (*op) (void *, const QubeDomainRef *),
             const char *operation, GError **error)
{
  GRecMutex *lock = _qube_plugin_info_get_lock (d->info);
  int rc;

  if (op == NULL)
    return _qube_plugin_not_supported (d->info, operation, error);
  g_rec_mutex_lock (lock);
  rc = op (d->data, &d->ref);
  g_rec_mutex_unlock (lock);
  if (rc != 0)
    {
      g_autofree char *what = g_strdup_printf ("cannot %s qube '%s'", operation, d->name);
      return _qube_plugin_take_error (d->info, rc, what, error);
    }
  return TRUE;
}

static gboolean
state_is_up (QubeDomainState state)
{
  return state == QUBE_DOMAIN_CREATED || state == QUBE_DOMAIN_RUNNING
         || state == QUBE_DOMAIN_PAUSED || state == QUBE_DOMAIN_SHUTTING_DOWN;
}

/* The last lines of the qube's console, printable, or NULL. */
static char *
console_tail (const char *path)
{
  g_autofree char *text = NULL;
  gsize len;
  g_auto(GStrv) lines = NULL;
  guint n, first;
  g_autoptr(GString) out = g_string_new (NULL);

  if (!g_file_get_contents (path, &text, &len, NULL) || len == 0)
    return NULL;
  /* The guest wrote it: keep it short and printable. */
  for (gsize i = 0; i < len; i++)
    if (text[i] != '\n' && !g_ascii_isprint (text[i]))
      text[i] = '?';
  lines = g_strsplit (g_strchomp (text), "\n", -1);
  n = g_strv_length (lines);
  first = n > CONSOLE_TAIL_LINES ? n - CONSOLE_TAIL_LINES : 0;
  for (guint i = first; i < n; i++)
    g_string_append_printf (out, "\n  | %.200s", lines[i]);
  return out->len > 0 ? g_string_free (g_steal_pointer (&out), FALSE) : NULL;
}

static void daemon_stop (Domain *d);

static void
remove_runtime_dir (Domain *d)
{
  g_autoptr(GDir) dir = g_dir_open (d->dir, 0, NULL);
  g_autofree char *console = g_build_filename (d->dir, "console.log", NULL);
  g_autofree char *kept = g_strconcat (d->dir, ".console.log", NULL);
  const char *entry;

  /* The last run's console stays for whoever wants to know what happened. */
  if (g_file_test (console, G_FILE_TEST_IS_REGULAR))
    g_rename (console, kept);
  if (dir == NULL)
    return;
  while ((entry = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (d->dir, entry, NULL);

      if (g_unlink (path) < 0 && errno != ENOENT)
        g_warning ("qube '%s': cannot remove %s: %s", d->name, path, g_strerror (errno));
    }
  if (g_rmdir (d->dir) < 0 && errno != ENOENT)
    g_warning ("qube '%s': cannot remove %s: %s", d->name, d->dir, g_strerror (errno));
}

/* Everything a started qube has is released: daemon, compartment,
 * volumes (origins commit, the rest is discarded), runtime directory.
 * Goes on past failures and reports the first. */
static gboolean
domain_teardown (Domain *d, GError **error)
{
  g_autoptr(GError) kill_error = NULL;
  g_autoptr(GError) volume_error = NULL;

  daemon_stop (d);
  if (!domain_call (d, d->ops->kill, "kill", &kill_error))
    g_warning ("%s", kill_error->message);
  if (!qube_vm_stop_volumes (d->vm, &volume_error))
    g_warning ("%s", volume_error->message);
  remove_runtime_dir (d);
  if (kill_error != NULL)
    g_propagate_error (error, g_steal_pointer (&kill_error));
  else if (volume_error != NULL)
    g_propagate_error (error, g_steal_pointer (&volume_error));
  return error == NULL || *error == NULL;
}

static guint
feature_seconds (QubeVm *vm, const char *key, guint fallback)
{
  g_autofree char *value = qube_vm_get_feature (vm, key);
  guint64 n;

  if (value == NULL || !g_ascii_string_to_unsigned (value, 10, 1, 3600, &n, NULL))
    return fallback;
  return (guint) n;
}

/* The directory holding the qube's kernel files: STATE/kernels/KERNEL. */
static gboolean
kernel_files (QubeVm *vm, char **kernel, char **initramfs, GError **error)
{
  QubeManager *manager = _qube_vm_get_manager (vm);
  g_autofree char *name = qube_vm_get_property (vm, "kernel", NULL, NULL, error);
  g_autofree char *dir = NULL;

  if (name == NULL)
    return FALSE;
  if (*name == '\0')
    {
      g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
                           "it has no kernel (set its kernel property, or default_kernel; "
                           "`qube template build` provides one)");
      return FALSE;
    }
  dir = g_build_filename (qube_manager_get_state_dir (manager), "kernels", name, NULL);
  *kernel = g_build_filename (dir, "vmlinux", NULL);
  *initramfs = g_build_filename (dir, "initramfs.img", NULL);
  if (!g_file_test (*kernel, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND, "kernel '%s' has no %s", name, *kernel);
      return FALSE;
    }
  if (!g_file_test (*initramfs, G_FILE_TEST_IS_REGULAR))
    g_clear_pointer (initramfs, g_free);
  return TRUE;
}

/* AppVMs and DispVMs need their template, whose root they snapshot. */
static gboolean
check_template (QubeVm *vm, GError **error)
{
  g_autofree char *template_name = NULL;
  g_autoptr(QubeVm) template_vm = NULL;
  g_autoptr(QubeVolume) root = NULL;
  g_autoptr(GError) local_error = NULL;

  if (!g_str_equal (qube_vm_get_klass (vm), "AppVM") && !g_str_equal (qube_vm_get_klass (vm), "DispVM"))
    return TRUE;
  template_name = qube_vm_get_property (vm, "template", NULL, NULL, error);
  if (template_name == NULL)
    return FALSE;
  template_vm = *template_name != '\0'
                ? qube_manager_lookup (_qube_vm_get_manager (vm), template_name, &local_error) : NULL;
  if (template_vm == NULL)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND, "its template '%s' does not exist",
                   template_name);
      return FALSE;
    }
  /* The snapshot's source is the template's committed root. */
  root = qube_vm_get_volume (vm, "root", NULL);
  if (root != NULL && !qube_volume_verify (root, &local_error))
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
                   "the root volume of its template '%s' is missing: %s", template_name,
                   local_error->message);
      return FALSE;
    }
  return TRUE;
}

static char *
daemon_program (void)
{
  const char *env = g_getenv ("QUBE_QREXEC_DAEMON");
  g_autofree char *self_exe = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *beside = NULL;

  if (env != NULL && *env != '\0')
    return g_strdup (env);
  /* Beside the running program (a build tree's cli/qube, whose real
   * binary libtool keeps in cli/.libs). */
  self_exe = g_file_read_link ("/proc/self/exe", NULL);
  if (self_exe != NULL)
    {
      dir = g_path_get_dirname (self_exe);
      if (g_str_has_suffix (dir, "/.libs"))
        dir[strlen (dir) - strlen ("/.libs")] = '\0';
      beside = g_build_filename (dir, QUBE_QREXEC_DAEMON_PROGRAM, NULL);
      if (g_file_test (beside, G_FILE_TEST_IS_EXECUTABLE))
        return g_steal_pointer (&beside);
    }
  return g_build_filename (QUBE_LIBEXECDIR, QUBE_QREXEC_DAEMON_PROGRAM, NULL);
}

static void
daemon_child_setup (gpointer user_data)
{
  (void) user_data;
  /* The daemon, or a worker, outlives the command that started it, and a
   * ^C meant for that command must not reach it. */
  setsid ();
}

static int
daemon_connect (const char *socket_path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd;

  if (strlen (socket_path) >= sizeof sun.sun_path)
    return -1;
  strcpy (sun.sun_path, socket_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect (fd, (struct sockaddr *) &sun, sizeof sun) < 0)
    {
      close (fd);
      fd = -1;
    }
  return fd;
}

static gboolean
daemon_spawn (QubeManager *manager, GError **error)
{
  g_autofree char *program = daemon_program ();
  g_autofree char *log = g_build_filename (qube_manager_get_runtime_dir (manager),
                                           DAEMON_LOG, NULL);
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr(GSubprocess) proc = NULL;
  const char *argv[] = { program, "--state-dir", qube_manager_get_state_dir (manager), NULL };

  g_subprocess_launcher_set_stdout_file_path (launcher, "/dev/null");
  g_subprocess_launcher_set_stderr_file_path (launcher, log);
  g_subprocess_launcher_setenv (launcher, "QUBE_RUNTIME_DIR", qube_manager_get_runtime_dir (manager), TRUE);
  g_subprocess_launcher_set_child_setup (launcher, daemon_child_setup, NULL, NULL);
  proc = g_subprocess_launcher_spawnv (launcher, argv, error);
  if (proc == NULL)
    {
      g_prefix_error (error, "cannot run %s: ", program);
      return FALSE;
    }
  return TRUE;
}

int
_qube_qrexec_daemon_request (QubeManager *manager, const char *line, gboolean spawn,
                             GError **error)
{
  g_autofree char *socket_path = g_build_filename (qube_manager_get_runtime_dir (manager),
                                                   QUBE_QREXEC_DAEMON_SOCKET, NULL);
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  gint64 spawned = 0;

  for (;;)
    {
      int fd = daemon_connect (socket_path);

      if (fd >= 0)
        {
          if (send (fd, line, strlen (line), MSG_NOSIGNAL) == (gssize) strlen (line))
            return fd;
          close (fd);
        }
      if (!spawn)
        return -1;
      if (g_get_monotonic_time () >= deadline)
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED,
                       "the qrexec daemon does not listen on %s", socket_path);
          return -1;
        }
      /* Not running, or ending: start the next one (it waits for the
       * ending one's lock). */
      if (g_get_monotonic_time () - spawned > 3 * G_USEC_PER_SEC)
        {
          if (!daemon_spawn (manager, error))
            return -1;
          spawned = g_get_monotonic_time ();
        }
      g_usleep (50 * 1000);
    }
}

/* The qrexec daemon serves the qube, and answers once the guest's agent
 * has completed MSG_HELLO; fails when the domain dies or the timeout
 * passes first. */
static gboolean
daemon_start (Domain *d, const char *transport, guint timeout_s, GError **error)
{
  QubeManager *manager = _qube_vm_get_manager (d->vm);
  /* The daemon gives up a little later than this side, whose error says
   * what happened. */
  g_autofree char *line = g_strdup_printf ("connect %s %s %u\n", d->name, transport, timeout_s + 5);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_s * G_USEC_PER_SEC;
  gint64 next_check = 0;
  char buf[1024];
  gsize got = 0;
  int fd = _qube_qrexec_daemon_request (manager, line, TRUE, error);

  if (fd < 0)
    return FALSE;
  for (;;)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      gint64 now = g_get_monotonic_time ();
      char *eol;
      int n;

      if (now >= deadline)
        {
          QubeDomainInfo info;
          QubeDomainState state = domain_info (d, &info, NULL);

          /* A guest the backend never set running cannot answer: say so
           * rather than blame the guest. */
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_TIMEOUT,
                       "its qrexec agent did not answer in %u s%s", timeout_s,
                       state == QUBE_DOMAIN_CREATED ? " (its backend still shows it created, "
                       "never running)" : state == QUBE_DOMAIN_PAUSED ? " (it is paused)" : "");
          break;
        }
      if (now >= next_check)
        {
          QubeDomainInfo info;
          g_autoptr(GError) local_error = NULL;
          QubeDomainState state = domain_info (d, &info, &local_error);

          if (local_error == NULL && !state_is_up (state))
            {
              g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED,
                           "the guest stopped before its qrexec agent answered");
              break;
            }
          next_check = now + G_USEC_PER_SEC / 2;
        }
      n = poll (&pfd, 1, 200);
      if (n <= 0)
        continue;
      {
        gssize r = recv (fd, buf + got, sizeof buf - 1 - got, 0);

        if (r < 0 && errno == EINTR)
          continue;
        if (r <= 0)
          {
            g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED,
                         "the qrexec daemon ended before the qube's agent answered");
            break;
          }
        got += (gsize) r;
        buf[got] = '\0';
      }
      if ((eol = strchr (buf, '\n')) == NULL && got < sizeof buf - 1)
        continue;
      if (eol != NULL)
        *eol = '\0';
      close (fd);
      if (g_str_equal (buf, "ready"))
        return TRUE;
      {
        g_autofree char *shown = g_strescape (g_str_has_prefix (buf, "error ") ? buf + 6 : buf, NULL);

        g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED, "its qrexec daemon: %s", shown);
      }
      return FALSE;
    }
  close (fd);
  return FALSE;
}

/* The qrexec daemon lets go of the qube (not when this process is the
 * daemon, releasing a qube it saw stop). */
static void
daemon_stop (Domain *d)
{
  QubeManager *manager = _qube_vm_get_manager (d->vm);
  g_autofree char *pidfile = g_build_filename (qube_manager_get_runtime_dir (manager),
                                               "qrexec-daemon.pid", NULL);
  g_autofree char *text = NULL;
  g_autofree char *line = g_strdup_printf ("disconnect %s\n", d->name);
  struct pollfd pfd;
  char buf[16];
  int fd;

  if (g_file_get_contents (pidfile, &text, NULL, NULL)
      && g_ascii_strtoll (text, NULL, 10) == (gint64) getpid ())
    return;
  fd = _qube_qrexec_daemon_request (manager, line, FALSE, NULL);
  if (fd < 0)
    return;
  pfd = (struct pollfd) { .fd = fd, .events = POLLIN };
  if (poll (&pfd, 1, 5000) > 0 && recv (fd, buf, sizeof buf, 0) < 0)
    g_debug ("qube '%s': no answer from the qrexec daemon", d->name);
  close (fd);
}

static void
disks_from_devices (GPtrArray *devices, GArray *disks)
{
  for (guint i = 0; i < devices->len; i++)
    {
      QubeDiskSpec disk;

      _qube_block_device_to_disk (devices->pdata[i], &disk);
      g_array_append_val (disks, disk);
    }
}

/* The features `backend.<plugin>.<key>` as backend settings. */
static GPtrArray *
backend_extra (QubeVm *vm, const char *backend, GArray *extra)
{
  g_auto(GStrv) features = qube_vm_list_features (vm);
  g_autofree char *prefix = g_strdup_printf ("backend.%s.", backend);
  GPtrArray *strings = g_ptr_array_new_with_free_func (g_free);

  for (char **f = features; f != NULL && *f != NULL; f++)
    if (g_str_has_prefix (*f, prefix))
      {
        QubeKeyValue kv;
        char *key = g_strdup (*f + strlen (prefix));
        char *value = qube_vm_get_feature (vm, *f);

        g_ptr_array_add (strings, key);
        g_ptr_array_add (strings, value);
        kv.key = key;
        kv.value = value;
        g_array_append_val (extra, kv);
      }
  return strings;
}

static gboolean
int_property (QubeVm *vm, const char *name, guint64 *out, GError **error)
{
  g_autofree char *value = qube_vm_get_property (vm, name, NULL, NULL, error);

  return value != NULL && g_ascii_string_to_unsigned (value, 10, 1, G_MAXUINT32, out, error);
}

/* The compartment is built and running; on failure nothing of it stays. */
static gboolean
domain_build (Domain *d, GPtrArray *devices, GError **error)
{
  QubeVm *vm = d->vm;
  g_autofree char *kernel = NULL;
  g_autofree char *initramfs = NULL;
  g_autofree char *kernelopts = NULL;
  g_autofree char *virt_mode = NULL;
  g_autoptr(GArray) disks = g_array_new (FALSE, TRUE, sizeof (QubeDiskSpec));
  g_autoptr(GArray) extra = g_array_new (FALSE, TRUE, sizeof (QubeKeyValue));
  g_autoptr(GPtrArray) extra_strings = NULL;
  QubeDomainConfig config = { .size = sizeof config };
  guint64 memory, maxmem, vcpus;
  char *backend_id = NULL;
  GRecMutex *lock = _qube_plugin_info_get_lock (d->info);
  int rc;

  if (!kernel_files (vm, &kernel, &initramfs, error)
      || !int_property (vm, "memory", &memory, error)
      || !int_property (vm, "maxmem", &maxmem, error)
      || !int_property (vm, "vcpus", &vcpus, error)
      || (kernelopts = qube_vm_get_property (vm, "kernelopts", NULL, NULL, error)) == NULL
      || (virt_mode = qube_vm_get_property (vm, "virt_mode", NULL, NULL, error)) == NULL)
    return FALSE;
  if (d->ops->create == NULL)
    return _qube_plugin_not_supported (d->info, "create", error);
  disks_from_devices (devices, disks);
  extra_strings = backend_extra (vm, d->backend_name, extra);
  config.ref = d->ref;
  config.klass = qube_vm_get_klass (vm);
  config.memory_mib = memory;
  config.maxmem_mib = MAX (maxmem, memory);
  config.vcpus = (uint32_t) vcpus;
  config.virt_mode = virt_mode;
  config.kernel = kernel;
  config.initramfs = initramfs;
  config.kernelopts = kernelopts;
  config.disks = (const QubeDiskSpec *) (void *) disks->data;
  config.n_disks = disks->len;
  config.extra = (const QubeKeyValue *) (void *) extra->data;
  config.n_extra = extra->len;

  g_rec_mutex_lock (lock);
  rc = d->ops->create (d->data, &config, &backend_id);
  g_rec_mutex_unlock (lock);
  if (rc != 0)
    return _qube_plugin_take_error (d->info, rc, "cannot create its compartment", error);
  d->ref.backend_id = backend_id;
  return domain_call (d, d->ops->start, "start", error);
}

static gboolean
refuse_admin (QubeVm *vm, const char *doing, GError **error)
{
  if (!g_str_equal (qube_vm_get_klass (vm), "AdminVM"))
    return FALSE;
  g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID, "cannot %s qube '%s': it is the admin qube",
               doing, qube_vm_get_name (vm));
  return TRUE;
}

/**
 * qube_vm_start:
 * @vm: a halted #QubeVm
 * @error: return location for a #GError, or %NULL
 *
 * Starts the qube: its volumes, its compartment on its isolation backend
 * (property `backend`), booting the kernel named by its `kernel` property
 * (`STATE_DIR/kernels/KERNEL/vmlinux` and `initramfs.img`), and its qrexec
 * daemon; returns once the guest's qrexec agent has answered (within the
 * feature `qrexec-timeout`, default 60 s).  On failure everything made is
 * undone, and the error shows the last lines of the guest's console.
 *
 * Returns: %TRUE when the qube runs
 */
gboolean
qube_vm_start (QubeVm *vm, GError **error)
{
  g_autoptr(Domain) d = NULL;
  g_autoptr(GPtrArray) devices = NULL;
  g_autoptr(GError) local_error = NULL;
  const QubePluginDesc *desc;
  QubeDomainInfo info;
  const char *transport;
  gint64 t_begin, t_storage, t_built;

  g_return_val_if_fail (QUBE_IS_VM (vm), FALSE);

  if (refuse_admin (vm, "start", error))
    return FALSE;
  d = domain_open (vm, &local_error);
  if (d == NULL || !domain_lock (d, "start", &local_error))
    goto fail_early;
  if (g_file_test (d->dir, G_FILE_TEST_IS_DIR))
    {
      if (state_is_up (domain_info (d, &info, NULL)))
        {
          g_set_error_literal (&local_error, QUBE_ERROR, QUBE_ERROR_RUNNING, "it is already running");
          goto fail_early;
        }
      /* What a previous run left (its QEMU died unnoticed). */
      domain_teardown (d, NULL);
    }
  desc = _qube_plugin_info_get_desc (d->info);
  transport = d->ops->vchan_transport;
  if (transport == NULL)
    {
      g_set_error (&local_error, QUBE_ERROR, QUBE_ERROR_NOT_SUPPORTED,
                   "backend '%s' has no vchan transport for qrexec", desc->name);
      goto fail_early;
    }
  if (!check_template (vm, &local_error)
      || !_qube_volumes_check_formats (vm, d->backend_name, d->ops->block_formats, &local_error))
    goto fail_early;
  if (g_mkdir_with_parents (d->dir, 0700) < 0)
    {
      g_set_error (&local_error, QUBE_ERROR, QUBE_ERROR_IO, "cannot create %s: %s", d->dir,
                   g_strerror (errno));
      goto fail_early;
    }
  t_begin = g_get_monotonic_time ();
  devices = qube_vm_start_volumes (vm, &local_error);
  if (devices == NULL)
    goto fail;
  t_storage = g_get_monotonic_time ();
  if (!domain_build (d, devices, &local_error))
    goto fail;
  t_built = g_get_monotonic_time ();
  if (!daemon_start (d, transport, feature_seconds (vm, "qrexec-timeout", DEFAULT_START_TIMEOUT_S),
                     &local_error))
    goto fail;
  {
    gint64 t_ready = g_get_monotonic_time ();
    g_autofree char *path = g_build_filename (d->dir, START_TIMES, NULL);
    g_autofree char *text = g_strdup_printf ("storage_us=%" G_GINT64_FORMAT "\n"
                                             "compartment_us=%" G_GINT64_FORMAT "\n"
                                             "agent_us=%" G_GINT64_FORMAT "\n",
                                             t_storage - t_begin, t_built - t_storage,
                                             t_ready - t_built);

    g_file_set_contents (path, text, -1, NULL);
    g_info ("qube '%s' started: volumes %" G_GINT64_FORMAT " ms, compartment %" G_GINT64_FORMAT
            " ms, agent %" G_GINT64_FORMAT " ms", d->name, (t_storage - t_begin) / 1000,
            (t_built - t_storage) / 1000, (t_ready - t_built) / 1000);
  }
  return TRUE;

fail:
  {
    g_autofree char *console_path = g_build_filename (d->dir, "console.log", NULL);
    g_autofree char *tail = console_tail (console_path);

    domain_teardown (d, NULL);
    g_set_error (error, local_error->domain, local_error->code, "cannot start qube '%s': %s%s%s",
                 d->name, local_error->message,
                 tail != NULL ? "; the console's last lines:" : "", tail != NULL ? tail : "");
    return FALSE;
  }
fail_early:
  g_set_error (error, local_error->domain, local_error->code, "cannot start qube '%s': %s",
               qube_vm_get_name (vm), local_error->message);
  return FALSE;
}

/* The qube's domain if it has a runtime directory, else NULL with
 * QUBE_ERROR_NOT_RUNNING. */
static Domain *
domain_of_started (QubeVm *vm, const char *doing, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(Domain) d = NULL;
  QubeDomainInfo info;

  if (refuse_admin (vm, doing, error))
    return NULL;
  d = domain_open (vm, &local_error);
  if (d == NULL)
    {
      g_set_error (error, local_error->domain, local_error->code, "cannot %s qube '%s': %s",
                   doing, qube_vm_get_name (vm), local_error->message);
      return NULL;
    }
  if (!g_file_test (d->dir, G_FILE_TEST_IS_DIR) || !state_is_up (domain_info (d, &info, NULL)))
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_RUNNING, "cannot %s qube '%s': it is not running",
                   doing, d->name);
      return NULL;
    }
  return g_steal_pointer (&d);
}

/* The agent's answer to the power-off request, shared between the caller
 * (who stops waiting after a while) and the thread making the call. */
typedef struct {
  GMutex lock;
  GCond cond;
  gboolean done;
  gboolean ok;
  QubePluginRegistry *plugins;
  char *runtime_dir;
  char *name;
} PowerOffCall;

static void
power_off_call_clear (gpointer data)
{
  PowerOffCall *call = data;

  g_mutex_clear (&call->lock);
  g_cond_clear (&call->cond);
  g_object_unref (call->plugins);
  g_free (call->runtime_dir);
  g_free (call->name);
}

/* The call holds what it uses (the plugins, the qube's runtime
 * directory): it may outlive qube_vm_shutdown() and the qube's manager (a
 * guest that never answers ends it only when the qrexec client gives up or
 * the qube is gone). */
static gpointer
power_off_thread (gpointer data)
{
  PowerOffCall *call = data;
  g_autoptr(GError) error = NULL;
  int exit_code = -1;
  gboolean ok;

  ok = _qube_qrexec_run_at (call->plugins, call->runtime_dir, call->name, "root",
                            "QUBESRPC " POWER_OFF_SERVICE " dom0", QUBE_QREXEC_RUN_NO_STDIN,
                            -1, -1, -1, &exit_code, &error)
       && exit_code == 0;
  if (!ok)
    g_debug ("qube '%s': %s: %s", call->name, POWER_OFF_SERVICE,
             error != NULL ? error->message : "the service failed");
  g_mutex_lock (&call->lock);
  call->done = TRUE;
  call->ok = ok;
  g_cond_signal (&call->cond);
  g_mutex_unlock (&call->lock);
  g_atomic_rc_box_release_full (call, power_off_call_clear);
  return NULL;
}

/* Asks the guest's agent to power the qube off; TRUE when the agent ran
 * the request, or the guest went down, within `timeout_s`.  The guest may
 * power off before the agent has sent the service's exit code, and the
 * call then ends only when the compartment is gone, which on some
 * backends only a look at its state makes happen: so it is looked at. */
static gboolean
agent_power_off (Domain *d, guint timeout_s)
{
  PowerOffCall *call = g_atomic_rc_box_new0 (PowerOffCall);
  g_autoptr(GError) error = NULL;
  GThread *thread;
  gint64 end = g_get_monotonic_time () + (gint64) timeout_s * G_USEC_PER_SEC;
  gboolean ok, gone = FALSE;

  g_mutex_init (&call->lock);
  g_cond_init (&call->cond);
  call->plugins = g_object_ref (qube_manager_get_plugins (_qube_vm_get_manager (d->vm)));
  call->runtime_dir = g_strdup (d->dir);
  call->name = g_strdup (d->name);
  thread = g_thread_try_new ("qube-power-off", power_off_thread, g_atomic_rc_box_acquire (call),
                             &error);
  if (thread == NULL)
    {
      g_debug ("qube '%s': cannot ask its agent to power off: %s", d->name, error->message);
      g_atomic_rc_box_release_full (call, power_off_call_clear);
      g_atomic_rc_box_release_full (call, power_off_call_clear);
      return FALSE;
    }
  g_thread_unref (thread);
  g_mutex_lock (&call->lock);
  while (!call->done && g_get_monotonic_time () < end)
    {
      QubeDomainInfo info;
      QubeDomainState state;
      g_autoptr(GError) info_error = NULL;

      g_cond_wait_until (&call->cond, &call->lock,
                         MIN (end, g_get_monotonic_time () + G_USEC_PER_SEC / 5));
      if (call->done)
        break;
      g_mutex_unlock (&call->lock);
      state = domain_info (d, &info, &info_error);
      g_mutex_lock (&call->lock);
      if (info_error == NULL && (!state_is_up (state) || state == QUBE_DOMAIN_SHUTTING_DOWN))
        {
          gone = TRUE;
          break;
        }
    }
  ok = (call->done && call->ok) || gone;
  g_mutex_unlock (&call->lock);
  g_atomic_rc_box_release_full (call, power_off_call_clear);
  return ok;
}

/**
 * qube_vm_shutdown:
 * @vm: a running #QubeVm
 * @wait: whether to wait until it has stopped
 * @error: return location for a #GError, or %NULL
 *
 * Asks the guest to power off: its qrexec agent first (the service
 * `qubes.PowerOff`, run as root), and when the agent does not answer
 * within 10 s (or half the shutdown timeout, if shorter) or the qube is
 * paused, its isolation backend (an ACPI power button, a Xen shutdown
 * request); waits for it (the feature `shutdown-timeout`, default 60 s,
 * counted from the call), kills it when it does not stop in time, and
 * releases what the qube had: its private volume commits, its snapshots
 * and volatile volume are discarded.  With @wait, this call does all that;
 * without, a detached process does it, and this call returns once that
 * process is started.
 *
 * Returns: %TRUE when stopped (without @wait: when the shutdown is under
 *   way)
 */
gboolean
qube_vm_shutdown (QubeVm *vm, gboolean wait, GError **error)
{
  g_autoptr(Domain) d = NULL;
  g_autoptr(GError) local_error = NULL;
  guint timeout_s;
  gint64 deadline;
  QubeDomainInfo info;

  g_return_val_if_fail (QUBE_IS_VM (vm), FALSE);
  d = domain_of_started (vm, "shut down", error);
  if (d == NULL)
    return FALSE;
  /* The whole shutdown goes to a process of its own (the qrexec daemon
   * program's --shutdown-qube mode): the agent may take AGENT_ANSWER_S
   * to answer and the kill comes at the deadline, while the caller (a
   * `qube shutdown` command) may end as soon as this returns, and a
   * thread here would end with it. */
  if (!wait)
    {
      g_autoptr(GSubprocess) worker =
        _qube_spawn_worker (_qube_vm_get_manager (vm), "--shutdown-qube", d->name, FALSE,
                            &local_error);

      if (worker == NULL)
        {
          g_propagate_prefixed_error (error, g_steal_pointer (&local_error),
                                      "cannot shut down qube '%s': ", d->name);
          return FALSE;
        }
      return TRUE;
    }
  timeout_s = feature_seconds (vm, "shutdown-timeout", DEFAULT_SHUTDOWN_TIMEOUT_S);
  deadline = g_get_monotonic_time () + (gint64) timeout_s * G_USEC_PER_SEC;
  /* A paused guest cannot answer; the backend's request waits for it. */
  if (domain_info (d, &info, NULL) == QUBE_DOMAIN_PAUSED
      || !agent_power_off (d, MIN (AGENT_ANSWER_S, MAX (timeout_s / 2, 1))))
    {
      g_debug ("qube '%s': its agent did not take the power-off request: asking backend '%s'",
               d->name, d->backend_name);
      /* The guest may have stopped in the meantime, which is what was
       * asked for. */
      if (!domain_call (d, d->ops->shutdown, "shut down", &local_error)
          && state_is_up (domain_info (d, &info, NULL)))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
    }
  while (state_is_up (domain_info (d, &info, NULL)) && g_get_monotonic_time () < deadline)
    g_usleep (100 * 1000);
  if (!domain_lock_wait (d, "shut down", error))
    return FALSE;
  /* The qube's daemon saw it stop and released everything already. */
  if (!g_file_test (d->dir, G_FILE_TEST_IS_DIR))
    return TRUE;
  if (state_is_up (domain_info (d, &info, NULL)))
    g_message ("qube '%s' did not power off in %u s: killed", d->name, timeout_s);
  if (!domain_teardown (d, error))
    {
      g_prefix_error (error, "cannot shut down qube '%s': ", d->name);
      return FALSE;
    }
  return TRUE;
}

/**
 * qube_vm_kill:
 * @vm: a running #QubeVm
 * @error: return location for a #GError, or %NULL
 *
 * Destroys the qube's compartment at once and releases its volumes, as
 * a shutdown does.
 *
 * Returns: %TRUE when the qube is halted
 */
gboolean
qube_vm_kill (QubeVm *vm, GError **error)
{
  g_autoptr(Domain) d = NULL;

  g_return_val_if_fail (QUBE_IS_VM (vm), FALSE);
  d = domain_of_started (vm, "kill", error);
  if (d == NULL || !domain_lock_wait (d, "kill", error))
    return FALSE;
  if (!domain_teardown (d, error))
    {
      g_prefix_error (error, "cannot kill qube '%s': ", d->name);
      return FALSE;
    }
  return TRUE;
}

/**
 * qube_vm_pause:
 * @vm: a running #QubeVm
 * @error: return location for a #GError, or %NULL
 *
 * Stops the qube's vCPUs; its memory and connections stay.
 *
 * Returns: %TRUE when paused
 */
gboolean
qube_vm_pause (QubeVm *vm, GError **error)
{
  g_autoptr(Domain) d = NULL;

  g_return_val_if_fail (QUBE_IS_VM (vm), FALSE);
  d = domain_of_started (vm, "pause", error);
  return d != NULL && domain_call (d, d->ops->pause, "pause", error);
}

/**
 * qube_vm_unpause:
 * @vm: a paused #QubeVm
 * @error: return location for a #GError, or %NULL
 *
 * Lets a paused qube run again.
 *
 * Returns: %TRUE when running
 */
gboolean
qube_vm_unpause (QubeVm *vm, GError **error)
{
  g_autoptr(Domain) d = NULL;

  g_return_val_if_fail (QUBE_IS_VM (vm), FALSE);
  d = domain_of_started (vm, "unpause", error);
  return d != NULL && domain_call (d, d->ops->unpause, "unpause", error);
}

/**
 * qube_vm_get_accel:
 * @vm: a #QubeVm
 *
 * The acceleration the running qube's backend uses, e.g. `tcg`, `kvm`.
 *
 * Returns: (transfer full) (nullable): the acceleration, or %NULL when the
 *   qube is not running or its backend does not say
 */
char *
qube_vm_get_accel (QubeVm *vm)
{
  g_autoptr(Domain) d = NULL;
  QubeDomainInfo info;

  g_return_val_if_fail (QUBE_IS_VM (vm), NULL);
  d = domain_of_started (vm, "query", NULL);
  if (d == NULL || !state_is_up (domain_info (d, &info, NULL)))
    return NULL;
  info.accel[sizeof info.accel - 1] = '\0';
  return info.accel[0] != '\0' ? g_strdup (info.accel) : NULL;
}

/* The power state as the Admin API names it; a qube whose compartment is
 * gone is cleaned up here (unless another process is starting or
 * stopping it), and reported halted. */
const char *
_qube_vm_power_state (QubeVm *vm)
{
  g_autoptr(Domain) d = NULL;
  QubeDomainInfo info;
  QubeDomainState state;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;

  if (g_str_equal (qube_vm_get_klass (vm), "AdminVM"))
    return "Running";
  /* Cheap for halted qubes: no backend is loaded. */
  dir = qube_qrexec_qube_runtime_dir (_qube_vm_get_manager (vm), qube_vm_get_name (vm));
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    return "Halted";
  d = domain_open (vm, &error);
  if (d == NULL)
    return "Halted";
  state = domain_info (d, &info, &error);
  switch (state)
    {
    case QUBE_DOMAIN_CREATED:
      return "Transient";
    case QUBE_DOMAIN_RUNNING:
      return "Running";
    case QUBE_DOMAIN_PAUSED:
      return "Paused";
    case QUBE_DOMAIN_SHUTTING_DOWN:
      return "Halting";
    case QUBE_DOMAIN_HALTED:
    case QUBE_DOMAIN_CRASHED:
    default:
      break;
    }
  if (error != NULL)
    return "Unknown";
  if (!domain_lock (d, "clean up", NULL))
    return "Transient";
  if (!domain_teardown (d, &error))
    g_warning ("qube '%s' stopped: %s", d->name, error->message);
  return "Halted";
}

/* The manager's running function: the compartment exists. */
gboolean
_qube_vm_running_func (QubeVm *vm, gpointer user_data)
{
  g_autoptr(Domain) d = NULL;
  g_autofree char *dir = NULL;
  QubeDomainInfo info;

  (void) user_data;
  dir = qube_qrexec_qube_runtime_dir (_qube_vm_get_manager (vm), qube_vm_get_name (vm));
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    return FALSE;
  d = domain_open (vm, NULL);
  return d != NULL && state_is_up (domain_info (d, &info, NULL));
}

/* Runs the qrexec daemon program in one of its worker modes: detached
 * (its own session, no stdin/stdout, messages to the daemon log), or with
 * stdout a pipe for the caller. */
GSubprocess *
_qube_spawn_worker (QubeManager *manager, const char *mode, const char *arg, gboolean pipe_stdout,
                    GError **error)
{
  g_autofree char *program = daemon_program ();
  g_autofree char *log = g_build_filename (qube_manager_get_runtime_dir (manager),
                                           "worker.log", NULL);
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  const char *argv[] = { program, "--state-dir", qube_manager_get_state_dir (manager), mode, arg,
                         NULL };
  GSubprocess *proc;

  g_mkdir_with_parents (qube_manager_get_runtime_dir (manager), 0700);
  /* A worker waiting for the caller's end reads a pipe from it. */
  gboolean pipe_stdin = g_str_has_suffix (mode, "-at-eof");

  launcher = g_subprocess_launcher_new ((pipe_stdout ? G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                         : G_SUBPROCESS_FLAGS_NONE)
                                        | (pipe_stdin ? G_SUBPROCESS_FLAGS_STDIN_PIPE
                                           : G_SUBPROCESS_FLAGS_NONE));
  if (!pipe_stdout)
    g_subprocess_launcher_set_stdout_file_path (launcher, "/dev/null");
  if (!pipe_stdin)
    g_subprocess_launcher_set_stdin_file_path (launcher, "/dev/null");
  {
    /* Appended to: workers run side by side. */
    int log_fd = open (log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

    if (log_fd >= 0)
      g_subprocess_launcher_take_stderr_fd (launcher, log_fd);
  }
  g_subprocess_launcher_setenv (launcher, "QUBE_RUNTIME_DIR",
                                qube_manager_get_runtime_dir (manager), TRUE);
  g_subprocess_launcher_set_child_setup (launcher, daemon_child_setup, NULL, NULL);
  proc = g_subprocess_launcher_spawnv (launcher, argv, error);
  if (proc == NULL)
    g_prefix_error (error, "cannot run %s %s: ", program, mode);
  return proc;
}
