/* test-lifecycle.c — qubes started, paused, stopped and broken for real:
 * QEMU microvm qubes under TCG here, through the library's lifecycle
 * (core/qube-lifecycle.c), the kvm plugin, the storage-file pool and the
 * per-qube qube-qrexec-daemon.  The template is built once, with
 * `qube template build`, and shared by every case; each case makes its
 * own AppVM and checks that nothing of it is left: no QEMU, no daemon, no
 * runtime directory, no started volume.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

#include "kvm-qmp.h"
#include "kvm-qube-fixture.h"
#include "qube.h"

#define TEMPLATE KVM_QUBE_TEMPLATE
/* A boot takes 3-10 s under TCG on a loaded machine: generous, never a
 * measure. */
#define CASE_TIMEOUT_S 600

static char *state_dir;
static char *builddir;

static QubeManager *
open_manager (void)
{
  return kvm_qube_fixture_open_manager (state_dir);
}

static QubeVm *
create_app (QubeManager *manager, const char *name)
{
  g_autoptr(GError) error = NULL;
  QubeVm *vm = qube_manager_create_vm (manager, "AppVM", name, TEMPLATE, "blue", &error);

  ck_assert_msg (vm != NULL, "%s", error ? error->message : "");
  return vm;
}

/* The qube's QEMU processes.  The qrexec daemon serves every qube; that
 * it let go of this one shows in the runtime directory being gone. */
static guint
processes_of (const char *name)
{
  return kvm_qube_fixture_qemu_count (state_dir, name, NULL);
}

static char *
runtime_dir_of (QubeManager *manager, const char *name)
{
  return qube_qrexec_qube_runtime_dir (manager, name);
}

static gboolean
volume_started (QubeVm *vm, const char *volume)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVolume) v = qube_vm_get_volume (vm, volume, &error);
  gboolean started = FALSE;

  ck_assert_msg (v != NULL, "%s", error ? error->message : "");
  ck_assert_msg (qube_volume_query (v, NULL, &started, NULL, NULL, &error), "%s",
                 error ? error->message : "");
  return started;
}

/* Nothing of the qube is left running or started. */
static void
assert_nothing_left (QubeManager *manager, QubeVm *vm)
{
  const char *name = qube_vm_get_name (vm);
  g_autofree char *dir = runtime_dir_of (manager, name);

  /* The qube's daemon may be releasing it right now (Transient). */
  for (int i = 0; i < 300 && !g_str_equal (qube_vm_get_state (vm), "Halted"); i++)
    g_usleep (100 * 1000);
  ck_assert_str_eq (qube_vm_get_state (vm), "Halted");
  ck_assert_msg (!g_file_test (dir, G_FILE_TEST_EXISTS), "%s is still there", dir);
  for (int i = 0; i < 50 && processes_of (name) > 0; i++)
    g_usleep (100 * 1000);
  ck_assert_msg (processes_of (name) == 0, "a process of qube '%s' is still running", name);
  ck_assert (!volume_started (vm, "root"));
  ck_assert (!volume_started (vm, "private"));
  ck_assert (!volume_started (vm, "volatile"));
}

static void
start_ok (QubeVm *vm)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg (qube_vm_start (vm, &error), "%s", error ? error->message : "");
}

static char *
console_of (QubeManager *manager, const char *name)
{
  g_autofree char *dir = runtime_dir_of (manager, name);
  g_autofree char *path = g_strconcat (dir, ".console.log", NULL);
  char *text = NULL;

  g_file_get_contents (path, &text, NULL, NULL);
  return text != NULL ? text : g_strdup ("");
}

/* A copy of the shared template named `template_name`, and an AppVM
 * `app_name` based on it. */
static void
template_with_app (QubeManager *manager, const char *template_name, const char *app_name,
                   QubeVm **tvm, QubeVm **app)
{
  g_autoptr(GError) error = NULL;

  *tvm = qube_manager_clone_vm (manager, TEMPLATE, template_name, &error);
  ck_assert_msg (*tvm != NULL, "%s", error ? error->message : "");
  *app = qube_manager_create_vm (manager, "AppVM", app_name, template_name, "green", &error);
  ck_assert_msg (*app != NULL, "%s", error ? error->message : "");
}

