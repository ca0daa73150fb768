/* test-agent-wire.c — the guest side's qrexec messages byte for byte
 * against Qubes' layout (qrexec protocol version 3): the constants and
 * structures of agent/qrexec-wire.h, and the bytes data_send_msg() and
 * data_hello() put on a channel, read back raw at the other end; and
 * qube-agent itself, driven by this test playing the daemon, reporting
 * the end of each data connection as Qubes' agent does. */
#include "config.h"

#include <check.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include "data-io.h"
#include "qrexec-wire.h"
#include "transport.h"

static const AgentTransport *t = &agent_transport_socket;

START_TEST (test_constants_are_qubes)
{
  ck_assert_int_eq (MSG_DATA_STDIN, 0x190);
  ck_assert_int_eq (MSG_DATA_STDOUT, 0x191);
  ck_assert_int_eq (MSG_DATA_STDERR, 0x192);
  ck_assert_int_eq (MSG_DATA_EXIT_CODE, 0x193);
  ck_assert_int_eq (MSG_EXEC_CMDLINE, 0x200);
  ck_assert_int_eq (MSG_JUST_EXEC, 0x201);
  ck_assert_int_eq (MSG_SERVICE_CONNECT, 0x202);
  ck_assert_int_eq (MSG_SERVICE_REFUSED, 0x203);
  ck_assert_int_eq (MSG_TRIGGER_SERVICE, 0x210);
  ck_assert_int_eq (MSG_CONNECTION_TERMINATED, 0x211);
  ck_assert_int_eq (MSG_TRIGGER_SERVICE3, 0x212);
  ck_assert_int_eq (MSG_HELLO, 0x300);
  ck_assert_int_eq (VCHAN_BASE_PORT, 512);
  ck_assert_int_eq (MAX_DATA_CHUNK_V3, 65536);
  ck_assert_int_eq (QREXEC_PROTOCOL_VERSION, 3);
}
END_TEST

START_TEST (test_layout_is_qubes)
{
  ck_assert_uint_eq (sizeof (struct msg_header), 8);
  ck_assert_uint_eq (offsetof (struct msg_header, type), 0);
  ck_assert_uint_eq (offsetof (struct msg_header, len), 4);
  ck_assert_uint_eq (sizeof (struct peer_info), 4);
  ck_assert_uint_eq (sizeof (struct exec_params), 8);
  ck_assert_uint_eq (offsetof (struct exec_params, connect_domain), 0);
  ck_assert_uint_eq (offsetof (struct exec_params, connect_port), 4);
  ck_assert_uint_eq (offsetof (struct exec_params, cmdline), 8);
  ck_assert_uint_eq (sizeof (struct service_params), 32);
  ck_assert_uint_eq (sizeof (struct trigger_service_params3), 96);
  ck_assert_uint_eq (offsetof (struct trigger_service_params3, target_domain), 0);
  ck_assert_uint_eq (offsetof (struct trigger_service_params3, request_id), 64);
}
END_TEST

/* A channel pair in a temporary directory: the child gets the client end
 * and runs `send`, the parent reads what arrives raw. */
static void
exchange (void (*send) (AgentChan *chan), const void *expected, size_t len)
{
  g_autofree char *dir = g_dir_make_tmp ("qube-wire-XXXXXX", NULL);
  char err[256];
  AgentChan *server = t->listen (dir, 7, 65536, 65536, err, sizeof err);
  unsigned char *got = g_malloc0 (len);
  pid_t pid;
  int status;

  ck_assert_msg (server != NULL, "%s", err);
  pid = fork ();
  if (pid == 0)
    {
      AgentChan *client = t->connect (dir, 7, 5000, err, sizeof err);

      if (client == NULL)
        _exit (1);
      send (client);
      t->close (client);
      _exit (0);
    }
  ck_assert_int_eq (t->accept (server, err, sizeof err), 0);
  ck_assert_int_eq (agent_chan_read_exact (t, server, got, len), 0);
  ck_assert_int_eq (memcmp (got, expected, len), 0);
  waitpid (pid, &status, 0);
  ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  t->close (server);
  g_free (got);
  rmdir (dir);
}

