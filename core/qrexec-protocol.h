/* qrexec-protocol.h — the qrexec protocol (version 3) on the wire, and the
 * parser of messages received from a peer.
 *
 * The definitions are wire-compatible with Qubes OS qrexec: every message
 * is a struct msg_header {type, len} in host byte order followed by `len`
 * bytes of payload.  The parser takes bytes as they come off a vchan or a
 * socket, cuts them into messages, and hands out only messages that are
 * valid for the connection and its state; anything else is an error and
 * the connection must be dropped.  It trusts no length and no string from
 * the peer.  This file does no I/O.
 */
#pragma once

#include <stdint.h>

#include <glib.h>

G_BEGIN_DECLS

/* Protocol versions: 2 is Qubes R3.0-R4.0 (4 KiB data chunks), 3 is Qubes
 * R4.1+ (64 KiB chunks, MSG_TRIGGER_SERVICE3).  We speak 3, accept a peer
 * announcing anything from 2 up and then both use the lower version. */
#define QREXEC_PROTOCOL_V2 2
#define QREXEC_PROTOCOL_V3 3
#define QREXEC_PROTOCOL_VERSION QREXEC_PROTOCOL_V3
#define QREXEC_PROTOCOL_MIN_VERSION QREXEC_PROTOCOL_V2

#define VCHAN_BASE_PORT 512          /* the control connection */
#define MAX_DATA_CHUNK_V2 4096
#define MAX_DATA_CHUNK_V3 65536
#define MAX_SERVICE_NAME_LEN 65000   /* "service+arg" with its NUL, MSG_TRIGGER_SERVICE3 */
#define MAX_QREXEC_CMD_LEN 65535     /* "user:command" with its NUL */
#define RPC_REQUEST_COMMAND "QUBESRPC"

/* Exit codes of a call, as Qubes reports them. */
#define QREXEC_EXIT_FAILED 125       /* qrexec itself failed */
#define QREXEC_EXIT_REFUSED 126      /* the policy refused the call */
#define QREXEC_EXIT_NOT_FOUND 127    /* no such service */

enum {
  /* daemon -> agent, on the control connection */
  MSG_EXEC_CMDLINE = 0x200,          /* struct exec_params, run with I/O passed */
  MSG_JUST_EXEC = 0x201,             /* struct exec_params, run with no I/O */
  MSG_SERVICE_CONNECT = 0x202,       /* struct exec_params, cmdline = request ident */
  MSG_SERVICE_REFUSED = 0x203,       /* struct service_params */
  /* agent -> daemon, on the control connection */
  MSG_TRIGGER_SERVICE = 0x210,       /* struct trigger_service_params (version 2) */
  MSG_CONNECTION_TERMINATED = 0x211, /* struct exec_params, empty cmdline */
  MSG_TRIGGER_SERVICE3 = 0x212,      /* struct trigger_service_params3 + name */
  MSG_TRIGGER_SERVICE4 = 0x213,      /* version 4 only: never valid here */
  /* both ways, first on every connection */
  MSG_HELLO = 0x300,                 /* struct peer_info */
  /* data connections */
  MSG_DATA_STDIN = 0x190,            /* caller -> process; empty = EOF */
  MSG_DATA_STDOUT = 0x191,           /* process -> caller; empty = EOF */
  MSG_DATA_STDERR = 0x192,           /* process -> caller */
  MSG_DATA_EXIT_CODE = 0x193,        /* int32 exit status, the last message */
};

struct msg_header {
  uint32_t type;
  uint32_t len;                      /* payload bytes that follow */
};

struct peer_info {
  uint32_t version;
};

struct exec_params {
  uint32_t connect_domain;
  uint32_t connect_port;
  char cmdline[];                    /* NUL-terminated, up to msg_header.len */
};

struct service_params {
  char ident[32];                    /* NUL-terminated */
};

struct trigger_service_params {
  char service_name[64];
  char target_domain[32];
  struct service_params request_id;
};

struct trigger_service_params3 {
  char target_domain[64];
  struct service_params request_id;
  /* followed by the NUL-terminated "service+arg", up to msg_header.len */
};

G_STATIC_ASSERT (sizeof (struct msg_header) == 8);
G_STATIC_ASSERT (sizeof (struct peer_info) == 4);
G_STATIC_ASSERT (sizeof (struct exec_params) == 8);
G_STATIC_ASSERT (sizeof (struct service_params) == 32);
G_STATIC_ASSERT (sizeof (struct trigger_service_params) == 128);
G_STATIC_ASSERT (sizeof (struct trigger_service_params3) == 96);

/* Which side of which connection the bytes come from; it decides which
 * messages are allowed. */
