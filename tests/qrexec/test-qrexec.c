/* test-qrexec.c — qrexec end to end: `qube run` in a qube, services and
 * their environment, qube-to-qube calls under the policy, and guests that
 * break the protocol.
 *
 * The qubes are pretended by tests/qrexec/fixture-qubes (qube-agent
 * processes on this host over the socket vchan transport, with the real
 * qrexec daemon); the hostile guests are played by this program, speaking
 * raw qrexec over the same transport with the guest's transport code.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "qube-run.h"

#include "data-io.h"
#include "transport.h"
#include "qrexec-wire.h"

static char *tmp_dir;
static char *state_dir;
static char *policy_dir;
static char *fixture_log;
static GSubprocess *fixture;
static GDataInputStream *fixture_out;
static const AgentTransport *transport = &agent_transport_socket;


static char *
build_path (const char *first, ...)
{
  return g_build_filename (g_getenv ("QUBE_TEST_BUILDDIR"), first, NULL);
}

/* The environment of every `qube` run. */
static char **
run_environ (void)
{
  g_autofree char *socket = build_path ("plugins/socket/.libs", NULL);
  g_autofree char *storage = build_path ("plugins/storage-file/.libs", NULL);
  /* Every qube gets volumes: the file pool is needed too. */
  g_autofree char *plugins = g_strjoin (":", socket, storage, NULL);
  char **envp = g_get_environ ();

  envp = g_environ_setenv (envp, "QUBE_STATE_DIR", state_dir, TRUE);
  envp = g_environ_setenv (envp, "QUBE_PLUGIN_PATH", plugins, TRUE);
  envp = g_environ_setenv (envp, "LC_ALL", "C.UTF-8", TRUE);
  envp = g_environ_unsetenv (envp, "QUBE_ASK_AGENT");
  return g_environ_unsetenv (envp, "G_MESSAGES_DEBUG");
}

/* Runs `qube ARGS…` with stdin from `in_path` (or /dev/null), stdout to
 * `out_path` (or captured), stderr captured.  g_spawn_sync, not
 * GSubprocess: tests run in forked children, where GLib's worker thread
 * that reaps GSubprocess children does not exist. */
static Run *
qube_runv (const char *in_path, const char *out_path, const char *const *args)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_auto(GStrv) envp = run_environ ();
  g_autoptr(GError) error = NULL;
  g_autofree char *out_file = out_path != NULL ? g_strdup (out_path)
                                               : g_build_filename (tmp_dir, "run.out", NULL);
  g_autofree char *err_file = g_build_filename (tmp_dir, "run.err", NULL);
  Run *run = g_new0 (Run, 1);
  int wait_status = 0;

  g_ptr_array_add (argv, g_strdup ("/bin/sh"));
  g_ptr_array_add (argv, g_strdup ("-c"));
  g_ptr_array_add (argv, g_strdup ("exec \"$0\" \"$@\" <\"$RUN_IN\" >\"$RUN_OUT\" 2>\"$RUN_ERR\""));
  g_ptr_array_add (argv, build_path ("cli/qube", NULL));
  for (const char *const *a = args; *a != NULL; a++)
    g_ptr_array_add (argv, g_strdup (*a));
  g_ptr_array_add (argv, NULL);
  envp = g_environ_setenv (envp, "RUN_IN", in_path != NULL ? in_path : "/dev/null", TRUE);
  envp = g_environ_setenv (envp, "RUN_OUT", out_file, TRUE);
  envp = g_environ_setenv (envp, "RUN_ERR", err_file, TRUE);
  if (!g_spawn_sync (NULL, (char **) argv->pdata, envp, G_SPAWN_DEFAULT, NULL, NULL, NULL, NULL,
                     &wait_status, &error))
    ck_abort_msg ("cannot run qube: %s", error->message);
  ck_assert_msg (WIFEXITED (wait_status), "qube did not exit normally (%d)", wait_status);
  run->status = WEXITSTATUS (wait_status);
  if (out_path == NULL)
    ck_assert (g_file_get_contents (out_file, &run->out, &run->out_len, NULL));
  ck_assert (g_file_get_contents (err_file, &run->err, NULL, NULL));
  return run;
}

#define qube_run(...) qube_runv (NULL, NULL, (const char *const[]) { __VA_ARGS__, NULL })
#define qube_run_io(in, out, ...) qube_runv (in, out, (const char *const[]) { __VA_ARGS__, NULL })

static void
write_file (const char *path, const char *text, int mode)
{
  ck_assert (g_file_set_contents (path, text, -1, NULL));
  ck_assert_int_eq (g_chmod (path, mode), 0);
}

static void
add_service (const char *qube, const char *name, const char *script)
{
  g_autofree char *dir = g_build_filename (state_dir, "rpc", qube, NULL);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autofree char *text = g_strdup_printf ("#!/bin/sh\n%s\n", script);

  g_mkdir_with_parents (dir, 0755);
  write_file (path, text, 0755);
}

static char *
read_log (void)
{
  g_autoptr(GError) error = NULL;
  char *text = NULL;

  if (!g_file_get_contents (fixture_log, &text, NULL, &error))
    ck_abort_msg ("cannot read the daemon's log: %s", error->message);
  return g_steal_pointer (&text);
}

/* ---- the fixture --------------------------------------------------------- */

static const char *fakes[] = { "evil-len", "evil-type", "evil-trunc", "evil-nul", "evil-port",
                               "evil-flood", "stock", "busy", "deaf", "again", "old", "old-called",
                               "old-caller", "cut", "cut-bad", "odd", "restart",
                               "stopped", NULL };

static gboolean with_ask_agent;
static int call_connect_timeout;   /* seconds; 0: the daemon's own */
static int last_data_port;         /* 0: the daemon's own */
static int control_queue_max;      /* 0: the daemon's own */

static void
setup (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocessLauncher) l = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *policy = NULL;
  g_autofree char *line = NULL;
  g_auto(GStrv) envp = NULL;

  tmp_dir = g_dir_make_tmp ("qube-qrexec-XXXXXX", &error);
  ck_assert (tmp_dir != NULL);
  state_dir = g_build_filename (tmp_dir, "state", NULL);
  policy_dir = g_build_filename (tmp_dir, "policy.d", NULL);
  fixture_log = g_build_filename (tmp_dir, "fixture.log", NULL);
  g_mkdir_with_parents (policy_dir, 0755);
  policy = g_build_filename (policy_dir, "30-test.policy", NULL);
  write_file (policy,
              "test.Env   *  work  vault          allow\n"
              "test.Echo  *  work  vault          allow\n"
              "test.Amp   *  work  vault          allow\n"
              "test.Quiet *  work  vault          allow\n"
              "test.Env   *  work  sys            deny\n"
              "test.Ask   *  work  vault          ask\n"
              "test.Ask   *  again vault          ask\n"
              "test.Disp  *  work  @dispvm:dvmt   allow\n"
              "test.Flood *  @anyvm @anyvm        deny\n"
              "test.Big   *  work  vault          allow\n"
              "test.Esc   *  work  vault          allow\n"
              "test.Old   *  work  old-called     allow\n"
              "test.Big   *  old-caller  vault    allow\n"
              "test.Cut   *  work  cut            allow\n"
              "test.Cut   *  work  cut-bad        allow\n"
              "test.Echo  *  busy  vault          allow\n"
              "test.Env   *  work  @adminvm       allow\n"
              "test.Env   *  odd   @default       deny\n"
              "test.Exit  *  work  vault          allow\n"
              "admin.vm.List         *  work  @adminvm  allow target=dom0\n"
              "admin.vm.feature.Set  *  work  work      allow target=dom0\n"
              "admin.vm.feature.Get  *  work  work      allow target=dom0\n"
              "admin.Events          *  work  @adminvm  allow target=dom0\n"
              "admin.Events          *  work  work      allow target=dom0\n", 0644);

  /* Qubes the fixture does not make: a disposable template, and one the
   * policy refuses calls to. */
  {
    g_autoptr(Run) r1 = qube_run ("create", "-C", "TemplateVM", "fedora");
    g_autoptr(Run) r2 = qube_run ("create", "-C", "AppVM", "-t", "fedora",
                                  "--property", "template_for_dispvms=True", "dvmt");
    g_autoptr(Run) r3 = qube_run ("create", "-C", "StandaloneVM", "sys");

    ck_assert_msg (r1->status == 0 && r2->status == 0 && r3->status == 0, "%s%s%s",
                   r1->err, r2->err, r3->err);
  }
  add_service ("work", "test.Env", "env | grep ^QREXEC_ | grep -v -e _SOCKET= -e _PATH= | sort");
  add_service ("vault", "test.Env", "env | grep ^QREXEC_ | grep -v -e _SOCKET= -e _PATH= | sort");
  add_service ("vault", "test.Echo", "exec cat");
  add_service ("vault", "test.Big", "head -c 1500000 /dev/zero");
  add_service ("vault", "test.Esc", "printf 'a\\033[2Jb\\n'; printf 'c\\033d\\a\\n' >&2");
  add_service ("vault", "test.Amp", "exec awk '{for(i=0;i<20;i++)print}'");
  {
    /* Closes its outputs, says who it is and who serves it, then keeps
     * reading its input. */
    g_autofree char *script = g_strdup_printf ("exec >/dev/null 2>&1\n"
                                               "echo $$ $PPID > '%s/quiet.fifo'\n"
                                               "exec cat > '%s/quiet.out'", tmp_dir, tmp_dir);

    add_service ("vault", "test.Quiet", script);
  }
  add_service ("vault", "test.Ask", "env | grep ^QREXEC_SERVICE_FULL_NAME=");
  add_service ("work", "test.Pick", "echo generic");
  add_service ("work", "test.Pick+special", "echo special");
  add_service ("work", "test.Exit", "echo \"exiting $1\"; exit \"$1\"");
  add_service ("vault", "test.Exit", "cat > /dev/null; exit \"$1\"");

  l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_set_flags (l, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDIN_PIPE);
  g_subprocess_launcher_set_stderr_file_path (l, fixture_log);
  g_ptr_array_add (argv, build_path ("tests/qrexec/fixture-qubes", NULL));
  g_ptr_array_add (argv, g_strdup_printf ("--state-dir=%s", state_dir));
  g_ptr_array_add (argv, g_strdup_printf ("--policy-dir=%s", policy_dir));
  g_ptr_array_add (argv, g_strdup ("--commands"));
  envp = run_environ ();
  if (with_ask_agent)
    {
      /* A prompt agent that allows a call with argument "yes" to the
       * first target offered, and refuses anything else; with argument
       * "later" it says it was asked (file TMP/asked) and allows once
       * TMP/go exists. */
      g_autofree char *agent = g_build_filename (tmp_dir, "ask-agent", NULL);
      g_autofree char *text = g_strdup_printf (
        "#!/bin/sh\n"
        "if [ \"$3\" = +later ]; then\n"
        "  touch '%s/asked'\n"
        "  while [ ! -e '%s/go' ]; do sleep 0.1; done\n"
        "  echo \"allow $5\"; exit 0\n"
        "fi\n"
        "if [ \"$3\" = +yes ]; then echo \"allow $5\"; else echo deny; fi\n", tmp_dir, tmp_dir);

      write_file (agent, text, 0755);
      /* As the qrexec daemon a start spawns learns of it. */
      envp = g_environ_setenv (envp, "QUBE_ASK_AGENT", agent, TRUE);
    }
  g_subprocess_launcher_set_environ (l, envp);
  if (call_connect_timeout > 0)
    g_ptr_array_add (argv, g_strdup_printf ("--call-connect-timeout=%d", call_connect_timeout));
  if (last_data_port > 0)
    g_ptr_array_add (argv, g_strdup_printf ("--last-data-port=%d", last_data_port));
  if (control_queue_max > 0)
    g_ptr_array_add (argv, g_strdup_printf ("--control-queue-max=%d", control_queue_max));
  for (const char **f = fakes; *f != NULL; f++)
    g_ptr_array_add (argv, g_strdup_printf ("--fake=%s", *f));
  g_ptr_array_add (argv, g_strdup ("work"));
  g_ptr_array_add (argv, g_strdup ("vault"));
  g_ptr_array_add (argv, NULL);
  fixture = g_subprocess_launcher_spawnv (l, (const char *const *) argv->pdata, &error);
  ck_assert_msg (fixture != NULL, "%s", error != NULL ? error->message : "");
  fixture_out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (fixture));
  line = g_data_input_stream_read_line (fixture_out, NULL, NULL, &error);
  ck_assert_msg (g_strcmp0 (line, "ready") == 0, "the fixture did not start: %s",
                 error != NULL ? error->message : "");
}