static void
u32 (unsigned char *p, uint32_t v)
{
  /* Host byte order, as in Qubes. */
  memcpy (p, &v, 4);
}

static void
send_hello (AgentChan *chan)
{
  struct peer_info mine = { 3 };

  data_send_msg (t, chan, MSG_HELLO, &mine, sizeof mine);
}

START_TEST (test_hello_bytes)
{
  unsigned char want[12];

  u32 (want, 0x300);
  u32 (want + 4, 4);
  u32 (want + 8, 3);
  exchange (send_hello, want, sizeof want);
}
END_TEST

static void
send_data_and_exit (AgentChan *chan)
{
  int32_t code = 42;

  data_send_msg (t, chan, MSG_DATA_STDOUT, "ab\0c", 4);
  data_send_msg (t, chan, MSG_DATA_STDOUT, NULL, 0);
  data_send_msg (t, chan, MSG_DATA_EXIT_CODE, &code, sizeof code);
}

START_TEST (test_data_eof_and_exit_code_bytes)
{
  unsigned char want[12 + 8 + 12];

  u32 (want, 0x191);
  u32 (want + 4, 4);
  memcpy (want + 8, "ab\0c", 4);
  u32 (want + 12, 0x191);
  u32 (want + 16, 0);
  u32 (want + 20, 0x193);
  u32 (want + 24, 4);
  u32 (want + 28, 42);
  exchange (send_data_and_exit, want, sizeof want);
}
END_TEST

static void
send_trigger (AgentChan *chan)
{
  struct {
    struct trigger_service_params3 p;
    char name[11];
  } msg;

  memset (&msg, 0, sizeof msg);
  strcpy (msg.p.target_domain, "vault");
  strcpy (msg.p.request_id.ident, "SOCKET7");
  memcpy (msg.name, "qubes.Foo+x", 11);
  data_send_msg (t, chan, MSG_TRIGGER_SERVICE3, &msg, sizeof msg - 0);
}

START_TEST (test_trigger_service3_bytes)
{
  unsigned char want[8 + 96 + 11];

  memset (want, 0, sizeof want);
  u32 (want, 0x212);
  u32 (want + 4, 96 + 11);
  memcpy (want + 8, "vault", 5);
  memcpy (want + 8 + 64, "SOCKET7", 7);
  memcpy (want + 8 + 96, "qubes.Foo+x", 11);
  exchange (send_trigger, want, sizeof want);
}
END_TEST

/* ---- the agent, with this test as its daemon ----------------------------- */

/* Reads one message from the agent; its payload (up to `size` bytes) in
 * `payload`.  Returns the type. */
static uint32_t
read_msg (AgentChan *chan, void *payload, size_t size, uint32_t *len)
{
  struct msg_header h;

  ck_assert_int_eq (agent_chan_read_exact (t, chan, &h, sizeof h), 0);
  ck_assert_uint_le (h.len, size);
  if (h.len > 0)
    ck_assert_int_eq (agent_chan_read_exact (t, chan, payload, h.len), 0);
  *len = h.len;
  return h.type;
}

/* Nothing more comes from the agent for a moment. */
static void
assert_quiet (AgentChan *chan)
{
  struct pollfd pfd = { .fd = t->fd (chan), .events = POLLIN };

  while (poll (&pfd, 1, 500) == 1)
    {
      ck_assert_int_ge (t->pump (chan), 0);
      ck_assert_int_eq (t->ready (chan), 0);
    }
}

static void
assert_terminated (AgentChan *ctrl, uint32_t domain, uint32_t port)
{
  struct exec_params p;
  uint32_t len;

  ck_assert_uint_eq (read_msg (ctrl, &p, sizeof p, &len), MSG_CONNECTION_TERMINATED);
  ck_assert_uint_eq (len, sizeof p);
  ck_assert_uint_eq (p.connect_domain, domain);
  ck_assert_uint_eq (p.connect_port, port);
}

