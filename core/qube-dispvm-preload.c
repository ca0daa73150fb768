/* qube-dispvm-preload.c — the preload queues of disposables (see
 * qube-dispvm.h).
 *
 * Each disposable template whose feature `preload-dispvm-max` is above 0
 * (for the global default_dispvm, dom0's feature counts when the template
 * has none) has a queue in RUNTIME/dispvm/:
 *   TEMPLATE.queue   one line per entry, `NAME STATE`, oldest first
 *   TEMPLATE.lock    flock()ed around every read-modify-write of the queue
 *   TEMPLATE.failed  when the last preload of it failed (a 30 s pause)
 *   fill.lock        held by the one process filling the queues
 *   events           `TEMPLATE EVENT NAME [REASON]` lines, appended, for
 *                    qubed's admin.Events (domain-preload-dispvm-start,
 *                    -used, -removed)
 * Entry states: `starting` (being made: started, then asked for
 * qubes.WaitForRunningSystem, then paused) → `ready` (paused, hidden by
 * the feature `internal`) → taken off the queue when a request uses it.
 * An entry that fails to start, whose qube died, that became outdated
 * (a volume's source changed: its template's root, the disposable
 * template's private) or that is above the maximum is removed, its qube
 * destroyed, and an event says why.
 *
 * Who does what: a request takes a ready entry under the queue's lock
 * (any process: the CLI, the qrexec daemon, qubed) and unpauses it; that
 * is all on the caller's path.  The qrexec daemon, which serves every
 * preload and so runs while any exists, takes them in a thread
 * (qube_dispvm_preload_take_async()), for its own @dispvm calls and for
 * `qube run --dispvm`, which asks it rather than open the backend itself.  Filling and every destruction happen in a
 * worker process (the qrexec daemon program run with --preload-dispvms or
 * --discard-dispvm NAME), spawned detached; the qrexec daemon, which
 * serves every preloaded qube and so runs while any exists, and qubed
 * spawn the filler when a queue is short.  Only a process holding
 * fill.lock starts preloads, so two fillers never overfill a queue.
 * Without qubed, preloading lives in the qrexec daemon: it runs as long
 * as any qube (a preload among them) does, and starts with the first.
 *
 * Removing a disposable template that has preloads is refused, as for any
 * template in use: the preloads are qubes made from it, and the error
 * names them.  Draining the queue silently instead would destroy running
 * qubes as a side effect of a removal that might then fail for another
 * reason; `preload-dispvm-max` 0 drains it first, on purpose.
 */
#include "config.h"

#undef G_LOG_DOMAIN
#define G_LOG_DOMAIN "qube-dispvm"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "qube-dispvm.h"
#include "qube-dispvm-private.h"
#include "qube-error.h"
#include "qube-lifecycle.h"
#include "qube-qrexec-client.h"
#include "qube-qrexec-daemon.h"
#include "qube-store.h"
#include "qube-volume.h"
#include "qube-vm-private.h"

#define PRELOAD_MAX_FEATURE "preload-dispvm-max"
#define PRELOAD_THRESHOLD_FEATURE "preload-dispvm-threshold"
#define PRELOAD_LIMIT 64
/* After a failed preload, the template's queue is not refilled for a
 * while: a guest that never comes up must not be booted in a loop. */
#define FAILED_PAUSE_S 30
#define EVENTS_MAX_BYTES (1024 * 1024)

typedef enum {
  ENTRY_STARTING,
  ENTRY_READY,
} EntryState;

static const char *const entry_state_names[] = { "starting", "ready" };

typedef struct {
  char *name;
  EntryState state;
} Entry;

/* A template's queue, locked while the struct lives. */
typedef struct {
  QubeManager *manager;
  char *dvm;
  char *path;
  int lock_fd;
  GPtrArray *entries;   /* Entry */
} Queue;

static void
entry_free (Entry *e)
{
  g_free (e->name);
  g_free (e);
}

static char *
dispvm_dir (QubeManager *manager)
{
  return g_build_filename (qube_manager_get_runtime_dir (manager), "dispvm", NULL);
}

static char *
dispvm_file (QubeManager *manager, const char *dvm, const char *suffix)
{
  g_autofree char *dir = dispvm_dir (manager);
  g_autofree char *base = g_strconcat (dvm, suffix, NULL);

  return g_build_filename (dir, base, NULL);
}

