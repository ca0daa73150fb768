/* qube-dispvm.c — disposables (see qube-dispvm.h): made, started,
 * destroyed, and the worker processes that do that off the caller's path.
 *
 * A disposable is a DispVM made from a disposable template (an AppVM with
 * template_for_dispvms=True): its root a snapshot of that template's
 * template's root, its private a snapshot of the disposable template's
 * private, both discarded with its volatile volume at stop.  Unnamed ones
 * (`dispNNNN`, property auto_cleanup=True) are removed altogether once
 * their call ends or they stop.  Destruction and cold starts that must not
 * block the caller run in a worker: the qrexec daemon program with
 * --discard-dispvm NAME, --discard-dispvm-at-eof NAME or --start-dispvm
 * TEMPLATE.  The preload queues are in qube-dispvm-preload.c.
 */
#include "config.h"

#undef G_LOG_DOMAIN
#define G_LOG_DOMAIN "qube-dispvm"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "qube-dispvm.h"
#include "qube-dispvm-private.h"
#include "qube-error.h"
#include "qube-lifecycle.h"
#include "qube-qrexec-daemon.h"
#include "qube-store.h"
#include "qube-vm-private.h"

/* How long a take from the qrexec daemon may take (the queue's lock, an
 * unpause): past it the daemon is taken to be stuck, and the caller starts
 * one of its own; what the daemon hands out later goes with the closed
 * connection. */
guint _qube_dispvm_take_timeout_s = 30;

gboolean
_qube_dispvm_is_template (QubeVm *vm)
{
  g_autofree char *value = qube_vm_get_property (vm, "template_for_dispvms", NULL, NULL, NULL);

  return g_str_equal (qube_vm_get_klass (vm), "AppVM") && g_strcmp0 (value, "True") == 0;
}

/**
 * qube_dispvm_template_for:
 * @manager: a #QubeManager
 * @qube: (nullable): the qube asking, or %NULL (or `dom0`) for the host
 * @error: return location for a #GError, or %NULL
 *
 * The disposable template a request from @qube uses: @qube itself when it
 * is a disposable template, else its `default_dispvm` (for the host, the
 * global `default_dispvm`).
 *
 * Returns: (transfer full): the template's name, or %NULL with @error set
 *   when there is none
 */
char *
qube_dispvm_template_for (QubeManager *manager, const char *qube, GError **error)
{
  g_autofree char *value = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), NULL);
  if (qube == NULL || g_str_equal (qube, QUBE_STORE_ADMIN_NAME))
    {
      value = qube_manager_get_property (manager, "default_dispvm", NULL, error);
      qube = QUBE_STORE_ADMIN_NAME;
    }
  else
    {
      g_autoptr(QubeVm) vm = qube_manager_lookup (manager, qube, error);

      if (vm == NULL)
        return NULL;
      if (_qube_dispvm_is_template (vm))
        return g_strdup (qube);
      value = qube_vm_get_property (vm, "default_dispvm", NULL, NULL, error);
    }
  if (value == NULL)
    return NULL;
  if (*value == '\0')
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
                   "qube '%s' has no disposable template (its default_dispvm is empty)", qube);
      return NULL;
    }
  return g_steal_pointer (&value);
}

/* Features a disposable takes from its template (not the template's own
 * preload settings). */
static gboolean
copy_features (QubeVm *from, QubeVm *to, GError **error)
{
  g_auto(GStrv) keys = qube_vm_list_features (from);

  for (char **k = keys; k != NULL && *k != NULL; k++)
    {
      g_autofree char *value = NULL;

      if (g_str_has_prefix (*k, "preload-dispvm") || g_str_equal (*k, "internal"))
        continue;
      value = qube_vm_get_feature (from, *k);
      if (value != NULL && !qube_vm_set_feature (to, *k, value, error))
        return FALSE;
    }
  return TRUE;
}