static void
setup_with_ask_agent (void)
{
  with_ask_agent = TRUE;
  setup ();
}

static void
setup_short_connect_timeout (void)
{
  call_connect_timeout = 3;
  setup ();
}

/* 16 KiB may wait for a qube on its control channel (past its ring). */
static void
setup_hostile (void)
{
  control_queue_max = 16384;
  setup ();
}

/* Three data ports (513-515): what holds a port shows. */
static void
setup_few_ports (void)
{
  last_data_port = 515;
  setup ();
}

static void
teardown (void)
{
  g_autofree char *cmd = NULL;

  with_ask_agent = FALSE;
  call_connect_timeout = 0;
  last_data_port = 0;
  control_queue_max = 0;
  if (fixture != NULL)
    {
      g_subprocess_send_signal (fixture, SIGTERM);
      g_subprocess_wait (fixture, NULL, NULL);
      g_clear_object (&fixture_out);
      g_clear_object (&fixture);
    }
  cmd = g_strdup_printf ("rm -rf '%s'", tmp_dir);
  (void) !system (cmd);
}

/* ---- qube run ------------------------------------------------------------ */

static void
assert_work_still_serves (void)
{
  g_autoptr(Run) run = qube_run ("run", "--no-stdin", "work", "--", "echo still here");

  ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
  ck_assert_str_eq (run->out, "still here\n");
}

static void
make_random_file (const char *path, gsize size)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  guint32 *data = g_malloc (size + 4);

  for (gsize i = 0; i < size / 4 + 1; i++)
    data[i] = g_rand_int (rand);
  /* Bytes that text-minded code mangles. */
  memcpy (data, "\0\n\r\0\xff", 5);
  ck_assert (g_file_set_contents (path, (const char *) data, (gssize) size, NULL));
  g_free (data);
}

static char *
file_sha256 (const char *path)
{
  g_autoptr(GMappedFile) map = g_mapped_file_new (path, FALSE, NULL);

  ck_assert (map != NULL);
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256,
                                      (const guchar *) g_mapped_file_get_contents (map),
                                      g_mapped_file_get_length (map));
}

static void
round_trip (gsize size)
{
  g_autofree char *in = g_build_filename (tmp_dir, "in.bin", NULL);
  g_autofree char *out = g_build_filename (tmp_dir, "out.bin", NULL);
  g_autofree char *sum_in = NULL;
  g_autofree char *sum_out = NULL;
  g_autoptr(Run) run = NULL;

  make_random_file (in, size);
  run = qube_run_io (in, out, "run", "work", "--", "cat");
  ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
  sum_in = file_sha256 (in);
  sum_out = file_sha256 (out);
  ck_assert_str_eq (sum_out, sum_in);
}

START_TEST (test_run_binary_round_trip)
{
  round_trip (1024 * 1024 + 17);
}
END_TEST

START_TEST (test_run_50mb_checksum)
{
  round_trip (50 * 1024 * 1024);
}
END_TEST

START_TEST (test_run_stderr_and_exit_codes)
{
  static const int codes[] = { 0, 1, 42 };

  for (gsize i = 0; i < G_N_ELEMENTS (codes); i++)
    {
      g_autofree char *cmd = g_strdup_printf ("echo out; echo err-%d >&2; exit %d", codes[i], codes[i]);
      g_autofree char *want_err = g_strdup_printf ("err-%d\n", codes[i]);
      g_autoptr(Run) run = qube_run ("run", "work", "--", cmd);

      ck_assert_int_eq (run->status, codes[i]);
      ck_assert_str_eq (run->out, "out\n");
      ck_assert_str_eq (run->err, want_err);
    }
}
END_TEST

START_TEST (test_run_arguments_are_quoted)
{
  g_autoptr(Run) run = qube_run ("run", "work", "--", "printf", "%s|", "a b", "$HOME", "it's");

  ck_assert_int_eq (run->status, 0);
  ck_assert_str_eq (run->out, "a b|$HOME|it's|");
}
END_TEST

START_TEST (test_run_command_keeps_its_scheduling)
{
  /* Field 41 of /proc/PID/stat (the 39th after the command name) is the
   * scheduling policy: the relay (the shell's parent) runs as a batch
   * task (3), the command with the policy the agent has (this process'
   * here), not the relay's. */
  g_autoptr(Run) run = qube_run ("run", "work", "--",
                                 "for p in self $PPID; do sed 's/.*) //' /proc/$p/stat | cut -d' ' -f39; done");
  g_autofree char *expected = g_strdup_printf ("%d\n%d\n", sched_getscheduler (0), SCHED_BATCH);

  ck_assert_int_ne (sched_getscheduler (0), SCHED_BATCH);
  ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
  ck_assert_str_eq (run->out, expected);
}
END_TEST

START_TEST (test_run_unknown_user_is_125)
{
  g_autoptr(Run) run = qube_run ("run", "--user", "no-such-user", "work", "--", "true");

  ck_assert_int_eq (run->status, 125);
  ck_assert_msg (strstr (run->err, "no-such-user") != NULL && strstr (run->err, "no such user") != NULL,
                 "stderr: %s", run->err);
}
END_TEST

START_TEST (test_run_as_another_user)
{
  g_autoptr(Run) run = NULL;

  if (geteuid () != 0)
    {
      /* The agent can only switch users as root. */
      return;
    }
  run = qube_run ("run", "--user", "nobody", "work", "--", "id -un");
  ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
  ck_assert_str_eq (run->out, "nobody\n");
}
END_TEST

START_TEST (test_run_missing_service_is_127)
{
  g_autoptr(Run) run = qube_run ("run", "--service", "test.Missing+x", "work");

  ck_assert_int_eq (run->status, 127);
  ck_assert_msg (strstr (run->err, "test.Missing+x") != NULL, "stderr: %s", run->err);
}
END_TEST

/* Plays a socket service on listening socket `listener`, in a child:
 * takes one connection, answers "desc=" and the service descriptor it
 * read up to its NUL, then echoes what comes until EOF; then, when
 * `hold`, keeps the connection open until killed. */
static pid_t
serve_socket_held (int listener, gboolean hold)
{
  pid_t pid = fork ();

  ck_assert_int_ge (pid, 0);
  if (pid == 0)
    {
      char buf[4096];
      size_t have = 0;
      ssize_t n;
      int c = accept (listener, NULL, NULL);

      if (c < 0)
        _exit (1);
      while (have == 0 || buf[have - 1] != '\0')
        {
          n = read (c, buf + have, 1);
          if (n <= 0 || ++have == sizeof buf)
            _exit (1);
        }
      dprintf (c, "desc=%s\n", buf);
      while ((n = read (c, buf, sizeof buf)) > 0)
        if (write (c, buf, (size_t) n) != n)
          _exit (1);
      while (hold)
        pause ();
      _exit (0);
    }
  close (listener);
  return pid;
}

static pid_t
serve_socket_once (int listener)
{
  return serve_socket_held (listener, FALSE);
}

/* A listening TCP socket on 127.0.0.1; its port in *port. */
static int
tcp_listener (int *port)
{
  struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t len = sizeof in;
  int s = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  ck_assert_int_ge (s, 0);
  ck_assert_int_eq (bind (s, (struct sockaddr *) &in, sizeof in), 0);
  ck_assert_int_eq (listen (s, 1), 0);
  ck_assert_int_eq (getsockname (s, (struct sockaddr *) &in, &len), 0);
  *port = ntohs (in.sin_port);
  return s;
}

/* A listening unix socket at `path`: a socket service's entry.  A path
 * longer than sun_path is bound from its directory. */
static int
unix_listener (const char *path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *name = g_path_get_basename (path);
  int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int here = open (".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int bound;

  ck_assert_int_ge (s, 0);
  ck_assert_int_ge (here, 0);
  ck_assert_uint_lt (strlen (name), sizeof sun.sun_path);
  ck_assert_int_eq (chdir (dir), 0);
  strcpy (sun.sun_path, name);
  bound = bind (s, (struct sockaddr *) &sun, sizeof sun);
  ck_assert_int_eq (fchdir (here), 0);
  close (here);
  ck_assert_int_eq (bound, 0);
  ck_assert_int_eq (listen (s, 1), 0);
  return s;
}

/* The kinds of service Qubes' agent runs, found as it finds them: the
 * first entry lstat() finds among SERVICE+ARG (an empty argument when
 * none was given), then SERVICE, decides. */
START_TEST (test_service_kinds)
{
  g_autofree char *dir = g_build_filename (state_dir, "rpc", "work", NULL);
  g_autofree char *sock_path = g_build_filename (dir, "test.Sock", NULL);
  g_autofree char *tcp_path = g_build_filename (dir, "test.Tcp", NULL);
  g_autofree char *tcp_arg_path = g_build_filename (dir, "test.TcpArg", NULL);
  g_autofree char *noexec = g_build_filename (dir, "test.NoExec+x", NULL);
  g_autofree char *in = g_build_filename (tmp_dir, "kinds-in.txt", NULL);
  g_autofree char *link = NULL, *tcp_arg = NULL;
  int s, port, status;
  pid_t server;

  write_file (in, "ping\n", 0644);
  /* An AF_UNIX socket: the descriptor first, then the call's data. */
  s = unix_listener (sock_path);
  server = serve_socket_once (s);
  {
    g_autoptr(Run) run = qube_run_io (in, NULL, "run", "--service", "test.Sock+a", "work");

    ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
    ck_assert_str_eq (run->out, "desc=test.Sock+a dom0\nping\n");
  }
  ck_assert_int_eq (waitpid (server, &status, 0), server);
  ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);

  /* One whose path is longer than a socket address holds (108 bytes). */
  {
    g_autofree char *arg = g_strnfill (90, 'L');
    g_autofree char *service = g_strconcat ("test.Sock+", arg, NULL);
    g_autofree char *long_path = g_build_filename (dir, service, NULL);
    g_autofree char *expected = g_strdup_printf ("desc=%s dom0\nping\n", service);
    g_autoptr(Run) run = NULL;

    ck_assert_uint_ge (strlen (long_path), sizeof ((struct sockaddr_un *) NULL)->sun_path);
    s = unix_listener (long_path);
    server = serve_socket_once (s);
    run = qube_run_io (in, NULL, "run", "--service", service, "work");
    ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
    ck_assert_str_eq (run->out, expected);
    ck_assert_int_eq (waitpid (server, &status, 0), server);
    ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  }

  /* A link to /dev/tcp/HOST/PORT, and to /dev/tcp/HOST with the port as
   * the argument. */
  s = tcp_listener (&port);
  link = g_strdup_printf ("/dev/tcp/127.0.0.1/%d", port);
  ck_assert_int_eq (symlink (link, tcp_path), 0);
  server = serve_socket_once (s);
  {
    g_autoptr(Run) run = qube_run_io (in, NULL, "run", "--service", "test.Tcp", "work");
    /* A link that names the port takes no argument (Qubes refuses it). */
    g_autoptr(Run) with_arg = qube_run ("run", "--no-stdin", "--service", "test.Tcp+1", "work");

    ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
    ck_assert_str_eq (run->out, "desc=test.Tcp dom0\nping\n");
    ck_assert_int_eq (with_arg->status, 125);
  }
  ck_assert_int_eq (waitpid (server, &status, 0), server);
  s = tcp_listener (&port);
  ck_assert_int_eq (symlink ("/dev/tcp/127.0.0.1", tcp_arg_path), 0);
  server = serve_socket_once (s);
  tcp_arg = g_strdup_printf ("test.TcpArg+%d", port);
  {
    g_autoptr(Run) run = qube_run_io (in, NULL, "run", "--service", tcp_arg, "work");
    g_autoptr(Run) bad = NULL;
    g_autofree char *expected = g_strdup_printf ("desc=%s dom0\nping\n", tcp_arg);

    ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
    ck_assert_str_eq (run->out, expected);
  }
  ck_assert_int_eq (waitpid (server, &status, 0), server);
  /* Qubes' rule: a port has no leading zero (were it taken, the call
   * would connect to this listener, which answers nothing, and wait). */
  s = tcp_listener (&port);
  {
    g_autofree char *zero = g_strdup_printf ("test.TcpArg+0%d", port);
    g_autoptr(Run) bad = qube_run ("run", "--no-stdin", "--service", zero, "work");

    ck_assert_int_eq (bad->status, 125);
  }
  close (s);

  /* A service that closes its connection ends the call, though the
   * caller's input is still open. */
  {
    g_autofree char *fifo = g_build_filename (tmp_dir, "kinds-fifo", NULL);
    g_autofree char *bye_path = g_build_filename (dir, "test.Bye", NULL);
    g_autoptr(Run) run = NULL;
    int hold;

    ck_assert_int_eq (mkfifo (fifo, 0600), 0);
    hold = open (fifo, O_RDWR);
    ck_assert_int_ge (hold, 0);
    s = unix_listener (bye_path);
    server = fork ();
    ck_assert_int_ge (server, 0);
    if (server == 0)
      {
        int c = accept (s, NULL, NULL);
        char ch = 1;

        /* The descriptor first (a service that closes before it came
         * would fail the call: the agent could not send it). */
        while (c >= 0 && ch != '\0')
          if (read (c, &ch, 1) != 1)
            _exit (1);
        _exit (c < 0 || write (c, "bye\n", 4) != 4);
      }
    close (s);
    run = qube_run_io (fifo, NULL, "run", "--service", "test.Bye", "work");
    close (hold);
    ck_assert_int_eq (waitpid (server, &status, 0), server);
    ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
    ck_assert_str_eq (run->out, "bye\n");
  }

  /* A link to nothing is passed over, as Qubes passes it. */
  {
    g_autofree char *dangling = g_build_filename (dir, "test.Dangling+x", NULL);
    g_autoptr(Run) run = NULL;

    ck_assert_int_eq (symlink ("/nonexistent/service", dangling), 0);
    add_service ("work", "test.Dangling", "echo found");
    run = qube_run ("run", "--no-stdin", "--service", "test.Dangling+x", "work");
    ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
    ck_assert_str_eq (run->out, "found\n");
  }

  /* SERVICE+ARG found first decides, even when it cannot run: 125. */
  write_file (noexec, "#!/bin/sh\necho never\n", 0644);
  add_service ("work", "test.NoExec", "echo bare");
  {
    g_autoptr(Run) run = qube_run ("run", "--no-stdin", "--service", "test.NoExec+x", "work");
    g_autoptr(Run) other = qube_run ("run", "--no-stdin", "--service", "test.NoExec+y", "work");

    ck_assert_int_eq (run->status, 125);
    ck_assert_str_eq (run->out, "");
    ck_assert_msg (other->status == 0, "status %d: %s", other->status, other->err);
    ck_assert_str_eq (other->out, "bare\n");
  }
  /* No argument: SERVICE+ is looked for first. */
  add_service ("work", "test.Plus+", "echo plus");
  add_service ("work", "test.Plus", "echo bare");
  {
    g_autoptr(Run) run = qube_run ("run", "--no-stdin", "--service", "test.Plus", "work");

    ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
    ck_assert_str_eq (run->out, "plus\n");
  }
}
END_TEST

