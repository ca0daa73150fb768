/* qube-agent.c — the qrexec agent inside a qube.
 *
 * Offers the control channel (vchan port 512; the agent is the vchan
 * server, the daemon in dom0 the client, as in Qubes), exchanges MSG_HELLO,
 * then runs what the daemon asks: MSG_EXEC_CMDLINE / MSG_JUST_EXEC
 * ("user:command", or "QUBESRPC service+arg source ..." for a service) in a
 * child that connects the data channel and relays its I/O; and it forwards
 * the calls local programs (qrexec-client-vm) make on its trigger socket as
 * MSG_TRIGGER_SERVICE3, answering them as Qubes' agent does: the data
 * channel's struct exec_params when the daemon says MSG_SERVICE_CONNECT,
 * the socket closed when it refuses.  When a data connection it was told of has ended
 * (the child that served it exited, or the local caller closed its socket)
 * it sends MSG_CONNECTION_TERMINATED, as Qubes' agent does: the daemon
 * keeps the port reserved until then.  Every message from the daemon is
 * checked before use.  With --commands-after, the agent can start (and answer the daemon)
 * while the qube is still coming up: commands wait for the qube's start to
 * complete.  Plain C and libc only, so that it links statically.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-config.h"
#include "data-io.h"
#include "qrexec-wire.h"
#include "rpc-service.h"

#define MAX_TRIGGER_CLIENTS 64

/* A local program on the trigger socket: its request is read in pieces
 * as they come (the socket is non-blocking, its descriptor polled with
 * the rest), then forwarded; then it waits for the daemon's answer. */
typedef struct {
  int fd;
  int reading;              /* still reading the request */
  unsigned long since;      /* when it came: the oldest reader gives way first */
  struct msg_header hdr;
  size_t have;              /* bytes of header and payload read */
  char *payload;
  char ident[32];
} TriggerClient;

static const AgentTransport *transport;
static const char *transport_arg;
static const char *default_user = "user";
static const char *service_path;
static const char *rpc_config_dir;
static const char *commands_after;
static TriggerClient clients[MAX_TRIGGER_CLIENTS];
static unsigned next_ident;
static unsigned long next_since;

/* A data connection the daemon hears the end of: served by a child
 * (pid), or by a local caller whose socket stays open until it is done
 * (fd). */
typedef struct {
  pid_t pid;
  int fd;
  uint32_t domain, port;
} Connection;

static Connection *connections;
static size_t n_connections, connections_size;
/* Ends not reported yet: they go to the daemon together (one write, one
 * wake-up of the daemon for many calls), once NOTICES_MAX are there or
 * the agent has had nothing else to do for NOTICES_DELAY_MS. */
#define NOTICES_MAX 16
#define NOTICES_DELAY_MS 100
static struct {
  struct msg_header hdr;
  struct exec_params params;
} notices[NOTICES_MAX];
static size_t n_notices;
/* Readable when a child may have exited: a child to reap wakes the loop. */
static int child_events = -1;

/* ---- running a command ---------------------------------------------------- */

/* Users and groups come straight from /etc/passwd and /etc/group
 * (fgetpwent/fgetgrent): a static binary cannot rely on glibc's NSS
 * modules being present in a minimal guest image. */
static struct passwd *
lookup_user (const char *user)
{
  FILE *f = fopen ("/etc/passwd", "re");
  struct passwd *pw = NULL;

  if (f == NULL)
    return NULL;
  while ((pw = fgetpwent (f)) != NULL)
    if (strcmp (pw->pw_name, user) == 0)
      break;
  /* pw points into static storage that fclose() leaves alone. */
  fclose (f);
  return pw;
}