/* A new unnamed DispVM record of `dvm` (not started). */
QubeVm *
_qube_dispvm_create (QubeManager *manager, const char *dvm, gboolean internal, GError **error)
{
  g_autoptr(QubeVm) tvm = qube_manager_lookup (manager, dvm, error);
  g_autofree char *label = NULL;
  g_autoptr(QubeVm) vm = NULL;
  g_autoptr(GError) local_error = NULL;

  if (tvm == NULL)
    return NULL;
  if (!_qube_dispvm_is_template (tvm))
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "cannot create a disposable of '%s': it does not have "
                   "template_for_dispvms=True", dvm);
      return NULL;
    }
  label = qube_vm_get_property (tvm, "label", NULL, NULL, NULL);
  vm = qube_manager_create_vm (manager, "DispVM", NULL, dvm, label, error);
  if (vm == NULL)
    return NULL;
  if (!qube_vm_set_property (vm, "auto_cleanup", "True", &local_error)
      || !copy_features (tvm, vm, &local_error)
      || (internal && !qube_vm_set_feature (vm, "internal", "1", &local_error)))
    {
      qube_manager_remove_vm (manager, qube_vm_get_name (vm), NULL);
      g_set_error (error, local_error->domain, local_error->code,
                   "cannot create a disposable of '%s': %s", dvm, local_error->message);
      return NULL;
    }
  return g_steal_pointer (&vm);
}

/**
 * qube_dispvm_destroy:
 * @vm: a disposable
 * @error: return location for a #GError, or %NULL
 *
 * Destroys a disposable: its compartment is killed, its runtime files and
 * volumes are removed, and (an unnamed one, auto_cleanup=True) its record
 * too.  Blocks for as long as that takes: callers that must not wait use
 * qube_dispvm_destroy_detached().
 *
 * Returns: %TRUE when nothing of it is left
 */
gboolean
qube_dispvm_destroy (QubeVm *vm, GError **error)
{
  QubeManager *manager;
  g_autofree char *auto_cleanup = NULL;
  g_autoptr(GError) local_error = NULL;
  const char *state;

  g_return_val_if_fail (QUBE_IS_VM (vm), FALSE);
  manager = _qube_vm_get_manager (vm);
  if (!g_str_equal (qube_vm_get_klass (vm), "DispVM"))
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "cannot destroy qube '%s': it is not a disposable", qube_vm_get_name (vm));
      return FALSE;
    }
  state = qube_vm_get_state (vm);
  if (!g_str_equal (state, "Halted") && !qube_vm_kill (vm, &local_error)
      && !g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_NOT_RUNNING))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  auto_cleanup = qube_vm_get_property (vm, "auto_cleanup", NULL, NULL, NULL);
  if (g_strcmp0 (auto_cleanup, "True") != 0)
    return TRUE;
  if (!qube_manager_remove_vm (manager, qube_vm_get_name (vm), error))
    return FALSE;
  /* What the lifecycle keeps of a stopped qube (its last console, its
   * start lock) goes with the qube. */
  {
    g_autofree char *dir = qube_qrexec_qube_runtime_dir (manager, qube_vm_get_name (vm));

    for (const char *const *suffix = (const char *[]) { ".console.log", ".lock", NULL };
         *suffix != NULL; suffix++)
      {
        g_autofree char *path = g_strconcat (dir, *suffix, NULL);

        if (g_unlink (path) < 0 && errno != ENOENT)
          g_warning ("disposable '%s': cannot remove %s: %s", qube_vm_get_name (vm), path,
                     g_strerror (errno));
      }
  }
  return TRUE;
}

/* A worker starting a disposable of `dvm` cold, its name on its stdout
 * once it runs (for the qrexec daemon, which must not block). */
GSubprocess *
_qube_dispvm_spawn_start (QubeManager *manager, const char *dvm, GError **error)
{
  if (!qube_name_is_valid (dvm, error))
    return NULL;
  return _qube_spawn_worker (manager, "--start-dispvm", dvm, TRUE, error);
}

