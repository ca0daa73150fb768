/* test-qrexec-protocol.c — tests of core/qrexec-protocol.c: the wire layout
 * matches Qubes qrexec v3 byte for byte, good messages parse (whole or
 * fed a byte at a time), and every malformed message is refused with an
 * error that says what was wrong.
 */
#include "config.h"

#include <check.h>
#include <stddef.h>
#include <string.h>

#include "qube-error.h"
#include "qrexec-protocol.h"

/* ---- helpers ------------------------------------------------------------- */

static void
append_raw (GByteArray *out, guint32 type, guint32 len, const void *payload, gsize payload_len)
{
  struct msg_header hdr = { .type = type, .len = len };

  g_byte_array_append (out, (const guint8 *) &hdr, sizeof hdr);
  if (payload_len > 0)
    g_byte_array_append (out, payload, (guint) payload_len);
}

static QubeQrexecParser *
parser_after_hello (QubeQrexecSource source, guint32 version)
{
  QubeQrexecParser *parser = _qube_qrexec_parser_new (source, "work");
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autoptr(QubeQrexecMessage) msg = NULL;
  g_autoptr(GError) error = NULL;

  _qube_qrexec_append_hello (bytes, version);
  _qube_qrexec_parser_feed (parser, bytes->data, bytes->len);
  ck_assert_msg (_qube_qrexec_parser_next (parser, &msg, &error), "hello refused: %s",
                 error ? error->message : "");
  ck_assert_ptr_nonnull (msg);
  ck_assert_uint_eq (msg->type, MSG_HELLO);
  return parser;
}

/* Feed `bytes` and expect a refusal whose message contains `needle`. */
static void
expect_refused (QubeQrexecParser *parser, GByteArray *bytes, const char *needle)
{
  g_autoptr(QubeQrexecMessage) msg = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) again = NULL;

  _qube_qrexec_parser_feed (parser, bytes->data, bytes->len);
  ck_assert_msg (!_qube_qrexec_parser_next (parser, &msg, &error),
                 "a malformed message was accepted (expected: %s)", needle);
  ck_assert_ptr_null (msg);
  ck_assert (g_error_matches (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL));
  ck_assert_msg (strstr (error->message, needle) != NULL, "'%s' does not say '%s'",
                 error->message, needle);
  ck_assert_msg (strstr (error->message, "'work'") != NULL, "'%s' does not name the qube",
                 error->message);
  /* Once broken, the connection stays broken. */
  ck_assert (!_qube_qrexec_parser_next (parser, &msg, &again));
  ck_assert_ptr_nonnull (again);
}

static QubeQrexecMessage *
expect_message (QubeQrexecParser *parser, GByteArray *bytes)
{
  QubeQrexecMessage *msg = NULL;
  g_autoptr(GError) error = NULL;

  _qube_qrexec_parser_feed (parser, bytes->data, bytes->len);
  ck_assert_msg (_qube_qrexec_parser_next (parser, &msg, &error), "refused: %s",
                 error ? error->message : "");
  ck_assert_ptr_nonnull (msg);
  return msg;
}

static void
trigger3_raw (GByteArray *out, const char *target, gsize target_len, const char *ident,
              gsize ident_len, const void *name, gsize name_len)
{
  struct trigger_service_params3 params;

  memset (&params, 0, sizeof params);
  memcpy (params.target_domain, target, target_len);
  memcpy (params.request_id.ident, ident, ident_len);
  append_raw (out, MSG_TRIGGER_SERVICE3, (guint32) (sizeof params + name_len), NULL, 0);
  g_byte_array_append (out, (const guint8 *) &params, sizeof params);
  g_byte_array_append (out, name, (guint) name_len);
}

static char *
hex (const GByteArray *bytes)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < bytes->len; i++)
    g_string_append_printf (s, "%s%02x", i ? " " : "", bytes->data[i]);
  return g_string_free (s, FALSE);
}

/* ---- layout --------------------------------------------------------------- */