/* The user's supplementary groups, as initgroups() would set them. */
static int
set_groups (const char *user, gid_t gid)
{
  gid_t groups[NGROUPS_MAX];
  size_t n = 0;
  FILE *f = fopen ("/etc/group", "re");
  struct group *gr;

  groups[n++] = gid;
  while (f != NULL && (gr = fgetgrent (f)) != NULL)
    for (char **m = gr->gr_mem; m != NULL && *m != NULL; m++)
      if (strcmp (*m, user) == 0 && gr->gr_gid != gid && n < NGROUPS_MAX)
        groups[n++] = gr->gr_gid;
  if (f != NULL)
    fclose (f);
  return setgroups (n, groups);
}

/* Returns once the file `commands_after` exists (at once without it):
 * the guest's start creates it when the private volume is mounted and
 * rc.local has run, which a command or service may rely on.  -1 (errno)
 * when the file's directory cannot be watched. */
static int
wait_for_start (void)
{
  char dir[PATH_MAX];
  const char *slash;
  int fd;

  if (commands_after == NULL || access (commands_after, F_OK) == 0)
    return 0;
  slash = strrchr (commands_after, '/');
  if (slash == NULL)
    strcpy (dir, ".");
  else if (snprintf (dir, sizeof dir, "%.*s", slash == commands_after ? 1 : (int) (slash - commands_after),
                     commands_after) >= (int) sizeof dir)
    {
      errno = ENAMETOOLONG;
      return -1;
    }
  fd = inotify_init1 (IN_CLOEXEC);
  if (fd < 0)
    return -1;
  if (inotify_add_watch (fd, dir, IN_CREATE | IN_MOVED_TO) < 0)
    {
      int saved = errno;

      close (fd);
      errno = saved;
      return -1;
    }
  /* Watched before looking again: a file made meanwhile is seen either way.
   * Which name an event carries does not matter: existence is checked. */
  while (access (commands_after, F_OK) < 0)
    {
      char buf[4096] __attribute__ ((aligned (__alignof__ (struct inotify_event))));

      if (read (fd, buf, sizeof buf) < 0 && errno != EINTR)
        {
          int saved = errno;

          close (fd);
          errno = saved;
          return -1;
        }
    }
  close (fd);
  return 0;
}

/* In the child that becomes the command: wait for the qube's start,
 * switch to the user, then exec.  Failures go to stderr (the caller sees
 * them) and exit 125/127. */
static void __attribute__ ((noreturn))
exec_command (const char *user, const char *command)
{
  struct passwd *pw;
  AgentService svc;
  int is_service;

  if (wait_for_start () < 0)
    {
      fprintf (stderr, "qube-agent: cannot wait for the qube's start (%s): %s\n", commands_after,
               strerror (errno));
      _exit (QREXEC_EXIT_FAILED);
    }
  /* Qubes' dom0 may put "nogui:" before the command (a qube without a
   * GUI); this agent has none to start, so it runs what follows. */
  if (strncmp (command, "nogui:", 6) == 0)
    command += 6;
  /* A service is found, and its settings read, before the user switch:
   * they may name the user it runs as. */
  is_service = strncmp (command, "QUBESRPC ", 9) == 0;
  if (is_service)
    {
      agent_service_find (&svc, command + 9, service_path, rpc_config_dir);
      agent_service_serve_connection (&svc);
      if (svc.force_user != NULL)
        user = svc.force_user;
    }
  pw = lookup_user (user);
  if (pw == NULL)
    {
      fprintf (stderr, "qube-agent: cannot run the command as user '%s': no such user\n", user);
      _exit (QREXEC_EXIT_FAILED);
    }
  if (getuid () != pw->pw_uid)
    {
      if (geteuid () != 0)
        {
          fprintf (stderr, "qube-agent: cannot run the command as user '%s': "
                   "the agent does not run as root\n", user);
          _exit (QREXEC_EXIT_FAILED);
        }
      if (set_groups (pw->pw_name, pw->pw_gid) < 0 || setgid (pw->pw_gid) < 0 ||
          setuid (pw->pw_uid) < 0)
        {
          fprintf (stderr, "qube-agent: cannot switch to user '%s': %s\n", user, strerror (errno));
          _exit (QREXEC_EXIT_FAILED);
        }
    }
  setenv ("HOME", pw->pw_dir, 1);
  setenv ("USER", pw->pw_name, 1);
  setenv ("LOGNAME", pw->pw_name, 1);
  if (chdir (pw->pw_dir) < 0)
    (void) chdir ("/");

  if (is_service)
    agent_service_exec (&svc);
  execl ("/bin/sh", "sh", "-c", command, (char *) NULL);
  fprintf (stderr, "qube-agent: cannot run /bin/sh: %s\n", strerror (errno));
  _exit (QREXEC_EXIT_NOT_FOUND);
}

