/* qrexec-protocol.c — cutting qrexec messages out of a byte stream and
 * validating them (see qrexec-protocol.h).
 *
 * Everything here reads bytes a qube controls.  The order of checks is:
 * the header (type allowed from this side in this state, length within
 * the bounds of the type) before any payload is waited for; then the
 * payload, field by field (NUL inside fixed fields, allowed characters,
 * terminators of variable strings); only then is a message handed out.
 */
#include "config.h"

#include <string.h>

#include "qube-error.h"
#include "qrexec-protocol.h"

#define HEADER_LEN sizeof (struct msg_header)

/* Characters of names that reach the policy and the file system: Qubes'
 * own set (letters, digits, "_-."), plus per-field extras. */
#define EXTRA_TARGET "@:"
#define EXTRA_SERVICE "+"
#define EXTRA_IDENT " "

struct _QubeQrexecParser {
  QubeQrexecSource source;
  char *peer;
  GByteArray *buf;
  gsize start;              /* bytes of buf already handed out */
  gboolean header_checked;  /* the header at `start` passed check_header() */
  guint32 version;          /* negotiated; 0 before MSG_HELLO */
  gboolean stdin_eof;
  gboolean stdout_eof;
  gboolean exit_seen;
  char *failure;            /* set once the peer broke the protocol */
};

void
_qube_qrexec_message_free (QubeQrexecMessage *msg)
{
  if (msg == NULL)
    return;
  g_free (msg->user);
  g_free (msg->command);
  g_free (msg->target_domain);
  g_free (msg->service_name);
  g_free (msg->ident);
  g_free (msg->refusal);
  g_clear_pointer (&msg->data, g_bytes_unref);
  g_free (msg);
}

const char *
_qube_qrexec_type_name (guint32 type)
{
  static GPrivate unknown = G_PRIVATE_INIT (g_free);
  char *buf;

  switch (type)
    {
    case MSG_EXEC_CMDLINE: return "MSG_EXEC_CMDLINE";
    case MSG_JUST_EXEC: return "MSG_JUST_EXEC";
    case MSG_SERVICE_CONNECT: return "MSG_SERVICE_CONNECT";
    case MSG_SERVICE_REFUSED: return "MSG_SERVICE_REFUSED";
    case MSG_TRIGGER_SERVICE: return "MSG_TRIGGER_SERVICE";
    case MSG_CONNECTION_TERMINATED: return "MSG_CONNECTION_TERMINATED";
    case MSG_TRIGGER_SERVICE3: return "MSG_TRIGGER_SERVICE3";
    case MSG_TRIGGER_SERVICE4: return "MSG_TRIGGER_SERVICE4";
    case MSG_HELLO: return "MSG_HELLO";
    case MSG_DATA_STDIN: return "MSG_DATA_STDIN";
    case MSG_DATA_STDOUT: return "MSG_DATA_STDOUT";
    case MSG_DATA_STDERR: return "MSG_DATA_STDERR";
    case MSG_DATA_EXIT_CODE: return "MSG_DATA_EXIT_CODE";
    default:
      buf = g_strdup_printf ("message type 0x%x", type);
      g_private_replace (&unknown, buf);
      return buf;
    }
}

static const char *
source_description (QubeQrexecSource source)
{
  switch (source)
    {
    case QUBE_QREXEC_FROM_AGENT: return "the agent on the control connection";
    case QUBE_QREXEC_FROM_DAEMON: return "the daemon on the control connection";
    case QUBE_QREXEC_FROM_PROCESS: return "the process side of a data connection";
    case QUBE_QREXEC_FROM_CALLER: return "the calling side of a data connection";
    default: g_assert_not_reached ();
    }
}

QubeQrexecParser *
_qube_qrexec_parser_new (QubeQrexecSource source, const char *peer)
{
  QubeQrexecParser *parser = g_new0 (QubeQrexecParser, 1);

  parser->source = source;
  parser->peer = g_strdup (peer);
  parser->buf = g_byte_array_new ();
  return parser;
}

void
_qube_qrexec_parser_free (QubeQrexecParser *parser)
{
  if (parser == NULL)
    return;
  g_free (parser->peer);
  g_byte_array_unref (parser->buf);
  g_free (parser->failure);
  g_free (parser);
}