/* Qubes' per-service settings (QUBES_RPC_CONFIG_PATH, for the fixture's
 * qubes STATE/rpc-config/NAME), SERVICE+ARG's before SERVICE's. */
START_TEST (test_service_config)
{
  g_autofree char *dir = g_build_filename (state_dir, "rpc-config", "work", NULL);
  g_autofree char *rpc = g_build_filename (state_dir, "rpc", "work", NULL);
  g_autofree char *sock_path = g_build_filename (rpc, "test.Raw", NULL);
  g_autofree char *in = g_build_filename (tmp_dir, "config-in.txt", NULL);
  pid_t server;
  int s;

  write_file (in, "ping\n", 0644);
  /* skip-service-descriptor: the socket gets the call's data alone (the
   * server here answers "desc=" and what comes up to the first NUL, then
   * echoes: the input echoed is all there is, after "desc=ping\n..."). */
  write_file (g_build_filename (dir, "test.Raw", NULL),
              "# a comment\nwait-for-session = 1\nskip-service-descriptor = true  # yes\n"
              "some-future-key = 'passed over'\n", 0644);
  s = unix_listener (sock_path);
  server = serve_socket_once (s);
  {
    g_autoptr(Run) run = NULL;
    int fd = open (in, O_WRONLY | O_APPEND);

    /* The server reads up to a NUL: the input brings one. */
    ck_assert_int_eq (write (fd, "\0tail\n", 6), 6);
    close (fd);
    run = qube_run_io (in, NULL, "run", "--service", "test.Raw", "work");
    ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
    ck_assert_str_eq (run->out, "desc=ping\n\ntail\n");
  }
  waitpid (server, NULL, 0);

  /* exit-on-client-eof: the call ends with the caller's input, though
   * the service keeps its connection open (without it, the call would
   * wait for the service). */
  write_file (g_build_filename (dir, "test.Held", NULL), "exit-on-client-eof = true\n", 0644);
  {
    g_autofree char *held_path = g_build_filename (rpc, "test.Held", NULL);
    g_autoptr(Run) run = NULL;

    s = unix_listener (held_path);
    server = serve_socket_held (s, TRUE);
    run = qube_run_io (in, NULL, "run", "--service", "test.Held", "work");
    kill (server, SIGKILL);
    waitpid (server, NULL, 0);
    ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
    /* What the service sent before the input's end may or may not have
     * come through: no more than that. */
    ck_assert (g_str_has_prefix ("desc=test.Held dom0\nping\n", run->out));
  }

  /* A file that does not parse: 125, nothing runs. */
  add_service ("work", "test.BadConf", "echo ran");
  write_file (g_build_filename (dir, "test.BadConf+x", NULL), "force-user = \"root\"\n", 0644);
  {
    g_autoptr(Run) run = qube_run ("run", "--no-stdin", "--service", "test.BadConf+x", "work");
    g_autoptr(Run) other = qube_run ("run", "--no-stdin", "--service", "test.BadConf+y", "work");

    ck_assert_int_eq (run->status, 125);
    ck_assert_str_eq (run->out, "");
    ck_assert_msg (strstr (run->err, "test.BadConf+x") != NULL, "%s", run->err);
    ck_assert_msg (other->status == 0, "status %d: %s", other->status, other->err);
    ck_assert_str_eq (other->out, "ran\n");
  }

  /* force-user: the service runs as that user whoever was asked for. */
  if (geteuid () == 0)
    {
      g_autoptr(Run) run = NULL;

      /* nobody must reach the service file. */
      ck_assert_int_eq (g_chmod (tmp_dir, 0711), 0);
      ck_assert_int_eq (g_chmod (state_dir, 0711), 0);
      add_service ("work", "test.Who", "id -un");
      write_file (g_build_filename (dir, "test.Who", NULL), "force-user = 'nobody'\n", 0644);
      run = qube_run ("run", "--no-stdin", "--service", "test.Who+any", "work");
      ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
      ck_assert_str_eq (run->out, "nobody\n");
    }
}
END_TEST

START_TEST (test_run_halted_qube_refused_without_autostart)
{
  g_autoptr(Run) run = qube_run ("run", "--no-autostart", "sys", "--", "true");

  ck_assert_int_eq (run->status, 125);
  ck_assert_msg (strstr (run->err, "qube 'sys' is not running") != NULL, "stderr: %s", run->err);
}
END_TEST

/* A halted qube is started by `qube run`: here no backend can run it
 * (only the socket plugin is there), so the start is what fails. */
START_TEST (test_run_halted_qube_is_started)
{
  g_autoptr(Run) run = qube_run ("run", "sys", "--", "true");

  ck_assert_int_eq (run->status, 125);
  ck_assert_msg (strstr (run->err, "cannot start qube 'sys'") != NULL, "stderr: %s", run->err);
}
END_TEST

START_TEST (test_run_unknown_qube_fails_clearly)
{
  g_autoptr(Run) run = qube_run ("run", "nosuch", "--", "true");

  ck_assert_int_eq (run->status, 125);
  ck_assert_msg (strstr (run->err, "nosuch") != NULL && strstr (run->err, "not running") == NULL,
                 "stderr: %s", run->err);
}
END_TEST

START_TEST (test_service_argument_and_environment)
{
  g_autoptr(Run) run = qube_run ("run", "--service", "test.Env+foo", "work");

  ck_assert_int_eq (run->status, 0);
  ck_assert_str_eq (run->out,
                    "QREXEC_REMOTE_DOMAIN=dom0\n"
                    "QREXEC_REQUESTED_TARGET_TYPE=\n"
                    "QREXEC_SERVICE_ARGUMENT=foo\n"
                    "QREXEC_SERVICE_FULL_NAME=test.Env+foo\n");
}
END_TEST

START_TEST (test_service_with_argument_file_first)
{
  g_autoptr(Run) special = qube_run ("run", "--service", "test.Pick+special", "work");
  g_autoptr(Run) other = qube_run ("run", "--service", "test.Pick+other", "work");
  g_autoptr(Run) exit42 = qube_run ("run", "--service", "test.Exit+42", "work");

  ck_assert_str_eq (special->out, "special\n");
  ck_assert_str_eq (other->out, "generic\n");
  ck_assert_int_eq (exit42->status, 42);
  ck_assert_str_eq (exit42->out, "exiting 42\n");
}
END_TEST

/* A non-blocking stdout (another program on the same pipe or terminal
 * set it so) read slowly: `qube run` waits for room and loses nothing. */
START_TEST (test_run_nonblocking_stdout_loses_nothing)
{
  g_auto(GStrv) envp = run_environ ();
  g_autofree char *qube = build_path ("cli/qube", NULL);
  char buf[65536];
  gsize total = 0;
  gssize n;
  int p[2], status;
  pid_t pid;

  ck_assert_int_eq (pipe (p), 0);
  ck_assert_int_eq (fcntl (p[1], F_SETFL, O_NONBLOCK), 0);
  pid = fork ();
  if (pid == 0)
    {
      dup2 (p[1], 1);
      close (p[0]);
      close (p[1]);
      execle (qube, qube, "run", "--no-stdin", "work", "--", "head -c 3000000 /dev/zero",
              (char *) NULL, envp);
      _exit (127);
    }
  close (p[1]);
  g_usleep (G_USEC_PER_SEC);
  while ((n = read (p[0], buf, sizeof buf)) > 0)
    total += (gsize) n;
  close (p[0]);
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);
  ck_assert_uint_eq (total, 3000000);
}
END_TEST

/* The fields of /proc/PID/stat after the command name (the state
 * first), or NULL when there is no such process. */
static char *
proc_stat_fields (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *stat = NULL;
  const char *end;

  if (!g_file_get_contents (path, &stat, NULL, NULL) || (end = strrchr (stat, ')')) == NULL ||
      end[1] != ' ')
    return NULL;
  return g_strdup (end + 2);
}

/* Whether process `pid` is gone (a zombie is). */
static gboolean
process_gone (pid_t pid)
{
  g_autofree char *fields = proc_stat_fields (pid);

  return fields == NULL || fields[0] == 'Z';
}

/* Waits until process `pid` is gone (the test's time limit ends a wait
 * that would not). */
static void
wait_gone (pid_t pid)
{
  while (!process_gone (pid))
    g_usleep (20000);
}

/* The CPU time process `pid` used so far, in clock ticks; -1 when it is
 * gone. */