START_TEST (test_layout_matches_qubes)
{
  ck_assert_uint_eq (sizeof (struct msg_header), 8);
  ck_assert_uint_eq (offsetof (struct msg_header, type), 0);
  ck_assert_uint_eq (offsetof (struct msg_header, len), 4);
  ck_assert_uint_eq (sizeof (struct peer_info), 4);
  ck_assert_uint_eq (sizeof (struct exec_params), 8);
  ck_assert_uint_eq (offsetof (struct exec_params, connect_port), 4);
  ck_assert_uint_eq (offsetof (struct exec_params, cmdline), 8);
  ck_assert_uint_eq (sizeof (struct service_params), 32);
  ck_assert_uint_eq (sizeof (struct trigger_service_params), 128);
  ck_assert_uint_eq (offsetof (struct trigger_service_params, target_domain), 64);
  ck_assert_uint_eq (offsetof (struct trigger_service_params, request_id), 96);
  ck_assert_uint_eq (sizeof (struct trigger_service_params3), 96);
  ck_assert_uint_eq (offsetof (struct trigger_service_params3, request_id), 64);

  ck_assert_int_eq (MSG_EXEC_CMDLINE, 0x200);
  ck_assert_int_eq (MSG_JUST_EXEC, 0x201);
  ck_assert_int_eq (MSG_SERVICE_CONNECT, 0x202);
  ck_assert_int_eq (MSG_SERVICE_REFUSED, 0x203);
  ck_assert_int_eq (MSG_TRIGGER_SERVICE, 0x210);
  ck_assert_int_eq (MSG_CONNECTION_TERMINATED, 0x211);
  ck_assert_int_eq (MSG_TRIGGER_SERVICE3, 0x212);
  ck_assert_int_eq (MSG_HELLO, 0x300);
  ck_assert_int_eq (MSG_DATA_STDIN, 0x190);
  ck_assert_int_eq (MSG_DATA_STDOUT, 0x191);
  ck_assert_int_eq (MSG_DATA_STDERR, 0x192);
  ck_assert_int_eq (MSG_DATA_EXIT_CODE, 0x193);
  ck_assert_int_eq (VCHAN_BASE_PORT, 512);
  ck_assert_int_eq (MAX_DATA_CHUNK_V3, 65536);
  ck_assert_int_eq (QREXEC_EXIT_FAILED, 125);
  ck_assert_int_eq (QREXEC_EXIT_REFUSED, 126);
  ck_assert_int_eq (QREXEC_EXIT_NOT_FOUND, 127);
}
END_TEST

START_TEST (test_encoded_bytes)
{
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *dump = NULL;

  /* These byte strings are what a little-endian Qubes daemon and agent
   * put on the vchan. */
  _qube_qrexec_append_hello (bytes, 3);
  dump = hex (bytes);
  ck_assert_str_eq (dump, "00 03 00 00 04 00 00 00 03 00 00 00");
  g_clear_pointer (&dump, g_free);

  g_byte_array_set_size (bytes, 0);
  ck_assert (_qube_qrexec_append_exec (bytes, MSG_EXEC_CMDLINE, 0, 513, "user:id", &error));
  dump = hex (bytes);
  ck_assert_str_eq (dump, "00 02 00 00 10 00 00 00 00 00 00 00 01 02 00 00 "
                          "75 73 65 72 3a 69 64 00");
  g_clear_pointer (&dump, g_free);

  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_exit_code (bytes, 126);
  dump = hex (bytes);
  ck_assert_str_eq (dump, "93 01 00 00 04 00 00 00 7e 00 00 00");
  g_clear_pointer (&dump, g_free);

  g_byte_array_set_size (bytes, 0);
  ck_assert (_qube_qrexec_append_trigger_service3 (bytes, "@default", "SOCKET7", "qubes.Echo+a", &error));
  ck_assert_uint_eq (bytes->len, 8 + 96 + 13);
  ck_assert_uint_eq (bytes->data[0], 0x12);
  ck_assert_uint_eq (bytes->data[1], 0x02);
  ck_assert_uint_eq (bytes->data[4], 96 + 13);
  ck_assert_str_eq ((char *) bytes->data + 8, "@default");
  ck_assert_str_eq ((char *) bytes->data + 8 + 64, "SOCKET7");
  ck_assert_str_eq ((char *) bytes->data + 8 + 96, "qubes.Echo+a");

  /* An encoder refuses what the parser would refuse. */
  g_byte_array_set_size (bytes, 0);
  ck_assert (!_qube_qrexec_append_trigger_service3 (bytes, "a/b", "1", "x", &error));
  ck_assert (g_error_matches (error, QUBE_ERROR, QUBE_ERROR_INVALID));
  ck_assert_uint_eq (bytes->len, 0);
}
END_TEST