START_TEST (test_start_pause_shutdown)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = create_app (manager, "life");
  g_autoptr(GError) error = NULL;
  g_autofree char *accel = NULL;
  g_autofree char *dir = runtime_dir_of (manager, "life");

  start_ok (vm);
  ck_assert_str_eq (qube_vm_get_state (vm), "Running");
  ck_assert (g_file_test (dir, G_FILE_TEST_IS_DIR));
  ck_assert_uint_eq (processes_of ("life"), 1);
  accel = qube_vm_get_accel (vm);
  ck_assert (accel != NULL && (g_str_equal (accel, "tcg") || g_str_equal (accel, "kvm")));
  /* `qube plugins` says the same acceleration. */
  {
    QubePluginInfo *kvm = qube_plugin_registry_lookup (qube_manager_get_plugins (manager), "kvm");
    g_autofree char *detail = kvm != NULL ? qube_plugin_info_get_detail (kvm) : NULL;
    g_autofree char *expect = g_strdup_printf ("acceleration: %s ", accel);

    ck_assert_msg (detail != NULL && g_str_has_prefix (detail, expect), "kvm plugin detail: %s",
                   detail ? detail : "(none)");
  }
  /* A running qube cannot be removed, a second start is refused. */
  ck_assert (!qube_manager_remove_vm (manager, "life", &error));
  ck_assert (g_error_matches (error, QUBE_ERROR, QUBE_ERROR_RUNNING));
  g_clear_error (&error);
  ck_assert (!qube_vm_start (vm, &error));
  ck_assert_msg (strstr (error->message, "already running") != NULL, "%s", error->message);
  g_clear_error (&error);

  ck_assert_msg (qube_vm_pause (vm, &error), "%s", error ? error->message : "");
  ck_assert_str_eq (qube_vm_get_state (vm), "Paused");
  ck_assert_msg (qube_vm_unpause (vm, &error), "%s", error ? error->message : "");
  ck_assert_str_eq (qube_vm_get_state (vm), "Running");

  ck_assert_msg (qube_vm_shutdown (vm, TRUE, &error), "%s", error ? error->message : "");
  assert_nothing_left (manager, vm);
  /* The guest powered off by itself when its agent was asked (not through
   * the backend's power button), it was not killed. */
  {
    g_autofree char *console = console_of (manager, "life");

    ck_assert_msg (strstr (console, "qube-guest: powering off (asked through qubes.PowerOff)")
                   != NULL, "%s", console);
  }
  ck_assert (!qube_vm_shutdown (vm, TRUE, &error));
  ck_assert (g_error_matches (error, QUBE_ERROR, QUBE_ERROR_NOT_RUNNING));
}
END_TEST

static int run_in (QubeManager *manager, const char *name, const char *user, const char *command,
                   char **out);

/* Waits until the running qube's console shows `text` (the guest is slow
 * under TCG: the bound only keeps a broken guest from hanging the test). */
static void
wait_console (QubeManager *manager, const char *name, const char *text)
{
  g_autofree char *dir = runtime_dir_of (manager, name);
  g_autofree char *path = g_build_filename (dir, "console.log", NULL);

  for (int i = 0; i < 1200; i++)
    {
      g_autofree char *console = NULL;

      if (g_file_get_contents (path, &console, NULL, NULL) && strstr (console, text) != NULL)
        return;
      g_usleep (100 * 1000);
    }
  ck_abort_msg ("qube '%s' never printed '%s'", name, text);
}

/* Makes the qube's agent stop answering (SIGSTOP, once the agent's
 * process for the call that asks for it, the shell's parent, has sent the
 * exit code and ended, and a second more for it to be passed on), and
 * with `also` the guest's other processes named so; waits until the guest
 * says it is done. */