void
_qube_qrexec_parser_feed (QubeQrexecParser *parser, const void *data, gsize len)
{
  /* Drop what was handed out before growing, so the buffer stays about
   * one message long whatever the stream's length. */
  if (parser->start > 0 && (parser->start == parser->buf->len || parser->start >= 65536))
    {
      g_byte_array_remove_range (parser->buf, 0, (guint) parser->start);
      parser->start = 0;
    }
  g_byte_array_append (parser->buf, data, (guint) len);
}

guint32
_qube_qrexec_parser_get_version (QubeQrexecParser *parser)
{
  return parser->version;
}

gsize
_qube_qrexec_parser_max_chunk (QubeQrexecParser *parser)
{
  return parser->version >= QREXEC_PROTOCOL_V3 ? MAX_DATA_CHUNK_V3 : MAX_DATA_CHUNK_V2;
}

static gboolean
parser_fail (QubeQrexecParser *parser, GError **error, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static gboolean
parser_fail (QubeQrexecParser *parser, GError **error, const char *fmt, ...)
{
  g_autofree char *reason = NULL;
  va_list ap;

  va_start (ap, fmt);
  reason = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_free (parser->failure);
  parser->failure = g_strdup_printf ("qrexec from '%s' (%s): %s", parser->peer,
                                     source_description (parser->source), reason);
  g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL, parser->failure);
  return FALSE;
}

static gboolean
char_allowed (char c, const char *extra)
{
  return g_ascii_isalnum (c) || c == '_' || c == '-' || c == '.' ||
         (c != '\0' && strchr (extra, c) != NULL);
}

/* What bytes after a string's NUL mean. */
typedef enum {
  AFTER_NUL_IGNORED,    /* a fixed-size field's padding, whatever it holds */
  AFTER_NUL_REFUSED,    /* anything but NUL padding makes a request one to refuse (Qubes' rule
                         * for the request ident) */
  AFTER_NUL_MALFORMED,  /* a variable-length string fills its space: anything after its end
                         * makes the message malformed */
} AfterNul;

/* A string in `size` bytes from the peer.  Not NUL-terminated within them,
 * or followed by more than NUL padding under AFTER_NUL_MALFORMED: the
 * message is malformed.  Otherwise `*out` is the string as sent and, unless
 * `*unfit` says so already, `*unfit` says why it is no name to act on, when
 * it is not: empty (unless `may_be_empty`), a character outside the allowed
 * set (any non-NUL byte is allowed when `extra` is NULL), or more than NUL
 * padding after it under AFTER_NUL_REFUSED. */
static gboolean
take_field (QubeQrexecParser *parser, const guint8 *field, gsize size, AfterNul after,
            gboolean may_be_empty, const char *what, const char *extra, char **out,
            char **unfit, GError **error)
{
  const guint8 *nul = memchr (field, '\0', size);
  gsize len;
  gboolean padded = TRUE;

  if (nul == NULL)
    return parser_fail (parser, error, "%s is not NUL-terminated within its %zu bytes", what, size);
  len = (gsize) (nul - field);
  for (gsize i = len + 1; after != AFTER_NUL_IGNORED && padded && i < size; i++)
    padded = field[i] == '\0';
  if (!padded && after == AFTER_NUL_MALFORMED)
    return parser_fail (parser, error, "%s has a NUL byte inside it", what);
  *out = g_strndup ((const char *) field, len);
  if (*unfit != NULL)
    return TRUE;
  if (!padded)
    *unfit = g_strdup_printf ("%s has bytes after its end", what);
  else if (len == 0 && !may_be_empty)
    *unfit = g_strdup_printf ("%s is empty", what);
  for (gsize i = 0; *unfit == NULL && extra != NULL && i < len; i++)
    if (!char_allowed ((char) field[i], extra))
      *unfit = g_strdup_printf ("%s contains the byte 0x%02x, which is not allowed", what, field[i]);
  return TRUE;
}

/* A string that must be fit to act on (see take_field()): one that is not
 * makes the message malformed. */
static gboolean
take_string (QubeQrexecParser *parser, const guint8 *field, gsize size, gboolean exact,
             gboolean may_be_empty, const char *what, const char *extra, char **out, GError **error)
{
  g_autofree char *unfit = NULL;

  if (!take_field (parser, field, size, exact ? AFTER_NUL_MALFORMED : AFTER_NUL_IGNORED,
                   may_be_empty, what, extra, out, &unfit, error))
    return FALSE;
  if (unfit == NULL)
    return TRUE;
  g_clear_pointer (out, g_free);
  return parser_fail (parser, error, "%s", unfit);
}