/**
 * qube_dispvm_destroy_detached:
 * @manager: a #QubeManager
 * @name: a disposable's name
 * @error: return location for a #GError, or %NULL
 *
 * Hands the destruction of a disposable (see qube_dispvm_destroy()) to a
 * detached process, which then refills the preload queues; returns at
 * once, so that cleanup never delays the caller.
 *
 * Returns: %TRUE when the process was started
 */
gboolean
qube_dispvm_destroy_detached (QubeManager *manager, const char *name, GError **error)
{
  g_autoptr(GSubprocess) proc = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  if (!qube_name_is_valid (name, error))
    return FALSE;
  proc = _qube_spawn_worker (manager, "--discard-dispvm", name, FALSE, error);
  return proc != NULL;
}

/**
 * qube_dispvm_destroy_at_exit:
 * @manager: a #QubeManager
 * @name: a disposable's name
 * @error: return location for a #GError, or %NULL
 *
 * Makes sure the disposable is destroyed once the calling process ends,
 * however it ends (returning, ^C, killed): a detached process waits for
 * the end of a pipe this process holds open, then destroys it (see
 * qube_dispvm_destroy_detached()).  For commands that run one call in a
 * disposable.
 *
 * Returns: %TRUE when the waiting process was started
 */
gboolean
qube_dispvm_destroy_at_exit (QubeManager *manager, const char *name, GError **error)
{
  static GPtrArray *held;
  g_autoptr(GSubprocess) proc = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  if (!qube_name_is_valid (name, error))
    return FALSE;
  proc = _qube_spawn_worker (manager, "--discard-dispvm-at-eof", name, FALSE, error);
  if (proc == NULL)
    return FALSE;
  /* The write end stays open until this process ends. */
  if (held == NULL)
    held = g_ptr_array_new ();
  g_ptr_array_add (held, g_object_ref (g_subprocess_get_stdin_pipe (proc)));
  return TRUE;
}

#define KEPT_SUFFIX ".failed-console.log"

typedef struct {
  char *path;
  gint64 mtime_ns;
} KeptConsole;

static void
kept_console_free (gpointer data)
{
  KeptConsole *k = data;

  g_free (k->path);
  g_free (k);
}

static gint
kept_console_newer_first (gconstpointer a, gconstpointer b)
{
  const KeptConsole *x = *(KeptConsole * const *) a, *y = *(KeptConsole * const *) b;

  if (x->mtime_ns != y->mtime_ns)
    return x->mtime_ns < y->mtime_ns ? 1 : -1;
  return -g_strcmp0 (x->path, y->path);
}

/* Removes kept console logs in `dir` but the newest QUBE_DISPVM_KEPT_CONSOLES_MAX
 * (`keep`, the one just kept, stays in any case). */
static void
prune_kept_consoles (const char *dir, const char *keep)
{
  g_autoptr(GDir) listing = g_dir_open (dir, 0, NULL);
  g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func (kept_console_free);
  const char *entry;

  if (listing == NULL)
    return;
  while ((entry = g_dir_read_name (listing)) != NULL)
    {
      g_autofree char *path = NULL;
      struct stat st;
      KeptConsole *k;

      if (!g_str_has_suffix (entry, KEPT_SUFFIX))
        continue;
      path = g_build_filename (dir, entry, NULL);
      if (g_strcmp0 (path, keep) == 0 || lstat (path, &st) < 0 || !S_ISREG (st.st_mode))
        continue;
      k = g_new0 (KeptConsole, 1);
      k->path = g_steal_pointer (&path);
      k->mtime_ns = (gint64) st.st_mtim.tv_sec * G_GINT64_CONSTANT (1000000000) + st.st_mtim.tv_nsec;
      g_ptr_array_add (kept, k);
    }
  g_ptr_array_sort (kept, kept_console_newer_first);
  for (guint i = QUBE_DISPVM_KEPT_CONSOLES_MAX - 1; i < kept->len; i++)
    (void) g_unlink (((KeptConsole *) g_ptr_array_index (kept, i))->path);
}