static long
cpu_ticks (pid_t pid)
{
  g_autofree char *fields = proc_stat_fields (pid);
  unsigned long utime, stime;

  if (fields == NULL || fields[0] == 'Z' ||
      sscanf (fields, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
    return -1;
  return (long) (utime + stime);
}

/* Until process `pid` is gone, it does not spin: in every second it
 * waits, it uses well under a quarter of a CPU second. */
static void
assert_idle_until_gone (pid_t pid, const char *what)
{
  long quarter = sysconf (_SC_CLK_TCK) / 4;

  for (;;)
    {
      long before = cpu_ticks (pid), after;

      if (before < 0)
        return;
      g_usleep (G_USEC_PER_SEC);
      after = cpu_ticks (pid);
      if (after < 0)
        return;
      ck_assert_msg (after - before < quarter, "%s (pid %d) used %ld ticks of CPU in a second",
                     what, (int) pid, after - before);
    }
}

/* `qube ARGS...` started with its stdin a pipe (its write end in *input,
 * or -1 for stdin from `in_path`), its output in files; returns its pid. */
static GPid
qube_start (int *input, const char *in_path, const char *const *args)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_auto(GStrv) envp = run_environ ();
  g_autoptr(GError) error = NULL;
  GPid pid;

  g_ptr_array_add (argv, g_strdup ("/bin/sh"));
  g_ptr_array_add (argv, g_strdup ("-c"));
  g_ptr_array_add (argv, g_strdup (in_path != NULL ? "exec \"$0\" \"$@\" <\"$RUN_IN\" >/dev/null 2>&1"
                                                   : "exec \"$0\" \"$@\" >/dev/null 2>&1"));
  g_ptr_array_add (argv, build_path ("cli/qube", NULL));
  for (const char *const *a = args; *a != NULL; a++)
    g_ptr_array_add (argv, g_strdup (*a));
  g_ptr_array_add (argv, NULL);
  if (in_path != NULL)
    envp = g_environ_setenv (envp, "RUN_IN", in_path, TRUE);
  ck_assert_msg (g_spawn_async_with_pipes (NULL, (char **) argv->pdata, envp, G_SPAWN_DO_NOT_REAP_CHILD,
                                           NULL, NULL, &pid, in_path != NULL ? NULL : input, NULL,
                                           NULL, &error),
                 "cannot run qube: %s", error != NULL ? error->message : "");
  return pid;
}

/* Reads the two pids a service wrote into the fifo `name` in tmp_dir
 * (made here), waiting for it to run. */
static void
read_service_pids (const char *name, pid_t *service, pid_t *server)
{
  g_autofree char *fifo = g_build_filename (tmp_dir, name, NULL);
  g_autofree char *text = NULL;
  int s = 0, a = 0;

  ck_assert (g_file_get_contents (fifo, &text, NULL, NULL));
  ck_assert_msg (sscanf (text, "%d %d", &s, &a) == 2 && s > 0 && a > 0, "read '%s'", text);
  *service = s;
  *server = a;
}

/* The caller goes away while its input waits for a service that does not
 * read it: the service's side drops that input and ends the call,
 * without spinning meanwhile. */
START_TEST (test_run_caller_gone_with_input_pending)
{
  g_autofree char *in = g_build_filename (tmp_dir, "pending-in.bin", NULL);
  g_autofree char *fifo = g_build_filename (tmp_dir, "pending.fifo", NULL);
  g_autofree char *cmd = g_strdup_printf ("head -c 1000000 >/dev/null; echo $$ $PPID > '%s'; "
                                          "exec sleep 30", fifo);
  const char *args[] = { "run", "vault", "--", cmd, NULL };
  pid_t service, server;
  GPid pid;

  make_random_file (in, 20 * 1024 * 1024);
  unlink (fifo);
  ck_assert_int_eq (mkfifo (fifo, 0600), 0);
  pid = qube_start (NULL, in, args);
  read_service_pids ("pending.fifo", &service, &server);
  kill (pid, SIGKILL);
  ck_assert_int_eq (waitpid (pid, NULL, 0), pid);
  assert_idle_until_gone (server, "the agent's child serving the call");
  wait_gone (service);
  unlink (fifo);
}
END_TEST

/* Output for a terminal is filtered as qvm-run filters it: a qube cannot
 * send dom0's terminal escape sequences (tab, newline, carriage return,
 * backspace and bell pass; every other control or non-ASCII byte is '_').
 * The test's output is no terminal: unfiltered unless asked. */
START_TEST (test_run_filters_escape_chars)
{
  static const char script[] = "printf 'a\\033[2Jb\\t\\303\\251\\n'; printf 'c\\033d\\a\\n' >&2";
  g_autoptr(Run) filtered = qube_run ("run", "--no-stdin", "--filter-escape-chars", "work", "--", script);
  g_autoptr(Run) raw = qube_run ("run", "--no-stdin", "work", "--", script);
  g_autoptr(Run) both = qube_run ("run", "--filter-escape-chars", "--no-filter-escape-chars", "work",
                                  "--", "true");

  ck_assert_msg (filtered->status == 0, "status %d: %s", filtered->status, filtered->err);
  ck_assert_str_eq (filtered->out, "a_[2Jb\t__\n");
  ck_assert_str_eq (filtered->err, "c_d\a\n");
  ck_assert_msg (raw->status == 0, "status %d: %s", raw->status, raw->err);
  ck_assert_str_eq (raw->out, "a\033[2Jb\t\303\251\n");
  ck_assert_str_eq (raw->err, "c\033d\a\n");
  ck_assert_int_eq (both->status, 2);
}
END_TEST

/* ---- qube to qube -------------------------------------------------------- */

static Run *
call_from_work (const char *in_path, const char *out_path, const char *target, const char *service)
{
  g_autofree char *client = build_path ("agent/qrexec-client-vm", NULL);

  return qube_run_io (in_path, out_path, "run", "work", "--", client, target, service);
}

START_TEST (test_call_allowed_with_environment)
{
  g_autoptr(Run) run = call_from_work (NULL, NULL, "vault", "test.Env+bar");

  ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
  ck_assert_str_eq (run->out,
                    "QREXEC_REMOTE_DOMAIN=work\n"
                    "QREXEC_REQUESTED_TARGET_TYPE=\n"
                    "QREXEC_SERVICE_ARGUMENT=bar\n"
                    "QREXEC_SERVICE_FULL_NAME=test.Env+bar\n");
  /* Without an argument the service is named with its '+', as Qubes'
   * dom0 names it; the requested target is not the target's to know. */
  {
    g_autoptr(Run) bare = call_from_work (NULL, NULL, "vault", "test.Env");

    ck_assert_msg (bare->status == 0, "status %d: %s", bare->status, bare->err);
    ck_assert_str_eq (bare->out,
                      "QREXEC_REMOTE_DOMAIN=work\n"
                      "QREXEC_REQUESTED_TARGET_TYPE=\n"
                      "QREXEC_SERVICE_FULL_NAME=test.Env+\n");
  }
}
END_TEST

/* qrexec-client-vm takes Qubes' options before TARGET (qvm-copy runs
 * `qrexec-client-vm --filter-escape-chars-stderr -- VM qubes.Filecopy
 * ...`): -t/-T filter the service's output, --prefix-data goes before the
 * input, `--` ends the options. */
START_TEST (test_client_vm_options)
{
  g_autofree char *client = build_path ("agent/qrexec-client-vm", NULL);
  g_autoptr(Run) filtered = qube_run ("run", "--no-stdin", "work", "--", client, "-t", "-T", "--",
                                      "vault", "test.Esc");
  g_autoptr(Run) raw = qube_run ("run", "--no-stdin", "work", "--", client, "vault", "test.Esc");
  g_autoptr(Run) prefixed = qube_run ("run", "--no-stdin", "work", "--", client,
                                      "--filter-escape-chars-stderr", "--prefix-data=hello ", "--",
                                      "vault", "test.Echo");
  g_autoptr(Run) bad = qube_run ("run", "--no-stdin", "work", "--", client, "--no-such-option",
                                 "vault", "test.Echo");
  g_autoptr(Run) short_prefix = qube_run ("run", "--no-stdin", "work", "--", client, "-p", "hi ",
                                          "vault", "test.Echo");
  /* COMMAND finds the caller's own stdout in $SAVED_FD_1 (Qubes' RPC
   * example writes the service's answer there). */
  g_autoptr(Run) saved = qube_run ("run", "--no-stdin", "work", "--", client, "vault", "test.Echo",
                                   "/bin/bash", "-c", "echo mine >&$SAVED_FD_1; echo to-service; "
                                   "read back; echo \"$back\" >&$SAVED_FD_1");
  /* --use-stdin-socket: one stream socket for the input and the output,
   * as socat gives it (Qubes' updates proxy runs it so); its stdout is
   * elsewhere, so the answer comes back through the socket alone. */
  g_autofree char *via_socat = g_strdup_printf ("echo through | socat -t 30 - SYSTEM:'%s "
                                                "--use-stdin-socket vault test.Echo >/dev/null'",
                                                client);
  g_autoptr(Run) socket_in = qube_run ("run", "--no-stdin", "work", "--", "/bin/sh", "-c",
                                       via_socat);
  g_autoptr(Run) not_socket = qube_run ("run", "--no-stdin", "work", "--", client,
                                        "--use-stdin-socket", "vault", "test.Echo");

  ck_assert_msg (filtered->status == 0, "status %d: %s", filtered->status, filtered->err);
  ck_assert_str_eq (filtered->out, "a_[2Jb\n");
  ck_assert_str_eq (filtered->err, "c_d\a\n");
  ck_assert_msg (raw->status == 0, "status %d: %s", raw->status, raw->err);
  ck_assert_str_eq (raw->out, "a\033[2Jb\n");
  ck_assert_msg (prefixed->status == 0, "status %d: %s", prefixed->status, prefixed->err);
  ck_assert_str_eq (prefixed->out, "hello ");
  ck_assert_int_eq (bad->status, 2);
  ck_assert_msg (strstr (bad->err, "Usage: qrexec-client-vm") != NULL, "%s", bad->err);
  ck_assert_msg (short_prefix->status == 0, "status %d: %s", short_prefix->status, short_prefix->err);
  ck_assert_str_eq (short_prefix->out, "hi ");
  ck_assert_msg (saved->status == 0, "status %d: %s", saved->status, saved->err);
  ck_assert_str_eq (saved->out, "mine\nto-service\n");
  ck_assert_msg (socket_in->status == 0, "status %d: %s", socket_in->status, socket_in->err);
  ck_assert_str_eq (socket_in->out, "through\n");
  ck_assert_int_eq (not_socket->status, 2);
  /* With COMMAND: the service's exit code when it is not 0, else
   * COMMAND's, as Qubes' qrexec-client-vm returns. */
  {
    g_autoptr(Run) service_fails = qube_run ("run", "--no-stdin", "work", "--", client, "vault",
                                             "test.Exit+5", "/bin/sh", "-c", "exit 0");
    g_autoptr(Run) command_fails = qube_run ("run", "--no-stdin", "work", "--", client, "vault",
                                             "test.Exit+0", "/bin/sh", "-c", "exit 7");

    ck_assert_msg (service_fails->status == 5, "status %d: %s", service_fails->status,
                   service_fails->err);
    ck_assert_msg (command_fails->status == 7, "status %d: %s", command_fails->status,
                   command_fails->err);
  }
  ck_assert_msg (strstr (not_socket->err, "not a stream socket") != NULL, "%s", not_socket->err);
}
END_TEST

START_TEST (test_call_passes_data_both_ways)
{
  g_autofree char *in = g_build_filename (tmp_dir, "call-in.bin", NULL);
  g_autofree char *out = g_build_filename (tmp_dir, "call-out.bin", NULL);
  g_autofree char *sum_in = NULL;
  g_autofree char *sum_out = NULL;
  g_autoptr(Run) run = NULL;

  make_random_file (in, 3 * 1024 * 1024 + 5);
  run = call_from_work (in, out, "vault", "test.Echo");
  ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
  sum_in = file_sha256 (in);
  sum_out = file_sha256 (out);
  ck_assert_str_eq (sum_out, sum_in);
}
END_TEST

/* A service that finished while its caller still reads (the caller has
 * not taken it all when the time for both sides to connect is up) is the
 * call going on, not a side that never came: the caller gets everything
 * and the exit code. */
START_TEST (test_call_outlives_the_connect_time)
{
  g_autofree char *client = build_path ("agent/qrexec-client-vm", NULL);
  g_autofree char *script = g_strdup_printf ("{ '%s' vault test.Big; echo \"status $?\" >&2; } "
                                             "| { sleep 6; wc -c; }", client);
  g_autoptr(Run) run = qube_run ("run", "--no-stdin", "work", "--", script);

  ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
  ck_assert_str_eq (g_strstrip (run->out), "1500000");
  ck_assert_msg (strstr (run->err, "status 0") != NULL, "%s", run->err);
}
END_TEST

/* A service that writes 20 lines for every line it reads: both directions
 * of the call are full at once (the caller still sending its input while
 * the service's output waits for room), and neither side may wait for
 * the other to make room. */
START_TEST (test_call_both_directions_full)
{
  g_autofree char *in = g_build_filename (tmp_dir, "amp-in.txt", NULL);
  g_autofree char *out = g_build_filename (tmp_dir, "amp-out.txt", NULL);
  g_autoptr(GString) text = g_string_new (NULL);
  g_autoptr(GChecksum) want = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree char *sum_out = NULL;
  g_autoptr(Run) run = NULL;

  for (int i = 0; text->len < 8 * 1024 * 1024; i++)
    {
      gsize start = text->len;

      g_string_append_printf (text, "line %07d of the input, repeated by the service\n", i);
      for (int k = 0; k < 20; k++)
        g_checksum_update (want, (const guchar *) text->str + start, (gssize) (text->len - start));
    }
  ck_assert (g_file_set_contents (in, text->str, (gssize) text->len, NULL));
  run = call_from_work (in, out, "vault", "test.Amp");
  ck_assert_msg (run->status == 0, "status %d: %s", run->status, run->err);
  sum_out = file_sha256 (out);
  ck_assert_str_eq (sum_out, g_checksum_get_string (want));
}
END_TEST

/* A service that closed its outputs still gets its input, however late
 * it comes, and its call ends when it exits. */
START_TEST (test_call_input_after_outputs_closed)
{
  g_autofree char *client = build_path ("agent/qrexec-client-vm", NULL);
  g_autofree char *fifo = g_build_filename (tmp_dir, "quiet.fifo", NULL);
  g_autofree char *result = g_build_filename (tmp_dir, "quiet.out", NULL);
  g_autofree char *got = NULL;
  const char *args[] = { "run", "work", "--", client, "vault", "test.Quiet", NULL };
  pid_t service, server;
  int input = -1, status;
  GPid pid;

  unlink (fifo);
  ck_assert_int_eq (mkfifo (fifo, 0600), 0);
  pid = qube_start (&input, NULL, args);
  read_service_pids ("quiet.fifo", &service, &server);
  /* The service closed its outputs before it wrote its pids. */
  ck_assert_int_eq (write (input, "late\n", 5), 5);
  close (input);
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);
  ck_assert (g_file_get_contents (result, &got, NULL, NULL));
  ck_assert_str_eq (got, "late\n");
  wait_gone (server);
  unlink (fifo);
}
END_TEST