/* qube-agent in a temporary directory, its control channel connected
 * (this test is its daemon) and past the hello. */
typedef struct {
  char *dir;
  char *trigger;
  pid_t pid;
  AgentChan *ctrl;
} Agent;

static void
agent_start (Agent *a)
{
  g_autofree char *agent = g_build_filename (g_getenv ("QUBE_TEST_BUILDDIR"), "agent", "qube-agent", NULL);
  g_autofree char *spec = NULL;
  g_autofree char *trigger_arg = NULL;
  g_autofree char *user_arg = g_strdup_printf ("--default-user=%s", getpwuid (getuid ())->pw_name);
  unsigned char buf[64];
  char err[256];
  uint32_t len;

  a->dir = g_dir_make_tmp ("qube-agent-XXXXXX", NULL);
  a->trigger = g_build_filename (a->dir, "agent.sock", NULL);
  spec = g_strdup_printf ("--transport=socket:%s", a->dir);
  trigger_arg = g_strdup_printf ("--trigger-socket=%s", a->trigger);
  a->pid = fork ();
  if (a->pid == 0)
    {
      /* Only what the agent opens itself is open in it. */
      for (int fd = 3; fd < 1024; fd++)
        close (fd);
      execl (agent, agent, spec, trigger_arg, user_arg, "--once", (char *) NULL);
      _exit (127);
    }
  a->ctrl = t->connect (a->dir, VCHAN_BASE_PORT, 10000, err, sizeof err);
  ck_assert_msg (a->ctrl != NULL, "%s", err);
  send_hello (a->ctrl);
  ck_assert_uint_eq (read_msg (a->ctrl, buf, sizeof buf, &len), MSG_HELLO);
}

/* Closes the control channel: the agent (--once) exits. */
static void
agent_stop (Agent *a)
{
  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", a->dir);
  int status;

  t->close (a->ctrl);
  ck_assert_int_eq (waitpid (a->pid, &status, 0), a->pid);
  ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  ck_assert_int_eq (system (rm), 0);
  g_free (a->dir);
  g_free (a->trigger);
}

/* Runs `command` ("user:command") with `type` on data port `port`: the
 * data channel offered, the hello, everything read up to the exit code,
 * which is returned; the channel closed. */
static int32_t
agent_exec (Agent *a, uint32_t type, uint32_t domain, uint32_t port, const char *command)
{
  size_t len = sizeof (struct exec_params) + strlen (command) + 1;
  g_autofree struct exec_params *p = g_malloc0 (len);
  unsigned char buf[65536];
  AgentChan *data;
  char err[256];
  uint32_t got;
  int32_t code;

  p->connect_domain = domain;
  p->connect_port = port;
  strcpy (p->cmdline, command);
  data = t->listen (a->dir, port, 65536, 65536, err, sizeof err);
  ck_assert_msg (data != NULL, "%s", err);
  ck_assert_int_eq (data_send_msg (t, a->ctrl, type, p, len), 0);
  ck_assert_int_eq (t->accept (data, err, sizeof err), 0);
  send_hello (data);
  ck_assert_uint_eq (read_msg (data, buf, sizeof buf, &got), MSG_HELLO);
  while (read_msg (data, buf, sizeof buf, &got) != MSG_DATA_EXIT_CODE)
    ;
  ck_assert_uint_eq (got, sizeof code);
  memcpy (&code, buf, sizeof code);
  t->close (data);
  return code;
}

/* A local caller: connected to the agent's trigger socket. */
static int
trigger_connect (Agent *a)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  strcpy (sun.sun_path, a->trigger);
  ck_assert_int_eq (connect (fd, (struct sockaddr *) &sun, sizeof sun), 0);
  return fd;
}

/* A local caller's request for `service` in qube vault, as
 * qrexec-client-vm sends it (header included). */