/**
 * qube_dispvm_events_path:
 * @manager: a #QubeManager
 *
 * The file where preload queue changes are appended, one line each:
 * `TEMPLATE EVENT NAME [REASON]`, EVENT one of
 * `domain-preload-dispvm-start`, `domain-preload-dispvm-used`,
 * `domain-preload-dispvm-removed`.  qubed passes them to admin.Events.
 *
 * Returns: (transfer full) (type filename): `RUNTIME/dispvm/events`
 */
char *
qube_dispvm_events_path (QubeManager *manager)
{
  g_autofree char *dir = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), NULL);
  dir = dispvm_dir (manager);
  return g_build_filename (dir, "events", NULL);
}

static void
log_event (QubeManager *manager, const char *dvm, const char *event, const char *name,
           const char *reason)
{
  g_autofree char *path = qube_dispvm_events_path (manager);
  g_autofree char *line = NULL;
  g_autofree char *shown = NULL;
  int fd;

  /* One line a write, O_APPEND: writers from several processes never
   * interleave inside a line. */
  if (reason != NULL)
    {
      shown = g_strdup (reason);
      g_strdelimit (shown, "\n\r", ' ');
    }
  line = g_strdup_printf ("%s domain-preload-dispvm-%s %s%s%s\n", dvm, event, name,
                          shown != NULL ? " " : "", shown != NULL ? shown : "");
  fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  if (write (fd, line, strlen (line)) < 0)
    g_debug ("cannot append to %s: %s", path, g_strerror (errno));
  close (fd);
  if (reason != NULL)
    g_message ("preloaded disposable '%s' of '%s' removed: %s", name, dvm, reason);
}

static void
queue_close (Queue *q)
{
  if (q->lock_fd >= 0)
    close (q->lock_fd);
  g_free (q->dvm);
  g_free (q->path);
  g_ptr_array_unref (q->entries);
  g_free (q);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Queue, queue_close)

/* The template's queue, read under its lock (taken here, blocking). */
static Queue *
queue_open (QubeManager *manager, const char *dvm, GError **error)
{
  g_autoptr(Queue) q = g_new0 (Queue, 1);
  g_autofree char *dir = dispvm_dir (manager);
  g_autofree char *lock_path = dispvm_file (manager, dvm, ".lock");
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  q->manager = manager;
  q->dvm = g_strdup (dvm);
  q->path = dispvm_file (manager, dvm, ".queue");
  q->lock_fd = -1;
  q->entries = g_ptr_array_new_with_free_func ((GDestroyNotify) entry_free);
  /* The name becomes part of file names: nothing but a qube name. */
  if (!qube_name_is_valid (dvm, error))
    {
      g_prefix_error (error, "cannot open the preload queue of '%s': ", dvm);
      return NULL;
    }
  if (g_mkdir_with_parents (dir, 0700) < 0
      || (q->lock_fd = open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0
      || flock (q->lock_fd, LOCK_EX) < 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IO,
                   "cannot open the preload queue of '%s' (%s): %s", dvm, lock_path,
                   g_strerror (errno));
      return NULL;
    }
  if (!g_file_get_contents (q->path, &text, NULL, NULL))
    return g_steal_pointer (&q);
  lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l != NULL; l++)
    {
      g_auto(GStrv) words = g_strsplit (*l, " ", -1);
      Entry *e;

      if (g_strv_length (words) != 2 || !qube_name_is_valid (words[0], NULL))
        continue;
      e = g_new0 (Entry, 1);
      e->name = g_strdup (words[0]);
      e->state = g_str_equal (words[1], "ready") ? ENTRY_READY : ENTRY_STARTING;
      g_ptr_array_add (q->entries, e);
    }
  return g_steal_pointer (&q);
}

