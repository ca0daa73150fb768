/* test-kvm-qmp.c — unit tests of plugins/kvm/kvm-qmp.c, the QMP client,
 * against a scripted monitor on a unix socket (a stand-in for QEMU that can
 * misbehave on purpose: QEMU is an untrusted peer once a guest owns it).
 */
#include "config.h"

#include <check.h>
#include <string.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include "kvm-qmp.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}, \"capabilities\": []}}"

/* A script step: "<TEXT" reads one line from the client, which must
 * contain TEXT; ">TEXT" sends TEXT and a newline; "=N" sends N bytes of
 * 'x' without a newline; "." closes the connection. */
typedef struct
{
  char *path;
  GSocket *listener;
  const char *const *script;
  GThread *thread;
  char *failure;  /* what went wrong on the monitor's side, or NULL */
} FakeMonitor;

static char *tmp_dir;

static gboolean
read_line (GSocket *socket, GString *line)
{
  char c;

  g_string_truncate (line, 0);
  for (;;)
    {
      gssize n = g_socket_receive (socket, &c, 1, NULL, NULL);
      if (n <= 0)
        return FALSE;
      if (c == '\n')
        return TRUE;
      g_string_append_c (line, c);
    }
}

static gpointer
fake_monitor_run (gpointer data)
{
  FakeMonitor *monitor = data;
  g_autoptr(GSocket) client = g_socket_accept (monitor->listener, NULL, NULL);
  g_autoptr(GString) line = g_string_new (NULL);

  if (client == NULL)
    {
      monitor->failure = g_strdup ("no client connected");
      return NULL;
    }
  for (const char *const *step = monitor->script; *step != NULL; step++)
    {
      const char *arg = *step + 1;

      switch (**step)
        {
        case '<':
          if (!read_line (client, line) || strstr (line->str, arg) == NULL)
            {
              monitor->failure = g_strdup_printf ("expected '%s', got '%s'", arg, line->str);
              return NULL;
            }
          break;
        case '>':
          {
            g_autofree char *text = g_strconcat (arg, "\n", NULL);
            g_socket_send (client, text, strlen (text), NULL, NULL);
          }
          break;
        case '=':
          {
            gsize n = g_ascii_strtoull (arg, NULL, 10);
            g_autofree char *blob = g_malloc (n);
            memset (blob, 'x', n);
            for (gsize off = 0; off < n;)
              {
                gssize sent = g_socket_send (client, blob + off, n - off, NULL, NULL);
                if (sent <= 0)
                  break;
                off += (gsize) sent;
              }
          }
          break;
        case '.':
          g_socket_close (client, NULL);
          return NULL;
        }
    }
  /* Stay connected until the client hangs up. */
  while (read_line (client, line))
    ;
  return NULL;
}

static FakeMonitor *
fake_monitor_start (const char *const *script)
{
  FakeMonitor *monitor = g_new0 (FakeMonitor, 1);
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  monitor->path = g_build_filename (tmp_dir, "qmp.sock", NULL);
  g_unlink (monitor->path);
  address = g_unix_socket_address_new (monitor->path);
  monitor->listener = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                    G_SOCKET_PROTOCOL_DEFAULT, &error);
  ck_assert_msg (monitor->listener != NULL, "%s", error ? error->message : "");
  ck_assert (g_socket_bind (monitor->listener, address, TRUE, NULL));
  ck_assert (g_socket_listen (monitor->listener, NULL));
  monitor->script = script;
  monitor->thread = g_thread_new ("fake-monitor", fake_monitor_run, monitor);
  return monitor;
}

/* Ends the monitor; the test fails if the client did not follow the
 * script. */
static void
fake_monitor_finish (FakeMonitor *monitor)
{
  g_thread_join (monitor->thread);
  ck_assert_msg (monitor->failure == NULL, "monitor: %s", monitor->failure);
  g_socket_close (monitor->listener, NULL);
  g_object_unref (monitor->listener);
  g_free (monitor->path);
  g_free (monitor);
}

static void
setup (void)
{
  tmp_dir = g_dir_make_tmp ("qube-kvm-qmp-XXXXXX", NULL);
  ck_assert_ptr_nonnull (tmp_dir);
}

static void
teardown (void)
{
  g_autofree char *sock = g_build_filename (tmp_dir, "qmp.sock", NULL);

  g_unlink (sock);
  g_rmdir (tmp_dir);
  g_clear_pointer (&tmp_dir, g_free);
}

/* The client negotiates capabilities, sends well-formed commands with
 * their arguments, skips events (keeping their names) and returns the
 * reply's value. */
START_TEST (test_command_and_events)
{
  static const char *const script[] = {
    ">" GREETING,
    "<{\"execute\":\"qmp_capabilities\"}",
    ">{\"return\": {}}",
    "<\"execute\":\"query-status\"",
    ">{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}",
    ">{\"return\": {\"status\": \"running\", \"running\": true}}",
    "<\"arguments\":{\"device\":\"disk-root\"}",
    ">{\"return\": {}}",
    ">{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true}}",
    NULL
  };
  FakeMonitor *monitor = fake_monitor_start (script);
  g_autoptr(GError) error = NULL;
  g_autoptr(KvmQmp) qmp = kvm_qmp_connect (monitor->path, 5000, &error);
  g_autoptr(JsonNode) status = NULL;
  g_autoptr(JsonNode) other = NULL;
  g_autoptr(JsonObject) args = json_object_new ();
  const GPtrArray *events;

  ck_assert_msg (qmp != NULL, "%s", error ? error->message : "");
  status = kvm_qmp_execute (qmp, "query-status", NULL, &error);
  ck_assert_msg (status != NULL, "%s", error ? error->message : "");
  ck_assert_str_eq (json_object_get_string_member (json_node_get_object (status), "status"),
                    "running");
  json_object_set_string_member (args, "device", "disk-root");
  other = kvm_qmp_execute (qmp, "eject", args, &error);
  ck_assert_msg (other != NULL, "%s", error ? error->message : "");
  ck_assert (kvm_qmp_wait_event (qmp, "SHUTDOWN", 5000));
  events = kvm_qmp_get_events (qmp);
  ck_assert_uint_eq (events->len, 2);
  ck_assert_str_eq (g_ptr_array_index (events, 0), "RESUME");
  ck_assert_str_eq (g_ptr_array_index (events, 1), "SHUTDOWN");
  g_clear_pointer (&qmp, kvm_qmp_free);
  fake_monitor_finish (monitor);
}
END_TEST