static int
set_nonblock (int fd)
{
  int flags = fcntl (fd, F_GETFL);

  return flags < 0 ? -1 : fcntl (fd, F_SETFL, flags | O_NONBLOCK);
}

/* How much the socket a process writes its stdout into may hold. */
#define SERVICE_OUTPUT_BUFFER (1024 * 1024)

/* Makes this process, a request's relay, a batch task (sched(7)): it
 * moves bytes and decides nothing, so it need not preempt the process it
 * serves each time that process' output wakes it; it takes what piled up
 * when the process blocks or its time slice ends.  On an idle CPU it
 * still runs at once, so a call waits longer only behind another busy
 * process, and then by no more than a time slice (a few ms).  Called
 * after the fork: the process keeps its own policy. */
static void
relay_as_batch (void)
{
  struct sched_param param = { .sched_priority = 0 };

  (void) sched_setscheduler (0, SCHED_BATCH, &param);
}

/* The child handling one request: connect the data channel (to the domain
 * the message named), hello, run the command with its stdio on pipes,
 * relay until it exits. */
static void __attribute__ ((noreturn))
handle_exec (uint32_t type, uint32_t domain, uint32_t port, const char *user, const char *command)
{
  char err[512], what[64], domain_buf[16];
  const char *peer;
  AgentChan *chan;
  int version;
  int in[2], out[2], errp[2];
  pid_t pid;
  DataRelay relay;

  snprintf (what, sizeof what, "data port %u", (unsigned) port);
  peer = agent_transport_domain_arg (transport, transport_arg, domain, domain_buf, sizeof domain_buf,
                                     err, sizeof err);
  chan = peer == NULL ? NULL : transport->connect (peer, port, AGENT_CONNECT_TIMEOUT_MS, err, sizeof err);
  if (chan == NULL)
    {
      agent_log ("%s: %s", what, err);
      _exit (1);
    }
  version = data_hello (transport, chan, what);
  if (version < 0)
    _exit (1);

  if (type == MSG_JUST_EXEC)
    {
      /* No I/O: the command runs detached, the caller learns it started. */
      int32_t code = 0;

      pid = fork ();
      if (pid == 0)
        {
          int null = open ("/dev/null", O_RDWR);

          /* Started as a shell would start it: stdio on /dev/null and
           * nothing else open, SIGPIPE not ignored. */
          dup2 (null, 0);
          dup2 (null, 1);
          dup2 (null, 2);
          if (null > 2)
            close (null);
          signal (SIGPIPE, SIG_DFL);
          setsid ();
          exec_command (user, command);
        }
      data_send_msg (transport, chan, MSG_DATA_EXIT_CODE, &code, sizeof code);
      transport->close (chan);
      _exit (0);
    }

  /* stdout is a socket pair, as in Qubes: a write into a socket costs the
   * process less than one into a pipe (no page charged per 4 KiB), and
   * the socket transport still moves its pages to the channel without
   * copying them. */
  if (pipe2 (in, O_CLOEXEC) < 0 || socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out) < 0 ||
      pipe2 (errp, O_CLOEXEC) < 0)
    {
      agent_log ("%s: cannot make pipes: %s", what, strerror (errno));
      _exit (1);
    }
  /* The process' end of that socket gets a 1 MiB send buffer (as root;
   * the kernel doubles it): a 1 MiB write goes in without the process
   * waiting part-way for the relay to drain it; with the default (about
   * 200 KiB) it stopped four or five times, a switch to the relay and
   * back each time. */
  agent_size_send_buffer (out[1], SERVICE_OUTPUT_BUFFER);
  pid = fork ();
  if (pid < 0)
    {
      agent_log ("%s: cannot fork: %s", what, strerror (errno));
      _exit (1);
    }
  if (pid == 0)
    {
      dup2 (in[0], 0);
      dup2 (out[1], 1);
      dup2 (errp[1], 2);
      signal (SIGPIPE, SIG_DFL);
      signal (SIGCHLD, SIG_DFL);
      exec_command (user, command);
    }
  close (in[0]);
  close (out[1]);
  close (errp[1]);
  set_nonblock (in[1]);
  relay_as_batch ();
  relay = (DataRelay) { .t = transport, .chan = chan, .process_side = 1,
                        .in_fd = out[0], .in2_fd = errp[0], .out_fd = in[1], .err_fd = -1,
                        .child = pid, .what = what };
  if (data_relay_run (&relay, version) < 0)
    agent_log ("%s: %s", what, transport->error (chan));
  transport->close (chan);
  _exit (0);
}

