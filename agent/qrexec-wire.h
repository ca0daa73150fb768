/* qrexec-wire.h — the qrexec protocol version 3 on the wire, for the guest
 * side.
 *
 * The guest programs must link statically into minimal images, so this
 * header is plain C99 + libc.  The values and layouts are Qubes OS' and the
 * same as core/qrexec-protocol.h (the daemon side, which needs GLib);
 * tests/qrexec/test-qrexec-wire.c checks that the two agree byte for byte.
 */
#pragma once

#include <stdint.h>

#define QREXEC_PROTOCOL_VERSION 3
#define VCHAN_BASE_PORT 512
#define MAX_DATA_CHUNK_V2 4096
#define MAX_DATA_CHUNK_V3 65536
#define MAX_SERVICE_NAME_LEN 65000
#define MAX_QREXEC_CMD_LEN 65535

#define QREXEC_EXIT_FAILED 125
#define QREXEC_EXIT_REFUSED 126
#define QREXEC_EXIT_NOT_FOUND 127

enum {
  MSG_EXEC_CMDLINE = 0x200,
  MSG_JUST_EXEC = 0x201,
  MSG_SERVICE_CONNECT = 0x202,
  MSG_SERVICE_REFUSED = 0x203,
  MSG_TRIGGER_SERVICE = 0x210,
  MSG_CONNECTION_TERMINATED = 0x211,
  MSG_TRIGGER_SERVICE3 = 0x212,
  MSG_HELLO = 0x300,
  MSG_DATA_STDIN = 0x190,
  MSG_DATA_STDOUT = 0x191,
  MSG_DATA_STDERR = 0x192,
  MSG_DATA_EXIT_CODE = 0x193,
};

struct msg_header {
  uint32_t type;
  uint32_t len;
};

struct peer_info {
  uint32_t version;
};

struct exec_params {
  uint32_t connect_domain;
  uint32_t connect_port;
  char cmdline[];
};

struct service_params {
  char ident[32];
};

struct trigger_service_params3 {
  char target_domain[64];
  struct service_params request_id;
  /* followed by the NUL-terminated "service+arg" */
};

_Static_assert (sizeof (struct msg_header) == 8, "msg_header layout");
_Static_assert (sizeof (struct exec_params) == 8, "exec_params layout");
_Static_assert (sizeof (struct trigger_service_params3) == 96, "trigger_service_params3 layout");
