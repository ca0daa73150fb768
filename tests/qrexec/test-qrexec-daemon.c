/* test-qrexec-daemon.c — the qube-qrexec-daemon program's request socket
 * (RUNTIME/qrexec-daemon.sock), as qube_vm_start() uses it: a client that
 * is slow to send its request holds up no other client and is dropped in
 * the end; a start is answered "ready" once the qube's agent says hello,
 * even when the agent comes up after the request, and before the qube's
 * start is complete, while commands wait for it (qube-agent
 * --commands-after); a start that cannot connect is answered with the
 * cause when its time is up.
 *
 * The qube's agent is a qube-agent process on this host over the socket
 * vchan transport (as in tests/qrexec/fixture-qubes).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "qube.h"

static char *tmp_dir;
static char *state_dir;
static char *socket_path;
static GPid daemon_pid;
static GPid agent_pid;

static char *
build_path (const char *rel)
{
  return g_build_filename (g_getenv ("QUBE_TEST_BUILDDIR"), rel, NULL);
}

static GPid
spawn (const char *const *argv, char **envp)
{
  g_autoptr(GError) error = NULL;
  GPid pid = 0;

  ck_assert_msg (g_spawn_async (NULL, (char **) argv, envp, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                &pid, &error), "cannot run %s: %s", argv[0],
                 error != NULL ? error->message : "");
  return pid;
}

static void
stop (GPid *pid)
{
  if (*pid == 0)
    return;
  kill (*pid, SIGTERM);
  waitpid (*pid, NULL, 0);
  g_spawn_close_pid (*pid);
  *pid = 0;
}

static int
try_connect (void)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  ck_assert_int_ge (fd, 0);
  g_strlcpy (sun.sun_path, socket_path, sizeof sun.sun_path);
  if (connect (fd, (struct sockaddr *) &sun, sizeof sun) == 0)
    return fd;
  close (fd);
  return -1;
}

static int
connect_daemon (void)
{
  int fd = try_connect ();

  ck_assert_msg (fd >= 0, "cannot connect to %s: %s", socket_path, g_strerror (errno));
  return fd;
}

static void
send_text (int fd, const char *text)
{
  ck_assert_int_eq (send (fd, text, strlen (text), MSG_NOSIGNAL), (gssize) strlen (text));
}

/* The daemon's answer line, without its newline ("" when it closed). */
static char *
read_line (int fd)
{
  GString *line = g_string_new (NULL);
  char ch;

  while (recv (fd, &ch, 1, 0) == 1 && ch != '\n')
    g_string_append_c (line, ch);
  return g_string_free (line, FALSE);
}

static void
setup (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) manager = NULL;
  g_autoptr(QubeVm) vm = NULL;
  g_autofree char *daemon = build_path ("cli/qube-qrexec-daemon");
  const char *argv[] = { daemon, "--state-dir", NULL, NULL };

  tmp_dir = g_dir_make_tmp ("qrexec-daemon-XXXXXX", &error);
  ck_assert_ptr_nonnull (tmp_dir);
  state_dir = g_build_filename (tmp_dir, "state", NULL);
  g_unsetenv ("QUBE_RUNTIME_DIR");
  manager = qube_manager_new (state_dir, &error);
  ck_assert_msg (manager != NULL, "%s", error != NULL ? error->message : "");
  vm = qube_manager_create_vm (manager, "StandaloneVM", "work", NULL, NULL, &error);
  ck_assert_msg (vm != NULL, "%s", error != NULL ? error->message : "");
  socket_path = g_build_filename (qube_manager_get_runtime_dir (manager), QUBE_QREXEC_DAEMON_SOCKET,
                                  NULL);
  argv[2] = state_dir;
  daemon_pid = spawn (argv, NULL);
  /* Listening once a connection is accepted (it then sends nothing and
   * goes, which the daemon takes as no request). */
  for (int i = 0; i < 1000; i++)
    {
      int fd = try_connect ();

      if (fd >= 0)
        {
          close (fd);
          return;
        }
      g_usleep (10 * 1000);
    }
  ck_abort_msg ("the daemon does not listen on %s", socket_path);
}

static void
teardown (void)
{
  g_autofree char *cmd = NULL;

  stop (&agent_pid);
  stop (&daemon_pid);
  cmd = g_strdup_printf ("rm -rf '%s'", tmp_dir);
  (void) !system (cmd);
  g_clear_pointer (&tmp_dir, g_free);
  g_clear_pointer (&state_dir, g_free);
  g_clear_pointer (&socket_path, g_free);
}

/* Starts the agent of qube 'work' on this host; with `commands_after`,
 * its commands wait for that file. */
static void
start_agent (const char *commands_after)
{
  g_autoptr(QubeManager) manager = qube_manager_new (state_dir, NULL);
  g_autofree char *rundir = qube_qrexec_qube_runtime_dir (manager, "work");
  g_autofree char *transport = g_strdup_printf ("socket:%s", rundir);
  g_autofree char *agent = build_path ("agent/qube-agent");
  g_autofree char *trigger = g_build_filename (rundir, "agent.sock", NULL);
  g_auto(GStrv) envp = g_get_environ ();
  g_autofree char *after = commands_after != NULL ? g_strdup_printf ("--commands-after=%s", commands_after)
                                                   : NULL;
  const char *argv[] = { agent, "--default-user", g_get_user_name (), after, NULL };

  g_mkdir_with_parents (rundir, 0700);
  envp = g_environ_setenv (envp, "QUBE_AGENT_TRANSPORT", transport, TRUE);
  envp = g_environ_setenv (envp, "QREXEC_AGENT_SOCKET", trigger, TRUE);
  agent_pid = spawn (argv, envp);
}