/* ---- the control connection ----------------------------------------------- */

/* ---- connections the daemon hears the end of ------------------------------ */

static void
connection_add (pid_t pid, int fd, uint32_t domain, uint32_t port)
{
  if (n_connections == connections_size)
    {
      size_t size = connections_size > 0 ? 2 * connections_size : 16;
      Connection *bigger = realloc (connections, size * sizeof *connections);

      if (bigger == NULL)
        {
          agent_log ("data port %u: out of memory: its end will not be reported", (unsigned) port);
          if (fd >= 0)
            close (fd);
          return;
        }
      connections = bigger;
      connections_size = size;
    }
  connections[n_connections++] = (Connection) { pid, fd, domain, port };
}

/* Sends the ends not reported yet. */
static void
notices_flush (AgentChan *ctrl)
{
  if (n_notices > 0 && agent_chan_write_all (transport, ctrl, notices, n_notices * sizeof notices[0]) < 0)
    agent_log ("cannot report the end of %zu data connections: %s", n_notices, transport->error (ctrl));
  n_notices = 0;
}

/* The daemon is to hear that the connection on `port` ended. */
static void
notice_add (AgentChan *ctrl, uint32_t domain, uint32_t port)
{
  if (n_notices == NOTICES_MAX)
    notices_flush (ctrl);
  notices[n_notices].hdr = (struct msg_header) { MSG_CONNECTION_TERMINATED, sizeof (struct exec_params) };
  notices[n_notices++].params = (struct exec_params) { domain, port };
}

/* The daemon is to hear that connection `i` ended; it is forgotten. */
static void
connection_end (AgentChan *ctrl, size_t i)
{
  notice_add (ctrl, connections[i].domain, connections[i].port);
  if (connections[i].fd >= 0)
    close (connections[i].fd);
  connections[i] = connections[--n_connections];
}

/* The control connection ended: a daemon that connects next never heard
 * of these ports. */
static void
connections_forget (void)
{
  for (size_t i = 0; i < n_connections; i++)
    if (connections[i].fd >= 0)
      close (connections[i].fd);
  n_connections = 0;
  n_notices = 0;
}

/* Reaps exited children, reporting the connections they served. */
static void
reap_children (AgentChan *ctrl)
{
  pid_t pid;

  agent_child_events_drain ();
  while ((pid = waitpid (-1, NULL, WNOHANG)) > 0)
    for (size_t i = 0; i < n_connections; i++)
      if (connections[i].pid == pid)
        {
          connection_end (ctrl, i);
          break;
        }
}

/* The daemon's answer to local caller `ident`: `ep` for a call that
 * goes ahead (the caller offers its data channel), NULL for a refusal. */