static void
silence_guest (QubeManager *manager, const char *name, const char *also)
{
  g_autofree char *command = g_strdup_printf ("h=$PPID; (while kill -0 $h; do sleep 0.1; done; "
                                              "sleep 1; kill -STOP $(pidof qube-agent) %s%s%s; "
                                              "echo 'qube-guest: test: silenced' > /dev/console) "
                                              "< /dev/null > /dev/null 2>&1 &",
                                              also ? "$(pidof " : "", also ? also : "",
                                              also ? ")" : "");
  g_autofree char *out = NULL;

  ck_assert_int_eq (run_in (manager, name, "root", command, &out), 0);
  wait_console (manager, name, "qube-guest: test: silenced");
}

/* A new qube `name` (with its shutdown-timeout, if given), started. */
static QubeVm *
start_app (QubeManager *manager, const char *name, const char *timeout)
{
  g_autoptr(GError) error = NULL;
  QubeVm *vm = create_app (manager, name);

  if (timeout != NULL)
    ck_assert_msg (qube_vm_set_feature (vm, "shutdown-timeout", timeout, &error), "%s",
                   error ? error->message : "");
  start_ok (vm);
  return vm;
}

/* Starts a new qube `name` (with its shutdown-timeout, if given), silences
 * its guest as silence_guest() does and shuts it down, which must succeed
 * and leave nothing; returns the console of that run. */
static char *
shutdown_silenced (const char *name, const char *also, const char *timeout)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = start_app (manager, name, timeout);
  g_autoptr(GError) error = NULL;

  silence_guest (manager, name, also);
  ck_assert_msg (qube_vm_shutdown (vm, TRUE, &error), "%s", error ? error->message : "");
  assert_nothing_left (manager, vm);
  return console_of (manager, name);
}

/* The agent does not answer the power-off request: the backend's own
 * request (the ACPI power button) powers the guest off instead. */
START_TEST (test_shutdown_agent_silent)
{
  g_autofree char *console = shutdown_silenced ("silent", NULL, NULL);

  ck_assert_msg (strstr (console, "qube-guest: powering off (power-off request)") != NULL, "%s",
                 console);
  ck_assert_msg (strstr (console, "qubes.PowerOff") == NULL, "%s", console);
}
END_TEST

/* Neither the agent nor the power button gets an answer: the qube is
 * killed when its shutdown-timeout has passed, and nothing is left. */
START_TEST (test_shutdown_guest_deaf)
{
  g_autofree char *console = shutdown_silenced ("deaf", "acpid", "12");

  ck_assert_msg (strstr (console, "qube-guest: powering off") == NULL, "%s", console);
}
END_TEST

/* `qube shutdown NAME` (no --wait), which must succeed. */
static void
cli_shutdown (const char *name)
{
  g_autofree char *qube = g_build_filename (builddir, "cli", "qube", NULL);
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  const char *argv[] = { qube, "--state-dir", state_dir, "shutdown", name, NULL };
  int status;

  ck_assert_msg (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                               NULL, &err, &status, &error)
                 && g_spawn_check_wait_status (status, &error),
                 "qube shutdown %s: %s\n%s", name, error ? error->message : "", err ? err : "");
}

/* Without --wait, `qube shutdown` returns once the shutdown is under way,
 * and it goes on without anyone waiting: the agent's power-off, as with
 * --wait. */
START_TEST (test_shutdown_nowait)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = start_app (manager, "nowait", NULL);
  g_autofree char *console = NULL;

  cli_shutdown ("nowait");
  assert_nothing_left (manager, vm);
  console = console_of (manager, "nowait");
  ck_assert_msg (strstr (console, "qube-guest: powering off (asked through qubes.PowerOff)")
                 != NULL, "%s", console);
}
END_TEST

/* The same with a deaf guest (agent and acpid stopped), which only the
 * kill at its shutdown-timeout stops: `qube shutdown` has returned while
 * it still runs, and it is killed in time all the same. */
