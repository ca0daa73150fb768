/* test-dispvm.c — disposables for real: QEMU microvm qubes under TCG
 * through `qube run --dispvm`, qrexec calls to @dispvm, the Admin API's
 * admin.vm.CreateDisposable, and the preload queues (core/qube-dispvm.c)
 * with their faults: a preload whose guest never comes up, a host short of
 * memory, the disposable template removed while preloads exist, eight
 * requests at once with two preloaded, a call that crashes its
 * disposable, and the qrexec daemon ending while a disposable it handed
 * out is in use.  The template is built once; each case makes its own
 * disposable template and checks that no disposable is left behind.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "kvm-qube-fixture.h"
#include "qube.h"

#define TEMPLATE KVM_QUBE_TEMPLATE
/* Boots take 3-10 s under TCG on a loaded machine: generous, never a
 * measure. */
#define CASE_TIMEOUT_S 1200
#define GONE_WAIT_S 120

static char *state_dir;
static char *builddir;

static QubeManager *
open_manager (void)
{
  return kvm_qube_fixture_open_manager (state_dir);
}

/* A disposable template `name` of the shared template. */
static QubeVm *
make_dvm (QubeManager *manager, const char *name)
{
  g_autoptr(GError) error = NULL;
  QubeVm *vm = qube_manager_create_vm (manager, "AppVM", name, TEMPLATE, "red", &error);

  ck_assert_msg (vm != NULL, "%s", error ? error->message : "");
  ck_assert_msg (qube_vm_set_property (vm, "template_for_dispvms", "True", &error), "%s",
                 error ? error->message : "");
  return vm;
}

static void
set_feature (QubeVm *vm, const char *key, const char *value)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg (qube_vm_set_feature (vm, key, value, &error), "%s", error ? error->message : "");
}

/* Runs `qube ARGS…` on the test's state directory; its exit status,
 * stdout in *out. */