static gboolean
queue_save (Queue *q, GError **error)
{
  g_autoptr(GString) text = g_string_new (NULL);

  for (guint i = 0; i < q->entries->len; i++)
    {
      Entry *e = q->entries->pdata[i];

      g_string_append_printf (text, "%s %s\n", e->name, entry_state_names[e->state]);
    }
  g_autofree char *tmp = g_strconcat (q->path, ".new", NULL);

  /* Replaced whole (a rename: a reader sees the old queue or the new
   * one), not flushed: runtime state, gone at reboot anyway, and saved on
   * the path of every request.  One writer at a time (the lock), so one
   * temporary name does; written new (GLib does not truncate a file it
   * writes in place). */
  g_unlink (tmp);
  if (!g_file_set_contents_full (tmp, text->str, (gssize) text->len, G_FILE_SET_CONTENTS_NONE,
                                 0600, error))
    {
      g_prefix_error (error, "cannot save the preload queue of '%s': ", q->dvm);
      return FALSE;
    }
  if (g_rename (tmp, q->path) < 0)
    {
      int saved = errno;

      g_unlink (tmp);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IO, "cannot save the preload queue of '%s' "
                   "(%s): %s", q->dvm, q->path, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

static Entry *
queue_find (Queue *q, const char *name, guint *index)
{
  for (guint i = 0; i < q->entries->len; i++)
    if (g_str_equal (((Entry *) q->entries->pdata[i])->name, name))
      {
        if (index != NULL)
          *index = i;
        return q->entries->pdata[i];
      }
  return NULL;
}

static guint
feature_uint (QubeVm *vm, const char *key, guint max, gboolean *set)
{
  g_autofree char *value = vm != NULL ? qube_vm_get_feature (vm, key) : NULL;
  guint64 n = 0;

  if (set != NULL)
    *set = value != NULL;
  if (value == NULL || !g_ascii_string_to_unsigned (value, 10, 0, max, &n, NULL))
    return 0;
  return (guint) n;
}

/* How many preloads the template wants: its feature, else (for the global
 * default_dispvm) dom0's. */
static guint
preload_max (QubeManager *manager, QubeVm *dvm)
{
  gboolean set;
  guint n = feature_uint (dvm, PRELOAD_MAX_FEATURE, PRELOAD_LIMIT, &set);
  g_autofree char *global = NULL;
  g_autoptr(QubeVm) admin = NULL;

  if (set)
    return n;
  global = qube_manager_get_property (manager, "default_dispvm", NULL, NULL);
  if (g_strcmp0 (global, qube_vm_get_name (dvm)) != 0)
    return 0;
  admin = qube_manager_lookup (manager, QUBE_STORE_ADMIN_NAME, NULL);
  return feature_uint (admin, PRELOAD_MAX_FEATURE, PRELOAD_LIMIT, NULL);
}

/* MiB of host memory that must stay free: the template's feature, else
 * dom0's; 0 when neither is set. */
static guint
preload_threshold (QubeManager *manager, QubeVm *dvm)
{
  gboolean set;
  guint n = feature_uint (dvm, PRELOAD_THRESHOLD_FEATURE, G_MAXINT, &set);
  g_autoptr(QubeVm) admin = NULL;

  if (set)
    return n;
  admin = qube_manager_lookup (manager, QUBE_STORE_ADMIN_NAME, NULL);
  return feature_uint (admin, PRELOAD_THRESHOLD_FEATURE, G_MAXINT, NULL);
}

/* The host's available memory in MiB (MemAvailable), or G_MAXUINT64 when
 * unknown. */
static guint64
host_available_mib (void)
{
  g_autofree char *text = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/meminfo", &text, NULL, NULL)
      || (line = strstr (text, "MemAvailable:")) == NULL)
    return G_MAXUINT64;
  return g_ascii_strtoull (line + strlen ("MemAvailable:"), NULL, 10) / 1024;
}

static GPtrArray *
dispvm_templates (QubeManager *manager)
{
  g_autoptr(GPtrArray) vms = qube_manager_list_vms (manager);
  GPtrArray *out = g_ptr_array_new_with_free_func (g_object_unref);

  for (guint i = 0; i < vms->len; i++)
    if (_qube_dispvm_is_template (vms->pdata[i]))
      g_ptr_array_add (out, g_object_ref (vms->pdata[i]));
  return out;
}

/* Takes the first ready entry of the template's queue and unpauses its
 * qube: its name, or NULL when none is ready (`error` set only when the
 * queue could not be read); the queue's event says it was used.  The
 * qube is still hidden: preload_shown() follows, which may wait until
 * its call is under way.  An entry whose qube cannot be unpaused is removed (and
 * destroyed elsewhere) and the next is tried. */
static char *
preload_take_running (QubeManager *manager, const char *dvm_template, GError **error)
{
  for (;;)
    {
      g_autoptr(Queue) q = queue_open (manager, dvm_template, error);
      g_autofree char *name = NULL;
      g_autoptr(QubeVm) vm = NULL;
      g_autoptr(GError) local_error = NULL;

      if (q == NULL)
        return NULL;
      for (guint i = 0; i < q->entries->len && name == NULL; i++)
        {
          Entry *e = q->entries->pdata[i];

          if (e->state != ENTRY_READY)
            continue;
          name = g_strdup (e->name);
          g_ptr_array_remove_index (q->entries, i);
        }
      if (name == NULL)
        return NULL;
      if (!queue_save (q, error))
        return NULL;
      g_clear_pointer (&q, queue_close);

      vm = qube_manager_lookup (manager, name, &local_error);
      if (vm != NULL && qube_vm_unpause (vm, &local_error))
        {
          log_event (manager, dvm_template, "used", name, NULL);
          return g_steal_pointer (&name);
        }
      log_event (manager, dvm_template, "removed", name, local_error->message);
      if (vm != NULL && !qube_dispvm_destroy_detached (manager, name, &local_error))
        g_warning ("%s", local_error->message);
    }
}

/* A taken preload becomes an ordinary disposable, shown in listings (a
 * write to the store, which may follow the hand-over). */
static void
preload_shown (QubeManager *manager, const char *name)
{
  g_autoptr(QubeVm) vm = qube_manager_lookup (manager, name, NULL);

  if (vm != NULL)
    qube_vm_remove_feature (vm, "internal", NULL);
}

/**
 * qube_dispvm_preload_take:
 * @manager: a #QubeManager
 * @dvm_template: the disposable template
 * @error: return location for a #GError, or %NULL
 *
 * Takes the first ready preloaded disposable of @dvm_template off its
 * queue and unpauses it; it is shown in listings from now on.  An entry
 * whose qube cannot be unpaused is removed (and destroyed elsewhere) and
 * the next is tried.  Nothing is ever handed out twice: the queue is
 * locked while an entry is taken.
 *
 * Returns: (transfer full) (nullable): the running disposable, or %NULL
 *   when none is ready (@error set only when the queue could not be read)
 */
QubeVm *
qube_dispvm_preload_take (QubeManager *manager, const char *dvm_template, GError **error)
{
  g_autofree char *name = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), NULL);
  g_return_val_if_fail (dvm_template != NULL, NULL);
  name = preload_take_running (manager, dvm_template, error);
  if (name == NULL)
    return NULL;
  preload_shown (manager, name);
  return qube_manager_lookup (manager, name, error);
}