/* QEMU's error reply becomes an error naming the command and QEMU's
 * description. */
START_TEST (test_error_reply)
{
  static const char *const script[] = {
    ">" GREETING, "<qmp_capabilities", ">{\"return\": {}}",
    "<\"stop\"", ">{\"error\": {\"class\": \"GenericError\", \"desc\": \"not now\"}}",
    NULL
  };
  FakeMonitor *monitor = fake_monitor_start (script);
  g_autoptr(GError) error = NULL;
  g_autoptr(KvmQmp) qmp = kvm_qmp_connect (monitor->path, 5000, &error);
  g_autoptr(JsonNode) reply = NULL;

  ck_assert_msg (qmp != NULL, "%s", error ? error->message : "");
  reply = kvm_qmp_execute (qmp, "stop", NULL, &error);
  ck_assert_ptr_null (reply);
  ck_assert_str_eq (error->message, "QEMU refused 'stop': not now");
  g_clear_pointer (&qmp, kvm_qmp_free);
  fake_monitor_finish (monitor);
}
END_TEST

/* A peer that is not a QEMU monitor, or sends something malformed, is
 * refused with an error, never trusted. */
static const char *const not_a_monitor[] = { ">{\"hello\": 1}", NULL };
static const char *const not_json[] = { ">QMP ready", NULL };
static const char *const not_an_object[] = { ">[1, 2, 3]", NULL };
static const char *const neither[] = {
  ">" GREETING, "<qmp_capabilities", ">{\"something\": \"else\"}", NULL
};
static const char *const endless_line[] = { "=1100000", NULL };
static const char *const hangs_up[] = { ">" GREETING, "<qmp_capabilities", ".", NULL };

static const struct
{
  const char *const *script;
  int code;
  const char *message;
} bad_peers[] = {
  { not_a_monitor, G_IO_ERROR_INVALID_DATA, "does not greet like a QEMU monitor" },
  { not_json, G_IO_ERROR_INVALID_DATA, "malformed JSON" },
  { not_an_object, G_IO_ERROR_INVALID_DATA, "something other than a JSON object" },
  { neither, G_IO_ERROR_INVALID_DATA, "neither a reply nor an event" },
  { endless_line, G_IO_ERROR_MESSAGE_TOO_LARGE, "longer than" },
  { hangs_up, G_IO_ERROR_CONNECTION_CLOSED, "closed the connection" },
};

START_TEST (test_bad_peer)
{
  FakeMonitor *monitor = fake_monitor_start (bad_peers[_i].script);
  g_autoptr(GError) error = NULL;
  g_autoptr(KvmQmp) qmp = kvm_qmp_connect (monitor->path, 5000, &error);

  ck_assert_ptr_null (qmp);
  ck_assert_msg (g_error_matches (error, G_IO_ERROR, bad_peers[_i].code) &&
                 strstr (error->message, bad_peers[_i].message) != NULL,
                 "unexpected error: %s", error ? error->message : "(none)");
  fake_monitor_finish (monitor);
}
END_TEST

/* A monitor that never answers makes the call fail after the timeout
 * instead of blocking forever. */
START_TEST (test_silent_peer_times_out)
{
  static const char *const script[] = { ">" GREETING, "<qmp_capabilities", NULL };
  FakeMonitor *monitor = fake_monitor_start (script);
  g_autoptr(GError) error = NULL;
  g_autoptr(KvmQmp) qmp = kvm_qmp_connect (monitor->path, 1000, &error);

  ck_assert_ptr_null (qmp);
  ck_assert_msg (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT),
                 "unexpected error: %s", error ? error->message : "(none)");
  fake_monitor_finish (monitor);
}
END_TEST

/* Nothing listening: a clear connection error. */
START_TEST (test_no_monitor)
{
  g_autofree char *path = g_build_filename (tmp_dir, "absent.sock", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(KvmQmp) qmp = kvm_qmp_connect (path, 1000, &error);

  ck_assert_ptr_null (qmp);
  ck_assert_ptr_nonnull (error);
}
END_TEST

int
main (void)
{
  Suite *suite = suite_create ("kvm-qmp");
  TCase *tc = tcase_create ("qmp");
  SRunner *runner;
  int failed;

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_command_and_events);
  tcase_add_test (tc, test_error_reply);
  tcase_add_loop_test (tc, test_bad_peer, 0, G_N_ELEMENTS (bad_peers));
  tcase_add_test (tc, test_silent_peer_times_out);
  tcase_add_test (tc, test_no_monitor);
  suite_add_tcase (suite, tc);
  runner = srunner_create (suite);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