static int
qube_cli (char **out, const char *first, ...)
{
  g_autofree char *qube = g_build_filename (builddir, "cli", "qube", NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  int status;
  va_list ap;

  g_ptr_array_add (argv, qube);
  g_ptr_array_add (argv, (char *) "--state-dir");
  g_ptr_array_add (argv, state_dir);
  va_start (ap, first);
  for (const char *a = first; a != NULL; a = va_arg (ap, const char *))
    g_ptr_array_add (argv, (char *) a);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  ck_assert_msg (g_spawn_sync (NULL, (char **) argv->pdata, NULL, 0, NULL, NULL, out, &err,
                               &status, &error), "%s", error ? error->message : "");
  if (err != NULL && *err != '\0')
    fprintf (stderr, "qube %s: %s", first, err);
  return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

/* Whether the qube's QEMU runs. */
static gboolean
qemu_runs (const char *name)
{
  return kvm_qube_fixture_qemu_count (state_dir, name, NULL) > 0;
}

/* Nothing of the disposable is left: no record, no QEMU, no runtime
 * directory or file, no volume file.  Cleanup happens in the background, so
 * this waits for it. */
static void
assert_disposable_gone (QubeManager *manager, const char *name)
{
  g_autofree char *dir = qube_qrexec_qube_runtime_dir (manager, name);
  g_autofree char *volumes = g_build_filename (state_dir, "pools", "default", name, NULL);
  /* Runtime files the lifecycle keeps of a stopped qube. */
  g_autofree char *console = g_strconcat (dir, ".console.log", NULL);
  g_autofree char *lock = g_strconcat (dir, ".lock", NULL);
  gboolean gone = FALSE;

  for (int i = 0; i < GONE_WAIT_S * 10 && !gone; i++)
    {
      g_autoptr(QubeVm) vm = qube_manager_lookup (manager, name, NULL);

      gone = vm == NULL && !qemu_runs (name) && !g_file_test (dir, G_FILE_TEST_EXISTS)
             && !g_file_test (console, G_FILE_TEST_EXISTS) && !g_file_test (lock, G_FILE_TEST_EXISTS);
      if (!gone)
        g_usleep (100 * 1000);
    }
  ck_assert_msg (gone, "disposable '%s' is still there (record, QEMU, %s or its .console.log "
                 "or .lock)", name, dir);
  ck_assert_msg (!g_file_test (volumes, G_FILE_TEST_EXISTS), "%s is still there", volumes);
}

/* Every DispVM whose template is `dvm`. */
static GPtrArray *
disposables_of (QubeManager *manager, const char *dvm)
{
  g_autoptr(GPtrArray) vms = qube_manager_list_vms (manager);
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; i < vms->len; i++)
    {
      g_autofree char *tmpl = NULL;

      if (!g_str_equal (qube_vm_get_klass (vms->pdata[i]), "DispVM"))
        continue;
      tmpl = qube_vm_get_property (vms->pdata[i], "template", NULL, NULL, NULL);
      if (g_strcmp0 (tmpl, dvm) == 0)
        g_ptr_array_add (out, g_strdup (qube_vm_get_name (vms->pdata[i])));
    }
  return out;
}

static void
assert_no_disposable_of (QubeManager *manager, const char *dvm)
{
  g_autoptr(GPtrArray) left = disposables_of (manager, dvm);

  for (guint i = 0; i < left->len; i++)
    assert_disposable_gone (manager, left->pdata[i]);
}

/* Waits until no process holds the fill lock: a fill returns at once
 * while another runs (the qrexec daemon's filler, or the fill a discard
 * worker does after its destruction), so what it left is only known once
 * that one is done. */
static void
wait_fillers (QubeManager *manager)
{
  g_autofree char *events = qube_dispvm_events_path (manager);
  g_autofree char *dir = g_path_get_dirname (events);
  g_autofree char *path = g_build_filename (dir, "fill.lock", NULL);
  int fd;

  /* Made by the first fill: none yet, no filler to wait for. */
  fd = open (path, O_RDWR | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT)
    return;
  ck_assert_msg (fd >= 0, "%s: %s", path, g_strerror (errno));
  for (int i = 0; flock (fd, LOCK_EX | LOCK_NB) < 0; i++)
    {
      ck_assert_msg (i < GONE_WAIT_S * 10, "a preload filler still runs after %d s", GONE_WAIT_S);
      g_usleep (100 * 1000);
    }
  close (fd);
}

/* A fill of the queues, after any other filler, and what any other filler
 * that started meanwhile did too.  Its result is not looked at: another
 * filler may have done the work, and the queue and its events tell what
 * happened either way. */
static void
fill (QubeManager *manager)
{
  wait_fillers (manager);
  qube_dispvm_preload_fill (manager, NULL);
  wait_fillers (manager);
}

/* The queue's entries in `state` ("ready", "starting"). */
static GPtrArray *
queued (QubeManager *manager, const char *dvm, const char *state)
{
  g_auto(GStrv) entries = qube_dispvm_preload_list (manager, dvm);
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);

  for (char **e = entries; *e != NULL; e++)
    {
      g_auto(GStrv) words = g_strsplit (*e, " ", 2);

      if (state == NULL || g_str_equal (words[1], state))
        g_ptr_array_add (out, g_strdup (words[0]));
    }
  return out;
}

/* How many lines of the preload events file read `DVM EVENT NAME…`
 * (NAME NULL: any). */
static guint
count_events (QubeManager *manager, const char *dvm, const char *event, const char *name)
{
  g_autofree char *path = qube_dispvm_events_path (manager);
  g_autofree char *text = NULL;
  g_autofree char *prefix = g_strdup_printf ("%s domain-preload-dispvm-%s %s", dvm, event,
                                             name != NULL ? name : "");
  g_auto(GStrv) lines = NULL;
  guint n = 0;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return 0;
  lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l != NULL; l++)
    if (g_str_has_prefix (*l, prefix))
      n++;
  return n;
}

/* Waits until the queue of `dvm` holds `n` ready entries (the background
 * filler works). */
static void
wait_ready (QubeManager *manager, const char *dvm, guint n)
{
  for (int i = 0; i < 3000; i++)
    {
      g_autoptr(GPtrArray) ready = queued (manager, dvm, "ready");

      if (ready->len == n)
        return;
      g_usleep (100 * 1000);
    }
  ck_abort_msg ("the preload queue of '%s' never held %u ready entries", dvm, n);
}