/* ---- taking a preload off a main loop ----
 *
 * The take waits for the queue's lock and for the backend (the unpause),
 * which a daemon's main loop must not.  It runs in a thread, on a
 * QubeManager of its own that the caller's manager carries (opened by
 * the first take, used by one take at a time: takes serialise on the
 * queue's lock anyway). */

typedef struct {
  GMutex lock;
  char *state_dir;
  QubeManager *manager;     /* the takes' own, NULL until the first */
} TakeWorker;

typedef struct {
  TakeWorker *worker;       /* the caller's manager, which the task holds, keeps it */
  char *dvm;
} TakeRequest;

static void
take_worker_free (TakeWorker *w)
{
  g_clear_object (&w->manager);
  g_free (w->state_dir);
  g_mutex_clear (&w->lock);
  g_free (w);
}

/* The worker of `manager`, made by the first take on it from any thread. */
static TakeWorker *
take_worker (QubeManager *manager)
{
  static GMutex made_lock;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&made_lock);
  GQuark quark = g_quark_from_static_string ("qube-dispvm-take-worker");
  TakeWorker *w = g_object_get_qdata (G_OBJECT (manager), quark);

  if (w == NULL)
    {
      w = g_new0 (TakeWorker, 1);
      g_mutex_init (&w->lock);
      w->state_dir = g_strdup (qube_manager_get_state_dir (manager));
      g_object_set_qdata_full (G_OBJECT (manager), quark, w, (GDestroyNotify) take_worker_free);
    }
  return w;
}

static void
take_request_free (TakeRequest *r)
{
  g_free (r->dvm);
  g_free (r);
}