/* ---- good messages ------------------------------------------------------- */

START_TEST (test_agent_session_byte_by_byte)
{
  g_autoptr(QubeQrexecParser) parser = _qube_qrexec_parser_new (QUBE_QREXEC_FROM_AGENT, "work");
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  GPtrArray *msgs = g_ptr_array_new_with_free_func ((GDestroyNotify) _qube_qrexec_message_free);
  QubeQrexecMessage *m;

  _qube_qrexec_append_hello (bytes, 3);
  ck_assert (_qube_qrexec_append_trigger_service3 (bytes, "@dispvm:@tag:x", "SOCKET11",
                                                   "qubes.Filecopy+arg.1", &error));
  _qube_qrexec_append_connection_terminated (bytes, 5, 514);

  ck_assert_uint_eq (_qube_qrexec_parser_wanted (parser), 8);
  /* Messages come out whole whatever the chunks the transport gives. */
  for (guint i = 0; i < bytes->len; i++)
    {
      _qube_qrexec_parser_feed (parser, bytes->data + i, 1);
      do
        {
          m = NULL;
          ck_assert_msg (_qube_qrexec_parser_next (parser, &m, &error), "%s", error->message);
          if (m != NULL)
            g_ptr_array_add (msgs, m);
        }
      while (m != NULL);
    }
  ck_assert_uint_eq (msgs->len, 3);
  m = msgs->pdata[0];
  ck_assert_uint_eq (m->type, MSG_HELLO);
  ck_assert_uint_eq (m->version, 3);
  ck_assert_uint_eq (_qube_qrexec_parser_get_version (parser), 3);
  m = msgs->pdata[1];
  ck_assert_uint_eq (m->type, MSG_TRIGGER_SERVICE3);
  ck_assert_str_eq (m->target_domain, "@dispvm:@tag:x");
  ck_assert_str_eq (m->ident, "SOCKET11");
  ck_assert_str_eq (m->service_name, "qubes.Filecopy+arg.1");
  m = msgs->pdata[2];
  ck_assert_uint_eq (m->type, MSG_CONNECTION_TERMINATED);
  ck_assert_uint_eq (m->connect_domain, 5);
  ck_assert_uint_eq (m->connect_port, 514);
  g_ptr_array_unref (msgs);
}
END_TEST

START_TEST (test_hello_versions)
{
  g_autoptr(QubeQrexecParser) v4 = parser_after_hello (QUBE_QREXEC_FROM_AGENT, 4);
  g_autoptr(QubeQrexecParser) v2 = parser_after_hello (QUBE_QREXEC_FROM_AGENT, 2);
  g_autoptr(QubeQrexecParser) v1 = _qube_qrexec_parser_new (QUBE_QREXEC_FROM_AGENT, "work");
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autoptr(QubeQrexecMessage) msg = NULL;
  struct trigger_service_params old;

  /* A newer peer is met at our version; an older one at its own. */
  ck_assert_uint_eq (_qube_qrexec_parser_get_version (v4), 3);
  ck_assert_uint_eq (_qube_qrexec_parser_get_version (v2), 2);

  /* Version 2 uses the old trigger message. */
  memset (&old, 0, sizeof old);
  strcpy (old.service_name, "qubes.Echo");
  strcpy (old.target_domain, "vault");
  strcpy (old.request_id.ident, "42");
  append_raw (bytes, MSG_TRIGGER_SERVICE, sizeof old, &old, sizeof old);
  msg = expect_message (v2, bytes);
  ck_assert_str_eq (msg->service_name, "qubes.Echo");
  ck_assert_str_eq (msg->target_domain, "vault");
  ck_assert_str_eq (msg->ident, "42");
  /* ...and version 3 does not. */
  expect_refused (v4, bytes, "MSG_TRIGGER_SERVICE in protocol version 3");

  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_hello (bytes, 1);
  expect_refused (v1, bytes, "version 1, at least 2");
}
END_TEST