/* preload-dispvm-max of `dvm` set to `max` and the queue filled: its
 * ready entries, `max` of them. */
static GPtrArray *
preload (QubeManager *manager, QubeVm *dvm, guint max)
{
  g_autofree char *value = g_strdup_printf ("%u", max);
  g_autoptr(QubeVm) admin = qube_manager_lookup (manager, "dom0", NULL);
  GPtrArray *ready;

  /* A test that failed while it held the refills (hold_refill) left the
   * hold in the shared state: it is not this test's failure. */
  ck_assert (admin != NULL);
  qube_vm_remove_feature (admin, "preload-dispvm-threshold", NULL);
  set_feature (dvm, "preload-dispvm-max", value);
  fill (manager);
  ready = queued (manager, qube_vm_get_name (dvm), "ready");
  ck_assert_uint_eq (ready->len, max);
  return ready;
}

/* Holds (or lets go) every refill of the preload queues while the ready
 * entries stay queued: dom0's preload-dispvm-threshold asks for more free
 * memory than any host has.  Lowering preload-dispvm-max would not do:
 * the qrexec daemon's next look at the queues removes what is above the
 * new maximum, racing the requests that were meant to take it. */
static void
hold_refill (QubeManager *manager, gboolean hold)
{
  g_autoptr(QubeVm) admin = qube_manager_lookup (manager, "dom0", NULL);

  ck_assert (admin != NULL);
  if (hold)
    set_feature (admin, "preload-dispvm-threshold", "100000000");
  else
    ck_assert (qube_vm_remove_feature (admin, "preload-dispvm-threshold", NULL));
}

/* preload-dispvm-max 0: the queue drains, no disposable of `dvm` stays. */
static void
drain (QubeManager *manager, QubeVm *dvm)
{
  set_feature (dvm, "preload-dispvm-max", "0");
  fill (manager);
  ck_assert_uint_eq (queued (manager, qube_vm_get_name (dvm), NULL)->len, 0);
  assert_no_disposable_of (manager, qube_vm_get_name (dvm));
}

/* ---- disposables -------------------------------------------------------- */

START_TEST (test_run_dispvm)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) dvm = make_dvm (manager, "dvm-run");
  g_autoptr(GError) error = NULL;
  g_autofree char *out1 = NULL;
  g_autofree char *out2 = NULL;
  g_autofree char *out3 = NULL;
  g_auto(GStrv) lines1 = NULL;

  /* Something in the disposable template's private volume. */
  ck_assert_msg (qube_vm_start (dvm, &error), "%s", error ? error->message : "");
  ck_assert_int_eq (qube_cli (&out1, "run", "--user=root", "dvm-run", "--", "sh", "-c",
                              "echo from-dvm > /rw/marker && sync", NULL), 0);
  ck_assert_msg (qube_vm_shutdown (dvm, TRUE, &error), "%s", error ? error->message : "");
  g_clear_pointer (&out1, g_free);

  /* A disposable sees it, its own writes go nowhere, the command's exit
   * code comes back. */
  ck_assert_int_eq (qube_cli (&out1, "run", "--user=root", "--dispvm=dvm-run", "--", "sh", "-c",
                              "uname -n; cat /rw/marker; echo mine > /rw/mine; sync; exit 3",
                              NULL), 3);
  lines1 = g_strsplit (out1, "\n", -1);
  ck_assert_msg (g_str_has_prefix (lines1[0], "disp"), "%s", out1);
  ck_assert_str_eq (lines1[1], "from-dvm");
  assert_disposable_gone (manager, lines1[0]);

  /* The global default_dispvm is the default; a new disposable has none
   * of the last one's writes, and the template's private is unchanged. */
  ck_assert_msg (qube_manager_set_property (manager, "default_dispvm", "dvm-run", &error), "%s",
                 error ? error->message : "");
  ck_assert_int_eq (qube_cli (&out2, "run", "--dispvm", "--", "sh", "-c",
                              "uname -n; ls /rw/mine 2>/dev/null || echo clean", NULL), 0);
  {
    g_auto(GStrv) lines2 = g_strsplit (out2, "\n", -1);

    ck_assert_msg (g_str_has_prefix (lines2[0], "disp") && !g_str_equal (lines2[0], lines1[0]),
                   "%s", out2);
    ck_assert_str_eq (lines2[1], "clean");
    assert_disposable_gone (manager, lines2[0]);
  }
  ck_assert_msg (qube_manager_reset_property (manager, "default_dispvm", &error), "%s",
                 error ? error->message : "");
  /* Without a disposable template there is none to make. */
  ck_assert_int_ne (qube_cli (&out3, "run", "--dispvm", "--", "true", NULL), 0);
}
END_TEST