static guint32
read_u32 (const guint8 *p)
{
  guint32 v;

  memcpy (&v, p, sizeof v);
  return v;
}

/* Which side may send `type`, and its payload bounds. */
static gboolean
check_header (QubeQrexecParser *parser, const struct msg_header *hdr, GError **error)
{
  const char *name = _qube_qrexec_type_name (hdr->type);
  QubeQrexecSource sender;
  gsize min, max;
  gsize chunk = _qube_qrexec_parser_max_chunk (parser);
  gboolean any_data_side = FALSE;

  switch (hdr->type)
    {
    case MSG_HELLO:
      sender = parser->source;
      min = max = sizeof (struct peer_info);
      break;
    case MSG_EXEC_CMDLINE:
    case MSG_JUST_EXEC:
      sender = QUBE_QREXEC_FROM_DAEMON;
      min = sizeof (struct exec_params) + 4; /* "u:c" and its NUL */
      max = sizeof (struct exec_params) + MAX_QREXEC_CMD_LEN;
      break;
    case MSG_SERVICE_CONNECT:
      sender = QUBE_QREXEC_FROM_DAEMON;
      min = sizeof (struct exec_params) + 2;
      max = sizeof (struct exec_params) + sizeof (struct service_params);
      break;
    case MSG_SERVICE_REFUSED:
      sender = QUBE_QREXEC_FROM_DAEMON;
      min = max = sizeof (struct service_params);
      break;
    case MSG_TRIGGER_SERVICE:
      sender = QUBE_QREXEC_FROM_AGENT;
      min = max = sizeof (struct trigger_service_params);
      break;
    case MSG_TRIGGER_SERVICE3:
      sender = QUBE_QREXEC_FROM_AGENT;
      /* A service name of one NUL is well-formed (and refused, as empty). */
      min = sizeof (struct trigger_service_params3) + 1;
      max = sizeof (struct trigger_service_params3) + MAX_SERVICE_NAME_LEN;
      break;
    case MSG_CONNECTION_TERMINATED:
      sender = QUBE_QREXEC_FROM_AGENT;
      min = max = sizeof (struct exec_params);
      break;
    case MSG_DATA_STDIN:
      sender = QUBE_QREXEC_FROM_CALLER;
      min = 0;
      max = chunk;
      break;
    case MSG_DATA_STDOUT:
    case MSG_DATA_STDERR:
      sender = QUBE_QREXEC_FROM_PROCESS;
      min = 0;
      max = chunk;
      break;
    case MSG_DATA_EXIT_CODE:
      /* Qubes sends the exit code from the process side, and from the
       * calling side of a service call too. */
      sender = QUBE_QREXEC_FROM_PROCESS;
      any_data_side = TRUE;
      min = max = sizeof (gint32);
      break;
    default:
      return parser_fail (parser, error, "unknown message type 0x%x", hdr->type);
    }

  if (hdr->type == MSG_HELLO && parser->version != 0)
    return parser_fail (parser, error, "a second MSG_HELLO");
  if (hdr->type != MSG_HELLO && parser->version == 0)
    return parser_fail (parser, error, "%s before MSG_HELLO", name);
  if (sender != parser->source &&
      !(any_data_side && parser->source == QUBE_QREXEC_FROM_CALLER))
    return parser_fail (parser, error, "%s is not a message this side may send", name);
  if (hdr->type == MSG_TRIGGER_SERVICE && parser->version != QREXEC_PROTOCOL_V2)
    return parser_fail (parser, error, "MSG_TRIGGER_SERVICE in protocol version %u (use MSG_TRIGGER_SERVICE3)",
                        parser->version);
  if (hdr->type == MSG_TRIGGER_SERVICE3 && parser->version < QREXEC_PROTOCOL_V3)
    return parser_fail (parser, error, "MSG_TRIGGER_SERVICE3 in protocol version %u", parser->version);
  if (parser->exit_seen)
    return parser_fail (parser, error, "%s after the exit code", name);
  if ((hdr->type == MSG_DATA_STDIN && parser->stdin_eof) ||
      (hdr->type == MSG_DATA_STDOUT && parser->stdout_eof))
    return parser_fail (parser, error, "%s after its end of file", name);
  if (hdr->len < min || hdr->len > max)
    {
      if (min == max)
        return parser_fail (parser, error, "%s of %u bytes, it has %zu", name, hdr->len, min);
      return parser_fail (parser, error, "%s of %u bytes, allowed %zu to %zu", name, hdr->len, min, max);
    }
  return TRUE;
}