START_TEST (test_shutdown_nowait_deaf)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = start_app (manager, "nowait-deaf", "12");
  g_autofree char *console = NULL;

  silence_guest (manager, "nowait-deaf", "acpid");
  cli_shutdown ("nowait-deaf");
  ck_assert_str_eq (qube_vm_get_state (vm), "Running");
  assert_nothing_left (manager, vm);
  console = console_of (manager, "nowait-deaf");
  ck_assert_msg (strstr (console, "qube-guest: powering off") == NULL, "%s", console);
}
END_TEST

/* The private volume is formatted at the first start and kept: the second
 * start does not format it again; root and volatile start anew. */
START_TEST (test_private_persists)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = create_app (manager, "keep");
  g_autoptr(GError) error = NULL;
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;

  start_ok (vm);
  ck_assert_msg (qube_vm_shutdown (vm, TRUE, &error), "%s", error ? error->message : "");
  first = console_of (manager, "keep");
  ck_assert_msg (strstr (first, "formatting the fresh private volume") != NULL, "%s", first);
  start_ok (vm);
  /* The start returns once the agent answers, before the guest is done
   * with its volumes. */
  wait_console (manager, "keep", "qube-guest: ready");
  ck_assert_msg (qube_vm_kill (vm, &error), "%s", error ? error->message : "");
  second = console_of (manager, "keep");
  ck_assert_msg (strstr (second, "formatting the fresh private volume") == NULL, "%s", second);
  ck_assert_msg (strstr (second, "cannot mount volume private") == NULL, "%s", second);
  assert_nothing_left (manager, vm);
}
END_TEST

/* A private volume that holds something the guest cannot mount (not a
 * fresh, empty one): the console, which a failed start shows, says so
 * with mount's own error. */
START_TEST (test_private_unmountable)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = create_app (manager, "garbled");
  g_autoptr(QubeVolume) private = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *junk_path = g_build_filename (state_dir, "junk.img", NULL);
  g_autofree char *junk = g_strnfill (64 * 1024, 'x');
  g_autofree char *console = NULL;
  const char *line;

  ck_assert_msg (g_file_set_contents (junk_path, junk, -1, &error), "%s",
                 error ? error->message : "");
  private = qube_vm_get_volume (vm, "private", &error);
  ck_assert_msg (private != NULL, "%s", error ? error->message : "");
  ck_assert_msg (qube_volume_import_file (private, junk_path, NULL, NULL, &error), "%s",
                 error ? error->message : "");
  start_ok (vm);
  wait_console (manager, "garbled", "qube-guest: ready");
  ck_assert_msg (qube_vm_kill (vm, &error), "%s", error ? error->message : "");
  assert_nothing_left (manager, vm);
  console = console_of (manager, "garbled");
  line = strstr (console, "cannot mount volume private (");
  ck_assert_msg (line != NULL, "%s", console);
  line = strchr (line, ')');
  ck_assert_msg (line != NULL && g_str_has_prefix (line, "): mount: "), "%s", console);
}
END_TEST

/* QEMU killed from outside: the next look reports the qube halted and
 * releases what it had. */
START_TEST (test_qemu_killed)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = create_app (manager, "victim");
  g_autofree char *dir = runtime_dir_of (manager, "victim");
  g_autofree char *pidfile = g_build_filename (dir, "qemu.pid", NULL);
  g_autofree char *text = NULL;
  pid_t pid;

  start_ok (vm);
  ck_assert (g_file_get_contents (pidfile, &text, NULL, NULL));
  pid = (pid_t) atoi (text);
  ck_assert_int_gt (pid, 1);
  ck_assert_int_eq (kill (pid, SIGKILL), 0);
  for (int i = 0; i < 100 && kill (pid, 0) == 0; i++)
    g_usleep (50 * 1000);
  assert_nothing_left (manager, vm);
}
END_TEST