/* The caller goes away while the service (outputs closed) waits for
 * input: the service's side ends the call, the service gets EOF. */
START_TEST (test_call_caller_gone_after_outputs_closed)
{
  g_autofree char *client = build_path ("agent/qrexec-client-vm", NULL);
  g_autofree char *fifo = g_build_filename (tmp_dir, "quiet.fifo", NULL);
  const char *args[] = { "run", "work", "--", client, "vault", "test.Quiet", NULL };
  pid_t service, server;
  int input = -1;
  GPid pid;

  unlink (fifo);
  ck_assert_int_eq (mkfifo (fifo, 0600), 0);
  pid = qube_start (&input, NULL, args);
  read_service_pids ("quiet.fifo", &service, &server);
  kill (pid, SIGKILL);
  ck_assert_int_eq (waitpid (pid, NULL, 0), pid);
  close (input);
  wait_gone (service);
  wait_gone (server);
  unlink (fifo);
}
END_TEST

static void
assert_refused (const char *target, const char *service, const char *log_words)
{
  g_autoptr(Run) run = call_from_work (NULL, NULL, target, service);
  g_autofree char *log = read_log ();

  ck_assert_int_eq (run->status, 126);
  ck_assert_msg (strstr (run->err, "Request refused") != NULL, "stderr: %s", run->err);
  ck_assert_msg (strstr (log, log_words) != NULL, "'%s' not in the daemon's log:\n%s", log_words, log);
}

START_TEST (test_call_denied_by_policy)
{
  assert_refused ("sys", "test.Env", "call test.Env from 'work' to 'sys' refused");
}
END_TEST

START_TEST (test_call_not_in_policy_denied)
{
  assert_refused ("vault", "test.Unlisted", "call test.Unlisted from 'work' to 'vault' refused");
}
END_TEST

START_TEST (test_call_ask_without_agent_denied)
{
  assert_refused ("vault", "test.Ask", "call test.Ask from 'work' to 'vault' refused");
  assert_refused ("vault", "test.Ask", "no prompt agent is configured");
}
END_TEST

START_TEST (test_call_ask_answered_by_the_agent)
{
  g_autoptr(Run) yes = call_from_work (NULL, NULL, "vault", "test.Ask+yes");

  ck_assert_msg (yes->status == 0, "status %d: %s", yes->status, yes->err);
  ck_assert_msg (strstr (yes->out, "QREXEC_SERVICE_FULL_NAME=test.Ask+yes\n") != NULL, "%s", yes->out);
  assert_refused ("vault", "test.Ask+no", "call test.Ask+no from 'work' to 'vault' refused");
}
END_TEST

/* The disposable template's template has no kernel here: no disposable
 * starts, and the call is refused saying so. */
START_TEST (test_call_dispvm_refused_clearly)
{
  assert_refused ("@dispvm:dvmt", "test.Disp", "no disposable of 'dvmt' could be started");
}
END_TEST

/* ---- admin.* calls to dom0, forwarded to qubed ----------------------------- */

/* A qubed on the fixture's state directory; its qrexec socket is where
 * the qrexec daemon looks.  g_spawn, not GSubprocess (forked children). */
static GPid
start_qubed (void)
{
  g_autofree char *qubed = build_path ("daemon/qubed", NULL);
  g_autofree char *socket = g_build_filename (tmp_dir, "qubed.sock", NULL);
  g_autofree char *qrexec_socket = g_build_filename (state_dir, "run", "qubed-qrexec.sock", NULL);
  g_autofree char *log = g_build_filename (tmp_dir, "qubed.log", NULL);
  g_auto(GStrv) envp = run_environ ();
  g_autoptr(GError) error = NULL;
  const char *argv[] = { "/bin/sh", "-c", "exec \"$0\" \"$@\" 2>\"$QUBED_LOG\"", qubed,
                         "--foreground", "--socket", socket, "--state-dir", state_dir,
                         "--policy-dir", policy_dir, NULL };
  GPid pid;

  envp = g_environ_setenv (envp, "QUBED_LOG", log, TRUE);
  ck_assert_msg (g_spawn_async (NULL, (char **) argv, envp, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                &pid, &error), "%s", error ? error->message : "");
  for (int tries = 0; !g_file_test (qrexec_socket, G_FILE_TEST_EXISTS); tries++)
    {
      ck_assert_msg (tries < 3000 && waitpid (pid, NULL, WNOHANG) == 0, "qubed did not come up");
      g_usleep (10000);
    }
  return pid;
}

static void
stop_qubed (GPid pid)
{
  kill (pid, SIGTERM);
  waitpid (pid, NULL, 0);
}

/* A call from work with `input` on its stdin; its exit code, and its
 * stdout in *out (NULs kept). */
static int
admin_from_work (const char *target, const char *service, const char *input, gsize input_len,
                 GString **out)
{
  g_autofree char *in = g_build_filename (tmp_dir, "admin-in", NULL);
  g_autofree char *out_path = g_build_filename (tmp_dir, "admin-out", NULL);
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr(Run) run = NULL;

  ck_assert (g_file_set_contents (in, input != NULL ? input : "", input != NULL ? input_len : 0,
                                  NULL));
  run = call_from_work (in, out_path, target, service);
  ck_assert (g_file_get_contents (out_path, &data, &len, NULL));
  *out = g_string_new_len (data, len);
  return run->status;
}

#define assert_reply(got, expected)                                                \
  G_STMT_START {                                                                   \
    ck_assert_msg ((got)->len == sizeof (expected) - 1                             \
                   && memcmp ((got)->str, expected, (got)->len) == 0,              \
                   "unexpected reply of %zu bytes: '%s'", (got)->len, (got)->str + 2); \
  } G_STMT_END

START_TEST (test_admin_without_qubed_refused)
{
  assert_refused ("dom0", "admin.vm.List", "no qubed serves the Admin API");
}
END_TEST

START_TEST (test_other_service_to_dom0_refused)
{
  assert_refused ("dom0", "test.Env", "the admin qube serves only the Admin API");
}
END_TEST

START_TEST (test_admin_through_qubed)
{
  GPid qubed = start_qubed ();
  g_autoptr(GString) set = NULL, got = NULL, list = NULL, missing = NULL, big_reply = NULL;
  g_autoptr(GString) denied = NULL, after = NULL;
  g_autofree char *big = g_malloc0 (1024 * 1024 + 10);
  g_autofree char *log = NULL;
  static const char list_prefix[] = "0\0dom0 class=AdminVM state=Running uuid=";
  int status;

  /* The payload goes to qubed, the reply comes back as stdout. */
  ck_assert_int_eq (admin_from_work ("work", "admin.vm.feature.Set+os", "Linux", 5, &set), 0);
  assert_reply (set, "0\0");
  ck_assert_int_eq (admin_from_work ("work", "admin.vm.feature.Get+os", NULL, 0, &got), 0);
  assert_reply (got, "0\0Linux");
  /* dom0 as @adminvm: the host's list, what work may see of it. */
  ck_assert_int_eq (admin_from_work ("@adminvm", "admin.vm.List", NULL, 0, &list), 0);
  ck_assert_msg (list->len > 2 && memcmp (list->str, list_prefix, sizeof list_prefix - 1) == 0
                 && memchr (list->str + 2, '\n', list->len - 2) == list->str + list->len - 1,
                 "%s", list->str + 2);
  /* An exception reply: exit code 1. */
  ck_assert_int_eq (admin_from_work ("work", "admin.vm.feature.Get+nosuch", NULL, 0, &missing), 1);
  ck_assert_msg (missing->len > 30 && memcmp (missing->str, "2\0QubesFeatureNotFoundError\0", 29) == 0,
                 "%s", missing->str);
  /* Another qube: refused by the policy before qubed sees it. */
  ck_assert_int_eq (admin_from_work ("vault", "admin.vm.feature.Get+os", NULL, 0, &denied), 126);
  ck_assert_uint_eq (denied->len, 0);
  /* A payload over the limit ends the call; nothing is stored. */
  memset (big, 'x', 1024 * 1024 + 10);
  status = admin_from_work ("work", "admin.vm.feature.Set+big", big, 1024 * 1024 + 10, &big_reply);
  ck_assert_int_ne (status, 0);
  ck_assert_uint_eq (big_reply->len, 0);
  ck_assert_int_eq (admin_from_work ("work", "admin.vm.feature.Get+big", NULL, 0, &after), 1);
  log = read_log ();
  ck_assert_msg (strstr (log, "payload over 1048576 bytes") != NULL, "%s", log);
  assert_work_still_serves ();
  stop_qubed (qubed);
}
END_TEST

/* admin.Events from a qube: qubed's reply never ends, and each event
 * reaches the subscriber as it happens; the subscription ends with the
 * caller. */
START_TEST (test_admin_events_stream)
{
  GPid qubed = start_qubed ();
  g_autofree char *client = build_path ("agent/qrexec-client-vm", NULL);
  g_autofree char *qube = build_path ("cli/qube", NULL);
  g_autofree char *out = g_build_filename (tmp_dir, "events", NULL);
  g_autoptr(GString) set = NULL;
  g_auto(GStrv) envp = run_environ ();
  g_autoptr(GError) error = NULL;
  const char *argv[] = { "/bin/sh", "-c", "exec \"$0\" \"$@\" </dev/null >\"$EVENTS\"", qube, "run",
                         "work", "--", client, "dom0", "admin.Events", NULL };
  static const char event[] = "domain-feature-set:seen";
  gboolean started = FALSE, seen = FALSE;
  GPid pid;

  envp = g_environ_setenv (envp, "EVENTS", out, TRUE);
  ck_assert_msg (g_spawn_async (NULL, (char **) argv, envp, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                &pid, &error), "%s", error ? error->message : "");
  /* The stream starts with Qubes' connection-established event. */
  for (int tries = 0; !started; tries++)
    {
      static const char established[] = "1\0\0connection-established\0\0";
      g_autofree char *text = NULL;
      gsize len = 0;

      if (g_file_get_contents (out, &text, &len, NULL) && len >= sizeof established - 1)
        {
          ck_assert_msg (memcmp (text, established, sizeof established - 1) == 0, "%s", text);
          started = TRUE;
          continue;
        }
      ck_assert_msg (tries < 1000 && waitpid (pid, NULL, WNOHANG) == 0, "the subscription did not start");
      g_usleep (10000);
    }
  ck_assert_int_eq (admin_from_work ("work", "admin.vm.feature.Set+seen", "1", 1, &set), 0);
  for (int tries = 0; tries < 1000 && !seen; tries++)
    {
      g_autofree char *text = NULL;
      gsize len = 0;

      if (g_file_get_contents (out, &text, &len, NULL))
        seen = memmem (text, len, event, sizeof event - 1) != NULL;
      if (!seen)
        {
          ck_assert_msg (waitpid (pid, NULL, WNOHANG) == 0, "the subscription ended");
          g_usleep (10000);
        }
    }
  ck_assert_msg (seen, "the event did not reach the subscriber while it was subscribed");
  kill (pid, SIGTERM);
  waitpid (pid, NULL, 0);
  assert_work_still_serves ();
  stop_qubed (qubed);
}
END_TEST

/* ---- hostile guests ------------------------------------------------------ */

/* Exchanges hellos on `chan` as a guest speaking qrexec protocol
 * `version`; returns the daemon's version. */