static GByteArray *
call_request (const char *service)
{
  struct trigger_service_params3 p;
  struct msg_header h = { MSG_TRIGGER_SERVICE3, (uint32_t) (sizeof p + strlen (service) + 1) };
  GByteArray *msg = g_byte_array_new ();

  memset (&p, 0, sizeof p);
  strcpy (p.target_domain, "vault");
  g_byte_array_append (msg, (const guint8 *) &h, sizeof h);
  g_byte_array_append (msg, (const guint8 *) &p, sizeof p);
  g_byte_array_append (msg, (const guint8 *) service, (guint) strlen (service) + 1);
  return msg;
}

/* The agent forwards a local caller's request for `service` to the
 * daemon; returns the request's ident. */
static char *
assert_forwarded (Agent *a, const char *service)
{
  unsigned char buf[65536];
  struct trigger_service_params3 *p = (struct trigger_service_params3 *) buf;
  uint32_t len;

  ck_assert_uint_eq (read_msg (a->ctrl, buf, sizeof buf, &len), MSG_TRIGGER_SERVICE3);
  ck_assert_uint_eq (len, sizeof *p + strlen (service) + 1);
  ck_assert_str_eq (p->target_domain, "vault");
  ck_assert_str_eq ((char *) buf + sizeof *p, service);
  return g_strndup (p->request_id.ident, sizeof p->request_id.ident);
}

START_TEST (test_agent_reports_connection_ends)
{
  Agent a;
  g_autoptr(GByteArray) request = call_request ("test.X");
  g_autofree char *ident = NULL;
  struct { struct exec_params p; struct service_params id; } answer = { { 9, 601 }, { "" } };
  struct exec_params got;
  int fd;

  agent_start (&a);
  /* A command: its end is its child's exit. */
  ck_assert_int_eq (agent_exec (&a, MSG_EXEC_CMDLINE, 0, 600, "DEFAULT:true"), 0);
  assert_terminated (a.ctrl, 0, 600);

  /* A local caller's call: its end is the caller closing its socket. */
  fd = trigger_connect (&a);
  ck_assert_int_eq (write (fd, request->data, request->len), request->len);
  ident = assert_forwarded (&a, "test.X");
  ck_assert_uint_lt (strlen (ident), sizeof answer.id.ident);
  strcpy (answer.id.ident, ident);
  ck_assert_int_eq (data_send_msg (t, a.ctrl, MSG_SERVICE_CONNECT, &answer, sizeof answer), 0);
  /* As Qubes' agent answers: the data channel's exec_params, alone. */
  ck_assert_int_eq (recv (fd, &got, sizeof got, MSG_WAITALL), sizeof got);
  ck_assert_uint_eq (got.connect_domain, 9);
  ck_assert_uint_eq (got.connect_port, 601);
  assert_quiet (a.ctrl);
  close (fd);
  assert_terminated (a.ctrl, 9, 601);
  agent_stop (&a);
}
END_TEST

/* Local callers that connect to the trigger socket and then say nothing,
 * or half a request, or a request too long, hold up nothing: the agent
 * still runs commands and forwards other calls, and a request that comes
 * in pieces is forwarded once complete. */