static void
answer_client (const char *ident, const struct exec_params *ep)
{
  for (int i = 0; i < MAX_TRIGGER_CLIENTS; i++)
    if (clients[i].fd >= 0 && !clients[i].reading && strcmp (clients[i].ident, ident) == 0)
      {
        if (ep == NULL)
          close (clients[i].fd);
        else
          {
            if (write (clients[i].fd, ep, sizeof *ep) != (ssize_t) sizeof *ep)
              agent_log ("cannot answer the local caller of request %s: %s", ident,
                         strerror (errno));
            /* The caller keeps its socket open while it uses the data
             * port: its end is the connection's end. */
            connection_add (0, clients[i].fd, ep->connect_domain, ep->connect_port);
          }
        clients[i].fd = -1;
        return;
      }
  agent_log ("the daemon answered request '%s', which no local caller is waiting for", ident);
}

/* Reads and handles one message from the daemon; -1 ends the connection. */
static int
handle_control_message (AgentChan *ctrl)
{
  struct msg_header hdr;
  char *payload;

  if (agent_chan_read_exact (transport, ctrl, &hdr, sizeof hdr) < 0)
    {
      agent_log ("the control connection ended: %s", transport->error (ctrl));
      return -1;
    }
  switch (hdr.type)
    {
    case MSG_EXEC_CMDLINE:
    case MSG_JUST_EXEC:
    case MSG_SERVICE_CONNECT:
      if (hdr.len <= sizeof (struct exec_params) || hdr.len > sizeof (struct exec_params) + MAX_QREXEC_CMD_LEN)
        goto bad;
      break;
    case MSG_SERVICE_REFUSED:
      if (hdr.len != sizeof (struct service_params))
        goto bad;
      break;
    default:
      goto bad;
    }
  payload = malloc (hdr.len + 1);
  if (payload == NULL || agent_chan_read_exact (transport, ctrl, payload, hdr.len) < 0)
    {
      agent_log ("the control connection ended inside a message: %s", transport->error (ctrl));
      free (payload);
      return -1;
    }
  payload[hdr.len] = '\0';

  if (hdr.type == MSG_SERVICE_REFUSED)
    {
      struct service_params *sp = (struct service_params *) payload;

      if (memchr (sp->ident, '\0', sizeof sp->ident) == NULL)
        goto bad_free;
      answer_client (sp->ident, NULL);
    }
  else
    {
      struct exec_params *ep = (struct exec_params *) payload;
      size_t cmd_len = hdr.len - sizeof *ep;
      char *colon;

      if (hdr.type == MSG_SERVICE_CONNECT)
        {
          /* The request ident, as Qubes sends it: a NUL-terminated string
           * in a zero-padded struct service_params (or just the string). */
          if (cmd_len > sizeof (struct service_params) || ep->cmdline[cmd_len - 1] != '\0')
            goto bad_free;
          for (size_t i = strlen (ep->cmdline); i < cmd_len; i++)
            if (ep->cmdline[i] != '\0')
              goto bad_free;
          answer_client (ep->cmdline, ep);
        }
      /* A command line ends with its NUL, and holds no other. */
      else if (ep->cmdline[cmd_len - 1] != '\0' || strlen (ep->cmdline) != cmd_len - 1)
        goto bad_free;
      else if ((colon = strchr (ep->cmdline, ':')) == NULL || colon == ep->cmdline)
        goto bad_free;
      else
        {
          const char *user;
          pid_t pid;

          *colon = '\0';
          user = strcmp (ep->cmdline, "DEFAULT") == 0 ? default_user : ep->cmdline;
          pid = fork ();
          if (pid == 0)
            {
              agent_child_events_forget ();
              transport->close (ctrl);
              for (int i = 0; i < MAX_TRIGGER_CLIENTS; i++)
                if (clients[i].fd >= 0)
                  close (clients[i].fd);
              connections_forget ();
              handle_exec (hdr.type, ep->connect_domain, ep->connect_port, user, colon + 1);
            }
          if (pid < 0)
            {
              /* No child: the connection has ended already. */
              agent_log ("cannot fork for a request: %s", strerror (errno));
              notice_add (ctrl, ep->connect_domain, ep->connect_port);
            }
          else
            connection_add (pid, -1, ep->connect_domain, ep->connect_port);
        }
    }
  free (payload);
  return 0;

bad_free:
  free (payload);
bad:
  agent_log ("the daemon sent an invalid message (type 0x%x, %u bytes): closing the control "
             "connection", hdr.type, hdr.len);
  return -1;
}