static gboolean
parse_exec (QubeQrexecParser *parser, QubeQrexecMessage *msg, const guint8 *p, gsize len,
            GError **error)
{
  const guint8 *cmd = p + sizeof (struct exec_params);
  gsize cmd_len = len - sizeof (struct exec_params);
  g_autofree char *cmdline = NULL;
  char *colon;

  msg->connect_domain = read_u32 (p);
  msg->connect_port = read_u32 (p + 4);
  /* Qubes sends the ident as a whole struct service_params, padded; it
   * is the one the request came with, which may be empty. */
  if (msg->type == MSG_SERVICE_CONNECT)
    return take_string (parser, cmd, cmd_len, FALSE, TRUE, "the request ident", EXTRA_IDENT,
                        &msg->ident, error);

  if (!take_string (parser, cmd, cmd_len, TRUE, FALSE, "the command line", NULL, &cmdline, error))
    return FALSE;
  colon = strchr (cmdline, ':');
  if (colon == NULL || colon == cmdline || colon[1] == '\0')
    return parser_fail (parser, error, "the command line is not USER:COMMAND");
  *colon = '\0';
  for (const char *u = cmdline; *u != '\0'; u++)
    if (!char_allowed (*u, ""))
      return parser_fail (parser, error, "the user name contains the byte 0x%02x, which is not allowed",
                          (guint8) *u);
  msg->user = g_strdup (cmdline);
  msg->command = g_strdup (colon + 1);
  return TRUE;
}

static gboolean
parse_payload (QubeQrexecParser *parser, QubeQrexecMessage *msg, const guint8 *p, gsize len,
               GError **error)
{
  switch (msg->type)
    {
    case MSG_HELLO:
      msg->version = read_u32 (p);
      if (msg->version < QREXEC_PROTOCOL_MIN_VERSION)
        return parser_fail (parser, error,
                            "the peer speaks qrexec protocol version %u, at least %u is needed",
                            msg->version, QREXEC_PROTOCOL_MIN_VERSION);
      parser->version = MIN (msg->version, (guint32) QREXEC_PROTOCOL_VERSION);
      return TRUE;

    case MSG_EXEC_CMDLINE:
    case MSG_JUST_EXEC:
    case MSG_SERVICE_CONNECT:
      return parse_exec (parser, msg, p, len, error);

    case MSG_SERVICE_REFUSED:
      /* The ident of the refused request, as it was sent. */
      return take_string (parser, p, len, FALSE, TRUE, "the request ident", NULL, &msg->ident,
                          error);

    case MSG_TRIGGER_SERVICE:
      {
        const struct trigger_service_params *t = (const void *) p;

        return take_field (parser, (const guint8 *) t->service_name, sizeof t->service_name,
                           AFTER_NUL_IGNORED, FALSE, "the service name", EXTRA_SERVICE,
                           &msg->service_name, &msg->refusal, error) &&
               take_field (parser, (const guint8 *) t->target_domain, sizeof t->target_domain,
                           AFTER_NUL_IGNORED, TRUE, "the target", EXTRA_TARGET, &msg->target_domain,
                           &msg->refusal, error) &&
               take_field (parser, (const guint8 *) t->request_id.ident, sizeof t->request_id.ident,
                           AFTER_NUL_REFUSED, TRUE, "the request ident", EXTRA_IDENT, &msg->ident,
                           &msg->refusal, error);
      }

    case MSG_TRIGGER_SERVICE3:
      {
        const struct trigger_service_params3 *t = (const void *) p;

        return take_field (parser, (const guint8 *) t->target_domain, sizeof t->target_domain,
                           AFTER_NUL_IGNORED, TRUE, "the target", EXTRA_TARGET, &msg->target_domain,
                           &msg->refusal, error) &&
               take_field (parser, (const guint8 *) t->request_id.ident, sizeof t->request_id.ident,
                           AFTER_NUL_REFUSED, TRUE, "the request ident", EXTRA_IDENT, &msg->ident,
                           &msg->refusal, error) &&
               take_field (parser, p + sizeof *t, len - sizeof *t, AFTER_NUL_MALFORMED, FALSE,
                           "the service name", EXTRA_SERVICE, &msg->service_name, &msg->refusal,
                           error);
      }

    case MSG_CONNECTION_TERMINATED:
      msg->connect_domain = read_u32 (p);
      msg->connect_port = read_u32 (p + 4);
      return TRUE;

    case MSG_DATA_STDIN:
    case MSG_DATA_STDOUT:
    case MSG_DATA_STDERR:
      msg->data = g_bytes_new (p, len);
      msg->eof = len == 0 && msg->type != MSG_DATA_STDERR;
      if (msg->eof && msg->type == MSG_DATA_STDIN)
        parser->stdin_eof = TRUE;
      if (msg->eof && msg->type == MSG_DATA_STDOUT)
        parser->stdout_eof = TRUE;
      return TRUE;

    case MSG_DATA_EXIT_CODE:
      msg->exit_code = (gint32) read_u32 (p);
      parser->exit_seen = TRUE;
      return TRUE;

    default:
      g_assert_not_reached ();
    }
}