static guint32
guest_hello (AgentChan *chan, guint32 version)
{
  struct { struct msg_header h; struct peer_info p; } hello = { { MSG_HELLO, 4 }, { version } }, theirs;

  ck_assert_int_eq (agent_chan_write_all (transport, chan, &hello, sizeof hello), 0);
  ck_assert_int_eq (agent_chan_read_exact (transport, chan, &theirs, sizeof theirs), 0);
  ck_assert_uint_eq (theirs.h.type, MSG_HELLO);
  ck_assert_uint_eq (theirs.h.len, 4);
  return theirs.p.version;
}

/* Plays the guest of qube `name`, speaking qrexec protocol `version`:
 * offers the control channel, answers the daemon's hello. */
static AgentChan *
fake_guest_version (const char *name, guint32 version)
{
  g_autofree char *rundir = g_build_filename (state_dir, "run", "qubes", name, NULL);
  char err[512];
  AgentChan *chan = transport->listen (rundir, VCHAN_BASE_PORT, 65536, 65536, err, sizeof err);

  ck_assert_msg (chan != NULL, "%s", err);
  ck_assert_msg (transport->accept (chan, err, sizeof err) == 0, "%s", err);
  ck_assert_uint_eq (guest_hello (chan, version), 3);
  return chan;
}

/* As guest `name`, takes the request to run something the daemon sends
 * on `ctrl` (MSG_EXEC_CMDLINE, read into `buf` of `size` bytes and
 * NUL-terminated) and connects the data channel it offers. */
static AgentChan *
take_exec (const char *name, AgentChan *ctrl, unsigned char *buf, gsize size)
{
  g_autofree char *rundir = g_build_filename (state_dir, "run", "qubes", name, NULL);
  struct exec_params *p = (struct exec_params *) buf;
  struct msg_header h;
  AgentChan *data;
  char err[512];

  ck_assert_int_eq (agent_chan_read_exact (transport, ctrl, &h, sizeof h), 0);
  ck_assert_uint_eq (h.type, MSG_EXEC_CMDLINE);
  ck_assert_uint_lt (h.len, size);
  ck_assert_int_eq (agent_chan_read_exact (transport, ctrl, buf, h.len), 0);
  buf[h.len] = '\0';
  data = transport->connect (rundir, p->connect_port, 10000, err, sizeof err);
  ck_assert_msg (data != NULL, "%s", err);
  return data;
}

static AgentChan *
fake_guest (const char *name)
{
  return fake_guest_version (name, 3);
}

/* The daemon closes the fake guest's connection (reading what it sends
 * until then), and says why in its log. */
static void
assert_cut_off (AgentChan *chan, const char *name, const char *cause)
{
  g_autofree char *log = NULL;
  g_autofree char *who = g_strdup_printf ("qube '%s': ", name);
  char buf[4096];
  const char *at;

  for (;;)
    {
      struct pollfd pfd = { .fd = transport->fd (chan), .events = POLLIN };

      ck_assert_msg (poll (&pfd, 1, 30000) == 1, "the daemon kept the connection of '%s' open", name);
      if (transport->pump (chan) < 0)
        break;
      while (transport->take (chan, buf, sizeof buf) > 0)
        ;
    }
  log = read_log ();
  at = strstr (log, who);
  ck_assert_msg (at != NULL, "no warning about '%s' in the log:\n%s", name, log);
  at = log + (at - log);
  ck_assert_msg (at != NULL, "no warning about '%s' in the log:\n%s", name, log);
  ck_assert_msg (strstr (at, cause) != NULL && strstr (at, "closing its qrexec control connection") != NULL,
                 "'%s' not in the log:\n%s", cause, log);
  transport->close (chan);
  assert_work_still_serves ();
}

static void
send_raw (AgentChan *chan, uint32_t type, uint32_t len, const void *payload, size_t payload_len)
{
  struct msg_header h = { type, len };

  /* The daemon may close in the middle: that is what is tested. */
  if (agent_chan_write_all (transport, chan, &h, sizeof h) == 0 && payload_len > 0)
    (void) agent_chan_write_all (transport, chan, payload, payload_len);
}

START_TEST (test_hostile_length_beyond_maximum)
{
  AgentChan *chan = fake_guest ("evil-len");

  send_raw (chan, MSG_TRIGGER_SERVICE3, 1 << 20, NULL, 0);
  assert_cut_off (chan, "evil-len", "MSG_TRIGGER_SERVICE3 of 1048576 bytes");
}
END_TEST

START_TEST (test_hostile_unknown_type)
{
  AgentChan *chan = fake_guest ("evil-type");

  send_raw (chan, 0x999, 0, NULL, 0);
  assert_cut_off (chan, "evil-type", "unknown message type 0x999");
}
END_TEST

START_TEST (test_hostile_truncated_struct)
{
  AgentChan *chan = fake_guest ("evil-trunc");
  char payload[50] = "vault";

  send_raw (chan, MSG_TRIGGER_SERVICE3, sizeof payload, payload, sizeof payload);
  assert_cut_off (chan, "evil-trunc", "MSG_TRIGGER_SERVICE3 of 50 bytes");
}
END_TEST

START_TEST (test_hostile_name_without_nul)
{
  AgentChan *chan = fake_guest ("evil-nul");
  struct {
    struct trigger_service_params3 p;
    char name[9];
  } msg;

  memset (msg.p.target_domain, 'a', sizeof msg.p.target_domain);
  memset (&msg.p.request_id, 0, sizeof msg.p.request_id);
  strcpy (msg.p.request_id.ident, "SOCKET1");
  memcpy (msg.name, "test.Env", 9);
  send_raw (chan, MSG_TRIGGER_SERVICE3, sizeof msg, &msg, sizeof msg);
  assert_cut_off (chan, "evil-nul", "the target is not NUL-terminated");
}
END_TEST

START_TEST (test_hostile_port_never_offered)
{
  AgentChan *chan = fake_guest ("evil-port");
  struct exec_params p = { 0, 7777 };

  send_raw (chan, MSG_CONNECTION_TERMINATED, sizeof p, &p, sizeof p);
  assert_cut_off (chan, "evil-port", "data port 7777, which it was never offered");
}
END_TEST

START_TEST (test_hostile_flood_of_requests)
{
  AgentChan *chan = fake_guest ("evil-flood");
  struct {
    struct trigger_service_params3 p;
    char name[11];
  } msg;

  memset (&msg, 0, sizeof msg);
  strcpy (msg.p.target_domain, "vault");
  strcpy (msg.p.request_id.ident, "SOCKET1");
  memcpy (msg.name, "test.Flood", 11);
  for (int i = 0; i < 3000; i++)
    send_raw (chan, MSG_TRIGGER_SERVICE3, sizeof msg, &msg, sizeof msg);
  assert_cut_off (chan, "evil-flood", "flood");
}
END_TEST

/* Sends MSG_TRIGGER_SERVICE3 (`name` of `name_len` bytes, its NUL
 * included) and reads the daemon's answer: MSG_SERVICE_REFUSED for `ident`. */
static void
assert_request_refused (AgentChan *chan, const char *target, const char *ident, const char *name,
                        gsize name_len)
{
  struct {
    struct trigger_service_params3 p;
    char name[32];
  } msg;
  struct msg_header h;
  struct service_params answer;

  memset (&msg, 0, sizeof msg);
  strcpy (msg.p.target_domain, target);
  strcpy (msg.p.request_id.ident, ident);
  memcpy (msg.name, name, name_len);
  ck_assert_int_eq (data_send_msg (transport, chan, MSG_TRIGGER_SERVICE3, &msg,
                                   sizeof msg.p + name_len), 0);
  ck_assert_int_eq (agent_chan_read_exact (transport, chan, &h, sizeof h), 0);
  ck_assert_uint_eq (h.type, MSG_SERVICE_REFUSED);
  ck_assert_uint_eq (h.len, sizeof answer);
  ck_assert_int_eq (agent_chan_read_exact (transport, chan, &answer, sizeof answer), 0);
  ck_assert_str_eq (answer.ident, ident);
}

/* Requests that are well-formed but name no qube or service a name could
 * be (a typo in qrexec-client-vm's arguments, or any program in the qube
 * talking to its agent) are refused, as Qubes refuses them: the qube is
 * not cut off.  An empty target is @default, as in Qubes. */
START_TEST (test_odd_names_refused)
{
  AgentChan *chan = fake_guest ("odd");
  g_autofree char *log = NULL;

  assert_request_refused (chan, "../etc", "SOCKET1", "test.Env", 9);
  assert_request_refused (chan, "vault", "SOCKET2", "test Env", 9);
  assert_request_refused (chan, "vault", "SOCKET3", "", 1);
  assert_request_refused (chan, "vault", "SOCKET4", "+arg", 5);
  assert_request_refused (chan, "", "SOCKET5", "test.Env", 9);
  log = read_log ();
  ck_assert_msg (strstr (log, "call test.Env from 'odd' refused: the target contains the byte 0x2f") != NULL &&
                 strstr (log, "call test Env from 'odd' refused: the service name contains the byte 0x20") != NULL &&
                 strstr (log, "from 'odd' refused: the service name is empty") != NULL &&
                 strstr (log, "call +arg from 'odd' refused: the service name '+arg' does not start with a service") != NULL,
                 "%s", log);
  /* The empty target went to the policy as @default, whose rule denied it. */
  ck_assert_msg (strstr (log, "call test.Env from 'odd' to '@default' refused: ") != NULL &&
                 strstr (log, "30-test.policy:") != NULL, "%s", log);
  ck_assert_msg (strstr (log, "qube 'odd'") == NULL, "the qube was cut off:\n%s", log);
  transport->close (chan);
}
END_TEST

/* An agent that ends its control connection (it restarted, as an agent
 * may while its qube runs) is served again once it offers it anew, as
 * Qubes' daemon does: the qube is not cut off from qrexec. */
START_TEST (test_agent_restart_served_again)
{
  AgentChan *chan = fake_guest ("restart");
  g_autofree char *log = NULL;

  assert_request_refused (chan, "vault", "SOCKET1", "bad name", 9);
  transport->close (chan);
  /* The new agent: the daemon connects and says hello again. */
  chan = fake_guest ("restart");
  assert_request_refused (chan, "vault", "SOCKET2", "bad name", 9);
  log = read_log ();
  ck_assert_msg (strstr (log, "qube 'restart': the control connection ended") != NULL, "%s", log);
  transport->close (chan);
}
END_TEST

/* An agent that ends its control connection of a qube another process
 * stops meanwhile (its runtime directory goes): the daemon does not make
 * the directory again to wait for the agent, and lets the qube go. */
START_TEST (test_stopped_qube_not_served_again)
{
  AgentChan *chan = fake_guest ("stopped");
  g_autofree char *rundir = g_build_filename (state_dir, "run", "qubes", "stopped", NULL);
  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", rundir);
  g_autofree char *log = NULL;

  assert_request_refused (chan, "vault", "SOCKET1", "bad name", 9);
  transport->close (chan);
  ck_assert_int_eq (system (rm), 0);
  /* The daemon would wait for the agent again after 500 ms. */
  for (int i = 0; i < 50 && (log == NULL || strstr (log, "qube 'stopped': its runtime") == NULL); i++)
    {
      g_usleep (100 * 1000);
      g_free (log);
      log = read_log ();
    }
  ck_assert_msg (strstr (log, "qube 'stopped': its runtime directory is gone") != NULL, "log ends: %s",
                 log + (strlen (log) > 2000 ? strlen (log) - 2000 : 0));
  g_usleep (600 * 1000);
  ck_assert (!g_file_test (rundir, G_FILE_TEST_EXISTS));
}
END_TEST

/* ---- a stock Qubes agent's port handling ---------------------------------- */

/* `qube run stock -- true`, with this test playing the guest as a stock
 * Qubes agent would (data channel, empty stdout and stderr, exit code 0);
 * returns the data port the daemon offered. */
static guint32
run_on_stock (AgentChan *ctrl)
{
  unsigned char buf[4096];
  struct exec_params *p = (struct exec_params *) buf;
  int32_t code = 0;
  AgentChan *data;
  int status;
  pid_t pid = fork ();

  if (pid == 0)
    {
      Run *run = qube_run ("run", "--no-stdin", "stock", "--", "true");

      _exit (run->status);
    }
  data = take_exec ("stock", ctrl, buf, sizeof buf);
  ck_assert_int_ge (data_hello (transport, data, "data port"), 2);
  ck_assert_int_eq (data_send_msg (transport, data, MSG_DATA_STDOUT, NULL, 0), 0);
  ck_assert_int_eq (data_send_msg (transport, data, MSG_DATA_STDERR, NULL, 0), 0);
  ck_assert_int_eq (data_send_msg (transport, data, MSG_DATA_EXIT_CODE, &code, sizeof code), 0);
  transport->close (data);
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0, "qube run: status %d", status);
  return p->connect_port;
}

