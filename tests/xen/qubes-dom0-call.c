/* qubes-dom0-call.c — a test fixture run in dom0 by tests/xen: plays
 * Qubes' dom0 qrexec (its daemon and qrexec-client) towards two qubes
 * whose qube-agent it reaches over libxenvchan, for one qube-to-qube call
 * made as Qubes makes it: the data channel between the two qubes directly,
 * dom0 only passing the control messages.  It is not libqube's daemon
 * (which relays qube-to-qube calls through dom0); it checks that our agent
 * and qrexec-client-vm follow a Qubes dom0.
 *
 *   qubes-dom0-call SOURCE_DOMID SOURCE_NAME TARGET_DOMID TARGET_NAME COMMAND
 *
 * Runs COMMAND as the user `user` (what Qubes' dom0 puts for DEFAULT) in
 * the source qube with its output on this program's stdout and stderr, as
 * `qrexec-client -d SOURCE user:COMMAND` does, stdin empty.  COMMAND is
 * expected to call a service in TARGET_NAME through qrexec-client-vm;
 * the one request that comes is allowed without a policy: the target is
 * told to run the service with its data channel connecting to the source
 * qube's domain (MSG_EXEC_CMDLINE "user:QUBESRPC service+arg source",
 * with the "+" even for an empty argument and no target words, as Qubes
 * sends it to a qube; connect_domain = SOURCE_DOMID) and the source to
 * offer it to the target's domain (MSG_SERVICE_CONNECT, connect_domain =
 * TARGET_DOMID), on a port dom0 itself never offers.
 * Exits with COMMAND's exit code; 125 when the fixture itself failed.
 * Plain C over the guest side's transport code (agent/transport-xen.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "data-io.h"
#include "qrexec-wire.h"
#include "transport.h"

#define TIMEOUT_S 300
#define SOURCE_PORT (VCHAN_BASE_PORT + 1)
#define CALL_PORT (VCHAN_BASE_PORT + 2)
/* The default user Qubes' dom0 names for DEFAULT. */
#define USER "user"

static const AgentTransport *t = &agent_transport_xen;

static void __attribute__ ((noreturn))
fail (const char *what, const char *why)
{
  agent_log ("%s: %s", what, why);
  exit (QREXEC_EXIT_FAILED);
}

/* A Xen domain id from the command line. */
static uint32_t
domid (const char *arg)
{
  char *end;
  unsigned long v;

  errno = 0;
  v = strtoul (arg, &end, 10);
  if (errno != 0 || end == arg || *end != '\0' || v == 0 || v >= 0x7ff0)
    fail (arg, "not the domain id of a qube");
  return (uint32_t) v;
}

/* A string made as printf() makes it. */
static char * __attribute__ ((format (printf, 1, 2)))
text (const char *fmt, ...)
{
  va_list ap;
  char *s;
  int n;

  va_start (ap, fmt);
  n = vasprintf (&s, fmt, ap);
  va_end (ap);
  if (n < 0)
    fail ("message", "out of memory");
  return s;
}

/* The control channel to the agent of domain `domid`, past the hello. */
static AgentChan *
control (const char *domid)
{
  char err[256];
  AgentChan *ctrl = t->connect (domid, VCHAN_BASE_PORT, TIMEOUT_S * 1000, err, sizeof err);

  if (ctrl == NULL)
    fail (domid, err);
  if (data_hello (t, ctrl, "control connection") < 0)
    fail (domid, "no hello on the control connection");
  return ctrl;
}

static void
send_exec (AgentChan *ctrl, uint32_t type, uint32_t domain, uint32_t port, const char *text,
           size_t text_size)
{
  size_t len = sizeof (struct exec_params) + text_size;
  struct exec_params *p = calloc (1, len);

  if (p == NULL)
    fail ("message", "out of memory");
  p->connect_domain = domain;
  p->connect_port = port;
  memcpy (p->cmdline, text, strlen (text));
  if (data_send_msg (t, ctrl, type, p, len) < 0)
    fail ("control connection", t->error (ctrl));
  free (p);
}