START_TEST (test_agent_slow_local_callers)
{
  Agent a;
  g_autoptr(GByteArray) slow_req = call_request ("test.Slow");
  g_autoptr(GByteArray) fast_req = call_request ("test.Fast");
  g_autofree char *slow_ident = NULL, *fast_ident = NULL, *last_ident = NULL;
  struct msg_header huge = { MSG_TRIGGER_SERVICE3, 1 << 30 }, h;
  int silent, slow, fast, big, bad, last, many[200];

  agent_start (&a);
  silent = trigger_connect (&a);
  slow = trigger_connect (&a);
  ck_assert_int_eq (write (slow, slow_req->data, 4), 4);
  ck_assert_int_eq (agent_exec (&a, MSG_EXEC_CMDLINE, 0, 603, "DEFAULT:true"), 0);
  assert_terminated (a.ctrl, 0, 603);

  fast = trigger_connect (&a);
  ck_assert_int_eq (write (fast, fast_req->data, 20), 20);
  ck_assert_int_eq (write (fast, fast_req->data + 20, fast_req->len - 20), fast_req->len - 20);
  fast_ident = assert_forwarded (&a, "test.Fast");

  /* Over the size limit: refused as soon as the header says so. */
  big = trigger_connect (&a);
  ck_assert_int_eq (write (big, &huge, sizeof huge), sizeof huge);
  ck_assert_int_eq (recv (big, &h, sizeof h, 0), 0);

  ck_assert_int_eq (write (slow, slow_req->data + 4, slow_req->len - 4), slow_req->len - 4);
  slow_ident = assert_forwarded (&a, "test.Slow");
  ck_assert_str_ne (slow_ident, fast_ident);

  /* A NUL inside the service name would make the daemon close the
   * qube's control connection: refused here, nothing forwarded. */
  {
    g_autoptr(GByteArray) nul_req = call_request ("test.X\001Y");

    nul_req->data[nul_req->len - 3] = '\0';
    bad = trigger_connect (&a);
    ck_assert_int_eq (write (bad, nul_req->data, nul_req->len), nul_req->len);
    ck_assert_int_eq (recv (bad, &h, sizeof h, 0), 0);
    assert_quiet (a.ctrl);
    close (bad);
  }

  /* More silent callers than the agent keeps: the oldest give way (they
   * are refused), and a caller that asks is still heard. */
  for (size_t i = 0; i < G_N_ELEMENTS (many); i++)
    many[i] = trigger_connect (&a);
  last = trigger_connect (&a);
  ck_assert_int_eq (write (last, fast_req->data, fast_req->len), fast_req->len);
  last_ident = assert_forwarded (&a, "test.Fast");
  ck_assert_int_eq (recv (many[0], &h, sizeof h, 0), 0);
  for (size_t i = 0; i < G_N_ELEMENTS (many); i++)
    close (many[i]);
  assert_quiet (a.ctrl);
  close (last);
  close (big);
  close (fast);
  close (slow);
  close (silent);
  agent_stop (&a);
}
END_TEST

/* A message naming another domain as the data channel's other end (Qubes'
 * direct qube-to-qube channels, on Xen) cannot be served over a transport
 * whose only peer is the host: the agent runs nothing, does not connect to
 * the host in its stead (the data would go to the wrong party), reports
 * the connection ended, and serves the next request; qrexec-client-vm,
 * told to offer its channel to such a domain, fails with 125. */
