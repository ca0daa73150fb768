/* qrexec-client-vm.c — call a qrexec service from inside a qube, with
 * Qubes' meaning: `qrexec-client-vm TARGET SERVICE[+ARG] [COMMAND [ARG...]]`
 * connects its stdin/stdout to the service (or, with COMMAND, the
 * command's stdout to the service's stdin and the service's stdout to the
 * command's stdin) and exits with the service's exit code (with COMMAND,
 * the command's), 126 when the policy refused the call.
 *
 * It asks the local agent on its trigger socket; the agent forwards the
 * request to the daemon, which answers with the data port this program
 * offers as the vchan server (the caller's role in Qubes).  The socket to
 * the agent stays open until the call is over: its end tells the agent to
 * report the data port's end to the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-config.h"
#include "data-io.h"
#include "qrexec-wire.h"

/* The socket to the agent, open until this program exits. */
static int agent_fd = -1;

static int
ask_agent (const char *target, const char *service, uint32_t *port)
{
  const char *path = agent_env_or ("QREXEC_AGENT_SOCKET", AGENT_DEFAULT_TRIGGER_SOCKET);
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct trigger_service_params3 params;
  size_t name_len = strlen (service) + 1;
  struct msg_header hdr = { MSG_TRIGGER_SERVICE3, (uint32_t) (sizeof params + name_len) };
  struct exec_params reply;
  int fd;

  if (strlen (target) >= sizeof params.target_domain || name_len > MAX_SERVICE_NAME_LEN)
    {
      agent_log ("target or service name too long");
      return QREXEC_EXIT_FAILED;
    }
  memset (&params, 0, sizeof params);
  strcpy (params.target_domain, target);
  if (strlen (path) >= sizeof sun.sun_path)
    {
      agent_log ("agent socket path '%s' is too long", path);
      return QREXEC_EXIT_FAILED;
    }
  strcpy (sun.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &sun, sizeof sun) < 0)
    {
      agent_log ("cannot reach the qrexec agent at '%s': %s", path, strerror (errno));
      return QREXEC_EXIT_FAILED;
    }
  if (write (fd, &hdr, sizeof hdr) != (ssize_t) sizeof hdr ||
      write (fd, &params, sizeof params) != (ssize_t) sizeof params ||
      write (fd, service, name_len) != (ssize_t) name_len)
    {
      agent_log ("cannot send the request to the agent: %s", strerror (errno));
      return QREXEC_EXIT_FAILED;
    }
  if (recv (fd, &hdr, sizeof hdr, MSG_WAITALL) != (ssize_t) sizeof hdr)
    {
      agent_log ("the agent closed without an answer");
      return QREXEC_EXIT_FAILED;
    }
  if (hdr.type == MSG_SERVICE_REFUSED)
    {
      fprintf (stderr, "Request refused\n");
      return QREXEC_EXIT_REFUSED;
    }
  if (hdr.type != MSG_SERVICE_CONNECT || hdr.len < sizeof reply ||
      recv (fd, &reply, sizeof reply, MSG_WAITALL) != (ssize_t) sizeof reply)
    {
      agent_log ("the agent sent an invalid answer");
      return QREXEC_EXIT_FAILED;
    }
  agent_fd = fd;
  *port = reply.connect_port;
  return 0;
}

int
main (int argc, char **argv)
{
  const char *spec = agent_env_or ("QUBE_AGENT_TRANSPORT", AGENT_DEFAULT_TRANSPORT);
  const AgentTransport *t;
  const char *arg;
  AgentChan *chan;
  char err[512];
  uint32_t port = 0;
  int rc, version;
  pid_t pid = -1;
  DataRelay relay = { .in_fd = 0, .in2_fd = -1, .out_fd = 1, .err_fd = 2 };

  agent_program_name = "qrexec-client-vm";
  if (argc < 3 || strcmp (argv[1], "--help") == 0)
    {
      fprintf (argc < 3 ? stderr : stdout,
               "Usage: qrexec-client-vm TARGET SERVICE[+ARGUMENT] [COMMAND [ARG...]]\n"
               "Call a qrexec service in qube TARGET (decided by the dom0 policy).\n");
      return argc < 3 ? 2 : 0;
    }
  signal (SIGPIPE, SIG_IGN);
  t = agent_transport_find (spec, &arg);
  if (t == NULL)
    {
      agent_log ("unknown transport '%s'", spec);
      return QREXEC_EXIT_FAILED;
    }
  rc = ask_agent (argv[1], argv[2], &port);
  if (rc != 0)
    return rc;

  chan = t->listen (arg, port, 1024 * 1024, 65536, err, sizeof err);
  if (chan == NULL || t->accept (chan, err, sizeof err) < 0)
    {
      agent_log ("data port %u: %s", (unsigned) port, err);
      return QREXEC_EXIT_FAILED;
    }
  version = data_hello (t, chan, "data connection");
  if (version < 0)
    return QREXEC_EXIT_FAILED;

  if (argc > 3)
    {
      int to_cmd[2], from_cmd[2];

      if (pipe2 (to_cmd, O_CLOEXEC) < 0 || pipe2 (from_cmd, O_CLOEXEC) < 0)
        {
          agent_log ("cannot make pipes: %s", strerror (errno));
          return QREXEC_EXIT_FAILED;
        }
      pid = fork ();
      if (pid == 0)
        {
          dup2 (to_cmd[0], 0);
          dup2 (from_cmd[1], 1);
          signal (SIGPIPE, SIG_DFL);
          execvp (argv[3], argv + 3);
          agent_log ("cannot run '%s': %s", argv[3], strerror (errno));
          _exit (QREXEC_EXIT_NOT_FOUND);
        }
      close (to_cmd[0]);
      close (from_cmd[1]);
      fcntl (to_cmd[1], F_SETFL, O_NONBLOCK);
      relay.in_fd = from_cmd[0];
      relay.out_fd = to_cmd[1];
    }
  relay.t = t;
  relay.chan = chan;
  relay.what = "data connection";
  rc = data_relay_run (&relay, version);
  t->close (chan);
  if (pid > 0)
    {
      int status = 0;

      while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
        ;
      return data_exit_code (status);
    }
  return rc;
}