static void
take_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  TakeRequest *r = task_data;
  TakeWorker *w = r->worker;
  GError *error = NULL;
  char *name;

  (void) source;
  (void) cancellable;
  g_mutex_lock (&w->lock);
  if (w->manager == NULL)
    w->manager = qube_manager_new (w->state_dir, &error);
  name = w->manager != NULL ? preload_take_running (w->manager, r->dvm, &error) : NULL;
  /* The caller goes on with the running qube while it is shown. */
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, g_strdup (name), g_free);
  if (name != NULL)
    preload_shown (w->manager, name);
  g_free (name);
  g_mutex_unlock (&w->lock);
}

/**
 * qube_dispvm_preload_take_async:
 * @manager: a #QubeManager
 * @dvm_template: the disposable template
 * @cancellable: (nullable): a #GCancellable, or %NULL
 * @callback: called when the take is done, in the thread-default main
 *   context of the caller
 * @user_data: data for @callback
 *
 * Takes a preloaded disposable as qube_dispvm_preload_take() does, in a
 * thread: for a main loop, which must not wait for the queue's lock or for
 * the unpause.  The disposable is unpaused when @callback runs; it is
 * shown in listings a moment later.
 */
void
qube_dispvm_preload_take_async (QubeManager *manager, const char *dvm_template,
                                GCancellable *cancellable, GAsyncReadyCallback callback,
                                gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  TakeRequest *r;

  g_return_if_fail (QUBE_IS_MANAGER (manager));
  g_return_if_fail (dvm_template != NULL);
  task = g_task_new (manager, cancellable, callback, user_data);
  r = g_new0 (TakeRequest, 1);
  r->worker = take_worker (manager);
  r->dvm = g_strdup (dvm_template);
  g_task_set_source_tag (task, qube_dispvm_preload_take_async);
  g_task_set_task_data (task, r, (GDestroyNotify) take_request_free);
  g_task_run_in_thread (task, take_thread);
}

/**
 * qube_dispvm_preload_take_finish:
 * @manager: a #QubeManager
 * @result: the #GAsyncResult of qube_dispvm_preload_take_async()
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the name of the running disposable,
 *   or %NULL when none was ready (@error set only when the queue could not
 *   be read)
 */
char *
qube_dispvm_preload_take_finish (QubeManager *manager, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, manager), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static gboolean
failed_recently (QubeManager *manager, const char *dvm)
{
  g_autofree char *path = dispvm_file (manager, dvm, ".failed");
  g_autofree char *text = NULL;
  gint64 when;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return FALSE;
  when = g_ascii_strtoll (text, NULL, 10);
  return g_get_real_time () - when < (gint64) FAILED_PAUSE_S * G_USEC_PER_SEC;
}

/* Why a ready entry must go, or NULL: its qube is gone or not paused, or
 * a volume's source changed since it was started. */
static char *
entry_stale (QubeManager *manager, const char *name)
{
  g_autoptr(QubeVm) vm = qube_manager_lookup (manager, name, NULL);
  const char *state;

  if (vm == NULL)
    return g_strdup ("its qube no longer exists");
  state = qube_vm_get_state (vm);
  if (!g_str_equal (state, "Paused"))
    return g_strdup_printf ("its qube is %s, not paused", state);
  for (const char *const *v = (const char *[]) { "root", "private", NULL }; *v != NULL; v++)
    {
      g_autoptr(QubeVolume) volume = qube_vm_get_volume (vm, *v, NULL);
      gboolean outdated = FALSE;

      if (volume != NULL && qube_volume_is_outdated (volume, &outdated, NULL) && outdated)
        return g_strdup_printf ("outdated: the source of its %s volume changed", *v);
    }
  return NULL;
}

/* Removes the entries that must go: stale ones, ones left `starting` by
 * a filler that died (only the fill lock's holder calls this), and those
 * above `max` (the newest first).  Their qubes are destroyed here.
 * Returns how many remain. */
