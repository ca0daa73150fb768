/* qrexec-client-vm.c — call a qrexec service from inside a qube, with
 * Qubes' meaning: `qrexec-client-vm TARGET SERVICE[+ARG] [COMMAND [ARG...]]`
 * connects its stdin/stdout to the service (or, with COMMAND, the
 * command's stdout to the service's stdin and the service's stdout to the
 * command's stdin) and exits with the service's exit code (with COMMAND,
 * the command's when the service's is 0), 126 when the policy refused
 * the call.
 *
 * It asks the local agent on its trigger socket; the agent forwards the
 * request to the daemon, which answers with the data port this program
 * offers as the vchan server (the caller's role in Qubes).  The socket to
 * the agent stays open until the call is over: its end tells the agent to
 * report the data port's end to the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
ask_agent (const char *path, const char *target, const char *service, uint32_t *domain,
           uint32_t *port)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct trigger_service_params3 params;
  size_t name_len = strlen (service) + 1;
  struct msg_header hdr = { MSG_TRIGGER_SERVICE3, (uint32_t) (sizeof params + name_len) };
  struct exec_params reply;
  ssize_t got;
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
  /* As between Qubes' agent and qrexec-client-vm: the data channel's
   * struct exec_params when the call goes ahead, the socket closed when
   * it is refused. */
  got = recv (fd, &reply, sizeof reply, MSG_WAITALL);
  if (got == 0)
    {
      fprintf (stderr, "Request refused\n");
      return QREXEC_EXIT_REFUSED;
    }
  if (got != (ssize_t) sizeof reply)
    {
      agent_log ("the agent sent an invalid answer");
      return QREXEC_EXIT_FAILED;
    }
  agent_fd = fd;
  *domain = reply.connect_domain;
  *port = reply.connect_port;
  return 0;
}

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: qrexec-client-vm [OPTION...] TARGET SERVICE[+ARGUMENT] [COMMAND [ARG...]]\n"
           "Call a qrexec service in qube TARGET (decided by the dom0 policy); with COMMAND,\n"
           "its stdout is the service's stdin and the service's stdout its stdin.\n\n"
           "  --buffer-size=BYTES              the least size of the data channel's ring\n"
           "  -t, --filter-escape-chars-stdout write control and non-ASCII bytes of the\n"
           "                                   service's stdout as '_' (default: when a terminal\n"
           "                                   and no COMMAND)\n"
           "  -T, --filter-escape-chars-stderr the same for its stderr\n"
           "  --no-filter-escape-chars-stdout  pass its stdout unchanged\n"
           "  --no-filter-escape-chars-stderr  pass its stderr unchanged\n"
           "  -a, --agent-socket=PATH          the agent's socket (default: $QREXEC_AGENT_SOCKET\n"
           "                                   or " AGENT_DEFAULT_TRIGGER_SOCKET ")\n"
           "  -p, --prefix-data=TEXT           send TEXT to the service before the input\n"
           "  --use-stdin-socket               stdin is a stream socket: the service's output\n"
           "                                   goes back into it (no COMMAND then)\n"
           "  -h, --help                       this text\n"
           "TARGET may be written with $ for @ ($dispvm), as Qubes allows.\n");
}