/* The daemon has handled everything the guest sent before: a refused
 * call's answer comes after it. */
static void
stock_sync (AgentChan *ctrl)
{
  struct {
    struct trigger_service_params3 p;
    char name[11];
  } msg;
  struct msg_header h;
  struct service_params refused;

  memset (&msg, 0, sizeof msg);
  strcpy (msg.p.target_domain, "vault");
  strcpy (msg.p.request_id.ident, "SOCKET1");
  memcpy (msg.name, "test.Flood", 11);
  ck_assert_int_eq (data_send_msg (transport, ctrl, MSG_TRIGGER_SERVICE3, &msg, sizeof msg), 0);
  ck_assert_int_eq (agent_chan_read_exact (transport, ctrl, &h, sizeof h), 0);
  ck_assert_uint_eq (h.type, MSG_SERVICE_REFUSED);
  ck_assert_uint_eq (h.len, sizeof refused);
  ck_assert_int_eq (agent_chan_read_exact (transport, ctrl, &refused, sizeof refused), 0);
}

/* As in Qubes, a data port stays reserved until the agent reports the
 * connection's end (MSG_CONNECTION_TERMINATED, which a stock agent sends
 * after every connection), and is offered again after that; a second
 * report of a port offered before is let be.  The daemon offers ports
 * 513-515 here. */
START_TEST (test_stock_agent_ports_come_back)
{
  AgentChan *ctrl = fake_guest ("stock");
  struct exec_params p;
  g_autofree char *log = NULL;

  ck_assert_uint_eq (run_on_stock (ctrl), 513);
  ck_assert_uint_eq (run_on_stock (ctrl), 514);
  ck_assert_uint_eq (run_on_stock (ctrl), 515);
  {
    /* All three still reported in use by the guest. */
    g_autoptr(Run) full = qube_run ("run", "--no-stdin", "stock", "--", "true");

    ck_assert_int_eq (full->status, 125);
    ck_assert_msg (strstr (full->err, "no free data port") != NULL, "%s", full->err);
  }
  p = (struct exec_params) { 0, 514 };
  ck_assert_int_eq (data_send_msg (transport, ctrl, MSG_CONNECTION_TERMINATED, &p, sizeof p), 0);
  ck_assert_int_eq (data_send_msg (transport, ctrl, MSG_CONNECTION_TERMINATED, &p, sizeof p), 0);
  stock_sync (ctrl);
  ck_assert_uint_eq (run_on_stock (ctrl), 514);
  for (guint32 port = 513; port <= 515; port++)
    {
      p = (struct exec_params) { 0, port };
      ck_assert_int_eq (data_send_msg (transport, ctrl, MSG_CONNECTION_TERMINATED, &p, sizeof p), 0);
    }
  stock_sync (ctrl);
  log = read_log ();
  ck_assert_msg (strstr (log, "qube 'stock'") == NULL, "%s", log);
  transport->close (ctrl);
}
END_TEST

/* Plays a service in qube `name`, whose agent speaks qrexec protocol
 * version 2 (as Qubes 4.0's does) on `ctrl`: takes the request to run
 * `command`, connects its data channel, checks that the input comes in
 * messages of at most 4096 bytes (whatever its sender sent) and is the
 * `size` bytes of checksum `sum`, and answers "done". */
static void
serve_on_version_2 (const char *name, AgentChan *ctrl, const char *command, gsize size,
                    const char *sum)
{
  g_autoptr(GChecksum) got = g_checksum_new (G_CHECKSUM_SHA256);
  unsigned char buf[MAX_DATA_CHUNK_V3];
  struct exec_params *p = (struct exec_params *) buf;
  struct msg_header h;
  gsize total = 0, largest = 0;
  int32_t code = 0;
  AgentChan *data = take_exec (name, ctrl, buf, sizeof buf);

  ck_assert_msg (strstr ((char *) p->cmdline, command) != NULL, "%s", p->cmdline);
  guest_hello (data, 2);
  do
    {
      ck_assert_int_eq (agent_chan_read_exact (transport, data, &h, sizeof h), 0);
      ck_assert_uint_eq (h.type, MSG_DATA_STDIN);
      ck_assert_uint_le (h.len, MAX_DATA_CHUNK_V2);
      ck_assert_int_eq (agent_chan_read_exact (transport, data, buf, h.len), 0);
      g_checksum_update (got, buf, h.len);
      total += h.len;
      largest = MAX (largest, h.len);
    }
  while (h.len > 0);
  ck_assert_uint_eq (total, size);
  ck_assert_uint_eq (largest, MAX_DATA_CHUNK_V2);
  ck_assert_str_eq (g_checksum_get_string (got), sum);
  ck_assert_int_eq (data_send_msg (transport, data, MSG_DATA_STDOUT, "done\n", 5), 0);
  ck_assert_int_eq (data_send_msg (transport, data, MSG_DATA_STDOUT, NULL, 0), 0);
  ck_assert_int_eq (data_send_msg (transport, data, MSG_DATA_STDERR, NULL, 0), 0);
  ck_assert_int_eq (data_send_msg (transport, data, MSG_DATA_EXIT_CODE, &code, sizeof code), 0);
  transport->close (data);
}

/* Runs `qube ARGS…` (`args`) with some input in a child while qube
 * `name` plays a version 2 service; the command gets the service's answer
 * and exit code. */
static void
assert_version_2_serves (const char *name, const char *command, const char *const *args)
{
  g_autofree char *in = g_build_filename (tmp_dir, "old-in.bin", NULL);
  g_autofree char *out = g_build_filename (tmp_dir, "old-out.txt", NULL);
  g_autofree char *sum = NULL;
  g_autofree char *answer = NULL;
  AgentChan *ctrl = fake_guest_version (name, 2);
  gsize size = 300 * 1024 + 7;
  int status;
  pid_t pid;

  make_random_file (in, size);
  sum = file_sha256 (in);
  pid = fork ();
  if (pid == 0)
    {
      Run *run = qube_runv (in, out, args);

      _exit (run->status);
    }
  serve_on_version_2 (name, ctrl, command, size, sum);
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);
  ck_assert (g_file_get_contents (out, &answer, NULL, NULL));
  ck_assert_str_eq (answer, "done\n");
  transport->close (ctrl);
}

/* qube run's input reaches a version 2 agent in messages it takes. */
START_TEST (test_run_on_version_2_qube)
{
  const char *const args[] = { "run", "old", "--", "cat", NULL };

  assert_version_2_serves ("old", "cat", args);
}
END_TEST

/* A qube-to-qube call to a version 2 qube: the caller's input, sent by a
 * version 3 agent in messages of up to 64 KiB, reaches it cut to 4096
 * bytes, all of it and in order (each side has its own version with the
 * daemon, which passes the messages on). */
START_TEST (test_call_to_version_2_qube)
{
  g_autofree char *client = build_path ("agent/qrexec-client-vm", NULL);
  const char *const args[] = { "run", "work", "--", client, "old-called", "test.Old", NULL };

  assert_version_2_serves ("old-called", "QUBESRPC test.Old+ work", args);
}
END_TEST

/* A call made by a version 2 qube (MSG_TRIGGER_SERVICE, as Qubes 4.0's
 * agent makes it; this test plays the caller) to a service of a version 3
 * qube: the service's output, which its agent sends in messages of up to
 * 64 KiB, reaches the caller in messages of at most 4096 bytes, all of it,
 * then the exit code, though the service ended long before (what the
 * daemon had parsed of it still waited for room toward the caller). */
START_TEST (test_call_from_version_2_qube)
{
  g_autofree char *rundir = g_build_filename (state_dir, "run", "qubes", "old-caller", NULL);
  AgentChan *ctrl = fake_guest_version ("old-caller", 2);
  struct {
    char service_name[64];      /* Qubes' trigger_service_params (version 2) */
    char target_domain[32];
    struct service_params request_id;
  } trigger;
  unsigned char buf[MAX_DATA_CHUNK_V3];
  struct exec_params *p = (struct exec_params *) buf;
  struct msg_header h;
  gsize total = 0;
  AgentChan *data;
  char err[512];

  memset (&trigger, 0, sizeof trigger);
  strcpy (trigger.service_name, "test.Big");
  strcpy (trigger.target_domain, "vault");
  strcpy (trigger.request_id.ident, "SOCKET7");
  ck_assert_int_eq (data_send_msg (transport, ctrl, MSG_TRIGGER_SERVICE, &trigger, sizeof trigger), 0);
  ck_assert_int_eq (agent_chan_read_exact (transport, ctrl, &h, sizeof h), 0);
  ck_assert_uint_eq (h.type, MSG_SERVICE_CONNECT);
  ck_assert_uint_le (h.len, sizeof buf);
  ck_assert_int_eq (agent_chan_read_exact (transport, ctrl, buf, h.len), 0);
  data = transport->listen (rundir, p->connect_port, 65536, 65536, err, sizeof err);
  ck_assert_msg (data != NULL, "%s", err);
  ck_assert_msg (transport->accept (data, err, sizeof err) == 0, "%s", err);
  guest_hello (data, 2);
  ck_assert_int_eq (data_send_msg (transport, data, MSG_DATA_STDIN, NULL, 0), 0);
  /* The service is done long before this caller has read it all: its
   * exit code waits in the daemon behind the output. */
  g_usleep (2 * G_USEC_PER_SEC);
  for (;;)
    {
      ck_assert_int_eq (agent_chan_read_exact (transport, data, &h, sizeof h), 0);
      if (h.type == MSG_DATA_EXIT_CODE)
        break;
      ck_assert_msg (h.type == MSG_DATA_STDOUT || h.type == MSG_DATA_STDERR, "type 0x%x", h.type);
      ck_assert_uint_le (h.len, MAX_DATA_CHUNK_V2);
      ck_assert_msg (agent_chan_read_exact (transport, data, buf, h.len) == 0,
                     "after %zu bytes of output: %s", total, transport->error (data));
      if (h.type == MSG_DATA_STDOUT)
        total += h.len;
    }
  ck_assert_uint_eq (h.len, sizeof (int32_t));
  ck_assert_int_eq (agent_chan_read_exact (transport, data, buf, h.len), 0);
  ck_assert_int_eq (*(int32_t *) buf, 0);
  ck_assert_uint_eq (total, 1500000);
  transport->close (data);
  transport->close (ctrl);
}
END_TEST

/* Calls `service` of qube `name` from work while this test plays the
 * service: it sends `len` bytes of `bytes` after its hello and leaves.
 * The caller ends with an error within 20 s (less than the time a side
 * has to connect), and the daemon's log says `why`. */
static void
assert_caller_learns_the_end (const char *name, const char *service, const void *bytes, gsize len,
                              const char *why)
{
  g_autofree char *client = build_path ("agent/qrexec-client-vm", NULL);
  g_autofree char *log = NULL;
  const char *const args[] = { "run", "--no-stdin", "work", "--", client, name, service, NULL };
  AgentChan *ctrl = fake_guest (name);
  unsigned char buf[MAX_DATA_CHUNK_V3];
  AgentChan *data;
  int status = 0;
  pid_t pid, done = 0;

  pid = fork ();
  if (pid == 0)
    {
      Run *run = qube_runv (NULL, NULL, args);

      _exit (run->status);
    }
  data = take_exec (name, ctrl, buf, sizeof buf);
  guest_hello (data, 3);
  ck_assert_int_eq (agent_chan_write_all (transport, data, bytes, len), 0);
  transport->close (data);
  for (int i = 0; i < 200 && done == 0; i++)
    {
      done = waitpid (pid, &status, WNOHANG);
      if (done == 0)
        g_usleep (G_USEC_PER_SEC / 10);
    }
  if (done == 0)
    {
      kill (pid, SIGKILL);
      waitpid (pid, NULL, 0);
    }
  transport->close (ctrl);
  log = read_log ();
  ck_assert_msg (done == pid, "the caller still waits 20 s after the service left; log:\n%s", log);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) != 0, "status %d", status);
  ck_assert_msg (strstr (log, why) != NULL, "'%s' not in the log:\n%s", why, log);
}

/* A service that ends in the middle of a message: the call ends (it does
 * not wait for the rest of the message), and its caller with it, also
 * when the service was done before the caller had connected. */