/* Lets go of local caller `c`: closing its socket before an answer is
 * how a call is refused. */
static void
trigger_client_end (TriggerClient *c)
{
  close (c->fd);
  free (c->payload);
  *c = (TriggerClient) { .fd = -1 };
}

/* Reads what local caller `c` sent so far; once its request is whole
 * and valid, forwards it to the daemon.  Never waits: the rest of a
 * request comes with a later poll. */
static void
trigger_client_read (TriggerClient *c, AgentChan *ctrl)
{
  struct trigger_service_params3 *params;

  for (;;)
    {
      size_t total = sizeof c->hdr + (c->have >= sizeof c->hdr ? c->hdr.len : 0);
      char *to = c->have < sizeof c->hdr ? (char *) &c->hdr + c->have
                                          : c->payload + (c->have - sizeof c->hdr);
      ssize_t n;

      if (c->have == total && c->have > sizeof c->hdr)
        break;
      n = recv (c->fd, to, total - c->have, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (n <= 0)
        {
          trigger_client_end (c);
          return;
        }
      c->have += (size_t) n;
      /* The header decides the size before anything more is read. */
      if (c->have == sizeof c->hdr)
        {
          if (c->hdr.type != MSG_TRIGGER_SERVICE3 || c->hdr.len <= sizeof *params ||
              c->hdr.len > sizeof *params + MAX_SERVICE_NAME_LEN ||
              (c->payload = malloc (c->hdr.len)) == NULL)
            {
              trigger_client_end (c);
              return;
            }
        }
    }
  params = (struct trigger_service_params3 *) c->payload;
  /* What the daemon would take as a malformed message, and close the
   * qube's control connection for, never leaves: any program in the qube
   * may write here.  (A name it merely refuses goes on, to be refused.) */
  if (memchr (params->target_domain, '\0', sizeof params->target_domain) == NULL ||
      c->payload[c->hdr.len - 1] != '\0' ||
      strlen (c->payload + sizeof *params) != c->hdr.len - sizeof *params - 1)
    {
      trigger_client_end (c);
      return;
    }
  c->reading = 0;
  snprintf (c->ident, sizeof c->ident, "SOCKET%u", next_ident++);
  memset (&params->request_id, 0, sizeof params->request_id);
  strcpy (params->request_id.ident, c->ident);
  if (data_send_msg (transport, ctrl, MSG_TRIGGER_SERVICE3, c->payload, c->hdr.len) < 0)
    agent_log ("cannot forward a call to the daemon: %s", transport->error (ctrl));
  free (c->payload);
  c->payload = NULL;
}

/* A local program connects to ask for a call.  When every place is taken,
 * the caller that has been reading its request the longest gives way (a
 * program that connects and says nothing holds up no other for long);
 * when all wait for the daemon's answer, the newcomer is refused. */
static void
trigger_client_accept (int trigger_fd, AgentChan *ctrl)
{
  int fd = accept4 (trigger_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  TriggerClient *slot = NULL;

  if (fd < 0)
    return;
  for (int i = 0; i < MAX_TRIGGER_CLIENTS && (slot == NULL || slot->fd >= 0); i++)
    if (clients[i].fd < 0 ||
        (clients[i].reading && (slot == NULL || clients[i].since < slot->since)))
      slot = &clients[i];
  if (slot == NULL)
    {
      TriggerClient refused = { .fd = fd };

      trigger_client_end (&refused);
      return;
    }
  if (slot->fd >= 0)
    trigger_client_end (slot);
  *slot = (TriggerClient) { .fd = fd, .reading = 1, .since = next_since++ };
  /* Its request is most likely there already. */
  trigger_client_read (slot, ctrl);
}

static int
listen_trigger (const char *path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd;

  if (strlen (path) >= sizeof sun.sun_path)
    {
      agent_log ("trigger socket path '%s' is too long", path);
      return -1;
    }
  strcpy (sun.sun_path, path);
  unlink (path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind (fd, (struct sockaddr *) &sun, sizeof sun) < 0 || listen (fd, 16) < 0 ||
      chmod (path, 0666) < 0)
    {
      agent_log ("cannot listen on '%s': %s", path, strerror (errno));
      return -1;
    }
  return fd;
}

static void
serve (AgentChan *ctrl, int trigger_fd)
{
  struct pollfd *pfd = NULL;
  size_t pfd_size = 0;

  for (;;)
    {
      size_t nfds = 3, watched = 0, first_client;

      reap_children (ctrl);
      /* Whole messages already buffered are handled before polling. */
      if (transport->ready (ctrl) > 0)
        {
          if (handle_control_message (ctrl) < 0)
            break;
          continue;
        }
      if (pfd_size < 3 + n_connections + MAX_TRIGGER_CLIENTS)
        {
          size_t size = 3 + n_connections + MAX_TRIGGER_CLIENTS;
          struct pollfd *bigger = realloc (pfd, size * sizeof *pfd);

          if (bigger == NULL)
            {
              agent_log ("out of memory");
              break;
            }
          pfd = bigger;
          pfd_size = size;
        }
      pfd[0] = (struct pollfd) { .fd = transport->fd (ctrl), .events = POLLIN };
      pfd[1] = (struct pollfd) { .fd = trigger_fd, .events = POLLIN };
      pfd[2] = (struct pollfd) { .fd = child_events, .events = POLLIN };
      for (size_t i = 0; i < n_connections; i++)
        if (connections[i].fd >= 0)
          pfd[nfds++] = (struct pollfd) { .fd = connections[i].fd, .events = POLLIN };
      first_client = nfds;
      for (int i = 0; i < MAX_TRIGGER_CLIENTS; i++)
        if (clients[i].fd >= 0 && clients[i].reading)
          pfd[nfds++] = (struct pollfd) { .fd = clients[i].fd, .events = POLLIN };
      int ready = poll (pfd, (nfds_t) nfds, n_notices > 0 ? NOTICES_DELAY_MS : 1000);

      if (ready < 0 && errno != EINTR)
        break;
      /* Nothing else to do for a while: the ends go out now. */
      if (ready == 0)
        notices_flush (ctrl);
      if (pfd[0].revents && transport->pump (ctrl) < 0 && transport->ready (ctrl) == 0)
        {
          agent_log ("the control connection ended: %s", transport->error (ctrl));
          break;
        }
      /* A local caller's socket: its end (or anything it sends, which it
       * has no reason to) ends the connection.  The array is walked from
       * the end, as connection_end() moves the last entry into the gap. */
      for (size_t i = 3; i < first_client; i++)
        watched += pfd[i].revents != 0;
      for (size_t i = n_connections; watched > 0 && i-- > 0;)
        for (size_t k = 3; k < first_client; k++)
          if (pfd[k].revents != 0 && pfd[k].fd == connections[i].fd)
            {
              pfd[k].revents = 0;
              watched--;
              connection_end (ctrl, i);
              break;
            }
      /* Local callers still sending their requests, then a new one. */
      for (size_t k = first_client; k < nfds; k++)
        for (int i = 0; pfd[k].revents != 0 && i < MAX_TRIGGER_CLIENTS; i++)
          if (clients[i].fd == pfd[k].fd && clients[i].reading)
            {
              trigger_client_read (&clients[i], ctrl);
              break;
            }
      if (pfd[1].revents)
        trigger_client_accept (trigger_fd, ctrl);
    }
  free (pfd);
  connections_forget ();
}

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: qube-agent [OPTION...]\n"
           "The qrexec agent of a qube: runs commands and services for the daemon.\n\n"
           "  --transport=SPEC       reach the host through SPEC (default: $QUBE_AGENT_TRANSPORT\n"
           "                         or " AGENT_DEFAULT_TRANSPORT ")\n"
           "  --trigger-socket=PATH  where qrexec-client-vm asks for calls (default:\n"
           "                         $QREXEC_AGENT_SOCKET or " AGENT_DEFAULT_TRIGGER_SOCKET ")\n"
           "  --default-user=USER    the user of DEFAULT requests (default: user)\n"
           "  --commands-after=FILE  hold commands and services until FILE exists (the\n"
           "                         qube's start makes it once it is complete)\n"
           "  --once                 exit when the daemon disconnects\n");
}