START_TEST (test_slow_client_holds_up_nobody)
{
  int slow = connect_daemon ();
  int other;
  g_autofree char *answer = NULL;
  g_autofree char *slow_answer = NULL;
  char ch;

  /* Half a request, the rest to come later. */
  send_text (slow, "disconn");
  other = connect_daemon ();
  send_text (other, "disconnect nosuch\n");
  answer = read_line (other);
  ck_assert_str_eq (answer, "ok");
  /* The slow client was not given up on to serve the other one. */
  errno = 0;
  ck_assert_int_eq (recv (slow, &ch, 1, MSG_DONTWAIT), -1);
  ck_assert_int_eq (errno, EAGAIN);
  send_text (slow, "ect nosuch\n");
  slow_answer = read_line (slow);
  ck_assert_str_eq (slow_answer, "ok");
  close (slow);
  close (other);
}
END_TEST

START_TEST (test_silent_client_dropped)
{
  int silent = connect_daemon ();
  int other;
  g_autofree char *answer = NULL;
  g_autofree char *silent_answer = NULL;

  /* Never sends: the daemon closes it without an answer ... */
  silent_answer = read_line (silent);
  ck_assert_str_eq (silent_answer, "");
  /* ... and goes on serving. */
  other = connect_daemon ();
  send_text (other, "disconnect nosuch\n");
  answer = read_line (other);
  ck_assert_str_eq (answer, "ok");
  close (silent);
  close (other);
}
END_TEST

START_TEST (test_overlong_request_dropped)
{
  int fd = connect_daemon ();
  g_autofree char *junk = g_strnfill (600, 'x');
  g_autofree char *answer = NULL;
  g_autofree char *other_answer = NULL;
  int other;

  send_text (fd, junk);
  answer = read_line (fd);
  ck_assert_str_eq (answer, "");
  other = connect_daemon ();
  send_text (other, "disconnect nosuch\n");
  other_answer = read_line (other);
  ck_assert_str_eq (other_answer, "ok");
  close (fd);
  close (other);
}
END_TEST

START_TEST (test_start_ready_when_agent_comes_up)
{
  int fd = connect_daemon ();
  g_autofree char *answer = NULL;

  send_text (fd, "connect work socket 60\n");
  /* The guest "boots" after the request. */
  g_usleep (200 * 1000);
  start_agent (NULL);
  answer = read_line (fd);
  ck_assert_str_eq (answer, "ready");
  close (fd);
}
END_TEST

/* Makes the file `data` names, a moment later (as the guest's /init does
 * once the rest of the start is done). */
static gpointer
complete_start (gpointer data)
{
  g_usleep (500 * 1000);
  return GINT_TO_POINTER (g_file_set_contents (data, "", 0, NULL));
}

START_TEST (test_commands_wait_for_the_start)
{
  g_autoptr(QubeManager) manager = qube_manager_new (state_dir, NULL);
  g_autofree char *started = g_build_filename (tmp_dir, "started", NULL);
  g_autofree char *command = g_strdup_printf ("test -e '%s' && echo after the start", started);
  g_autofree char *answer = NULL;
  g_autoptr(GError) error = NULL;
  GThread *completer;
  int fd = connect_daemon ();
  int out[2];
  char buf[64] = "";
  int exit_code = -1;

  start_agent (started);
  send_text (fd, "connect work socket 60\n");
  /* The agent answers the daemon before the qube's start is complete ... */
  answer = read_line (fd);
  ck_assert_str_eq (answer, "ready");
  close (fd);
  ck_assert (!g_file_test (started, G_FILE_TEST_EXISTS));
  /* ... and runs a command only once it is. */
  completer = g_thread_new ("start", complete_start, started);
  ck_assert_int_eq (pipe (out), 0);
  ck_assert_msg (qube_qrexec_run (manager, "work", NULL, command, QUBE_QREXEC_RUN_NO_STDIN, -1,
                                  out[1], 2, &exit_code, &error),
                 "%s", error != NULL ? error->message : "");
  close (out[1]);
  ck_assert (GPOINTER_TO_INT (g_thread_join (completer)));
  ck_assert_int_eq (exit_code, 0);
  ck_assert_int_gt (read (out[0], buf, sizeof buf - 1), 0);
  ck_assert_str_eq (buf, "after the start\n");
  close (out[0]);
}
END_TEST

START_TEST (test_start_that_cannot_connect_says_why)
{
  int fd = connect_daemon ();
  g_autofree char *answer = NULL;

  send_text (fd, "connect work nosuch-transport 2\n");
  answer = read_line (fd);
  ck_assert_msg (g_str_has_prefix (answer, "error ") && strstr (answer, "nosuch-transport") != NULL,
                 "answer: %s", answer);
  close (fd);
}
END_TEST

static Suite *
daemon_suite (void)
{
  Suite *s = suite_create ("qube-qrexec-daemon");
  TCase *tc = tcase_create ("requests");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_slow_client_holds_up_nobody);
  tcase_add_test (tc, test_silent_client_dropped);
  tcase_add_test (tc, test_overlong_request_dropped);
  tcase_add_test (tc, test_start_ready_when_agent_comes_up);
  tcase_add_test (tc, test_commands_wait_for_the_start);
  tcase_add_test (tc, test_start_that_cannot_connect_says_why);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *runner = srunner_create (daemon_suite ());
  int failed;

  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