typedef enum {
  QUBE_QREXEC_FROM_AGENT,   /* control connection, read by the daemon */
  QUBE_QREXEC_FROM_DAEMON,  /* control connection, read by the agent */
  QUBE_QREXEC_FROM_PROCESS, /* data connection, read by the caller: stdout, stderr, exit code */
  QUBE_QREXEC_FROM_CALLER,  /* data connection, read by the process side: stdin */
} QubeQrexecSource;

/* A validated message.  Strings are NUL-terminated copies made of the
 * allowed characters (except in a request with `refusal` set); fields not
 * used by `type` are zero/NULL. */
typedef struct {
  guint32 type;
  guint32 version;          /* MSG_HELLO: what the peer announced */
  guint32 connect_domain;   /* exec_params messages */
  guint32 connect_port;
  char *user;               /* MSG_EXEC_CMDLINE, MSG_JUST_EXEC: "user:command" split */
  char *command;
  char *target_domain;      /* MSG_TRIGGER_SERVICE, MSG_TRIGGER_SERVICE3 */
  char *service_name;       /* "service+arg" */
  char *ident;              /* request id: TRIGGER_SERVICE*, SERVICE_REFUSED, SERVICE_CONNECT */
  char *refusal;            /* MSG_TRIGGER_SERVICE*: a well-formed request that is refused
                             * (empty or disallowed characters), why; its strings are then
                             * as sent, not checked */
  GBytes *data;             /* MSG_DATA_STDIN/STDOUT/STDERR */
  gboolean eof;             /* an empty MSG_DATA_STDIN or MSG_DATA_STDOUT */
  gint32 exit_code;         /* MSG_DATA_EXIT_CODE */
} QubeQrexecMessage;

void _qube_qrexec_message_free (QubeQrexecMessage *msg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubeQrexecMessage, _qube_qrexec_message_free)

/* "MSG_TRIGGER_SERVICE3", or "0x1234" for an unknown type (static or
 * per-thread storage). */
const char *_qube_qrexec_type_name (guint32 type);

typedef struct _QubeQrexecParser QubeQrexecParser;

/* `peer` names the other side in error messages (e.g. the qube's name). */
QubeQrexecParser *_qube_qrexec_parser_new (QubeQrexecSource source, const char *peer);
void _qube_qrexec_parser_free (QubeQrexecParser *parser);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubeQrexecParser, _qube_qrexec_parser_free)

/* Append bytes read from the connection. */
void _qube_qrexec_parser_feed (QubeQrexecParser *parser, const void *data, gsize len);

/* The next whole message: returns TRUE and sets *msg, or TRUE with *msg
 * NULL when more bytes are needed, or FALSE with the error (the peer broke
 * the protocol; the parser stays failed and the connection must close).
 * A header is checked as soon as it is complete, so a peer announcing a
 * huge length is refused before its payload is buffered. */
gboolean _qube_qrexec_parser_next (QubeQrexecParser *parser, QubeQrexecMessage **msg,
                                   GError **error);

/* How many more bytes the next message needs at least (a header, or the
 * rest of its payload): what to read next from a vchan with recv(). */
gsize _qube_qrexec_parser_wanted (QubeQrexecParser *parser);

/* The version both sides use: 0 until the peer's MSG_HELLO was parsed. */
guint32 _qube_qrexec_parser_get_version (QubeQrexecParser *parser);
/* The largest data message on the parser's connection, either way: its
 * negotiated protocol version's (version 2's until the hello). */
gsize _qube_qrexec_parser_max_chunk (QubeQrexecParser *parser);

/* Encoders, appending one whole message to `out`. */
void _qube_qrexec_append_hello (GByteArray *out, guint32 version);
gboolean _qube_qrexec_append_exec (GByteArray *out, guint32 type, guint32 connect_domain,
                                   guint32 connect_port, const char *cmdline, GError **error);
gboolean _qube_qrexec_append_service_refused (GByteArray *out, const char *ident, GError **error);
gboolean _qube_qrexec_append_trigger_service3 (GByteArray *out, const char *target_domain,
                                               const char *ident, const char *service_name,
                                               GError **error);
void _qube_qrexec_append_connection_terminated (GByteArray *out, guint32 connect_domain,
                                                guint32 connect_port);
/* `len` at most MAX_DATA_CHUNK_V3; 0 is EOF for stdin/stdout. */
void _qube_qrexec_append_data (GByteArray *out, guint32 type, const void *data, gsize len);
/* `len` bytes as data messages of at most `chunk` bytes each (0 bytes: one
 * empty message, EOF). */
void _qube_qrexec_append_data_chunked (GByteArray *out, guint32 type, const void *data, gsize len,
                                       gsize chunk);
void _qube_qrexec_append_exit_code (GByteArray *out, gint32 exit_code);

G_END_DECLS