int
main (int argc, char **argv)
{
  const char *spec = agent_env_or ("QUBE_AGENT_TRANSPORT", AGENT_DEFAULT_TRANSPORT);
  const char *trigger = agent_env_or ("QREXEC_AGENT_SOCKET", AGENT_DEFAULT_TRIGGER_SOCKET);
  int once = 0;
  int trigger_fd;
  static const struct option options[] = {
    { "transport", required_argument, NULL, 't' },
    { "trigger-socket", required_argument, NULL, 's' },
    { "default-user", required_argument, NULL, 'u' },
    { "commands-after", required_argument, NULL, 'a' },
    { "once", no_argument, NULL, 'o' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c;

  agent_program_name = "qube-agent";
  service_path = agent_env_or ("QREXEC_SERVICE_PATH", AGENT_DEFAULT_SERVICE_PATH);
  rpc_config_dir = agent_env_or ("QUBES_RPC_CONFIG_PATH", AGENT_DEFAULT_RPC_CONFIG);
  while ((c = getopt_long (argc, argv, "", options, NULL)) != -1)
    switch (c)
      {
      case 't': spec = optarg; break;
      case 's': trigger = optarg; break;
      case 'u': default_user = optarg; break;
      case 'a': commands_after = optarg; break;
      case 'o': once = 1; break;
      case 'h': usage (stdout); return 0;
      default: usage (stderr); return 2;
      }
  transport = agent_transport_find (spec, &transport_arg);
  if (transport == NULL)
    {
      agent_log ("unknown transport '%s' (known: socket:DIRECTORY, virtio:PORT-NAME)", spec);
      return 2;
    }
  signal (SIGPIPE, SIG_IGN);
  child_events = agent_child_events ();
  if (child_events < 0)
    {
      agent_log ("cannot make a pipe: %s", strerror (errno));
      return 1;
    }
  for (int i = 0; i < MAX_TRIGGER_CLIENTS; i++)
    clients[i].fd = -1;
  trigger_fd = listen_trigger (trigger);
  if (trigger_fd < 0)
    return 1;

  /* The daemon may come and go (restarts): offer the channel again. */
  for (;;)
    {
      char err[512];
      AgentChan *ctrl = transport->listen (transport_arg, VCHAN_BASE_PORT, 65536, 65536,
                                           err, sizeof err);

      if (ctrl == NULL)
        {
          agent_log ("cannot offer the control channel: %s", err);
          return 1;
        }
      if (transport->accept (ctrl, err, sizeof err) < 0)
        {
          agent_log ("control channel: %s", err);
          transport->close (ctrl);
          return 1;
        }
      if (data_hello (transport, ctrl, "control connection") >= 0)
        serve (ctrl, trigger_fd);
      transport->close (ctrl);
      for (int i = 0; i < MAX_TRIGGER_CLIENTS; i++)
        if (clients[i].fd >= 0)
          trigger_client_end (&clients[i]);
      if (once)
        return 0;
    }
}