/* Reads control messages from the source until its service request:
 * returns its ident (NUL-terminated in `ident`) and service name. */
static char *
read_request (AgentChan *ctrl, const char *target, char ident[32])
{
  for (;;)
    {
      struct msg_header hdr;
      char *payload;

      if (agent_chan_read_exact (t, ctrl, &hdr, sizeof hdr) < 0)
        fail ("the source's control connection", t->error (ctrl));
      if (hdr.len > sizeof (struct trigger_service_params3) + MAX_SERVICE_NAME_LEN)
        fail ("the source's control connection", "a message too long");
      payload = calloc (1, hdr.len + 1);
      if (payload == NULL || agent_chan_read_exact (t, ctrl, payload, hdr.len) < 0)
        fail ("the source's control connection", "ended inside a message");
      if (hdr.type == MSG_TRIGGER_SERVICE3 && hdr.len > sizeof (struct trigger_service_params3))
        {
          struct trigger_service_params3 *p = (struct trigger_service_params3 *) payload;
          char *service = strdup (payload + sizeof *p);

          if (memchr (p->target_domain, '\0', sizeof p->target_domain) == NULL ||
              memchr (p->request_id.ident, '\0', sizeof p->request_id.ident) == NULL)
            fail ("the source's request", "a name without its NUL");
          if (strcmp (p->target_domain, target) != 0)
            {
              agent_log ("the source asked for '%s', not '%s'", p->target_domain, target);
              exit (QREXEC_EXIT_FAILED);
            }
          memcpy (ident, p->request_id.ident, 32);
          free (payload);
          return service;
        }
      /* MSG_CONNECTION_TERMINATED and the like: nothing to do. */
      free (payload);
    }
}

int
main (int argc, char **argv)
{
  const char *source_id, *source_name, *target_id, *target_name;
  AgentChan *source, *target, *data;
  DataRelay relay = { 0 };
  char err[256], ident[32], *service, *cmdline;
  uint32_t source_domid, target_domid;
  int version, in_fd;

  agent_program_name = "qubes-dom0-call";
  if (argc != 6)
    {
      fprintf (stderr, "usage: qubes-dom0-call SOURCE_DOMID SOURCE_NAME TARGET_DOMID TARGET_NAME COMMAND\n");
      return 2;
    }
  source_id = argv[1];
  source_name = argv[2];
  target_id = argv[3];
  target_name = argv[4];
  source_domid = domid (source_id);
  target_domid = domid (target_id);
  signal (SIGPIPE, SIG_IGN);
  alarm (2 * TIMEOUT_S);

  source = control (source_id);
  target = control (target_id);

  /* The command in the source: dom0 offers the data channel (domain 0). */
  data = t->listen (source_id, SOURCE_PORT, 65536, 65536, err, sizeof err);
  if (data == NULL)
    fail ("the source's data channel", err);
  cmdline = text ("%s:%s", USER, argv[5]);
  send_exec (source, MSG_EXEC_CMDLINE, 0, SOURCE_PORT, cmdline, strlen (cmdline) + 1);
  if (t->accept (data, err, sizeof err) < 0)
    fail ("the source's data channel", err);
  version = data_hello (t, data, "the source's data channel");
  if (version < 0)
    return QREXEC_EXIT_FAILED;

  /* Its call: the target connects to the source's domain, the source
   * offers the port to the target's. */
  service = read_request (source, target_name, ident);
  free (cmdline);
  cmdline = text ("%s:QUBESRPC %s%s %s", USER, service, strchr (service, '+') == NULL ? "+" : "",
                  source_name);
  send_exec (target, MSG_EXEC_CMDLINE, source_domid, CALL_PORT, cmdline, strlen (cmdline) + 1);
  send_exec (source, MSG_SERVICE_CONNECT, target_domid, CALL_PORT, ident,
             sizeof (struct service_params));

  in_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  relay.t = t;
  relay.chan = data;
  relay.process_side = 0;
  relay.in_fd = in_fd;
  relay.in2_fd = -1;
  relay.out_fd = 1;
  relay.err_fd = 2;
  relay.what = "the source's data channel";
  return data_relay_run (&relay, version);
}