/* Keeps the console log of disposable `name`, whose start or call failed,
 * where its destruction leaves it (RUNTIME/qubes/NAME.failed-console.log);
 * its path, or NULL when it has none.  Only the newest QUBE_DISPVM_KEPT_CONSOLES_MAX
 * stay: the runtime directory is usually in memory, and a template whose
 * disposables keep failing would fill it. */
static char *
keep_console (QubeManager *manager, const char *name)
{
  g_autofree char *dir = qube_qrexec_qube_runtime_dir (manager, name);
  g_autofree char *running = g_build_filename (dir, "console.log", NULL);
  g_autofree char *stopped = g_strconcat (dir, ".console.log", NULL);
  g_autofree char *kept = g_strconcat (dir, KEPT_SUFFIX, NULL);
  g_autofree char *fresh = g_strconcat (kept, ".new", NULL);
  g_autofree char *parent = g_path_get_dirname (dir);

  /* A link: a running guest's last words still reach it until it is
   * killed.  It takes the time of the failure, not of the guest's last
   * line, before it gets its name, so that a prune in another process
   * orders it by when it failed. */
  (void) g_unlink (fresh);
  if ((link (running, fresh) == 0 || link (stopped, fresh) == 0) &&
      utimensat (AT_FDCWD, fresh, NULL, AT_SYMLINK_NOFOLLOW) == 0 &&
      rename (fresh, kept) == 0)
    {
      prune_kept_consoles (parent, kept);
      g_message ("disposable '%s' failed: its console log is kept in %s", name, kept);
      return g_steal_pointer (&kept);
    }
  (void) g_unlink (fresh);
  return NULL;
}

void
_qube_dispvm_error_keep_console (QubeManager *manager, const char *name, GError *error)
{
  g_autofree char *kept = keep_console (manager, name);

  if (kept != NULL && error != NULL)
    {
      char *message = g_strdup_printf ("%s (its console log: %s)", error->message, kept);

      g_free (error->message);
      error->message = message;
    }
}

/**
 * qube_dispvm_take_preloaded:
 * @manager: a #QubeManager
 * @dvm_template: the disposable template
 * @error: return location for a #GError, or %NULL
 *
 * Asks the qrexec daemon, which serves every preloaded disposable, for a
 * ready one of @dvm_template: it takes it off the queue and unpauses it
 * (see qube_dispvm_preload_take()), and destroys it once the calling
 * process ends, however it ends.  For commands that run one call in a
 * disposable.
 *
 * Returns: (transfer full) (nullable): the running disposable's name;
 *   %NULL with @error unset when the daemon has none ready, or with
 *   @error set when no daemon runs (%QUBE_ERROR_NOT_RUNNING), it did not
 *   answer within 30 s (%QUBE_ERROR_TIMEOUT) or it failed
 */