/* A named disposable keeps its name; each start begins from the
 * disposable template's private again. */
START_TEST (test_named_dispvm_discarded_at_shutdown)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) dvm = make_dvm (manager, "dvm-named");
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) named = qube_manager_create_vm (manager, "DispVM", "named-disp", "dvm-named",
                                                    NULL, &error);
  g_autofree char *out = NULL;

  ck_assert_msg (named != NULL, "%s", error ? error->message : "");
  ck_assert_msg (qube_vm_start (named, &error), "%s", error ? error->message : "");
  ck_assert_int_eq (qube_cli (&out, "run", "--user=root", "named-disp", "--", "sh", "-c",
                              "echo x > /rw/kept && sync", NULL), 0);
  ck_assert_msg (qube_vm_shutdown (named, TRUE, &error), "%s", error ? error->message : "");
  g_clear_pointer (&out, g_free);
  ck_assert_msg (qube_vm_start (named, &error), "%s", error ? error->message : "");
  ck_assert_int_eq (qube_cli (&out, "run", "named-disp", "--", "sh", "-c",
                              "ls /rw/kept 2>/dev/null || echo clean", NULL), 0);
  ck_assert_str_eq (out, "clean\n");
  ck_assert_msg (qube_vm_kill (named, &error), "%s", error ? error->message : "");
  /* Not removed: only unnamed disposables are. */
  for (int i = 0; i < 50; i++)
    g_usleep (100 * 1000);
  {
    g_autoptr(QubeVm) still = qube_manager_lookup (manager, "named-disp", &error);

    ck_assert_msg (still != NULL, "%s", error ? error->message : "");
  }
}
END_TEST

/* qrexec-client-vm in a qube calls @dispvm: the call runs in a new
 * disposable, destroyed when the call ends; the qube's default_dispvm
 * decides which template. */
START_TEST (test_qrexec_call_to_dispvm)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) dvm = make_dvm (manager, "dvm-call");
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) caller = qube_manager_create_vm (manager, "AppVM", "caller", TEMPLATE, NULL,
                                                     &error);
  g_autofree char *out = NULL;
  g_autofree char *refused = NULL;

  ck_assert_msg (caller != NULL, "%s", error ? error->message : "");
  ck_assert (qube_vm_set_property (caller, "default_dispvm", "dvm-call", &error));
  ck_assert_msg (qube_vm_start (caller, &error), "%s", error ? error->message : "");
  ck_assert_int_eq (qube_cli (&out, "run", "caller", "--", "sh", "-c",
                              "echo 'uname -n' | qrexec-client-vm @dispvm qubes.VMShell", NULL), 0);
  ck_assert_msg (g_str_has_prefix (out, "disp"), "%s", out);
  g_strchomp (out);
  assert_disposable_gone (manager, out);
  /* Not in the policy: refused, and no disposable is made. */
  ck_assert_int_eq (qube_cli (&refused, "run", "caller", "--", "sh", "-c",
                              "echo 'uname -n' | qrexec-client-vm @dispvm qubes.Other", NULL), 126);
  ck_assert_uint_eq (disposables_of (manager, "dvm-call")->len, 0);
  ck_assert_msg (qube_vm_kill (caller, &error), "%s", error ? error->message : "");
}
END_TEST

/* admin.vm.CreateDisposable: a running disposable, removed once it
 * stops. */