START_TEST (test_call_service_gone_mid_message)
{
  struct { struct msg_header h; char part[10]; } msg = { { MSG_DATA_STDOUT, 100 }, "012345678" };

  assert_caller_learns_the_end ("cut", "test.Cut", &msg, sizeof msg,
                                "call test.Cut from 'work' to 'cut': ended before the service's "
                                "exit code");
}
END_TEST

/* A service that breaks the protocol: its call ends, and its caller with
 * it. */
START_TEST (test_call_service_breaking_protocol)
{
  struct msg_header bad = { 0x999, 0 };

  assert_caller_learns_the_end ("cut-bad", "test.Cut", &bad, sizeof bad,
                                "call test.Cut from 'work' to 'cut-bad': qrexec from 'cut-bad' "
                                "(the process side of a data connection): unknown message type "
                                "0x999; ending the call");
}
END_TEST

/* The fixture's daemon serves qube `name` anew (as when it started
 * again); plays its new guest. */
static AgentChan *
serve_anew (const char *name)
{
  g_autofree char *command = g_strdup_printf ("reconnect %s\n", name);
  g_autofree char *expected = g_strdup_printf ("reconnected %s", name);
  g_autofree char *answer = NULL;

  ck_assert (g_output_stream_write_all (g_subprocess_get_stdin_pipe (fixture), command,
                                        strlen (command), NULL, NULL, NULL));
  answer = g_data_input_stream_read_line (fixture_out, NULL, NULL, NULL);
  ck_assert_str_eq (answer, expected);
  return fake_guest (name);
}

/* A decision that comes after its qube was served anew (the prompt agent
 * answered once the qube had started again) goes nowhere: the new agent
 * is not asked to connect a call it never made, and the daemon says why. */
START_TEST (test_decision_after_reconnect_dropped)
{
  AgentChan *ctrl = fake_guest ("again");
  g_autofree char *asked = g_build_filename (tmp_dir, "asked", NULL);
  g_autofree char *go = g_build_filename (tmp_dir, "go", NULL);
  g_autofree char *log = NULL;
  struct {
    struct trigger_service_params3 p;
    char name[15];
  } msg;
  const char *went = "call test.Ask+later from 'again': the qube went away while the prompt agent "
                     "was asked";
  int i;

  memset (&msg, 0, sizeof msg);
  strcpy (msg.p.target_domain, "vault");
  strcpy (msg.p.request_id.ident, "SOCKET7");
  memcpy (msg.name, "test.Ask+later", 15);
  ck_assert_int_eq (data_send_msg (transport, ctrl, MSG_TRIGGER_SERVICE3, &msg, sizeof msg), 0);
  for (i = 0; i < 300 && !g_file_test (asked, G_FILE_TEST_EXISTS); i++)
    g_usleep (100 * 1000);
  ck_assert_msg (i < 300, "the prompt agent was never asked");
  /* The qube starts again meanwhile. */
  transport->close (ctrl);
  ctrl = serve_anew ("again");
  ck_assert (g_file_set_contents (go, "", 0, NULL));
  for (i = 0; i < 300; i++)
    {
      g_free (log);
      log = read_log ();
      if (strstr (log, "test.Ask+later from 'again'") != NULL)
        break;
      g_usleep (100 * 1000);
    }
  ck_assert_msg (strstr (log, went) != NULL, "%s", log);
  /* The first message to the new agent answers its own request. */
  stock_sync (ctrl);
  transport->close (ctrl);
}
END_TEST

/* A qube served anew (it started again) is offered the port after the
 * last one of its earlier connection, not the first again: a call of
 * that connection may still hold it. */
START_TEST (test_ports_go_on_after_reconnect)
{
  AgentChan *ctrl = serve_anew ("stock");
  guint32 last = 0;

  /* Round the range (513-515) until 513 was the last port offered. */
  for (int i = 0; i < 3 && last != 513; i++)
    last = run_on_stock (ctrl);
  ck_assert_uint_eq (last, 513);
  transport->close (ctrl);
  ctrl = serve_anew ("stock");
  ck_assert_uint_eq (run_on_stock (ctrl), 514);
  transport->close (ctrl);
}
END_TEST

/* A qube with as many calls in progress as it may have gets the next one
 * refused, and keeps its connection (its calls and dom0's commands go
 * on); ending its connection and offering it again gets it no more. */
START_TEST (test_calls_over_the_limit_refused)
{
  AgentChan *ctrl = fake_guest ("busy");
  struct {
    struct trigger_service_params3 p;
    char name[10];
  } msg;
  unsigned char buf[4096];
  struct msg_header h;
  g_autofree char *log = NULL;
  int connected = 0;

  for (int i = 0; i <= 64; i++)
    {
      memset (&msg, 0, sizeof msg);
      strcpy (msg.p.target_domain, "vault");
      snprintf (msg.p.request_id.ident, sizeof msg.p.request_id.ident, "SOCKET%d", i);
      memcpy (msg.name, "test.Echo", 10);
      ck_assert_int_eq (data_send_msg (transport, ctrl, MSG_TRIGGER_SERVICE3, &msg, sizeof msg), 0);
    }
  for (;;)
    {
      ck_assert_int_eq (agent_chan_read_exact (transport, ctrl, &h, sizeof h), 0);
      ck_assert_uint_le (h.len, sizeof buf);
      ck_assert_int_eq (agent_chan_read_exact (transport, ctrl, buf, h.len), 0);
      if (h.type != MSG_SERVICE_CONNECT)
        break;
      connected++;
    }
  ck_assert_uint_eq (h.type, MSG_SERVICE_REFUSED);
  ck_assert_str_eq (((struct service_params *) buf)->ident, "SOCKET64");
  ck_assert_int_eq (connected, 64);
  stock_sync (ctrl);
  log = read_log ();
  ck_assert_msg (strstr (log, "call test.Echo from 'busy' refused: it has 64 calls in progress") != NULL,
                 "%s", log);
  g_clear_pointer (&log, g_free);
  transport->close (ctrl);

  /* Its calls are still in progress (it never connects their channels). */
  ctrl = fake_guest ("busy");
  assert_request_refused (ctrl, "vault", "SOCKET65", "test.Echo", 10);
  transport->close (ctrl);
}
END_TEST

/* A guest that keeps asking (slower than the flood limit) and never
 * reads the answers: once its ring and 16 KiB more wait for it, its
 * connection is closed; the daemon keeps nothing for it. */
START_TEST (test_hostile_deaf_guest)
{
  AgentChan *chan = fake_guest ("deaf");
  struct {
    struct trigger_service_params3 p;
    char name[11];
  } msg;
  int sent = 0;

  memset (&msg, 0, sizeof msg);
  strcpy (msg.p.target_domain, "vault");
  strcpy (msg.p.request_id.ident, "SOCKET1");
  memcpy (msg.name, "test.Flood", 11);
  /* Each refusal is 40 bytes: (64 KiB + 16 KiB) / 40 is about 2100. */
  for (; sent < 4000; sent++)
    {
      struct pollfd pfd = { .fd = transport->fd (chan), .events = POLLIN };

      send_raw (chan, MSG_TRIGGER_SERVICE3, sizeof msg, &msg, sizeof msg);
      /* Below the 100 per second the daemon allows; stops once the
       * daemon hung up.  What arrives is taken into the transport (which
       * returns no room for it: nothing is read). */
      g_usleep (12000);
      if (poll (&pfd, 1, 0) == 1 && transport->pump (chan) < 0)
        break;
    }
  ck_assert_msg (sent < 4000, "the daemon kept the deaf guest's connection open");
  assert_cut_off (chan, "deaf", "it does not read its control channel");
}
END_TEST

static Suite *
qrexec_suite (void)
{
  Suite *s = suite_create ("qrexec");
  TCase *run = tcase_create ("qube run");
  TCase *call = tcase_create ("qube to qube");
  TCase *hostile = tcase_create ("hostile guests");
  TCase *slow = tcase_create ("slow caller");
  TCase *ports = tcase_create ("data ports");

  /* One set of pretended qubes for the whole suite. */
  tcase_add_unchecked_fixture (run, setup, teardown);
  tcase_set_timeout (run, 120);
  tcase_add_test (run, test_run_binary_round_trip);
  tcase_add_test (run, test_run_50mb_checksum);
  tcase_add_test (run, test_run_stderr_and_exit_codes);
  tcase_add_test (run, test_run_arguments_are_quoted);
  tcase_add_test (run, test_run_nonblocking_stdout_loses_nothing);
  tcase_add_test (run, test_run_filters_escape_chars);
  tcase_add_test (run, test_run_command_keeps_its_scheduling);
  tcase_add_test (run, test_run_unknown_user_is_125);
  tcase_add_test (run, test_run_as_another_user);
  tcase_add_test (run, test_run_missing_service_is_127);
  tcase_add_test (run, test_service_kinds);
  tcase_add_test (run, test_service_config);
  tcase_add_test (run, test_run_halted_qube_refused_without_autostart);
  tcase_add_test (run, test_run_halted_qube_is_started);
  tcase_add_test (run, test_run_unknown_qube_fails_clearly);
  tcase_add_test (run, test_service_argument_and_environment);
  tcase_add_test (run, test_service_with_argument_file_first);
  tcase_add_test (run, test_call_ask_without_agent_denied);
  tcase_add_test (run, test_run_caller_gone_with_input_pending);
  suite_add_tcase (s, run);

  tcase_add_unchecked_fixture (call, setup_with_ask_agent, teardown);
  tcase_add_test (call, test_call_allowed_with_environment);
  tcase_add_test (call, test_call_passes_data_both_ways);
  tcase_add_test (call, test_run_on_version_2_qube);
  tcase_add_test (call, test_call_to_version_2_qube);
  tcase_add_test (call, test_call_from_version_2_qube);
  tcase_add_test (call, test_call_service_gone_mid_message);
  tcase_add_test (call, test_call_service_breaking_protocol);
  tcase_add_test (call, test_client_vm_options);
  tcase_add_test (call, test_call_both_directions_full);
  tcase_add_test (call, test_call_input_after_outputs_closed);
  tcase_add_test (call, test_call_caller_gone_after_outputs_closed);
  tcase_add_test (call, test_call_denied_by_policy);
  tcase_add_test (call, test_call_not_in_policy_denied);
  tcase_add_test (call, test_call_ask_answered_by_the_agent);
  tcase_add_test (call, test_decision_after_reconnect_dropped);
  tcase_add_test (call, test_call_dispvm_refused_clearly);
  tcase_add_test (call, test_admin_without_qubed_refused);
  tcase_add_test (call, test_other_service_to_dom0_refused);
  tcase_add_test (call, test_admin_through_qubed);
  tcase_add_test (call, test_admin_events_stream);
  suite_add_tcase (s, call);

  tcase_add_unchecked_fixture (slow, setup_short_connect_timeout, teardown);
  tcase_add_test (slow, test_call_outlives_the_connect_time);
  suite_add_tcase (s, slow);

  tcase_add_unchecked_fixture (ports, setup_few_ports, teardown);
  tcase_add_test (ports, test_stock_agent_ports_come_back);
  tcase_add_test (ports, test_ports_go_on_after_reconnect);
  suite_add_tcase (s, ports);

  tcase_add_unchecked_fixture (hostile, setup_hostile, teardown);
  tcase_set_timeout (hostile, 120);
  tcase_add_test (hostile, test_hostile_length_beyond_maximum);
  tcase_add_test (hostile, test_hostile_unknown_type);
  tcase_add_test (hostile, test_hostile_truncated_struct);
  tcase_add_test (hostile, test_hostile_name_without_nul);
  tcase_add_test (hostile, test_hostile_port_never_offered);
  tcase_add_test (hostile, test_calls_over_the_limit_refused);
  tcase_add_test (hostile, test_hostile_flood_of_requests);
  tcase_add_test (hostile, test_odd_names_refused);
  tcase_add_test (hostile, test_agent_restart_served_again);
  tcase_add_test (hostile, test_stopped_qube_not_served_again);
  tcase_add_test (hostile, test_hostile_deaf_guest);
  suite_add_tcase (s, hostile);
  return s;
}

int
main (void)
{
  SRunner *runner = srunner_create (qrexec_suite ());
  g_autofree char *daemon = g_build_filename (g_getenv ("QUBE_TEST_BUILDDIR"), "cli",
                                             "qube-qrexec-daemon", NULL);
  int failed;

  /* The fixture's daemon starts disposables with this program's workers. */
  g_setenv ("QUBE_QREXEC_DAEMON", daemon, TRUE);

  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