char *
qube_dispvm_take_preloaded (QubeManager *manager, const char *dvm_template, GError **error)
{
  g_autofree char *request = NULL;
  char line[256];
  gsize got = 0;
  gint64 deadline;
  gboolean timed_out = FALSE;
  int fd;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), NULL);
  g_return_val_if_fail (dvm_template != NULL, NULL);
  if (!qube_name_is_valid (dvm_template, error))
    return NULL;
  request = g_strdup_printf ("take %s\n", dvm_template);
  deadline = g_get_monotonic_time () + (gint64) _qube_dispvm_take_timeout_s * G_USEC_PER_SEC;
  fd = _qube_qrexec_daemon_request (manager, request, FALSE, NULL);
  if (fd < 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_RUNNING,
                   "no preloaded disposable of '%s': no qrexec daemon runs", dvm_template);
      return NULL;
    }
  while (got < sizeof line - 1 && memchr (line, '\n', got) == NULL)
    {
      gint64 left = deadline - g_get_monotonic_time ();
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      gssize n;
      int ready;

      if (left <= 0)
        {
          timed_out = TRUE;
          break;
        }
      ready = poll (&pfd, 1, (int) MAX (left / 1000, 1));
      if (ready < 0 && errno == EINTR)
        continue;
      if (ready < 0)
        break;
      if (ready == 0)
        continue;
      n = recv (fd, line + got, sizeof line - 1 - got, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      got += (gsize) n;
    }
  line[got] = '\0';
  g_strchomp (line);
  if (g_str_has_prefix (line, "ok ") && qube_name_is_valid (line + 3, NULL))
    {
      /* The daemon destroys the disposable when this connection ends:
       * it is left open, and closes with the process. */
      return g_strdup (line + 3);
    }
  close (fd);
  if (timed_out)
    g_set_error (error, QUBE_ERROR, QUBE_ERROR_TIMEOUT,
                 "no preloaded disposable of '%s': the qrexec daemon did not answer in %u s",
                 dvm_template, _qube_dispvm_take_timeout_s);
  else if (!g_str_equal (line, "none"))
    {
      g_autofree char *shown = g_strescape (g_str_has_prefix (line, "error ") ? line + 6 : line,
                                            NULL);

      g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED,
                   "no preloaded disposable of '%s': the qrexec daemon: %s", dvm_template,
                   got > 0 ? shown : "no answer");
    }
  return NULL;
}

/* A cold start: made and started here. */
static QubeVm *
start_cold (QubeManager *manager, const char *dvm, GError **error)
{
  g_autoptr(QubeVm) vm = _qube_dispvm_create (manager, dvm, FALSE, error);
  g_autoptr(GError) local_error = NULL;

  if (vm == NULL)
    return NULL;
  if (!qube_vm_start (vm, &local_error))
    {
      _qube_dispvm_error_keep_console (manager, qube_vm_get_name (vm), local_error);
      if (!qube_manager_remove_vm (manager, qube_vm_get_name (vm), NULL))
        g_warning ("disposable '%s' of '%s' could not be removed after its failed start",
                   qube_vm_get_name (vm), dvm);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }
  return g_steal_pointer (&vm);
}

/**
 * qube_dispvm_new:
 * @manager: a #QubeManager
 * @dvm_template: the disposable template
 * @use_preload: take a preloaded disposable when one is ready
 * @preloaded: (out) (optional): whether the disposable was preloaded
 * @error: return location for a #GError, or %NULL
 *
 * A new running unnamed disposable (`dispNNNN`, auto_cleanup=True) of the
 * template: the first ready preloaded one, unpaused, or else one
 * started now.  The caller destroys it when its call ends
 * (qube_dispvm_destroy_detached()); stopped, it is removed by whoever
 * sees it stopped.  A caller that is the qrexec daemon itself uses
 * qube_dispvm_preload_take() and a worker instead: a cold start asks that
 * daemon to serve the new qube and waits for its answer.
 *
 * Returns: (transfer full): the running disposable, or %NULL with @error
 */
QubeVm *
qube_dispvm_new (QubeManager *manager, const char *dvm_template, gboolean use_preload,
                 gboolean *preloaded, GError **error)
{
  g_autoptr(QubeVm) vm = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), NULL);
  g_return_val_if_fail (dvm_template != NULL, NULL);
  if (preloaded != NULL)
    *preloaded = FALSE;
  if (use_preload)
    {
      g_autoptr(GError) local_error = NULL;

      vm = qube_dispvm_preload_take (manager, dvm_template, &local_error);
      if (local_error != NULL)
        g_message ("no preloaded disposable of '%s': %s", dvm_template, local_error->message);
      if (vm != NULL)
        {
          if (preloaded != NULL)
            *preloaded = TRUE;
          return g_steal_pointer (&vm);
        }
    }
  return start_cold (manager, dvm_template, error);
}