static guint
prune (QubeManager *manager, const char *dvm, guint max)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Queue) q = queue_open (manager, dvm, &error);
  g_autoptr(GPtrArray) doomed = g_ptr_array_new_with_free_func (g_free);
  gboolean changed = FALSE;
  guint remain;

  if (q == NULL)
    {
      g_warning ("%s", error->message);
      return G_MAXUINT;
    }
  for (guint i = q->entries->len; i-- > 0;)
    {
      Entry *e = q->entries->pdata[i];
      g_autofree char *why = NULL;

      if (e->state == ENTRY_STARTING)
        why = g_strdup ("its start was interrupted");
      else if (i >= max)
        why = g_strdup_printf ("above preload-dispvm-max (%u)", max);
      else
        why = entry_stale (manager, e->name);
      if (why == NULL)
        continue;
      log_event (manager, dvm, "removed", e->name, why);
      g_ptr_array_add (doomed, g_strdup (e->name));
      g_ptr_array_remove_index (q->entries, i);
      changed = TRUE;
    }
  if (changed && !queue_save (q, &error))
    g_warning ("%s", error->message);
  remain = q->entries->len;
  g_clear_pointer (&q, queue_close);
  for (guint i = 0; i < doomed->len; i++)
    {
      g_autoptr(QubeVm) vm = qube_manager_lookup (manager, doomed->pdata[i], NULL);
      g_autoptr(GError) local_error = NULL;

      if (vm != NULL && !qube_dispvm_destroy (vm, &local_error))
        g_warning ("cannot destroy preloaded disposable '%s': %s", (char *) doomed->pdata[i],
                   local_error->message);
    }
  return remain;
}

/* A preload made ready, or (ready FALSE) dropped; FALSE when its entry
 * is not in the queue. */
static gboolean
entry_set (QubeManager *manager, const char *dvm, const char *name, gboolean ready)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Queue) q = queue_open (manager, dvm, &error);
  guint index;
  Entry *e;

  if (q == NULL)
    {
      g_warning ("%s", error->message);
      return FALSE;
    }
  e = queue_find (q, name, &index);
  if (e == NULL)
    return FALSE;
  if (ready)
    e->state = ENTRY_READY;
  else
    g_ptr_array_remove_index (q->entries, index);
  if (!queue_save (q, &error))
    {
      g_warning ("%s", error->message);
      return FALSE;
    }
  return TRUE;
}

/* Makes one preload: created, queued `starting`, started, asked for
 * qubes.WaitForRunningSystem, paused, then `ready`.  A failure removes
 * it, destroys its qube and pauses the template's preloading. */
static gboolean
preload_one (QubeManager *manager, const char *dvm, GError **error)
{
  g_autoptr(QubeVm) vm = _qube_dispvm_create (manager, dvm, TRUE, error);
  g_autoptr(GError) local_error = NULL;
  const char *name;
  int exit_code = -1;
  gboolean keep_console = FALSE;
  int devnull;

  if (vm == NULL)
    return FALSE;
  name = qube_vm_get_name (vm);
  {
    g_autoptr(Queue) q = queue_open (manager, dvm, error);
    Entry *e;

    if (q == NULL)
      {
        qube_manager_remove_vm (manager, name, NULL);
        return FALSE;
      }
    e = g_new0 (Entry, 1);
    e->name = g_strdup (name);
    e->state = ENTRY_STARTING;
    g_ptr_array_add (q->entries, e);
    if (!queue_save (q, error))
      {
        qube_manager_remove_vm (manager, name, NULL);
        return FALSE;
      }
  }
  log_event (manager, dvm, "start", name, NULL);
  devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
  /* What the guest said is kept when it failed; a failed call keeps it
   * itself (qube_qrexec_run()). */
  if (!qube_vm_start (vm, &local_error))
    keep_console = TRUE;
  else if (qube_qrexec_run (manager, name, NULL, "QUBESRPC qubes.WaitForRunningSystem dom0",
                            QUBE_QREXEC_RUN_NO_STDIN, devnull, devnull, devnull, &exit_code,
                            &local_error))
    {
      if (exit_code != 0)
        {
          g_set_error (&local_error, QUBE_ERROR, QUBE_ERROR_FAILED,
                       "its qubes.WaitForRunningSystem exited with %d", exit_code);
          keep_console = TRUE;
        }
      else
        qube_vm_pause (vm, &local_error);
    }
  close (devnull);
  if (local_error == NULL && !entry_set (manager, dvm, name, TRUE))
    g_set_error (&local_error, QUBE_ERROR, QUBE_ERROR_FAILED, "its queue entry is gone");
  if (local_error == NULL)
    {
      g_message ("preloaded disposable '%s' of '%s' is ready", name, dvm);
      return TRUE;
    }
  {
    g_autofree char *failed = dispvm_file (manager, dvm, ".failed");
    g_autofree char *now = g_strdup_printf ("%" G_GINT64_FORMAT "\n", g_get_real_time ());

    g_file_set_contents (failed, now, -1, NULL);
  }
  if (keep_console)
    _qube_dispvm_error_keep_console (manager, name, local_error);
  entry_set (manager, dvm, name, FALSE);
  log_event (manager, dvm, "removed", name, local_error->message);
  qube_dispvm_destroy (vm, NULL);
  g_set_error (error, local_error->domain, local_error->code,
               "cannot preload a disposable of '%s': %s", dvm, local_error->message);
  return FALSE;
}

