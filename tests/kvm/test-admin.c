/* test-admin.c — the Admin API with real qubes: qubed starts and stops
 * QEMU microvm qubes (TCG here), and a management qube manages the qubes
 * it made, calling through qrexec-client-vm as Qubes' management qubes do:
 * its admin.* calls go to the qrexec daemon, which forwards them to qubed,
 * which the policy lets decide.  admin.Events shows the lifecycle, also of
 * a qube whose QEMU died by itself; qubed killed with SIGKILL comes back
 * and finds the running qubes again.
 *
 * Two qubes boot at most (the machine is small): "mgmt" and its "child".
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "kvm-qube-fixture.h"
#include "qube.h"
#include "qubed-fixture.h"

#define TEMPLATE KVM_QUBE_TEMPLATE
/* Boots take 3-10 s under TCG on a loaded machine: generous, never a
 * measure. */
#define CASE_TIMEOUT_S 900
/* How long a read of admin.Events may wait before the test gives up
 * rather than hang; not a measure either. */
#define EVENT_WAIT_S 300

static char *state_dir;
static char *builddir;
static char *policy_dir;
static char *socket_path;
static char *qrexec_socket_path;
static char *log_path;
static GSubprocess *qubed;

/* The policy of the delegation: mgmt creates AppVMs, and manages only
 * the qubes that carry created-by-mgmt. */
static const char policy[] =
  "admin.vm.Create.AppVM * mgmt @adminvm allow target=dom0\n"
  "admin.vm.Start * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.Kill * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.Remove * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.List * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.property.Get * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.property.Set * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.tag.List * mgmt @tag:created-by-mgmt allow target=dom0\n";

static void
start_qubed (void)
{
  g_autofree char *program = g_build_filename (builddir, "daemon", "qubed", NULL);
  g_autoptr(GError) error = NULL;
  const char *extra[] = { "--watch-interval", "1", NULL };

  qubed = qubed_fixture_spawn (program, state_dir, policy_dir, socket_path, qrexec_socket_path,
                               log_path, NULL, extra, &error);
  ck_assert_msg (qubed != NULL, "cannot start qubed: %s", error ? error->message : "");
}

static void
write_all (int fd, const void *data, gsize len)
{
  ck_assert_msg (qubed_fixture_write_all (fd, data, len), "send: %s", g_strerror (errno));
}

/* One call as dom0 on qubed's socket: its whole reply. */
static GByteArray *
admin (const char *header, const char *payload)
{
  int fd = qubed_fixture_connect (socket_path);
  GByteArray *reply;

  ck_assert_msg (fd >= 0, "cannot connect to %s", socket_path);
  write_all (fd, header, strlen (header) + 1);
  if (payload != NULL)
    write_all (fd, payload, strlen (payload));
  shutdown (fd, SHUT_WR);
  reply = qubed_fixture_read_all (fd);
  close (fd);
  return reply;
}

static gboolean
bytes_equal (const guint8 *data, gsize len, const char *expected, gsize expected_len)
{
  return len == expected_len && memcmp (data, expected, len) == 0;
}

/* NULs shown as '|', for messages. */
static char *
show (const guint8 *data, gsize len)
{
  char *s = g_malloc (len + 1);

  for (gsize i = 0; i < len; i++)
    s[i] = data[i] == '\0' ? '|' : (char) data[i];
  s[len] = '\0';
  return s;
}

/* An OK reply with exactly `content`. */
static void
assert_ok (GByteArray *reply, const char *content)
{
  g_autoptr(GByteArray) r = reply;
  g_autoptr(GString) expected = g_string_new_len ("0\0", 2);
  g_autofree char *shown = show (r->data, r->len);

  g_string_append (expected, content);
  ck_assert_msg (bytes_equal (r->data, r->len, expected->str, expected->len),
                 "expected OK '%s', got '%s'", content, shown);
}

/* Runs `command` in qube `name` (as its default user); its exit code,
 * and its whole output in *out. */