START_TEST (test_admin_create_disposable)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) dvm = make_dvm (manager, "dvm-admin");
  g_autoptr(QubeAdmin) admin = qube_admin_new (manager, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) reply = qube_admin_call (admin, "dom0", "admin.vm.CreateDisposable", NULL,
                                             "dvm-admin", NULL);
  g_autofree char *name = NULL;
  g_autoptr(QubeVm) vm = NULL;
  gsize len;
  const char *data;

  ck_assert (reply != NULL);
  data = g_bytes_get_data (reply, &len);
  ck_assert_msg (len > 2 && data[0] == '0', "%.*s", (int) len, data);
  name = g_strndup (data + 2, len - 2);
  ck_assert_msg (g_str_has_prefix (name, "disp"), "%s", name);
  vm = qube_manager_lookup (manager, name, &error);
  ck_assert_msg (vm != NULL, "%s", error ? error->message : "");
  ck_assert_str_eq (qube_vm_get_state (vm), "Running");
  /* It powers off by itself: the qrexec daemon sees it stop and removes
   * it. */
  {
    g_autofree char *out = NULL;

    qube_cli (&out, "run", "--user=root", name, "--", "sh", "-c", "poweroff -f", NULL);
  }
  assert_disposable_gone (manager, name);
}
END_TEST

/* ---- preloading --------------------------------------------------------- */

START_TEST (test_preload_queue)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) dvm = make_dvm (manager, "dvm-pre");
  g_autoptr(GPtrArray) ready = NULL;
  g_autoptr(GPtrArray) after = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *listing = NULL;
  g_autofree char *first = NULL;

  set_feature (dvm, "preload-dispvm-max", "2");
  ck_assert (qube_dispvm_preload_wanted (manager));
  ready = preload (manager, dvm, 2);
  first = g_strdup (ready->pdata[0]);
  ck_assert_uint_eq (count_events (manager, "dvm-pre", "start", NULL), 2);
  /* Paused and hidden from listings. */
  for (guint i = 0; i < ready->len; i++)
    {
      g_autoptr(QubeVm) vm = qube_manager_lookup (manager, ready->pdata[i], &error);

      ck_assert_msg (vm != NULL, "%s", error ? error->message : "");
      ck_assert_str_eq (qube_vm_get_state (vm), "Paused");
    }
  ck_assert_int_eq (qube_cli (&listing, "list", NULL), 0);
  ck_assert_msg (strstr (listing, first) == NULL, "%s", listing);
  g_clear_pointer (&listing, g_free);
  ck_assert_int_eq (qube_cli (&listing, "list", "--all", NULL), 0);
  ck_assert_msg (strstr (listing, first) != NULL, "%s", listing);

  /* A request takes the first fresh one. */
  ck_assert_int_eq (qube_cli (&out, "run", "--dispvm=dvm-pre", "--", "uname", "-n", NULL), 0);
  g_strchomp (out);
  ck_assert_str_eq (out, first);
  ck_assert_uint_eq (count_events (manager, "dvm-pre", "used", first), 1);
  assert_disposable_gone (manager, first);
  /* The queue refills in the background (the discard worker fills). */
  wait_ready (manager, "dvm-pre", 2);
  ck_assert_uint_eq (count_events (manager, "dvm-pre", "start", NULL), 3);

  /* A lower maximum removes the surplus: the newest. */
  set_feature (dvm, "preload-dispvm-max", "1");
  fill (manager);
  after = queued (manager, "dvm-pre", NULL);
  ck_assert_uint_eq (after->len, 1);
  ck_assert_uint_eq (count_events (manager, "dvm-pre", "removed", NULL), 1);

  /* The template's root changes (a new revision): the queued one is
   * outdated, discarded once and replaced once, no more. */
  {
    g_autoptr(QubeVm) tvm = qube_manager_lookup (manager, TEMPLATE, NULL);
    g_autoptr(QubeVolume) root = qube_vm_get_volume (tvm, "root", &error);
    g_autofree char *image = g_build_filename (state_dir, "root-export.img", NULL);
    g_autofree char *old = g_strdup (after->pdata[0]);
    g_autoptr(GPtrArray) renewed = NULL;

    ck_assert_msg (root != NULL, "%s", error ? error->message : "");
    ck_assert_msg (qube_volume_export_file (root, image, NULL, NULL, &error), "%s",
                   error ? error->message : "");
    ck_assert_msg (qube_volume_import_file (root, image, NULL, NULL, &error), "%s",
                   error ? error->message : "");
    g_unlink (image);
    fill (manager);
    renewed = queued (manager, "dvm-pre", "ready");
    ck_assert_uint_eq (renewed->len, 1);
    ck_assert_str_ne (renewed->pdata[0], old);
    ck_assert_uint_eq (count_events (manager, "dvm-pre", "removed", old), 1);
    assert_disposable_gone (manager, old);
    /* Nothing more to do: no loop. */
    ck_assert (!qube_dispvm_preload_wanted (manager));
    fill (manager);
    g_ptr_array_unref (renewed);
    renewed = queued (manager, "dvm-pre", "ready");
    ck_assert_uint_eq (renewed->len, 1);
  }

  /* Max 0 drains the queue. */
  drain (manager, dvm);
}
END_TEST