/* Whether a preload of `dvm` (memory `memory` MiB) fits above the
 * threshold of free host memory. */
static gboolean
memory_allows (QubeManager *manager, QubeVm *dvm, GError **error)
{
  guint threshold = preload_threshold (manager, dvm);
  g_autofree char *memory = qube_vm_get_property (dvm, "memory", NULL, NULL, NULL);
  guint64 need = memory != NULL ? g_ascii_strtoull (memory, NULL, 10) : 0;
  guint64 avail = host_available_mib ();

  if (threshold == 0 || avail == G_MAXUINT64 || avail >= need + threshold)
    return TRUE;
  g_set_error (error, QUBE_ERROR, QUBE_ERROR_NO_SPACE,
               "cannot preload a disposable of '%s': the host has %" G_GUINT64_FORMAT
               " MiB available, a preload needs %" G_GUINT64_FORMAT " MiB and "
               PRELOAD_THRESHOLD_FEATURE " keeps %u MiB free", qube_vm_get_name (dvm), avail,
               need, threshold);
  return FALSE;
}

/* One pass over every disposable template; TRUE when it changed nothing. */
static gboolean
fill_pass (QubeManager *manager, GError **error)
{
  g_autoptr(GPtrArray) dvms = dispvm_templates (manager);
  gboolean settled = TRUE;

  for (guint i = 0; i < dvms->len; i++)
    {
      QubeVm *dvm = dvms->pdata[i];
      const char *name = qube_vm_get_name (dvm);
      guint max = preload_max (manager, dvm);
      guint have = prune (manager, name, max);
      g_autoptr(GError) local_error = NULL;

      if (have >= max || failed_recently (manager, name))
        continue;
      if (!memory_allows (manager, dvm, &local_error))
        {
          g_message ("%s", local_error->message);
          continue;
        }
      if (!preload_one (manager, name, &local_error))
        {
          g_warning ("%s", local_error->message);
          if (error != NULL && *error == NULL)
            g_propagate_error (error, g_steal_pointer (&local_error));
          continue;
        }
      settled = FALSE;
    }
  return settled;
}

/* Preloads of templates that are gone or no longer disposable
 * templates: their queues are emptied. */
static void
drop_orphan_queues (QubeManager *manager)
{
  g_autofree char *dir_path = dispvm_dir (manager);
  g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
  const char *entry;

  while (dir != NULL && (entry = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *dvm = NULL;
      g_autoptr(QubeVm) vm = NULL;

      if (!g_str_has_suffix (entry, ".queue"))
        continue;
      dvm = g_strndup (entry, strlen (entry) - strlen (".queue"));
      vm = qube_manager_lookup (manager, dvm, NULL);
      if (vm == NULL || !_qube_dispvm_is_template (vm))
        prune (manager, dvm, 0);
    }
}

/**
 * qube_dispvm_preload_fill:
 * @manager: a #QubeManager
 * @error: return location for a #GError, or %NULL
 *
 * Brings every preload queue to its `preload-dispvm-max`: removes the
 * entries that must go (failed, dead, outdated, above the maximum) and
 * starts new preloads while the host has more than the
 * `preload-dispvm-threshold` of free memory; a template whose last
 * preload failed is left alone for 30 s.  Blocks while qubes boot; runs
 * in one process at a time (another caller returns at once).
 *
 * Returns: %TRUE, or %FALSE with @error set when a preload failed
 */
gboolean
qube_dispvm_preload_fill (QubeManager *manager, GError **error)
{
  g_autofree char *dir = NULL;
  g_autofree char *lock_path = NULL;
  int fd;
  gboolean ok = TRUE;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), FALSE);
  dir = dispvm_dir (manager);
  lock_path = g_build_filename (dir, "fill.lock", NULL);
  g_mkdir_with_parents (dir, 0700);
  fd = open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IO, "cannot open %s: %s", lock_path,
                   g_strerror (errno));
      return FALSE;
    }
  if (flock (fd, LOCK_EX | LOCK_NB) < 0)
    {
      close (fd);
      return TRUE;
    }
  {
    g_autofree char *events = qube_dispvm_events_path (manager);
    GStatBuf st;

    if (g_stat (events, &st) == 0 && st.st_size > EVENTS_MAX_BYTES)
      g_unlink (events);
  }
  drop_orphan_queues (manager);
  for (guint pass = 0; pass < PRELOAD_LIMIT * 4; pass++)
    {
      g_autoptr(GError) local_error = NULL;
      gboolean settled = fill_pass (manager, &local_error);

      if (local_error != NULL && ok)
        {
          ok = FALSE;
          g_propagate_error (error, g_steal_pointer (&local_error));
        }
      if (settled)
        break;
    }
  close (fd);
  return ok;
}