START_TEST (test_data_stream)
{
  g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_PROCESS, 3);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autofree guint8 *big = g_malloc0 (MAX_DATA_CHUNK_V3);
  g_autoptr(QubeQrexecMessage) out = NULL;
  g_autoptr(QubeQrexecMessage) full = NULL;
  g_autoptr(QubeQrexecMessage) eof = NULL;
  g_autoptr(QubeQrexecMessage) err = NULL;
  g_autoptr(QubeQrexecMessage) code = NULL;

  _qube_qrexec_append_data (bytes, MSG_DATA_STDOUT, "hi\n", 3);
  out = expect_message (parser, bytes);
  ck_assert_uint_eq (g_bytes_get_size (out->data), 3);
  ck_assert (!out->eof);

  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_data (bytes, MSG_DATA_STDOUT, big, MAX_DATA_CHUNK_V3);
  full = expect_message (parser, bytes);
  ck_assert_uint_eq (g_bytes_get_size (full->data), MAX_DATA_CHUNK_V3);

  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_data (bytes, MSG_DATA_STDOUT, NULL, 0);
  eof = expect_message (parser, bytes);
  ck_assert (eof->eof);

  /* stderr may go on after stdout's end. */
  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_data (bytes, MSG_DATA_STDERR, "oops", 4);
  err = expect_message (parser, bytes);
  ck_assert_uint_eq (err->type, MSG_DATA_STDERR);

  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_exit_code (bytes, 127);
  code = expect_message (parser, bytes);
  ck_assert_int_eq (code->exit_code, 127);

  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_data (bytes, MSG_DATA_STDERR, "late", 4);
  expect_refused (parser, bytes, "after the exit code");
}
END_TEST

/* Data for a version 2 peer is cut into messages it accepts, and the
 * largest message follows the negotiated version (version 2's before the
 * hello); no data at all is one empty message, the end of the stream. */
START_TEST (test_data_chunked_for_the_version)
{
  g_autoptr(QubeQrexecParser) v2 = parser_after_hello (QUBE_QREXEC_FROM_PROCESS, 2);
  g_autoptr(QubeQrexecParser) v3 = parser_after_hello (QUBE_QREXEC_FROM_PROCESS, 3);
  g_autoptr(QubeQrexecParser) none = _qube_qrexec_parser_new (QUBE_QREXEC_FROM_PROCESS, "work");
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autofree guint8 *data = g_malloc (10000);
  gsize sizes[] = { 4096, 4096, 1808 };

  ck_assert_uint_eq (_qube_qrexec_parser_max_chunk (v2), MAX_DATA_CHUNK_V2);
  ck_assert_uint_eq (_qube_qrexec_parser_max_chunk (v3), MAX_DATA_CHUNK_V3);
  ck_assert_uint_eq (_qube_qrexec_parser_max_chunk (none), MAX_DATA_CHUNK_V2);

  for (gsize i = 0; i < 10000; i++)
    data[i] = (guint8) (i * 7);
  _qube_qrexec_append_data_chunked (bytes, MSG_DATA_STDOUT, data, 10000,
                                    _qube_qrexec_parser_max_chunk (v2));
  _qube_qrexec_parser_feed (v2, bytes->data, bytes->len);
  for (gsize i = 0, off = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr(QubeQrexecMessage) msg = NULL;
      g_autoptr(GError) error = NULL;
      gsize len;
      const guint8 *p;

      ck_assert (_qube_qrexec_parser_next (v2, &msg, &error));
      ck_assert_ptr_nonnull (msg);
      p = g_bytes_get_data (msg->data, &len);
      ck_assert_uint_eq (len, sizes[i]);
      ck_assert_mem_eq (p, data + off, len);
      off += len;
    }

  /* An exact multiple: two full messages, no empty one behind them. */
  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_data_chunked (bytes, MSG_DATA_STDOUT, data, 2 * MAX_DATA_CHUNK_V2, MAX_DATA_CHUNK_V2);
  ck_assert_uint_eq (bytes->len, 2 * (sizeof (struct msg_header) + MAX_DATA_CHUNK_V2));

  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_data_chunked (bytes, MSG_DATA_STDOUT, NULL, 0, MAX_DATA_CHUNK_V2);
  ck_assert_uint_eq (bytes->len, sizeof (struct msg_header));
  {
    g_autoptr(QubeQrexecMessage) eof = expect_message (v2, bytes);

    ck_assert (eof->eof);
  }
}
END_TEST