/* A service name is also a file name on the agent's side: one that does
 * not start with a service is refused. */
static void
check_service_name (QubeQrexecMessage *msg)
{
  if (msg->refusal == NULL && (msg->service_name[0] == '+' || msg->service_name[0] == '.'))
    msg->refusal = g_strdup_printf ("the service name '%s' does not start with a service",
                                    msg->service_name);
}

gboolean
_qube_qrexec_parser_next (QubeQrexecParser *parser, QubeQrexecMessage **msg, GError **error)
{
  g_autoptr(QubeQrexecMessage) parsed = NULL;
  struct msg_header hdr;
  gsize avail = parser->buf->len - parser->start;
  const guint8 *p;

  *msg = NULL;
  if (parser->failure != NULL)
    {
      g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL, parser->failure);
      return FALSE;
    }
  if (avail < HEADER_LEN)
    return TRUE;
  p = parser->buf->data + parser->start;
  memcpy (&hdr, p, sizeof hdr);
  if (!parser->header_checked)
    {
      if (!check_header (parser, &hdr, error))
        return FALSE;
      parser->header_checked = TRUE;
    }
  if (avail - HEADER_LEN < hdr.len)
    return TRUE;

  parsed = g_new0 (QubeQrexecMessage, 1);
  parsed->type = hdr.type;
  if (!parse_payload (parser, parsed, p + HEADER_LEN, hdr.len, error))
    return FALSE;
  if (parsed->service_name != NULL)
    check_service_name (parsed);
  parser->start += HEADER_LEN + hdr.len;
  parser->header_checked = FALSE;
  *msg = g_steal_pointer (&parsed);
  return TRUE;
}

gsize
_qube_qrexec_parser_wanted (QubeQrexecParser *parser)
{
  gsize avail = parser->buf->len - parser->start;
  struct msg_header hdr;

  if (parser->failure != NULL)
    return 0;
  if (avail < HEADER_LEN)
    return HEADER_LEN - avail;
  if (!parser->header_checked)
    return 0; /* call _qube_qrexec_parser_next() first */
  memcpy (&hdr, parser->buf->data + parser->start, sizeof hdr);
  return HEADER_LEN + hdr.len > avail ? HEADER_LEN + hdr.len - avail : 0;
}

/* ---- encoders ------------------------------------------------------------ */

static void
append_header (GByteArray *out, guint32 type, gsize len)
{
  struct msg_header hdr = { .type = type, .len = (guint32) len };

  g_byte_array_append (out, (const guint8 *) &hdr, sizeof hdr);
}

/* Our own messages obey the rules we hold the peer to. */
static gboolean
name_ok (const char *s, gsize max, const char *extra, const char *what, GError **error)
{
  gsize len = strlen (s);

  if (len == 0 || len >= max)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "qrexec %s '%s' must have 1 to %zu characters", what, s, max - 1);
      return FALSE;
    }
  for (gsize i = 0; i < len; i++)
    if (!char_allowed (s[i], extra))
      {
        g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                     "qrexec %s '%s' contains '%c', which is not allowed", what, s, s[i]);
        return FALSE;
      }
  return TRUE;
}

void
_qube_qrexec_append_hello (GByteArray *out, guint32 version)
{
  struct peer_info info = { .version = version };

  append_header (out, MSG_HELLO, sizeof info);
  g_byte_array_append (out, (const guint8 *) &info, sizeof info);
}