/**
 * qube_dispvm_preload_fill_detached:
 * @manager: a #QubeManager
 * @error: return location for a #GError, or %NULL
 *
 * Runs qube_dispvm_preload_fill() in a detached process and returns at
 * once.
 *
 * Returns: %TRUE when the process was started
 */
gboolean
qube_dispvm_preload_fill_detached (QubeManager *manager, GError **error)
{
  g_autoptr(GSubprocess) proc = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), FALSE);
  proc = _qube_spawn_worker (manager, "--preload-dispvms", NULL, FALSE, error);
  return proc != NULL;
}

/**
 * qube_dispvm_preload_wanted:
 * @manager: a #QubeManager
 *
 * Whether a fill would change something: a queue holds fewer entries than
 * its maximum (and its template did not fail just now), or more, or a
 * queue of a template that no longer wants preloads has entries.  Cheap:
 * reads features and queue files only.
 *
 * Returns: whether qube_dispvm_preload_fill() has work
 */
gboolean
qube_dispvm_preload_wanted (QubeManager *manager)
{
  g_autoptr(GPtrArray) dvms = NULL;
  g_autofree char *dir_path = NULL;
  g_autoptr(GDir) dir = NULL;
  const char *entry;
  guint queued_total = 0;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), FALSE);
  dvms = dispvm_templates (manager);
  for (guint i = 0; i < dvms->len; i++)
    {
      const char *name = qube_vm_get_name (dvms->pdata[i]);
      guint max = preload_max (manager, dvms->pdata[i]);
      g_auto(GStrv) queued = qube_dispvm_preload_list (manager, name);
      guint n = g_strv_length (queued);

      queued_total += n;
      /* Short, but the last preload failed or memory is short: a filler
       * would do nothing now. */
      if (n > max || (n < max && !failed_recently (manager, name)
                      && memory_allows (manager, dvms->pdata[i], NULL)))
        return TRUE;
    }
  /* Entries of templates not counted above (removed, or no longer
   * disposable templates). */
  dir_path = dispvm_dir (manager);
  dir = g_dir_open (dir_path, 0, NULL);
  while (dir != NULL && (entry = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (entry, ".queue"))
      {
        g_autofree char *dvm = g_strndup (entry, strlen (entry) - strlen (".queue"));
        g_auto(GStrv) queued = qube_dispvm_preload_list (manager, dvm);

        if (queued_total < g_strv_length (queued))
          return TRUE;
        queued_total -= g_strv_length (queued);
      }
  return FALSE;
}

/**
 * qube_dispvm_preload_list:
 * @manager: a #QubeManager
 * @dvm_template: a disposable template
 *
 * The preload queue of @dvm_template, oldest first, as `NAME STATE`
 * strings, STATE `starting` or `ready`.
 *
 * Returns: (transfer full) (array zero-terminated=1): the entries
 */
char **
qube_dispvm_preload_list (QubeManager *manager, const char *dvm_template)
{
  g_autoptr(Queue) q = NULL;
  g_autoptr(GStrvBuilder) out = g_strv_builder_new ();

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), NULL);
  g_return_val_if_fail (dvm_template != NULL, NULL);
  q = queue_open (manager, dvm_template, NULL);
  for (guint i = 0; q != NULL && i < q->entries->len; i++)
    {
      Entry *e = q->entries->pdata[i];
      g_autofree char *line = g_strdup_printf ("%s %s", e->name, entry_state_names[e->state]);

      g_strv_builder_add (out, line);
    }
  return g_strv_builder_end (out);
}