/* The guest never answers (no agent: its initramfs runs a shell instead
 * of /init): the start fails in the qube's qrexec-timeout with the
 * console's last lines, and nothing is left. */
START_TEST (test_no_hello)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = create_app (manager, "mute");
  g_autoptr(GError) error = NULL;

  ck_assert_msg (qube_vm_set_property (vm, "kernelopts", "rdinit=/bin/sh", &error), "%s",
                 error ? error->message : "");
  ck_assert_msg (qube_vm_set_feature (vm, "qrexec-timeout", "8", &error), "%s",
                 error ? error->message : "");
  ck_assert (!qube_vm_start (vm, &error));
  ck_assert_msg (g_error_matches (error, QUBE_ERROR, QUBE_ERROR_TIMEOUT), "%s", error->message);
  ck_assert_msg (strstr (error->message, "cannot start qube 'mute'") != NULL, "%s", error->message);
  ck_assert_msg (strstr (error->message, "did not answer in 8 s") != NULL, "%s", error->message);
  ck_assert_msg (strstr (error->message, "console's last lines") != NULL, "%s", error->message);
  /* It ran: nothing says otherwise. */
  ck_assert_msg (strstr (error->message, "(it is paused)") == NULL
                 && strstr (error->message, "never running") == NULL, "%s", error->message);
  assert_nothing_left (manager, vm);
}
END_TEST

static gint pauser_stop;

/* Pauses the qube `data` (its runtime directory) through its QEMU
 * monitor once its guest wrote to its console, with the kvm plugin's QMP
 * client; gives up once pauser_stop is set.  NULL once QEMU reported the
 * STOP event, else why not. */
static gpointer
pause_once_up (gpointer data)
{
  const char *dir = data;
  g_autofree char *console = g_build_filename (dir, "console.log", NULL);
  g_autofree char *path = g_build_filename (dir, "qmp.sock", NULL);

  while (!g_atomic_int_get (&pauser_stop))
    {
      struct stat st;

      if (g_stat (console, &st) == 0 && st.st_size > 0)
        {
          g_autoptr(GError) error = NULL;
          g_autoptr(KvmQmp) qmp = kvm_qmp_connect (path, 10000, &error);
          g_autoptr(JsonNode) reply = qmp != NULL ? kvm_qmp_execute (qmp, "stop", NULL, &error)
                                                  : NULL;

          if (reply == NULL)
            return g_strdup_printf ("%s: %s", path, error->message);
          return kvm_qmp_wait_event (qmp, "STOP", 10000) ? NULL : g_strdup ("no STOP event");
        }
      g_usleep (50 * 1000);
    }
  return g_strdup ("the guest wrote nothing to its console");
}

/* A guest paused before its agent answered: the start's error says it is
 * paused instead of leaving the guest to blame, and nothing is left. */
START_TEST (test_paused_before_hello)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = create_app (manager, "halted-half");
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = runtime_dir_of (manager, "halted-half");
  g_autofree char *monitor = NULL;
  GThread *pauser;

  ck_assert_msg (qube_vm_set_property (vm, "kernelopts", "rdinit=/bin/sh", &error), "%s",
                 error ? error->message : "");
  /* Time for the guest's first console line on a loaded host. */
  ck_assert_msg (qube_vm_set_feature (vm, "qrexec-timeout", "15", &error), "%s",
                 error ? error->message : "");
  g_atomic_int_set (&pauser_stop, 0);
  pauser = g_thread_new ("pauser", pause_once_up, dir);
  ck_assert (!qube_vm_start (vm, &error));
  g_atomic_int_set (&pauser_stop, 1);
  monitor = g_thread_join (pauser);
  ck_assert_msg (monitor == NULL, "pausing through the monitor: %s", monitor);
  ck_assert_msg (g_error_matches (error, QUBE_ERROR, QUBE_ERROR_TIMEOUT), "%s", error->message);
  ck_assert_msg (strstr (error->message, "did not answer in 15 s (it is paused)") != NULL, "%s",
                 error->message);
  assert_nothing_left (manager, vm);
}
END_TEST