/* A preload whose guest never comes up (it gets 1 s to answer, a boot
 * takes longer) is removed, reported, not retried at once, and does not
 * block requests. */
START_TEST (test_preload_guest_never_up)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) dvm = make_dvm (manager, "dvm-bad");
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  set_feature (dvm, "qrexec-timeout", "1");
  set_feature (dvm, "preload-dispvm-max", "1");
  fill (manager);
  ck_assert_uint_eq (queued (manager, "dvm-bad", NULL)->len, 0);
  ck_assert_uint_eq (count_events (manager, "dvm-bad", "start", NULL), 1);
  ck_assert_uint_eq (count_events (manager, "dvm-bad", "removed", NULL), 1);
  /* The reason is reported with the event. */
  {
    g_autofree char *path = qube_dispvm_events_path (manager);
    g_autofree char *events = NULL;

    ck_assert (g_file_get_contents (path, &events, NULL, NULL));
    ck_assert_msg (strstr (events, "its qrexec agent did not answer in 1 s") != NULL, "%s",
                   events);
  }
  assert_no_disposable_of (manager, "dvm-bad");
  /* Not booted again in a loop. */
  ck_assert (!qube_dispvm_preload_wanted (manager));
  /* A request starts one of its own. */
  ck_assert (qube_vm_remove_feature (dvm, "qrexec-timeout", &error));
  /* No new preload once the failure's pause is over (a cold start under
   * load may take that long): it is not what this test looks at. */
  set_feature (dvm, "preload-dispvm-max", "0");
  ck_assert_int_eq (qube_cli (&out, "run", "--dispvm=dvm-bad", "--", "uname", "-n", NULL), 0);
  ck_assert_msg (g_str_has_prefix (out, "disp"), "%s", out);
  g_strchomp (out);
  assert_disposable_gone (manager, out);
}
END_TEST

/* The host keeps less free memory than the threshold asks: no preload
 * is made, nothing is started. */
START_TEST (test_preload_threshold)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) dvm = make_dvm (manager, "dvm-mem");
  g_autoptr(QubeVm) admin = qube_manager_lookup (manager, "dom0", NULL);

  set_feature (admin, "preload-dispvm-threshold", "100000000");
  set_feature (dvm, "preload-dispvm-max", "2");
  fill (manager);
  ck_assert_uint_eq (queued (manager, "dvm-mem", NULL)->len, 0);
  ck_assert_uint_eq (disposables_of (manager, "dvm-mem")->len, 0);
  ck_assert_uint_eq (count_events (manager, "dvm-mem", "start", NULL), 0);
  set_feature (dvm, "preload-dispvm-max", "0");
  ck_assert (qube_vm_remove_feature (admin, "preload-dispvm-threshold", NULL));
}
END_TEST

/* Removing a disposable template that has preloads is refused, naming
 * them (they are qubes made from it); with preload-dispvm-max 0 the
 * queue drains and the removal goes through. */
