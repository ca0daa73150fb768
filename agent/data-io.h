/* data-io.h — one qrexec data connection seen from the guest: the HELLO
 * exchange, then the relay between the channel and local descriptors,
 * either as the side that runs the process (its stdout/stderr become
 * MSG_DATA_STDOUT/STDERR, MSG_DATA_STDIN feeds its stdin, its exit status
 * ends the connection) or as the caller (the reverse, returning the exit
 * code).  Plain C and libc only. */
#pragma once

#include <sys/types.h>

#include "transport.h"

typedef struct {
  const AgentTransport *t;
  AgentChan *chan;
  int process_side;   /* 1: runs the process; 0: the caller */
  int in_fd;          /* read and sent: the process' stdout / the caller's input; -1: none */
  int in2_fd;         /* process side: the process' stderr; else -1 */
  int out_fd;         /* received main stream goes here: the process' stdin / the caller's output */
  int err_fd;         /* caller side: received stderr goes here; -1 drops it */
  int filter_out;     /* caller side: terminal-unsafe bytes of received stdout become '_' */
  int filter_err;     /* the same for received stderr */
  int out_shutdown;   /* out_fd is a socket shared with in_fd: its end shuts down the
                         writing half (else it is only closed, as Qubes closes it) */
  pid_t child;        /* process side: whose exit status ends the call */
  const char *what;   /* for messages */
} DataRelay;

/* Exchanges MSG_HELLO on a fresh data or control channel; returns the
 * version both sides use, or -1 (message on stderr). */
int data_hello (const AgentTransport *t, AgentChan *chan, const char *what);

/* Sends one message (header and payload). */
int data_send_msg (const AgentTransport *t, AgentChan *chan, uint32_t type,
                   const void *payload, size_t len);

/* Runs the relay until the call ends.  Process side: returns 0 once the
 * exit status was sent, -1 when the channel failed.  Caller side: returns
 * the exit code received, or QREXEC_EXIT_FAILED. */
int data_relay_run (DataRelay *relay, int version);

/* A descriptor (non-blocking, close-on-exec) that becomes readable when
 * a child of this process may have exited: SIGCHLD writes to it.  Made
 * and the handler installed at the first call; -1 (errno) when no pipe
 * can be made.  agent_child_events_drain() empties it before the
 * children are looked at; a forked child that does not share its
 * parent's calls agent_child_events_forget() (default SIGCHLD, the
 * inherited pipe closed) and may then make its own. */
int agent_child_events (void);
void agent_child_events_drain (void);
void agent_child_events_forget (void);

/* An exit status as qrexec reports it. */
int data_exit_code (int wait_status);

/* Writes a message to stderr with the program's name. */
void agent_log (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
extern const char *agent_program_name;
