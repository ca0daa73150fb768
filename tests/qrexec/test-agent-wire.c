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
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

START_TEST (test_agent_reports_connection_ends)
{
  g_autofree char *dir = g_dir_make_tmp ("qube-agent-XXXXXX", NULL);
  g_autofree char *agent = g_build_filename (g_getenv ("QUBE_TEST_BUILDDIR"), "agent", "qube-agent", NULL);
  g_autofree char *spec = g_strdup_printf ("--transport=socket:%s", dir);
  g_autofree char *trigger = g_build_filename (dir, "agent.sock", NULL);
  g_autofree char *trigger_arg = g_strdup_printf ("--trigger-socket=%s", trigger);
  g_autofree char *user_arg = g_strdup_printf ("--default-user=%s", getpwuid (getuid ())->pw_name);
  g_autofree char *rm = NULL;
  struct { struct exec_params p; char cmd[13]; } exec = { { 7, 600 }, "DEFAULT:true" };
  struct { struct trigger_service_params3 p; char name[7]; } call;
  struct { struct exec_params p; struct service_params id; } answer = { { 9, 601 }, { "" } };
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  unsigned char buf[65536];
  struct msg_header h;
  AgentChan *ctrl, *data;
  char err[256];
  uint32_t type, len;
  int status, fd;
  pid_t pid = fork ();

  if (pid == 0)
    {
      execl (agent, agent, spec, trigger_arg, user_arg, "--once", (char *) NULL);
      _exit (127);
    }
  ctrl = t->connect (dir, VCHAN_BASE_PORT, 10000, err, sizeof err);
  ck_assert_msg (ctrl != NULL, "%s", err);
  send_hello (ctrl);
  ck_assert_uint_eq (read_msg (ctrl, buf, sizeof buf, &len), MSG_HELLO);

  /* A command: its end is its child's exit. */
  data = t->listen (dir, 600, 65536, 65536, err, sizeof err);
  ck_assert_msg (data != NULL, "%s", err);
  ck_assert_int_eq (data_send_msg (t, ctrl, MSG_EXEC_CMDLINE, &exec, sizeof exec.p + sizeof exec.cmd), 0);
  ck_assert_int_eq (t->accept (data, err, sizeof err), 0);
  send_hello (data);
  ck_assert_uint_eq (read_msg (data, buf, sizeof buf, &len), MSG_HELLO);
  do
    type = read_msg (data, buf, sizeof buf, &len);
  while (type != MSG_DATA_EXIT_CODE);
  t->close (data);
  assert_terminated (ctrl, 7, 600);

  /* A local caller's call: its end is the caller closing its socket. */
  memset (&call, 0, sizeof call);
  strcpy (call.p.target_domain, "vault");
  memcpy (call.name, "test.X", 7);
  h = (struct msg_header) { MSG_TRIGGER_SERVICE3, sizeof call };
  strcpy (sun.sun_path, trigger);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_eq (connect (fd, (struct sockaddr *) &sun, sizeof sun), 0);
  ck_assert_int_eq (write (fd, &h, sizeof h), sizeof h);
  ck_assert_int_eq (write (fd, &call, sizeof call), sizeof call);
  ck_assert_uint_eq (read_msg (ctrl, buf, sizeof buf, &len), MSG_TRIGGER_SERVICE3);
  memcpy (answer.id.ident, ((struct trigger_service_params3 *) buf)->request_id.ident,
          sizeof answer.id.ident);
  ck_assert_int_eq (data_send_msg (t, ctrl, MSG_SERVICE_CONNECT, &answer, sizeof answer), 0);
  ck_assert_int_eq (recv (fd, &h, sizeof h, MSG_WAITALL), sizeof h);
  ck_assert_uint_eq (h.type, MSG_SERVICE_CONNECT);
  assert_quiet (ctrl);
  close (fd);
  assert_terminated (ctrl, 9, 601);

  t->close (ctrl);
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  rm = g_strdup_printf ("rm -rf '%s'", dir);
  ck_assert_int_eq (system (rm), 0);
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
  suite_add_tcase (s, tc);
  runner = srunner_create (s);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