int
main (int argc, char **argv)
{
  enum { OPT_BUFFER_SIZE = 256, OPT_NO_FILTER_STDOUT, OPT_NO_FILTER_STDERR, OPT_USE_STDIN_SOCKET };
  static const struct option options[] = {
    { "buffer-size", required_argument, NULL, OPT_BUFFER_SIZE },
    { "filter-escape-chars-stdout", no_argument, NULL, 't' },
    { "filter-escape-chars-stderr", no_argument, NULL, 'T' },
    { "no-filter-escape-chars-stdout", no_argument, NULL, OPT_NO_FILTER_STDOUT },
    { "no-filter-escape-chars-stderr", no_argument, NULL, OPT_NO_FILTER_STDERR },
    { "agent-socket", required_argument, NULL, 'a' },
    { "prefix-data", required_argument, NULL, 'p' },
    { "use-stdin-socket", no_argument, NULL, OPT_USE_STDIN_SOCKET },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *spec = agent_env_or ("QUBE_AGENT_TRANSPORT", AGENT_DEFAULT_TRANSPORT);
  const char *socket_path = agent_env_or ("QREXEC_AGENT_SOCKET", AGENT_DEFAULT_TRIGGER_SOCKET);
  const char *prefix = NULL;
  size_t ring = 1024 * 1024;
  int filter_out = -1, filter_err = -1, stdin_socket = 0;
  const AgentTransport *t;
  const char *arg;
  AgentChan *chan;
  char err[512], domain_buf[16];
  const char *peer;
  char *target, *end;
  uint32_t domain = 0, port = 0;
  int rc, version, c;
  pid_t pid = -1;
  DataRelay relay = { .in_fd = 0, .in2_fd = -1, .out_fd = 1, .err_fd = 2 };

  agent_program_name = "qrexec-client-vm";
  /* '+': options end at TARGET, COMMAND's own options are its own. */
  while ((c = getopt_long (argc, argv, "+tTa:hp:", options, NULL)) != -1)
    switch (c)
      {
      case OPT_BUFFER_SIZE:
        {
          unsigned long long size;

          errno = 0;
          size = strtoull (optarg, &end, 10);
          if (errno != 0 || end == optarg || *end != '\0' || size > 64ull * 1024 * 1024)
            {
              agent_log ("--buffer-size: '%s' is not a size up to 64 MiB", optarg);
              return 2;
            }
          if (size > ring)
            ring = (size_t) size;
          break;
        }
      case 't': filter_out = 1; break;
      case 'T': filter_err = 1; break;
      case OPT_NO_FILTER_STDOUT: filter_out = 0; break;
      case OPT_NO_FILTER_STDERR: filter_err = 0; break;
      case 'a': socket_path = optarg; break;
      case 'p':
        if (prefix != NULL)
          {
            agent_log ("--prefix-data may be given once");
            return 2;
          }
        prefix = optarg;
        break;
      case OPT_USE_STDIN_SOCKET:
        {
          int type;
          socklen_t len = sizeof type;

          if (getsockopt (0, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
            {
              agent_log ("--use-stdin-socket: stdin is not a stream socket");
              return 2;
            }
          stdin_socket = 1;
          break;
        }
      case 'h': usage (stdout); return 0;
      default: usage (stderr); return 2;
      }
  if (argc - optind < 2)
    {
      usage (stderr);
      return 2;
    }
  if (stdin_socket && argc - optind > 2)
    {
      agent_log ("--use-stdin-socket: no local COMMAND can be run with it");
      return 2;
    }
  /* What reaches a terminal is filtered unless asked otherwise, as in
   * Qubes: the service's qube must not drive it.  With COMMAND the
   * service's stdout is COMMAND's input, passed unchanged unless -t. */
  relay.filter_out = filter_out >= 0 ? filter_out : argc - optind == 2 && isatty (1);
  relay.filter_err = filter_err >= 0 ? filter_err : isatty (2);
  target = argv[optind];
  for (char *p = target; *p != '\0'; p++)
    if (*p == '$')
      *p = '@';
  signal (SIGPIPE, SIG_IGN);
  t = agent_transport_find (spec, &arg);
  if (t == NULL)
    {
      agent_log ("unknown transport '%s'", spec);
      return QREXEC_EXIT_FAILED;
    }
  rc = ask_agent (socket_path, target, argv[optind + 1], &domain, &port);
  if (rc != 0)
    return rc;

  /* The data channel is offered to the domain the daemon named: its own
   * (0), or under Qubes the target qube's, which connects directly. */
  peer = agent_transport_domain_arg (t, arg, domain, domain_buf, sizeof domain_buf, err, sizeof err);
  chan = peer == NULL ? NULL : t->listen (peer, port, ring, 65536, err, sizeof err);
  if (chan == NULL || t->accept (chan, err, sizeof err) < 0)
    {
      agent_log ("data port %u: %s", (unsigned) port, err);
      return QREXEC_EXIT_FAILED;
    }
  version = data_hello (t, chan, "data connection");
  if (version < 0)
    return QREXEC_EXIT_FAILED;
  if (prefix != NULL)
    {
      size_t chunk = version >= 3 ? MAX_DATA_CHUNK_V3 : MAX_DATA_CHUNK_V2;

      for (size_t off = 0, len = strlen (prefix); off < len; off += chunk)
        if (data_send_msg (t, chan, MSG_DATA_STDIN, prefix + off, len - off < chunk ? len - off : chunk) < 0)
          {
            agent_log ("data port %u: %s", (unsigned) port, t->error (chan));
            return QREXEC_EXIT_FAILED;
          }
    }

  if (argc - optind > 2)
    {
      char **command = argv + optind + 2;
      int to_cmd[2], from_cmd[2];

      if (pipe2 (to_cmd, O_CLOEXEC) < 0 || pipe2 (from_cmd, O_CLOEXEC) < 0)
        {
          agent_log ("cannot make pipes: %s", strerror (errno));
          return QREXEC_EXIT_FAILED;
        }
      pid = fork ();
      if (pid == 0)
        {
          /* As in Qubes: the command finds this program's own stdin
           * and stdout (and stderr with $PASS_LOCAL_STDERR) in
           * $SAVED_FD_0, $SAVED_FD_1 (and $SAVED_FD_2). */
          for (int i = 0; i < 3; i++)
            if (i != 2 || getenv ("PASS_LOCAL_STDERR") != NULL)
              {
                char name[32], value[16];
                int saved = dup (i);

                if (saved < 0)
                  continue;
                snprintf (name, sizeof name, "SAVED_FD_%d", i);
                snprintf (value, sizeof value, "%d", saved);
                setenv (name, value, 1);
              }
          dup2 (to_cmd[0], 0);
          dup2 (from_cmd[1], 1);
          signal (SIGPIPE, SIG_DFL);
          execvp (command[0], command);
          agent_log ("cannot run '%s': %s", command[0], strerror (errno));
          _exit (QREXEC_EXIT_NOT_FOUND);
        }
      close (to_cmd[0]);
      close (from_cmd[1]);
      fcntl (to_cmd[1], F_SETFL, O_NONBLOCK);
      relay.in_fd = from_cmd[0];
      relay.out_fd = to_cmd[1];
    }
  if (stdin_socket)
    {
      /* The service's output goes back into the socket its input comes
       * from, through a descriptor of its own: its end shuts down only
       * the socket's writing half. */
      relay.out_fd = fcntl (0, F_DUPFD_CLOEXEC, 3);
      relay.out_shutdown = 1;
      if (relay.out_fd < 0)
        {
          agent_log ("cannot duplicate stdin: %s", strerror (errno));
          return QREXEC_EXIT_FAILED;
        }
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
      /* As Qubes' qrexec-client-vm: the service's code when it failed,
       * else COMMAND's. */
      return rc != 0 ? rc : data_exit_code (status);
    }
  return rc;
}