START_TEST (test_daemon_messages)
{
  g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_DAEMON, 3);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeQrexecMessage) exec = NULL;
  g_autoptr(QubeQrexecMessage) connect = NULL;
  g_autoptr(QubeQrexecMessage) refused = NULL;

  ck_assert (_qube_qrexec_append_exec (bytes, MSG_EXEC_CMDLINE, 0, 513,
                                       "user:QUBESRPC qubes.Echo+ dom0", &error));
  exec = expect_message (parser, bytes);
  ck_assert_str_eq (exec->user, "user");
  ck_assert_str_eq (exec->command, "QUBESRPC qubes.Echo+ dom0");
  ck_assert_uint_eq (exec->connect_port, 513);

  /* NUL padding after a command line is harmless and accepted. */
  {
    g_autoptr(QubeQrexecMessage) padded = NULL;
    struct exec_params params = { 0, 514 };

    g_byte_array_set_size (bytes, 0);
    append_raw (bytes, MSG_JUST_EXEC, sizeof params + 12, &params, sizeof params);
    g_byte_array_append (bytes, (const guint8 *) "root:id\0\0\0\0\0", 12);
    padded = expect_message (parser, bytes);
    ck_assert_str_eq (padded->command, "id");
  }

  g_byte_array_set_size (bytes, 0);
  ck_assert (_qube_qrexec_append_exec (bytes, MSG_SERVICE_CONNECT, 3, 515, "SOCKET7", &error));
  /* As Qubes sends it: the ident in a whole, zero-padded 32-byte field. */
  ck_assert_uint_eq (bytes->len, 8 + 8 + 32);
  connect = expect_message (parser, bytes);
  ck_assert_str_eq (connect->ident, "SOCKET7");
  /* A request's ident may be empty: its answer carries it so. */
  {
    g_autoptr(QubeQrexecMessage) unnamed = NULL;

    g_byte_array_set_size (bytes, 0);
    ck_assert (_qube_qrexec_append_exec (bytes, MSG_SERVICE_CONNECT, 3, 516, "", &error));
    ck_assert_uint_eq (bytes->len, 8 + 8 + 32);
    unnamed = expect_message (parser, bytes);
    ck_assert_str_eq (unnamed->ident, "");
    ck_assert_uint_eq (unnamed->connect_port, 516);
  }

  g_byte_array_set_size (bytes, 0);
  ck_assert (_qube_qrexec_append_service_refused (bytes, "SOCKET7", &error));
  refused = expect_message (parser, bytes);
  ck_assert_uint_eq (refused->type, MSG_SERVICE_REFUSED);
  ck_assert_str_eq (refused->ident, "SOCKET7");

  /* A refusal carries the ident the request came with, as it was (an
   * empty one, or one with characters an ident does not have). */
  for (gsize i = 0; i < 2; i++)
    {
      const char *ident = i == 0 ? "a/b\n" : "";
      g_autoptr(QubeQrexecMessage) echoed = NULL;

      g_byte_array_set_size (bytes, 0);
      ck_assert (_qube_qrexec_append_service_refused (bytes, ident, &error));
      echoed = expect_message (parser, bytes);
      ck_assert_str_eq (echoed->ident, ident);
    }
  g_byte_array_set_size (bytes, 0);
  ck_assert (!_qube_qrexec_append_service_refused (bytes, "0123456789012345678901234567890123", &error));
  ck_assert_uint_eq (bytes->len, 0);
}
END_TEST

/* ---- malformed messages --------------------------------------------------- */

START_TEST (test_refused_before_hello)
{
  g_autoptr(QubeQrexecParser) parser = _qube_qrexec_parser_new (QUBE_QREXEC_FROM_AGENT, "work");
  g_autoptr(GByteArray) bytes = g_byte_array_new ();

  _qube_qrexec_append_connection_terminated (bytes, 0, 513);
  expect_refused (parser, bytes, "before MSG_HELLO");
}
END_TEST

START_TEST (test_refused_second_hello)
{
  g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_AGENT, 3);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();

  _qube_qrexec_append_hello (bytes, 3);
  expect_refused (parser, bytes, "second MSG_HELLO");
}
END_TEST

START_TEST (test_refused_unknown_type)
{
  g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_AGENT, 3);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();

  append_raw (bytes, 0x4242, 0, NULL, 0);
  expect_refused (parser, bytes, "unknown message type 0x4242");
}
END_TEST