/* The template's root volume is gone: a clear error before anything is
 * made. */
START_TEST (test_template_missing)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) tvm = NULL;
  g_autoptr(QubeVm) vm = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *root_dir = NULL;

  template_with_app (manager, "lost-template", "orphan", &tvm, &vm);
  /* Gone behind the library's back, as a disk failure would do it. */
  root_dir = g_build_filename (state_dir, "pools", "default", "lost-template", "root", NULL);
  {
    g_autoptr(GDir) d = g_dir_open (root_dir, 0, NULL);
    const char *entry;

    ck_assert (d != NULL);
    while ((entry = g_dir_read_name (d)) != NULL)
      if (g_str_has_suffix (entry, ".qcow2"))
        {
          g_autofree char *path = g_build_filename (root_dir, entry, NULL);
          ck_assert_int_eq (g_unlink (path), 0);
        }
  }
  ck_assert (!qube_vm_start (vm, &error));
  ck_assert_msg (strstr (error->message, "cannot start qube 'orphan'") != NULL
                 && strstr (error->message, "lost-template") != NULL, "%s", error->message);
  assert_nothing_left (manager, vm);
}
END_TEST

typedef struct {
  const char *name;
  gboolean ok;
  char *message;
} StartRace;

static gpointer
race_start (gpointer data)
{
  StartRace *r = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = qube_manager_lookup (manager, r->name, NULL);

  r->ok = vm != NULL && qube_vm_start (vm, &error);
  r->message = error != NULL ? g_strdup (error->message) : NULL;
  return NULL;
}

/* Two starts of one qube at once: one wins, the other is told why. */
START_TEST (test_two_starts)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = create_app (manager, "twice");
  g_autoptr(GError) error = NULL;
  StartRace a = { "twice", FALSE, NULL }, b = { "twice", FALSE, NULL };
  GThread *ta = g_thread_new ("start-a", race_start, &a);
  GThread *tb = g_thread_new ("start-b", race_start, &b);
  StartRace *loser;

  g_thread_join (ta);
  g_thread_join (tb);
  ck_assert_msg (a.ok != b.ok, "a: %s, b: %s", a.message ? a.message : "started",
                 b.message ? b.message : "started");
  loser = a.ok ? &b : &a;
  ck_assert_msg (strstr (loser->message, "another process is starting") != NULL
                 || strstr (loser->message, "already running") != NULL, "%s", loser->message);
  ck_assert_str_eq (qube_vm_get_state (vm), "Running");
  ck_assert_uint_eq (processes_of ("twice"), 1);
  ck_assert_msg (qube_vm_kill (vm, &error), "%s", error ? error->message : "");
  assert_nothing_left (manager, vm);
  g_free (a.message);
  g_free (b.message);
}
END_TEST

/* The qube's pool has no space left when it starts. */
START_TEST (test_pool_full)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeStoragePool) pool = NULL;
  g_autoptr(QubeVm) vm = NULL;
  g_autofree char *dir = g_build_filename (state_dir, "small", NULL);
  g_autofree char *dir_opt = g_strdup_printf ("dir_path=%s/pool", dir);
  g_autofree char *pool_dir = g_build_filename (dir, "pool", NULL);
  const char *options[] = { dir_opt, NULL };

  g_mkdir_with_parents (dir, 0700);
  /* The small file system lives in this test's own mount namespace, so it
   * goes away with the test, however it ends. */
  ck_assert_msg (unshare (CLONE_NEWNS) == 0 && mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0,
                 "cannot make a private mount namespace: %s", g_strerror (errno));
  /* Room for the qube's volumes when it is created (the pool checks their
   * sizes, which sparse files never use up)... */
  if (mount ("tmpfs", dir, "tmpfs", 0, "size=16g") < 0)
    {
      /* Root and tmpfs are there in CI; say so if not. */
      ck_abort_msg ("cannot mount a small tmpfs for the pool: %s", g_strerror (errno));
    }
  g_mkdir_with_parents (pool_dir, 0700);
  pool = qube_manager_add_pool (manager, "small", "file", options, &error);
  ck_assert_msg (pool != NULL, "%s", error ? error->message : "");
  ck_assert (qube_manager_set_property (manager, "default_pool", "small", &error));
  vm = create_app (manager, "cramped");
  ck_assert (qube_manager_reset_property (manager, "default_pool", &error));
  /* ... and almost none when it starts. */
  ck_assert_msg (mount ("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=2m") == 0, "remount: %s",
                 g_strerror (errno));
  ck_assert (!qube_vm_start (vm, &error));
  ck_assert_msg (strstr (error->message, "cannot start qube 'cramped'") != NULL
                 && strstr (error->message, "free") != NULL, "%s", error->message);
  assert_nothing_left (manager, vm);
  ck_assert_msg (qube_manager_remove_vm (manager, "cramped", &error), "%s",
                 error ? error->message : "");
}
END_TEST