static int
run_in (const char *name, const char *command, GBytes **out)
{
  g_autoptr(QubeManager) manager = qube_manager_new (state_dir, NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (state_dir, "run-output", NULL);
  g_autofree char *text = NULL;
  gsize len = 0;
  int fd = g_open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int exit_code = -1;

  ck_assert_int_ge (fd, 0);
  ck_assert_msg (qube_qrexec_run (manager, name, NULL, command, QUBE_QREXEC_RUN_NO_STDIN, -1, fd,
                                  2, &exit_code, &error),
                 "%s: %s", command, error ? error->message : "");
  close (fd);
  ck_assert (g_file_get_contents (path, &text, &len, NULL));
  *out = g_bytes_new_take (g_steal_pointer (&text), len);
  return exit_code;
}

/* What mgmt gets for `qrexec-client-vm TARGET SERVICE` with `input` on
 * stdin: the reply bytes, and the exit code. */
static int
mgmt_call (const char *target, const char *service, const char *input, GBytes **reply)
{
  g_autofree char *command = g_strdup_printf ("printf '%s' | qrexec-client-vm %s %s",
                                              input != NULL ? input : "", target, service);

  return run_in ("mgmt", command, reply);
}

static void
assert_mgmt_ok (const char *target, const char *service, const char *input, const char *content)
{
  g_autoptr(GBytes) reply = NULL;
  g_autoptr(GString) expected = g_string_new_len ("0\0", 2);
  int code = mgmt_call (target, service, input, &reply);
  gsize len;
  const guint8 *data = g_bytes_get_data (reply, &len);
  g_autofree char *shown = show (data, len);

  g_string_append (expected, content);
  ck_assert_msg (code == 0 && bytes_equal (data, len, expected->str, expected->len),
                 "mgmt: %s to %s: exit %d, '%s'; expected '%s'", service, target, code, shown,
                 content);
}

/* Refused by the policy: qrexec's 126, and nothing on stdout. */
static void
assert_mgmt_denied (const char *target, const char *service)
{
  g_autoptr(GBytes) reply = NULL;
  int code = mgmt_call (target, service, NULL, &reply);

  ck_assert_msg (code == 126 && g_bytes_get_size (reply) == 0,
                 "mgmt: %s to %s: expected a refusal, got exit %d and %zu bytes", service, target,
                 code, g_bytes_get_size (reply));
}

static int
subscribe (void)
{
  const char *header = "admin.Events dom0 name dom0";
  int fd = qubed_fixture_connect (socket_path);
  struct timeval tv = { .tv_sec = EVENT_WAIT_S };

  ck_assert_int_ge (fd, 0);
  write_all (fd, header, strlen (header) + 1);
  shutdown (fd, SHUT_WR);
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/* Reads events until `event` about `subject`; the events passed on the
 * way are appended to `seen` ("subject:event\n"). */
static void
wait_event (int fd, const char *subject, const char *event, GString *seen)
{
  for (;;)
    {
      g_autoptr(GPtrArray) fields = g_ptr_array_new_with_free_func (g_free);
      GString *field = g_string_new (NULL);
      char header[2];
      gboolean done = FALSE;

      ck_assert_msg (recv (fd, header, 2, MSG_WAITALL) == 2 && header[0] == '1',
                     "admin.Events ended before %s of '%s'; seen:\n%s", event, subject, seen->str);
      /* subject, event, then key/value pairs up to an empty key */
      while (!done)
        {
          char ch;

          ck_assert_int_eq (recv (fd, &ch, 1, 0), 1);
          if (ch != '\0')
            {
              g_string_append_c (field, ch);
              continue;
            }
          done = fields->len >= 2 && fields->len % 2 == 0 && field->len == 0;
          g_ptr_array_add (fields, g_string_free (field, FALSE));
          field = g_string_new (NULL);
        }
      g_string_free (field, TRUE);
      g_string_append_printf (seen, "%s:%s\n", (char *) fields->pdata[0],
                              (char *) fields->pdata[1]);
      if (g_str_equal (fields->pdata[0], subject) && g_str_equal (fields->pdata[1], event))
        return;
    }
}

static char *
vm_line (const char *name, const char *klass, const char *state)
{
  g_autoptr(QubeManager) manager = qube_manager_new (state_dir, NULL);
  g_autoptr(QubeVm) vm = qube_manager_lookup (manager, name, NULL);

  ck_assert_ptr_nonnull (vm);
  return g_strdup_printf ("%s class=%s state=%s uuid=%s\n", name, klass, state,
                          qube_vm_get_uuid (vm));
}

/* Runs the built `qube` command: through qubed (QUBED_SOCKET), or
 * embedded on the state directory.  Its exit status. */
static int
qube_cli (gboolean embedded, ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_auto(GStrv) envp = g_get_environ ();
  g_autoptr(GError) error = NULL;
  g_autofree char *err = NULL;
  int wait_status = 0;
  const char *arg;
  va_list ap;

  g_ptr_array_add (argv, g_build_filename (builddir, "cli", "qube", NULL));
  if (embedded)
    {
      g_ptr_array_add (argv, g_strdup ("--embedded"));
      envp = g_environ_setenv (envp, "QUBE_STATE_DIR", state_dir, TRUE);
      envp = g_environ_unsetenv (envp, "QUBED_SOCKET");
    }
  else
    {
      envp = g_environ_unsetenv (envp, "QUBE_STATE_DIR");
      envp = g_environ_setenv (envp, "QUBED_SOCKET", socket_path, TRUE);
    }
  va_start (ap, embedded);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  ck_assert_msg (g_spawn_sync (NULL, (char **) argv->pdata, envp, G_SPAWN_STDOUT_TO_DEV_NULL,
                               NULL, NULL, NULL, &err, &wait_status, &error),
                 "%s", error ? error->message : "");
  if (!WIFEXITED (wait_status) || WEXITSTATUS (wait_status) != 0)
    g_printerr ("qube: %s", err);
  return WIFEXITED (wait_status) ? WEXITSTATUS (wait_status) : -1;
}

START_TEST (test_delegation)
{
  g_autoptr(GString) seen = g_string_new (NULL);
  g_autofree char *mgmt_running = NULL;
  g_autofree char *child_running = NULL;
  g_autofree char *child_halted = NULL;
  g_autofree char *log = NULL;
  int events;
  pid_t qemu;

  if (qubed == NULL)
    start_qubed ();
  events = subscribe ();
  wait_event (events, "", "connection-established", seen);

  /* dom0 makes the management qube and a qube of its own, and starts the
   * management qube through qubed. */
  assert_ok (admin ("admin.vm.Create.AppVM+" TEMPLATE " dom0 keyword adminvm",
                    "name=mgmt label=purple"), "");
  assert_ok (admin ("admin.vm.Create.AppVM+" TEMPLATE " dom0 keyword adminvm",
                    "name=other label=red"), "");
  /* `qube start` goes through qubed when its socket is there. */
  ck_assert_int_eq (qube_cli (FALSE, "start", "mgmt", NULL), 0);
  wait_event (events, "mgmt", "domain-pre-start", seen);
  wait_event (events, "mgmt", "domain-start", seen);
  mgmt_running = vm_line ("mgmt", "AppVM", "Running");
  assert_ok (admin ("admin.vm.List dom0 name mgmt", NULL), mgmt_running);

  /* mgmt creates a qube over qrexec: it carries created-by-mgmt. */
  assert_mgmt_ok ("dom0", "admin.vm.Create.AppVM+" TEMPLATE, "name=child label=green", "");
  wait_event (events, "", "domain-add", seen);
  assert_ok (admin ("admin.vm.tag.List dom0 name child", NULL), "created-by-mgmt\n");
  /* ... configures it, starts it, sees it run. */
  assert_mgmt_ok ("child", "admin.vm.property.Set+memory", "300", "");
  assert_mgmt_ok ("child", "admin.vm.property.Get+memory", NULL, "default=False type=int 300");
  assert_mgmt_ok ("child", "admin.vm.Start", NULL, "");
  wait_event (events, "child", "domain-start", seen);
  child_running = vm_line ("child", "AppVM", "Running");
  assert_mgmt_ok ("child", "admin.vm.List", NULL, child_running);

  /* Every other qube is refused, and the tag cannot be forged. */
  assert_mgmt_denied ("other", "admin.vm.Start");
  assert_mgmt_denied ("other", "admin.vm.property.Get+memory");
  assert_mgmt_denied ("mgmt", "admin.vm.Kill");
  assert_mgmt_denied ("other", "admin.vm.tag.Set+created-by-mgmt");
  assert_mgmt_denied ("dom0", "admin.vm.Create.TemplateVM");
  assert_ok (admin ("admin.vm.List dom0 name other", NULL), vm_line ("other", "AppVM", "Halted"));

  /* qubed dies with SIGKILL while both qubes run, and a new one finds
   * them again; mgmt's calls reach the new one. */
  g_subprocess_send_signal (qubed, SIGKILL);
  g_subprocess_wait (qubed, NULL, NULL);
  g_clear_object (&qubed);
  close (events);
  start_qubed ();
  events = subscribe ();
  wait_event (events, "", "connection-established", seen);
  assert_ok (admin ("admin.vm.List dom0 name mgmt", NULL), mgmt_running);
  assert_ok (admin ("admin.vm.List dom0 name child", NULL), child_running);
  assert_mgmt_ok ("child", "admin.vm.property.Get+memory", NULL, "default=False type=int 300");

  /* The child's QEMU dies by itself: qubed notices and says so. */
  ck_assert_uint_eq (kvm_qube_fixture_qemu_count (state_dir, "child", &qemu), 1);
  ck_assert_int_eq (kill (qemu, SIGKILL), 0);
  wait_event (events, "child", "domain-shutdown", seen);
  child_halted = vm_line ("child", "AppVM", "Halted");
  assert_ok (admin ("admin.vm.List dom0 name child", NULL), child_halted);
  ck_assert (g_file_get_contents (log_path, &log, NULL, NULL));
  ck_assert_msg (strstr (log, "qube 'child' went from Running to Halted by itself") != NULL,
                 "%s", log);

  /* mgmt starts it again, kills it, and removes it. */
  assert_mgmt_ok ("child", "admin.vm.Start", NULL, "");
  wait_event (events, "child", "domain-start", seen);
  assert_mgmt_ok ("child", "admin.vm.Kill", NULL, "");
  wait_event (events, "child", "domain-shutdown", seen);
  assert_mgmt_ok ("child", "admin.vm.Remove", NULL, "");
  wait_event (events, "", "domain-delete", seen);
  {
    g_autoptr(GByteArray) gone = admin ("admin.vm.List dom0 name child", NULL);

    ck_assert (gone->len > 2 && gone->data[0] == '2');
  }

  /* The embedded CLI stops it behind qubed's back: qubed notices. */
  ck_assert_int_eq (qube_cli (TRUE, "kill", "mgmt", NULL), 0);
  wait_event (events, "mgmt", "domain-shutdown", seen);
  assert_ok (admin ("admin.vm.List dom0 name mgmt", NULL), vm_line ("mgmt", "AppVM", "Halted"));
  close (events);
}
END_TEST

/* A start that cannot succeed (the guest never runs its agent) holds the
 * worker until its qrexec-timeout: qubed answers other calls meanwhile,
 * then reports the failure, and nothing of the qube is left. */
START_TEST (test_failed_start_in_background)
{
  g_autoptr(GString) seen = g_string_new (NULL);
  g_autoptr(GByteArray) reply = NULL;
  g_autoptr(GByteArray) list = NULL;
  g_autofree char *shown = NULL;
  const char *header = "admin.vm.Start dom0 name mute";
  char probe;
  int events, pending;

  if (qubed == NULL)
    start_qubed ();
  events = subscribe ();
  wait_event (events, "", "connection-established", seen);
  assert_ok (admin ("admin.vm.Create.AppVM+" TEMPLATE " dom0 keyword adminvm", "name=mute"), "");
  assert_ok (admin ("admin.vm.property.Set+kernelopts dom0 name mute", "rdinit=/bin/sh"), "");
  assert_ok (admin ("admin.vm.feature.Set+qrexec-timeout dom0 name mute", "15"), "");

  pending = qubed_fixture_connect (socket_path);
  ck_assert_int_ge (pending, 0);
  write_all (pending, header, strlen (header) + 1);
  shutdown (pending, SHUT_WR);
  wait_event (events, "mute", "domain-pre-start", seen);
  /* The start goes on; the daemon answers. */
  list = admin ("admin.vm.List dom0 name mute", NULL);
  ck_assert (list->len > 2 && list->data[0] == '0');
  ck_assert_int_eq (recv (pending, &probe, 1, MSG_DONTWAIT), -1);
  ck_assert_int_eq (errno, EAGAIN);

  wait_event (events, "mute", "domain-start-failed", seen);
  reply = qubed_fixture_read_all (pending);
  close (pending);
  shown = show (reply->data, reply->len);
  ck_assert_msg (reply->len > 2 && reply->data[0] == '2' && strstr (shown, "did not answer") != NULL,
                 "%s", shown);
  assert_ok (admin ("admin.vm.List dom0 name mute", NULL), vm_line ("mute", "AppVM", "Halted"));
  assert_ok (admin ("admin.vm.Remove dom0 name mute", NULL), "");
  ck_assert_uint_eq (kvm_qube_fixture_qemu_count (state_dir, "mute", NULL), 0);
  close (events);
}
END_TEST

/* A disposable with none preloaded is started for admin.vm.CreateDisposable
 * in the worker: qubed answers other calls while it boots, then replies
 * with the running disposable's name. */
START_TEST (test_cold_disposable_in_background)
{
  const char *header = "admin.vm.CreateDisposable dom0 name dvm-cold";
  g_autoptr(GByteArray) reply = NULL;
  g_autoptr(GByteArray) list = NULL;
  g_autofree char *name = NULL;
  g_autofree char *shown = NULL;
  char probe;
  int pending;

  if (qubed == NULL)
    start_qubed ();
  assert_ok (admin ("admin.vm.Create.AppVM+" TEMPLATE " dom0 keyword adminvm", "name=dvm-cold"),
             "");
  assert_ok (admin ("admin.vm.property.Set+template_for_dispvms dom0 name dvm-cold", "True"), "");

  pending = qubed_fixture_connect (socket_path);
  ck_assert_int_ge (pending, 0);
  write_all (pending, header, strlen (header) + 1);
  shutdown (pending, SHUT_WR);
  /* The boot goes on; the daemon answers. */
  list = admin ("admin.vm.List dom0 name dvm-cold", NULL);
  ck_assert (list->len > 2 && list->data[0] == '0');
  ck_assert_int_eq (recv (pending, &probe, 1, MSG_DONTWAIT), -1);
  ck_assert_int_eq (errno, EAGAIN);

  reply = qubed_fixture_read_all (pending);
  close (pending);
  shown = show (reply->data, reply->len);
  ck_assert_msg (reply->len > 2 && reply->data[0] == '0' && reply->data[1] == '\0', "%s", shown);
  name = g_strndup ((const char *) reply->data + 2, reply->len - 2);
  ck_assert_msg (g_str_has_prefix (name, "disp"), "%s", shown);
  {
    g_autofree char *query = g_strdup_printf ("admin.vm.List dom0 name %s", name);

    assert_ok (admin (query, NULL), vm_line (name, "DispVM", "Running"));
  }
  ck_assert_int_eq (qube_cli (TRUE, "kill", name, NULL), 0);
}
END_TEST

/* examples/admin-daemon.py on a real qube: Qube-1.0 from Python creates
 * a qube, starts it, runs a command in it, stops and removes it. */
START_TEST (test_python_example)
{
  const char *srcdir = g_getenv ("QUBE_TEST_SRCDIR");
  g_autofree char *example = g_build_filename (srcdir != NULL ? srcdir : builddir, "examples",
                                               "admin-daemon.py", NULL);
  g_autofree char *libs = g_build_filename (builddir, "core", ".libs", NULL);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_auto(GStrv) envp = g_get_environ ();
  g_autoptr(GError) error = NULL;
  const char *argv[] = { "/usr/bin/python3", example, state_dir, TEMPLATE, NULL };
  int wait_status = 0;

  envp = g_environ_setenv (envp, "GI_TYPELIB_PATH", builddir, TRUE);
  envp = g_environ_setenv (envp, "LD_LIBRARY_PATH", libs, TRUE);
  ck_assert_msg (g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &out,
                               &err, &wait_status, &error),
                 "%s", error ? error->message : "");
  ck_assert_msg (WIFEXITED (wait_status) && WEXITSTATUS (wait_status) == 0,
                 "the example failed:\n%s%s", out, err);
  ck_assert_msg (strstr (out, "event: work domain-start \n") != NULL, "%s", out);
  ck_assert_msg (strstr (out, "run: exit 0: hello from work\n") != NULL, "%s", out);
  ck_assert_msg (strstr (out, "event: work domain-shutdown \n") != NULL, "%s", out);
  ck_assert_msg (strstr (out, "work is Halted\n") != NULL, "%s", out);
  ck_assert_msg (strstr (out, "event: dom0 domain-delete vm work") != NULL, "%s", out);
  ck_assert_msg (strstr (err, "CRITICAL") == NULL && strstr (err, "Warning") == NULL, "%s", err);
}
END_TEST

int
main (void)
{
  g_autoptr(GError) error = NULL;
  Suite *suite;
  TCase *tc;
  SRunner *runner;
  int failed;
  int ready;

  /* qubed and the qrexec daemon it spawns read the same policy. */
  ready = kvm_qube_fixture_setup ("admin", policy, &state_dir, &builddir);
  if (ready != 0)
    return ready;
  policy_dir = g_strdup (g_getenv ("QUBE_POLICY_DIR"));
  socket_path = g_build_filename (state_dir, "qubed.sock", NULL);
  log_path = g_build_filename (state_dir, "qubed.log", NULL);
  {
    g_autoptr(QubeManager) manager = qube_manager_new (state_dir, &error);

    g_assert_no_error (error);
    /* Where the qrexec daemon looks for qubed. */
    qrexec_socket_path = g_build_filename (qube_manager_get_runtime_dir (manager),
                                           QUBE_ADMIN_QREXEC_SOCKET, NULL);
  }

  suite = suite_create ("admin");
  tc = tcase_create ("delegation");
  tcase_set_timeout (tc, CASE_TIMEOUT_S);
  tcase_add_test (tc, test_delegation);
  tcase_add_test (tc, test_failed_start_in_background);
  tcase_add_test (tc, test_cold_disposable_in_background);
  suite_add_tcase (suite, tc);
  {
    g_autofree char *typelib = g_build_filename (builddir, "Qube-1.0.typelib", NULL);

    /* Built with introspection only. */
    if (g_file_test (typelib, G_FILE_TEST_EXISTS))
      {
        tc = tcase_create ("python");
        tcase_set_timeout (tc, CASE_TIMEOUT_S);
        tcase_add_test (tc, test_python_example);
        suite_add_tcase (suite, tc);
      }
    else
      printf ("test-admin: no Qube-1.0.typelib (built without introspection): "
              "the Python example is not run\n");
  }
  runner = srunner_create (suite);
  /* One process: the case uses the qubed this one started. */
  srunner_set_fork_status (runner, CK_NOFORK);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  if (qubed != NULL)
    {
      g_subprocess_send_signal (qubed, SIGTERM);
      g_subprocess_wait (qubed, NULL, NULL);
      g_clear_object (&qubed);
    }
  if (failed != 0)
    g_printerr ("test-admin: the state directory %s is kept (qubed's log: %s)\n", state_dir,
                log_path);
  /* A failed case may have left its qubes running: none stays. */
  kvm_qube_fixture_teardown (state_dir, failed == 0);
  return failed == 0 ? 0 : 1;
}