START_TEST (test_refused_version4_message)
{
  g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_AGENT, 4);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();

  append_raw (bytes, MSG_TRIGGER_SERVICE4, 8, "12345678", 8);
  expect_refused (parser, bytes, "unknown message type 0x213");
}
END_TEST

START_TEST (test_refused_length_beyond_maximum)
{
  g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_AGENT, 3);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();

  /* Refused on the header alone: the payload is never waited for. */
  append_raw (bytes, MSG_TRIGGER_SERVICE3, 96 + MAX_SERVICE_NAME_LEN + 1, NULL, 0);
  expect_refused (parser, bytes, "MSG_TRIGGER_SERVICE3 of 65097 bytes, allowed 97 to 65096");
}
END_TEST

START_TEST (test_refused_huge_length)
{
  g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_PROCESS, 3);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();

  append_raw (bytes, MSG_DATA_STDOUT, 0xffffffffu, NULL, 0);
  expect_refused (parser, bytes, "of 4294967295 bytes");
}
END_TEST

START_TEST (test_refused_data_chunk_too_big)
{
  g_autoptr(QubeQrexecParser) v3 = parser_after_hello (QUBE_QREXEC_FROM_PROCESS, 3);
  g_autoptr(QubeQrexecParser) v2 = parser_after_hello (QUBE_QREXEC_FROM_PROCESS, 2);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();

  append_raw (bytes, MSG_DATA_STDOUT, MAX_DATA_CHUNK_V3 + 1, NULL, 0);
  expect_refused (v3, bytes, "MSG_DATA_STDOUT of 65537 bytes, allowed 0 to 65536");
  g_byte_array_set_size (bytes, 0);
  append_raw (bytes, MSG_DATA_STDOUT, MAX_DATA_CHUNK_V2 + 1, NULL, 0);
  expect_refused (v2, bytes, "allowed 0 to 4096");
}
END_TEST

START_TEST (test_refused_truncated_struct)
{
  struct {
    guint32 type, len;
    const char *needle;
  } cases[] = {
    { MSG_HELLO, 3, "MSG_HELLO of 3 bytes, it has 4" },
    { MSG_CONNECTION_TERMINATED, 4, "MSG_CONNECTION_TERMINATED of 4 bytes, it has 8" },
    { MSG_TRIGGER_SERVICE3, 96, "MSG_TRIGGER_SERVICE3 of 96 bytes, allowed 97" },
    { MSG_TRIGGER_SERVICE3, 50, "MSG_TRIGGER_SERVICE3 of 50 bytes" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(QubeQrexecParser) parser = NULL;
      g_autoptr(GByteArray) bytes = g_byte_array_new ();
      guint8 zeros[128] = { 0 };

      parser = cases[i].type == MSG_HELLO
               ? _qube_qrexec_parser_new (QUBE_QREXEC_FROM_AGENT, "work")
               : parser_after_hello (QUBE_QREXEC_FROM_AGENT, 3);
      append_raw (bytes, cases[i].type, cases[i].len, zeros, cases[i].len);
      expect_refused (parser, bytes, cases[i].needle);
    }
}
END_TEST

START_TEST (test_refused_missing_nul)
{
  char no_nul[64];
  struct {
    const char *target; gsize target_len;
    const char *ident; gsize ident_len;
    const char *name; gsize name_len;
    const char *needle;
  } cases[] = {
    { no_nul, 64, "1", 2, "qubes.Echo", 11, "the target is not NUL-terminated within its 64 bytes" },
    { "vault", 6, no_nul, 32, "qubes.Echo", 11, "the request ident is not NUL-terminated within its 32 bytes" },
    { "vault", 6, "1", 2, "qubes.Echo", 10, "the service name is not NUL-terminated" },
    { "vault", 6, "1", 2, "qubes.Echo\0x", 13, "the service name has a NUL byte inside it" },
  };

  memset (no_nul, 'a', sizeof no_nul);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_AGENT, 3);
      g_autoptr(GByteArray) bytes = g_byte_array_new ();

      trigger3_raw (bytes, cases[i].target, cases[i].target_len, cases[i].ident,
                    cases[i].ident_len, cases[i].name, cases[i].name_len);
      expect_refused (parser, bytes, cases[i].needle);
    }
}
END_TEST