START_TEST (test_preload_template_removed)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) dvm = make_dvm (manager, "dvm-gone");
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ready = NULL;

  ready = preload (manager, dvm, 1);
  ck_assert (!qube_manager_remove_vm (manager, "dvm-gone", &error));
  ck_assert_msg (g_error_matches (error, QUBE_ERROR, QUBE_ERROR_IN_USE)
                 && strstr (error->message, ready->pdata[0]) != NULL, "%s", error->message);
  g_clear_error (&error);
  /* The preload is still good. */
  ck_assert_uint_eq (queued (manager, "dvm-gone", "ready")->len, 1);
  drain (manager, dvm);
  ck_assert_msg (qube_manager_remove_vm (manager, "dvm-gone", &error), "%s",
                 error ? error->message : "");
  /* Its queue goes with it. */
  fill (manager);
  ck_assert_uint_eq (queued (manager, "dvm-gone", NULL)->len, 0);
}
END_TEST

/* Eight requests at once with two preloaded: the two go to two
 * requests, the other six start their own, no disposable serves two. */
START_TEST (test_concurrent_requests)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) dvm = make_dvm (manager, "dvm-many");
  g_autofree char *qube = g_build_filename (builddir, "cli", "qube", NULL);
  g_autoptr(GPtrArray) ready = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GSubprocess *procs[8];
  guint from_queue = 0;
  g_autoptr(GError) vcpus_error = NULL;

  /* Six cold boots at once on a small machine take about 20 s under TCG:
   * the start timeout bounds a broken guest, not this one's speed.  One
   * vCPU each: six guests' emulated CPUs share the host's two, and a
   * guest starved in early boot is what this test may not wait for. */
  set_feature (dvm, "qrexec-timeout", "240");
  ck_assert_msg (qube_vm_set_property (dvm, "vcpus", "1", &vcpus_error), "%s",
                 vcpus_error != NULL ? vcpus_error->message : "");
  ready = preload (manager, dvm, 2);
  /* No refill while the requests run: the counts stay exact. */
  hold_refill (manager, TRUE);
  for (guint i = 0; i < G_N_ELEMENTS (procs); i++)
    {
      g_autoptr(GError) error = NULL;

      procs[i] = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, qube, "--state-dir",
                                   state_dir, "run", "--dispvm=dvm-many", "--", "uname", "-n",
                                   NULL);
      ck_assert_msg (procs[i] != NULL, "%s", error ? error->message : "");
    }
  for (guint i = 0; i < G_N_ELEMENTS (procs); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *out = NULL;

      ck_assert_msg (g_subprocess_communicate_utf8 (procs[i], NULL, NULL, &out, NULL, &error),
                     "%s", error ? error->message : "");
      ck_assert_msg (g_subprocess_get_exit_status (procs[i]) == 0, "request %u failed", i);
      g_strchomp (out);
      ck_assert_msg (g_str_has_prefix (out, "disp"), "%s", out);
      ck_assert_msg (!g_hash_table_contains (seen, out), "'%s' served two requests", out);
      g_hash_table_add (seen, g_strdup (out));
      for (guint j = 0; j < ready->len; j++)
        if (g_str_equal (out, ready->pdata[j]))
          from_queue++;
      g_object_unref (procs[i]);
    }
  ck_assert_uint_eq (from_queue, 2);
  set_feature (dvm, "preload-dispvm-max", "0");
  hold_refill (manager, FALSE);
  {
    GHashTableIter iter;
    gpointer key;

    g_hash_table_iter_init (&iter, seen);
    while (g_hash_table_iter_next (&iter, &key, NULL))
      assert_disposable_gone (manager, key);
  }
}
END_TEST

/* A call that crashes its disposable (the guest powers off at once):
 * the call fails, the disposable is gone, the next request works. */
START_TEST (test_call_crashes_disposable)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) dvm = make_dvm (manager, "dvm-crash");
  g_autoptr(GPtrArray) ready = NULL;
  g_autofree char *out = NULL;
  g_autofree char *next = NULL;

  ready = preload (manager, dvm, 1);
  hold_refill (manager, TRUE);
  ck_assert_int_ne (qube_cli (&out, "run", "--user=root", "--dispvm=dvm-crash", "--", "sh", "-c",
                              "echo o > /proc/sysrq-trigger; sleep 60", NULL), 0);
  /* The call went to the preloaded one, which is gone with its crash. */
  ck_assert_uint_eq (count_events (manager, "dvm-crash", "used", ready->pdata[0]), 1);
  assert_disposable_gone (manager, ready->pdata[0]);
  set_feature (dvm, "preload-dispvm-max", "0");
  hold_refill (manager, FALSE);
  ck_assert_int_eq (qube_cli (&next, "run", "--dispvm=dvm-crash", "--", "uname", "-n", NULL), 0);
  g_strchomp (next);
  assert_disposable_gone (manager, next);
}
END_TEST