/* Runs `command` in the qube through qrexec (as `user`, NULL: the
 * default); its exit code, and its output in *out. */
static int
run_in (QubeManager *manager, const char *name, const char *user, const char *command, char **out)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (state_dir, "run-output", NULL);
  int fd = g_open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int exit_code = -1;

  ck_assert_int_ge (fd, 0);
  ck_assert_msg (qube_qrexec_run (manager, name, user, command, QUBE_QREXEC_RUN_NO_STDIN, -1, fd, 2,
                                  &exit_code, &error), "%s: %s", command, error ? error->message : "");
  close (fd);
  ck_assert (g_file_get_contents (path, out, NULL, NULL));
  return exit_code;
}

START_TEST (test_run_and_data)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) vm = create_app (manager, "runner");
  g_autoptr(GError) error = NULL;
  g_autofree char *uname = NULL;
  g_autofree char *hello = NULL;
  g_autofree char *kept = NULL;
  g_autofree char *root_file = NULL;

  start_ok (vm);
  ck_assert_int_eq (run_in (manager, "runner", NULL, "uname -a", &uname), 0);
  ck_assert_msg (g_str_has_prefix (uname, "Linux runner "), "%s", uname);
  ck_assert_int_eq (run_in (manager, "runner", NULL, "echo hello > /rw/hello; cat /rw/hello", &hello), 0);
  ck_assert_str_eq (hello, "hello\n");
  /* The command's exit code comes back. */
  {
    g_autofree char *none = NULL;

    ck_assert_int_eq (run_in (manager, "runner", NULL, "exit 7", &none), 7);
  }
  /* A write to root goes to the snapshot. */
  ck_assert_int_eq (run_in (manager, "runner", "root", "echo x > /etc/scratch && sync", &root_file), 0);
  ck_assert_msg (qube_vm_shutdown (vm, TRUE, &error), "%s", error ? error->message : "");
  assert_nothing_left (manager, vm);

  /* Next start: private kept, root anew from the template. */
  start_ok (vm);
  ck_assert_int_eq (run_in (manager, "runner", NULL, "cat /rw/hello", &kept), 0);
  ck_assert_str_eq (kept, "hello\n");
  g_clear_pointer (&root_file, g_free);
  ck_assert_int_ne (run_in (manager, "runner", NULL, "test -e /etc/scratch", &root_file), 0);
  ck_assert_msg (qube_vm_kill (vm, &error), "%s", error ? error->message : "");
  assert_nothing_left (manager, vm);
}
END_TEST

/* What a template's root gets while it runs reaches its AppVMs at their
 * next start. */