/* A well-formed request whose names are empty or hold characters no name
 * has is handed out to be refused (the daemon answers MSG_SERVICE_REFUSED,
 * as Qubes' does), and the connection goes on: the next request parses. */
START_TEST (test_request_to_refuse)
{
  struct {
    const char *target; gsize target_len;
    const char *ident; gsize ident_len;
    const char *name; gsize name_len;
    const char *needle;   /* NULL: not refused */
  } cases[] = {
    { "", 1, "1", 2, "qubes.Echo", 11, NULL },
    { "vault", 6, "", 1, "qubes.Echo", 11, NULL },
    { "vault", 6, "1", 2, "", 1, "the service name is empty" },
    { "vault", 6, "1", 2, "\0", 2, "the service name is empty" },
    { "../etc", 7, "1", 2, "qubes.Echo", 11, "the target contains the byte 0x2f" },
    { "vault", 6, "1", 2, "qubes Echo", 11, "the service name contains the byte 0x20" },
    { "vault", 6, "1\n", 3, "qubes.Echo", 11, "the request ident contains the byte 0x0a" },
    { "vault", 6, "1\0x", 4, "qubes.Echo", 11, "the request ident has bytes after its end" },
    { "vault", 6, "1", 2, "+arg", 5, "does not start with a service" },
    { "vault", 6, "1", 2, "..", 3, "does not start with a service" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_AGENT, 3);
      g_autoptr(GByteArray) bytes = g_byte_array_new ();
      g_autoptr(GError) error = NULL;
      g_autoptr(QubeQrexecMessage) msg = NULL;
      g_autoptr(QubeQrexecMessage) next = NULL;

      trigger3_raw (bytes, cases[i].target, cases[i].target_len, cases[i].ident,
                    cases[i].ident_len, cases[i].name, cases[i].name_len);
      msg = expect_message (parser, bytes);
      ck_assert_uint_eq (msg->type, MSG_TRIGGER_SERVICE3);
      ck_assert_str_eq (msg->target_domain, cases[i].target);
      ck_assert_str_eq (msg->ident, cases[i].ident);
      ck_assert_str_eq (msg->service_name, cases[i].name);
      if (cases[i].needle == NULL)
        ck_assert_msg (msg->refusal == NULL, "case %zu refused: %s", i, msg->refusal);
      else
        ck_assert_msg (msg->refusal != NULL && strstr (msg->refusal, cases[i].needle) != NULL,
                       "case %zu: '%s' does not say '%s'", i, msg->refusal, cases[i].needle);
      g_byte_array_set_size (bytes, 0);
      ck_assert (_qube_qrexec_append_trigger_service3 (bytes, "vault", "2", "qubes.Echo", &error));
      next = expect_message (parser, bytes);
      ck_assert_str_eq (next->ident, "2");
      ck_assert_ptr_null (next->refusal);
    }
}
END_TEST

START_TEST (test_refused_bad_cmdline)
{
  struct {
    const char *cmdline;
    gsize len;
    const char *needle;
  } cases[] = {
    { "user:ls", 7, "the command line is not NUL-terminated" },
    { "userls", 7, "not USER:COMMAND" },
    { ":ls", 4, "is not USER:COMMAND" },
    { "user:", 6, "is not USER:COMMAND" },
    { "us/er:ls", 9, "the user name contains the byte 0x2f" },
    { "user:l\0s", 9, "has a NUL byte inside it" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_DAEMON, 3);
      g_autoptr(GByteArray) bytes = g_byte_array_new ();
      struct exec_params params = { 0, 513 };

      append_raw (bytes, MSG_EXEC_CMDLINE, (guint32) (sizeof params + cases[i].len), &params,
                  sizeof params);
      g_byte_array_append (bytes, (const guint8 *) cases[i].cmdline, (guint) cases[i].len);
      expect_refused (parser, bytes, cases[i].needle);
    }
}
END_TEST