/* The qrexec daemon ends (SIGTERM) while a disposable it handed out is
 * still held by its user (this process keeps the connection open): the
 * disposable goes with the daemon, nothing of it is left. */
START_TEST (test_daemon_end_destroys_handed_out)
{
  g_autoptr(QubeManager) manager = open_manager ();
  g_autoptr(QubeVm) dvm = make_dvm (manager, "dvm-term");
  g_autoptr(GPtrArray) ready = preload (manager, dvm, 1);
  g_autoptr(GError) error = NULL;
  g_autofree char *pidfile = g_build_filename (qube_manager_get_runtime_dir (manager),
                                               "qrexec-daemon.pid", NULL);
  g_autofree char *pid_text = NULL;
  g_autofree char *name = qube_dispvm_take_preloaded (manager, "dvm-term", &error);

  ck_assert_msg (name != NULL, "%s", error != NULL ? error->message : "none was ready");
  ck_assert_str_eq (name, ready->pdata[0]);
  /* No refill: the handed-out one is what is at stake. */
  set_feature (dvm, "preload-dispvm-max", "0");
  {
    g_autoptr(QubeVm) vm = qube_manager_lookup (manager, name, &error);

    ck_assert_msg (vm != NULL, "%s", error != NULL ? error->message : "");
    ck_assert_str_eq (qube_vm_get_state (vm), "Running");
  }
  ck_assert (g_file_get_contents (pidfile, &pid_text, NULL, NULL));
  ck_assert_int_eq (kill ((pid_t) g_ascii_strtoll (pid_text, NULL, 10), SIGTERM), 0);
  /* Its pid file goes last, after what it destroys at exit. */
  for (int i = 0; i < GONE_WAIT_S * 10 && g_file_test (pidfile, G_FILE_TEST_EXISTS); i++)
    g_usleep (100 * 1000);
  ck_assert_msg (!g_file_test (pidfile, G_FILE_TEST_EXISTS), "the qrexec daemon did not end");
  assert_disposable_gone (manager, name);
  drain (manager, dvm);
}
END_TEST

int
main (void)
{
  Suite *suite;
  TCase *tc;
  SRunner *runner;
  int failed;
  int ready = kvm_qube_fixture_setup ("dispvm", "qubes.VMShell * caller @dispvm allow\n",
                                      &state_dir, &builddir);

  if (ready != 0)
    return ready;
  suite = suite_create ("dispvm");
  tc = tcase_create ("disposables");
  tcase_set_timeout (tc, CASE_TIMEOUT_S);
  tcase_add_test (tc, test_run_dispvm);
  tcase_add_test (tc, test_named_dispvm_discarded_at_shutdown);
  tcase_add_test (tc, test_qrexec_call_to_dispvm);
  tcase_add_test (tc, test_admin_create_disposable);
  suite_add_tcase (suite, tc);
  tc = tcase_create ("preload");
  tcase_set_timeout (tc, CASE_TIMEOUT_S);
  tcase_add_test (tc, test_preload_queue);
  tcase_add_test (tc, test_preload_guest_never_up);
  tcase_add_test (tc, test_preload_threshold);
  tcase_add_test (tc, test_preload_template_removed);
  tcase_add_test (tc, test_concurrent_requests);
  tcase_add_test (tc, test_call_crashes_disposable);
  tcase_add_test (tc, test_daemon_end_destroys_handed_out);
  suite_add_tcase (suite, tc);
  runner = srunner_create (suite);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  kvm_qube_fixture_teardown (state_dir, failed == 0);
  return failed == 0 ? 0 : 1;
}