START_TEST (test_template_update)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) tvm = NULL;
  g_autoptr(QubeVm) app = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  template_with_app (manager, "tpl-upd", "follower", &tvm, &app);
  start_ok (tvm);
  ck_assert_int_eq (run_in (manager, "tpl-upd", "root", "echo v2 > /etc/template-version && sync",
                            &out), 0);
  ck_assert_msg (qube_vm_shutdown (tvm, TRUE, &error), "%s", error ? error->message : "");
  assert_nothing_left (manager, tvm);
  start_ok (app);
  g_clear_pointer (&out, g_free);
  ck_assert_int_eq (run_in (manager, "follower", NULL, "cat /etc/template-version", &out), 0);
  ck_assert_str_eq (out, "v2\n");
  ck_assert_msg (qube_vm_kill (app, &error), "%s", error ? error->message : "");
  assert_nothing_left (manager, app);
}
END_TEST

/* Three qubes at once, calling each other through qrexec-client-vm under
 * the policy written in main(): q1 may call q2, not q3; q2 may not call
 * q1 (no rule). */
START_TEST (test_three_qubes_policy)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) q1 = create_app (manager, "q1");
  g_autoptr(QubeVm) q2 = create_app (manager, "q2");
  g_autoptr(QubeVm) q3 = create_app (manager, "q3");
  g_autoptr(GError) error = NULL;
  g_autofree char *allowed = NULL;
  g_autofree char *denied = NULL;
  g_autofree char *unlisted = NULL;

  start_ok (q1);
  start_ok (q2);
  start_ok (q3);
  ck_assert_int_eq (run_in (manager, "q1", NULL,
                            "echo 'uname -n' | qrexec-client-vm q2 qubes.VMShell", &allowed), 0);
  ck_assert_str_eq (allowed, "q2\n");
  ck_assert_int_eq (run_in (manager, "q1", NULL,
                            "echo 'uname -n' | qrexec-client-vm q3 qubes.VMShell", &denied), 126);
  ck_assert_str_eq (denied, "");
  ck_assert_int_eq (run_in (manager, "q2", NULL,
                            "echo 'uname -n' | qrexec-client-vm q1 qubes.VMShell", &unlisted), 126);
  for (QubeVm **vm = (QubeVm *[]) { q1, q2, q3, NULL }; *vm != NULL; vm++)
    {
      ck_assert_msg (qube_vm_kill (*vm, &error), "%s", error ? error->message : "");
      assert_nothing_left (manager, *vm);
    }
}
END_TEST

int
main (void)
{
  Suite *suite;
  TCase *tc;
  SRunner *runner;
  int failed;
  int ready = kvm_qube_fixture_setup ("lifecycle", "qubes.VMShell * q1 q2 allow\n"
                                                   "qubes.VMShell * q1 q3 deny\n",
                                      &state_dir, &builddir);

  if (ready != 0)
    return ready;
  suite = suite_create ("lifecycle");
  tc = tcase_create ("qubes");
  tcase_set_timeout (tc, CASE_TIMEOUT_S);
  tcase_add_test (tc, test_start_pause_shutdown);
  tcase_add_test (tc, test_private_persists);
  tcase_add_test (tc, test_private_unmountable);
  tcase_add_test (tc, test_qemu_killed);
  tcase_add_test (tc, test_no_hello);
  tcase_add_test (tc, test_paused_before_hello);
  tcase_add_test (tc, test_template_missing);
  tcase_add_test (tc, test_two_starts);
  tcase_add_test (tc, test_pool_full);
  tcase_add_test (tc, test_shutdown_agent_silent);
  tcase_add_test (tc, test_shutdown_guest_deaf);
  tcase_add_test (tc, test_shutdown_nowait);
  tcase_add_test (tc, test_shutdown_nowait_deaf);
  suite_add_tcase (suite, tc);
  tc = tcase_create ("qrexec");
  tcase_set_timeout (tc, CASE_TIMEOUT_S);
  tcase_add_test (tc, test_run_and_data);
  tcase_add_test (tc, test_template_update);
  tcase_add_test (tc, test_three_qubes_policy);
  suite_add_tcase (suite, tc);
  runner = srunner_create (suite);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  kvm_qube_fixture_teardown (state_dir, failed == 0);
  return failed == 0 ? 0 : 1;
}