START_TEST (test_agent_other_domain_unreachable)
{
  Agent a;
  g_autofree char *marker = NULL, *command = NULL, *socket_env = NULL, *transport_env = NULL;
  g_autofree char *client = g_build_filename (g_getenv ("QUBE_TEST_BUILDDIR"), "agent",
                                              "qrexec-client-vm", NULL);
  g_autofree char *ident = NULL;
  struct { struct exec_params p; struct service_params id; } answer = { { 9, 606 }, { "" } };
  g_autoptr(GError) error = NULL;
  unsigned char buf[256];
  size_t len;
  AgentChan *data;
  char err[256];
  int status;
  GPid pid;
  int err_fd;

  agent_start (&a);
  marker = g_build_filename (a.dir, "ran", NULL);
  command = g_strdup_printf ("DEFAULT:touch '%s'", marker);
  len = sizeof answer.p + strlen (command) + 1;
  memcpy (buf, &(struct exec_params) { 7, 605 }, sizeof answer.p);
  strcpy ((char *) buf + sizeof answer.p, command);
  /* Offered on the host, where the agent must not go instead. */
  data = t->listen (a.dir, 605, 65536, 65536, err, sizeof err);
  ck_assert_msg (data != NULL, "%s", err);
  ck_assert_int_eq (data_send_msg (t, a.ctrl, MSG_EXEC_CMDLINE, buf, len), 0);
  assert_terminated (a.ctrl, 7, 605);
  /* The same for a command that would run detached. */
  ck_assert_int_eq (data_send_msg (t, a.ctrl, MSG_JUST_EXEC, buf, len), 0);
  assert_terminated (a.ctrl, 7, 605);
  ck_assert (!g_file_test (marker, G_FILE_TEST_EXISTS));
  t->close (data);
  ck_assert_int_eq (agent_exec (&a, MSG_EXEC_CMDLINE, 0, 607, "DEFAULT:exit 4"), 4);
  assert_terminated (a.ctrl, 0, 607);

  socket_env = g_strdup_printf ("QREXEC_AGENT_SOCKET=%s", a.trigger);
  transport_env = g_strdup_printf ("QUBE_AGENT_TRANSPORT=socket:%s", a.dir);
  {
    const char *argv[] = { client, "vault", "test.X", NULL };
    const char *envp[] = { socket_env, transport_env, NULL };

    ck_assert_msg (g_spawn_async_with_pipes (NULL, (char **) argv, (char **) envp,
                                             G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid,
                                             NULL, NULL, &err_fd, &error), "%s", error->message);
  }
  ident = assert_forwarded (&a, "test.X");
  ck_assert_uint_lt (strlen (ident), sizeof answer.id.ident);
  strcpy (answer.id.ident, ident);
  ck_assert_int_eq (data_send_msg (t, a.ctrl, MSG_SERVICE_CONNECT, &answer, sizeof answer), 0);
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert (WIFEXITED (status));
  ck_assert_int_eq (WEXITSTATUS (status), QREXEC_EXIT_FAILED);
  {
    ssize_t n = read (err_fd, buf, sizeof buf - 1);

    ck_assert_int_gt (n, 0);
    buf[n] = '\0';
    ck_assert_msg (strstr ((char *) buf, "domain 9") != NULL &&
                   strstr ((char *) buf, "reaches only the host") != NULL, "%s", buf);
  }
  close (err_fd);
  assert_terminated (a.ctrl, 9, 606);
  agent_stop (&a);
}
END_TEST

/* The end of each of the process' outputs is an empty message, stdout's
 * and stderr's, before the exit code, as Qubes' agent sends them. */
START_TEST (test_agent_output_ends)
{
  Agent a;
  const char command[] = "DEFAULT:echo out; echo err >&2";
  size_t len = sizeof (struct exec_params) + sizeof command;
  g_autofree struct exec_params *p = g_malloc0 (len);
  unsigned char buf[65536];
  int out_end = 0, err_end = 0;
  AgentChan *data;
  char err[256];
  uint32_t got, type;

  agent_start (&a);
  p->connect_port = 608;
  memcpy (p->cmdline, command, sizeof command);
  data = t->listen (a.dir, 608, 65536, 65536, err, sizeof err);
  ck_assert_msg (data != NULL, "%s", err);
  ck_assert_int_eq (data_send_msg (t, a.ctrl, MSG_EXEC_CMDLINE, p, len), 0);
  ck_assert_int_eq (t->accept (data, err, sizeof err), 0);
  send_hello (data);
  ck_assert_uint_eq (read_msg (data, buf, sizeof buf, &got), MSG_HELLO);
  while ((type = read_msg (data, buf, sizeof buf, &got)) != MSG_DATA_EXIT_CODE)
    {
      if (got == 0 && type == MSG_DATA_STDOUT)
        out_end++;
      if (got == 0 && type == MSG_DATA_STDERR)
        err_end++;
    }
  ck_assert_int_eq (out_end, 1);
  ck_assert_int_eq (err_end, 1);
  t->close (data);
  assert_terminated (a.ctrl, 0, 608);
  agent_stop (&a);
}
END_TEST