gboolean
_qube_qrexec_append_exec (GByteArray *out, guint32 type, guint32 connect_domain,
                          guint32 connect_port, const char *cmdline, GError **error)
{
  struct exec_params params = { .connect_domain = connect_domain, .connect_port = connect_port };
  struct service_params ident;
  const void *payload = cmdline;
  gsize len = strlen (cmdline) + 1;

  g_return_val_if_fail (type == MSG_EXEC_CMDLINE || type == MSG_JUST_EXEC ||
                        type == MSG_SERVICE_CONNECT, FALSE);
  if (type == MSG_SERVICE_CONNECT)
    {
      /* The ident travels as a whole, zero-padded struct service_params;
       * it is the request's, which may be empty (as in Qubes). */
      if (*cmdline != '\0' && !name_ok (cmdline, sizeof ident.ident, EXTRA_IDENT, "request ident", error))
        return FALSE;
      memset (&ident, 0, sizeof ident);
      memcpy (ident.ident, cmdline, len - 1);
      payload = &ident;
      len = sizeof ident;
    }
  else if (len > MAX_QREXEC_CMD_LEN)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "qrexec command line of %zu bytes is longer than %lu", len,
                   (unsigned long) MAX_QREXEC_CMD_LEN);
      return FALSE;
    }
  append_header (out, type, sizeof params + len);
  g_byte_array_append (out, (const guint8 *) &params, sizeof params);
  g_byte_array_append (out, payload, (guint) len);
  return TRUE;
}

gboolean
_qube_qrexec_append_service_refused (GByteArray *out, const char *ident, GError **error)
{
  struct service_params params;

  memset (&params, 0, sizeof params);
  /* The ident is the one the request came with, whatever it was: the
   * agent matches the answer with it (Qubes' daemon echoes it too). */
  if (strlen (ident) >= sizeof params.ident)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "qrexec request ident '%s' is longer than %zu bytes", ident, sizeof params.ident - 1);
      return FALSE;
    }
  memcpy (params.ident, ident, strlen (ident));
  append_header (out, MSG_SERVICE_REFUSED, sizeof params);
  g_byte_array_append (out, (const guint8 *) &params, sizeof params);
  return TRUE;
}

gboolean
_qube_qrexec_append_trigger_service3 (GByteArray *out, const char *target_domain,
                                      const char *ident, const char *service_name,
                                      GError **error)
{
  struct trigger_service_params3 params;
  gsize name_len = strlen (service_name) + 1;

  memset (&params, 0, sizeof params);
  if (!name_ok (target_domain, sizeof params.target_domain, EXTRA_TARGET, "target", error) ||
      !name_ok (ident, sizeof params.request_id.ident, EXTRA_IDENT, "request ident", error) ||
      !name_ok (service_name, MAX_SERVICE_NAME_LEN + 1, EXTRA_SERVICE, "service name", error))
    return FALSE;
  memcpy (params.target_domain, target_domain, strlen (target_domain));
  memcpy (params.request_id.ident, ident, strlen (ident));
  append_header (out, MSG_TRIGGER_SERVICE3, sizeof params + name_len);
  g_byte_array_append (out, (const guint8 *) &params, sizeof params);
  g_byte_array_append (out, (const guint8 *) service_name, (guint) name_len);
  return TRUE;
}

void
_qube_qrexec_append_connection_terminated (GByteArray *out, guint32 connect_domain,
                                           guint32 connect_port)
{
  struct exec_params params = { .connect_domain = connect_domain, .connect_port = connect_port };

  append_header (out, MSG_CONNECTION_TERMINATED, sizeof params);
  g_byte_array_append (out, (const guint8 *) &params, sizeof params);
}

void
_qube_qrexec_append_data (GByteArray *out, guint32 type, const void *data, gsize len)
{
  g_return_if_fail (type == MSG_DATA_STDIN || type == MSG_DATA_STDOUT || type == MSG_DATA_STDERR);
  g_return_if_fail (len <= MAX_DATA_CHUNK_V3);
  append_header (out, type, len);
  if (len > 0)
    g_byte_array_append (out, data, (guint) len);
}

void
_qube_qrexec_append_data_chunked (GByteArray *out, guint32 type, const void *data, gsize len,
                                  gsize chunk)
{
  gsize off = 0;

  g_return_if_fail (chunk > 0 && chunk <= MAX_DATA_CHUNK_V3);
  do
    {
      gsize step = MIN (len - off, chunk);

      _qube_qrexec_append_data (out, type, step > 0 ? (const guint8 *) data + off : NULL, step);
      off += step;
    }
  while (off < len);
}

void
_qube_qrexec_append_exit_code (GByteArray *out, gint32 exit_code)
{
  append_header (out, MSG_DATA_EXIT_CODE, sizeof exit_code);
  g_byte_array_append (out, (const guint8 *) &exit_code, sizeof exit_code);
}