START_TEST (test_refused_wrong_direction)
{
  g_autoptr(QubeQrexecParser) agent = parser_after_hello (QUBE_QREXEC_FROM_AGENT, 3);
  g_autoptr(QubeQrexecParser) process = parser_after_hello (QUBE_QREXEC_FROM_PROCESS, 3);
  g_autoptr(QubeQrexecParser) caller = parser_after_hello (QUBE_QREXEC_FROM_CALLER, 3);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autoptr(GError) error = NULL;

  /* A qube's agent never tells the daemon what to run. */
  ck_assert (_qube_qrexec_append_exec (bytes, MSG_EXEC_CMDLINE, 0, 513, "root:id", &error));
  expect_refused (agent, bytes, "MSG_EXEC_CMDLINE is not a message this side may send");
  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_data (bytes, MSG_DATA_STDIN, "x", 1);
  expect_refused (process, bytes, "MSG_DATA_STDIN is not a message");
  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_data (bytes, MSG_DATA_STDOUT, "x", 1);
  expect_refused (caller, bytes, "MSG_DATA_STDOUT is not a message");
}
END_TEST

START_TEST (test_refused_data_after_eof)
{
  g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_CALLER, 3);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autoptr(QubeQrexecMessage) eof = NULL;

  _qube_qrexec_append_data (bytes, MSG_DATA_STDIN, NULL, 0);
  eof = expect_message (parser, bytes);
  ck_assert (eof->eof);
  g_byte_array_set_size (bytes, 0);
  _qube_qrexec_append_data (bytes, MSG_DATA_STDIN, "more", 4);
  expect_refused (parser, bytes, "MSG_DATA_STDIN after its end of file");
}
END_TEST

START_TEST (test_wanted)
{
  g_autoptr(QubeQrexecParser) parser = parser_after_hello (QUBE_QREXEC_FROM_PROCESS, 3);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autoptr(QubeQrexecMessage) msg = NULL;
  g_autoptr(GError) error = NULL;
  guint8 payload[100] = { 0 };

  _qube_qrexec_append_data (bytes, MSG_DATA_STDOUT, payload, sizeof payload);
  _qube_qrexec_parser_feed (parser, bytes->data, 3);
  ck_assert_uint_eq (_qube_qrexec_parser_wanted (parser), 5);
  _qube_qrexec_parser_feed (parser, bytes->data + 3, 5);
  ck_assert (_qube_qrexec_parser_next (parser, &msg, &error));
  ck_assert_ptr_null (msg);
  ck_assert_uint_eq (_qube_qrexec_parser_wanted (parser), 100);
  _qube_qrexec_parser_feed (parser, bytes->data + 8, 100);
  ck_assert (_qube_qrexec_parser_next (parser, &msg, &error));
  ck_assert_ptr_nonnull (msg);
  ck_assert_uint_eq (_qube_qrexec_parser_wanted (parser), 8);
}
END_TEST

static Suite *
qrexec_protocol_suite (void)
{
  Suite *s = suite_create ("qrexec-protocol");
  TCase *layout = tcase_create ("layout");
  TCase *good = tcase_create ("good");
  TCase *bad = tcase_create ("malformed");

  tcase_add_test (layout, test_layout_matches_qubes);
  tcase_add_test (layout, test_encoded_bytes);
  suite_add_tcase (s, layout);

  tcase_add_test (good, test_agent_session_byte_by_byte);
  tcase_add_test (good, test_hello_versions);
  tcase_add_test (good, test_data_stream);
  tcase_add_test (good, test_data_chunked_for_the_version);
  tcase_add_test (good, test_daemon_messages);
  tcase_add_test (good, test_wanted);
  suite_add_tcase (s, good);

  tcase_add_test (bad, test_refused_before_hello);
  tcase_add_test (bad, test_refused_second_hello);
  tcase_add_test (bad, test_refused_unknown_type);
  tcase_add_test (bad, test_refused_version4_message);
  tcase_add_test (bad, test_refused_length_beyond_maximum);
  tcase_add_test (bad, test_refused_huge_length);
  tcase_add_test (bad, test_refused_data_chunk_too_big);
  tcase_add_test (bad, test_refused_truncated_struct);
  tcase_add_test (bad, test_refused_missing_nul);
  tcase_add_test (bad, test_request_to_refuse);
  tcase_add_test (bad, test_refused_bad_cmdline);
  tcase_add_test (bad, test_refused_wrong_direction);
  tcase_add_test (bad, test_refused_data_after_eof);
  suite_add_tcase (s, bad);
  return s;
}

int
main (void)
{
  SRunner *runner = srunner_create (qrexec_protocol_suite ());
  int failed;

  srunner_run_all (runner, CK_ENV);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