/* Qubes' dom0 may put "nogui:" before the command: it is not part of it. */
START_TEST (test_agent_nogui_prefix)
{
  Agent a;

  agent_start (&a);
  ck_assert_int_eq (agent_exec (&a, MSG_EXEC_CMDLINE, 0, 604, "DEFAULT:nogui:exit 3"), 3);
  assert_terminated (a.ctrl, 0, 604);
  agent_stop (&a);
}
END_TEST

/* A command run with MSG_JUST_EXEC starts as a command of a shell would:
 * SIGPIPE not ignored, nothing open beyond its stdin, stdout and stderr
 * (/dev/null). */
START_TEST (test_agent_just_exec_child_state)
{
  Agent a;
  g_autofree char *fifo = NULL, *command = NULL, *sig = NULL, *fds = NULL;
  g_autofree char *sig_path = NULL, *fds_path = NULL, *done = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GString) open_fds = g_string_new (NULL);
  const char *ign;

  agent_start (&a);
  fifo = g_build_filename (a.dir, "done", NULL);
  sig_path = g_build_filename (a.dir, "sig", NULL);
  fds_path = g_build_filename (a.dir, "fds", NULL);
  ck_assert_int_eq (mkfifo (fifo, 0600), 0);
  /* Children of the command's shell: they inherit what it got. */
  command = g_strdup_printf ("DEFAULT:grep SigIgn /proc/self/status > '%s'; "
                             "ls -l /proc/self/fd/ > '%s'; echo > '%s'", sig_path, fds_path, fifo);
  ck_assert_int_eq (agent_exec (&a, MSG_JUST_EXEC, 0, 602, command), 0);
  assert_terminated (a.ctrl, 0, 602);
  ck_assert (g_file_get_contents (fifo, &done, NULL, NULL));

  ck_assert (g_file_get_contents (sig_path, &sig, NULL, NULL));
  ign = strstr (sig, "SigIgn:");
  ck_assert_msg (ign != NULL, "%s", sig);
  ck_assert_msg ((strtoull (ign + 7, NULL, 16) & (1ull << (SIGPIPE - 1))) == 0,
                 "SIGPIPE is ignored: %s", sig);

  /* Besides the directory ls reads, in /proc: 0 and 2 on /dev/null, 1
   * the file. */
  ck_assert (g_file_get_contents (fds_path, &fds, NULL, NULL));
  lines = g_strsplit (fds, "\n", -1);
  for (char **l = lines; *l != NULL; l++)
    {
      char *arrow = strstr (*l, " -> ");
      char *num = arrow;

      if (arrow == NULL || g_str_has_prefix (arrow + 4, "/proc/"))
        continue;
      while (num > *l && num[-1] != ' ')
        num--;
      g_string_append_printf (open_fds, "%.*s%s ", (int) (arrow - num), num,
                              strcmp (arrow + 4, "/dev/null") == 0 ? "(null)" : "");
    }
  ck_assert_msg (strcmp (open_fds->str, "0(null) 1 2(null) ") == 0, "open descriptors: %s\n%s",
                 open_fds->str, fds);
  agent_stop (&a);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("agent-wire");
  TCase *tc = tcase_create ("wire");
  SRunner *runner;
  int failed;

  tcase_add_test (tc, test_constants_are_qubes);
  tcase_add_test (tc, test_layout_is_qubes);
  tcase_add_test (tc, test_hello_bytes);
  tcase_add_test (tc, test_data_eof_and_exit_code_bytes);
  tcase_add_test (tc, test_trigger_service3_bytes);
  tcase_add_test (tc, test_agent_reports_connection_ends);
  tcase_add_test (tc, test_agent_nogui_prefix);
  tcase_add_test (tc, test_agent_output_ends);
  tcase_add_test (tc, test_agent_other_domain_unreachable);
  tcase_add_test (tc, test_agent_just_exec_child_state);
  tcase_add_test (tc, test_agent_slow_local_callers);
  suite_add_tcase (s, tc);
  runner = srunner_create (s);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
