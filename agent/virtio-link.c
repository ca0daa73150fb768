/* virtio-link.c — the guest's owner of the vchan virtio-serial port.
 *
 * A virtio-serial port can be opened by one process only, but in a qube
 * many processes use vchan at once (qube-agent, each service call it
 * forks, qrexec-client-vm).  So the first process that needs the port
 * opens it and forks this link process, which keeps the port for the
 * qube's life: it runs the channel multiplexer (common/vchan-mux.c) on
 * the port and serves every local process on the abstract unix socket
 * "@qube-vchan:PORT-NAME", one connection per channel
 * (transport-virtio.c is the other end).
 *
 * Local protocol: the process sends {u32 op, u32 port, u32 a, u32 b}
 * (op 1: offer `port` with rings a/b; op 2: connect to `port`, waiting up
 * to `a` ms for the host to offer it); the link answers with a 128-byte
 * reply {u32 status, char message[124]} when the channel is offered (op 1)
 * and again when the host connected (op 1) or when connected (op 2).  Then
 * the connection carries the channel's bytes both ways; the link moves
 * the process's bytes to the host only as far as the host's credit goes,
 * and shuts its write side when the host closed the channel.  Plain C and
 * libc only.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/vchan-mux.h"
#include "transport.h"
#include "virtio-link.h"

#define MAX_CLIENTS 512
#define PENDING_MAX 65536
#define HOST_ABSENT_POLL_MS 50

enum { PHASE_REQUEST, PHASE_OFFERED, PHASE_WAIT_OFFER, PHASE_STREAM };

typedef struct {
  int fd;
  int phase;
  unsigned char req[VLINK_REQUEST_SIZE];
  size_t req_have;
  uint32_t port;
  long deadline;
  VmuxChan *vc;
  unsigned char *pend;      /* host bytes taken from the ring, not yet sent on */
  size_t pend_off, pend_len;
  int shut;
  int deaf;                 /* the process reads no more (it ended): host bytes
                             * are dropped, its own still go to the host */
} Client;

static Client *clients[MAX_CLIENTS];
static int n_clients;
static Vmux mux;
static int vport = -1;
static int host_absent;
static const char *port_name;

socklen_t
vlink_address (const char *name, struct sockaddr_un *sun)
{
  int n;

  memset (sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  n = snprintf (sun->sun_path + 1, sizeof sun->sun_path - 1, "qube-vchan:%s", name);
  if (n < 0 || (size_t) n >= sizeof sun->sun_path - 1)
    return 0;
  return (socklen_t) (offsetof (struct sockaddr_un, sun_path) + 1 + (size_t) n);
}

static void
reply (Client *c, uint32_t status, const char *message)
{
  unsigned char buf[VLINK_REPLY_SIZE] = { 0 };
  ssize_t n;

  buf[0] = (unsigned char) status;
  size_t len = message != NULL ? strlen (message) : 0;

  if (len > sizeof buf - 5)
    len = sizeof buf - 5;
  memcpy (buf + 4, message != NULL ? message : "", len);
  /* 128 bytes into an empty socket buffer: all or an error. */
  n = send (c->fd, buf, sizeof buf, MSG_NOSIGNAL | MSG_DONTWAIT);
  (void) n;
}

static void
link_trace (Vmux *m, const char *text, void *data)
{
  (void) m;
  (void) data;
  fprintf (stderr, "qube-vchan %s: %s\n", port_name, text);
}

static int
trace_wanted (void)
{
  char line[4096];
  FILE *f = fopen ("/proc/cmdline", "re");
  size_t n;

  if (f == NULL)
    return 0;
  n = fread (line, 1, sizeof line - 1, f);
  fclose (f);
  line[n] = '\0';
  for (char *word = strtok (line, " \n"); word != NULL; word = strtok (NULL, " \n"))
    if (strcmp (word, "qube.vchan_debug") == 0)
      return 1;
  return 0;
}

static void
link_down (const char *why)
{
  if (mux.trace != NULL)
    link_trace (&mux, why, NULL);
  if (mux.peer_up)
    vmux_link_down (&mux);
}

/* The session cannot go on (`what` happened, mux.error says how): it
 * ends, and the host's next HELLO starts a clean one. */
static void
session_broken (const char *what)
{
  fprintf (stderr, "qube-vchan: %s on %s: %s\n", what, port_name, mux.error);
  link_down (what);
  mux.hdr_have = 0;
}

static void
client_free (int i)
{
  Client *c = clients[i];

  /* A close that could not be sent or recorded leaves the session unable
   * to keep channels apart. */
  if (c->vc != NULL && vmux_chan_close (c->vc) < 0)
    session_broken ("cannot close a channel");
  close (c->fd);
  free (c->pend);
  free (c);
  clients[i] = clients[--n_clients];
}

static void
vport_read (void)
{
  char buf[65536];

  for (int round = 0; round < 64; round++)
    {
      ssize_t n = read (vport, buf, sizeof buf);

      if (n > 0)
        {
          if (vmux_feed (&mux, buf, (size_t) n) < 0)
            session_broken ("the host broke the vchan protocol");
          continue;
        }
      if (n == 0)
        {
          link_down ("the host closed the port");
          host_absent = 1;
        }
      else if (errno != EAGAIN && errno != EINTR)
        link_down (strerror (errno));
      return;
    }
}

/* Writes what the multiplexer queued, without blocking.  While the host
 * is not there, writes would block: what was queued is dropped (a new
 * session starts over with a HELLO). */
static void
vport_flush (void)
{
  const void *out;
  size_t len;

  for (vmux_out_peek (&mux, &out, &len); len > 0; vmux_out_peek (&mux, &out, &len))
    {
      ssize_t n = write (vport, out, len);

      if (n > 0)
        {
          vmux_out_consumed (&mux, (size_t) n);
          continue;
        }
      if (n < 0 && (errno == EAGAIN || errno == EINTR) && mux.peer_up && !host_absent)
        return;   /* later, on POLLOUT */
      vmux_out_consumed (&mux, len);
      return;
    }
}

static uint32_t
get32 (const unsigned char *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* Returns 0 to keep the client, -1 to drop it. */
static int
client_request (Client *c)
{
  uint32_t op = get32 (c->req), port = get32 (c->req + 4);
  uint32_t a = get32 (c->req + 8), b = get32 (c->req + 12);

  c->port = port;
  if (op == VLINK_OP_LISTEN)
    {
      c->vc = vmux_offer (&mux, port, a, b);
      if (c->vc == NULL)
        {
          reply (c, 1, mux.error);
          return -1;
        }
      reply (c, 0, "offered");
      c->phase = PHASE_OFFERED;
      return 0;
    }
  if (op == VLINK_OP_CONNECT)
    {
      c->deadline = agent_now_ms () + (long) (a > 600000 ? 600000 : a);
      c->phase = PHASE_WAIT_OFFER;
      return 0;
    }
  reply (c, 1, "unknown request");
  return -1;
}

/* Moves what it can for one client; -1 to drop it. */
static int
client_step (Client *c, short revents)
{
  char buf[65536];

  switch (c->phase)
    {
    case PHASE_REQUEST:
      {
        ssize_t n;

        if (!(revents & (POLLIN | POLLHUP | POLLERR)))
          return 0;
        n = recv (c->fd, c->req + c->req_have, sizeof c->req - c->req_have, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
          return -1;
        if (n < 0 || (c->req_have += (size_t) n) < sizeof c->req)
          return 0;
        if (client_request (c) < 0)
          return -1;
        /* A connect to a port the host offered already completes now:
         * nothing else would wake this client before the poll timeout,
         * and the host waits for it. */
        if (c->phase != PHASE_WAIT_OFFER)
          return 0;
        revents = 0;
      }
      /* fall through */
    case PHASE_WAIT_OFFER:
      if (revents & (POLLHUP | POLLERR))
        return -1;
      if (vmux_peer_offers (&mux, c->port))
        {
          c->vc = vmux_connect (&mux, c->port);
          if (c->vc == NULL)
            {
              reply (c, 1, mux.error);
              return -1;
            }
          reply (c, 0, "connected");
          c->phase = PHASE_STREAM;
          revents = 0;
          break;
        }
      if (agent_now_ms () >= c->deadline)
        {
          snprintf (buf, sizeof buf, "vchan port %u was not offered by the host in time",
                    (unsigned) c->port);
          reply (c, 1, buf);
          return -1;
        }
      return 0;

    case PHASE_OFFERED:
      if (revents & (POLLHUP | POLLERR | POLLIN))
        return -1;    /* the process gave up before the host came */
      if (c->vc->state == VMUX_CHAN_WAITING)
        return 0;
      reply (c, 0, "connected");
      c->phase = PHASE_STREAM;
      /* What the host sent with its connect is in the ring already and
       * no further event may come for it: move it on now. */
      revents = 0;
      break;

    default:
      break;
    }

  /* Host to process. */
  for (;;)
    {
      ssize_t n;

      if (c->pend_len == 0 && vmux_chan_ready (c->vc) > 0)
        {
          c->pend_off = 0;
          c->pend_len = vmux_chan_read (c->vc, c->pend, PENDING_MAX);
        }
      if (c->pend_len == 0)
        break;
      if (c->deaf)
        {
          c->pend_len = 0;
          continue;
        }
      n = send (c->fd, c->pend + c->pend_off, c->pend_len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
        {
          /* A process that ended with the host still sending (its stdin,
           * say) may have written its last bytes (its exit code) first:
           * they are read below and reach the host before our close. */
          if (mux.trace != NULL)
            {
              snprintf (buf, sizeof buf, "port %u: its process ended while the host was "
                        "sending to it", (unsigned) c->port);
              link_trace (&mux, buf, NULL);
            }
          c->deaf = 1;
          c->pend_len = 0;
          continue;
        }
      if (n < 0 && errno != EAGAIN && errno != EINTR)
        return -1;
      if (n <= 0)
        break;
      c->pend_off += (size_t) n;
      c->pend_len -= (size_t) n;
    }
  if (c->vc->state == VMUX_CHAN_GONE && c->pend_len == 0 && vmux_chan_ready (c->vc) == 0 &&
      !c->shut && !c->deaf)
    {
      shutdown (c->fd, SHUT_WR);
      c->shut = 1;
    }
  /* Process to host, as far as the credit goes. */
  while ((revents & (POLLIN | POLLHUP | POLLERR)) && vmux_chan_space (c->vc) > 0)
    {
      size_t room = vmux_chan_space (c->vc);
      ssize_t n = recv (c->fd, buf, room < sizeof buf ? room : sizeof buf, MSG_DONTWAIT);

      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        return -1;
      if (n < 0)
        break;
      vmux_chan_write (c->vc, buf, (size_t) n);
    }
  if (c->shut && c->vc->state == VMUX_CHAN_GONE && (revents & (POLLHUP | POLLERR)))
    return -1;
  /* The host is gone: the process's bytes go nowhere; drop them until it closes. */
  if (c->vc->state == VMUX_CHAN_GONE && (revents & POLLIN))
    {
      ssize_t n = recv (c->fd, buf, sizeof buf, MSG_DONTWAIT);

      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        return -1;
    }
  return 0;
}

static short
client_events (Client *c)
{
  switch (c->phase)
    {
    case PHASE_REQUEST:
    case PHASE_OFFERED:
      return POLLIN;
    case PHASE_WAIT_OFFER:
      return 0;
    default:
      return (short) ((vmux_chan_space (c->vc) > 0 || c->vc->state == VMUX_CHAN_GONE ? POLLIN : 0) |
                      (c->pend_len > 0 ? POLLOUT : 0));
    }
}

void
vlink_serve (const char *name, int port_fd, int listen_fd, int trace)
{
  static struct pollfd pfd[MAX_CLIENTS + 2];

  /* Its stderr is whatever its starter had: a message must not kill it. */
  signal (SIGPIPE, SIG_IGN);
  vport = port_fd;
  port_name = name;
  vmux_init (&mux, NULL, NULL);
  if (trace)
    vmux_set_trace (&mux, link_trace, NULL);
  if (vmux_link_up (&mux) == 0)
    vport_flush ();
  for (;;)
    {
      int timeout = -1, nfds = 2;
      const void *out;
      size_t out_len;

      vmux_out_peek (&mux, &out, &out_len);
      pfd[0] = (struct pollfd) { .fd = listen_fd, .events = n_clients < MAX_CLIENTS ? POLLIN : 0 };
      pfd[1] = (struct pollfd) { .fd = host_absent ? -1 : vport,
                                 .events = (short) (POLLIN | (out_len > 0 ? POLLOUT : 0)) };
      if (host_absent)
        timeout = HOST_ABSENT_POLL_MS;
      for (int i = 0; i < n_clients; i++)
        {
          pfd[nfds++] = (struct pollfd) { .fd = clients[i]->fd, .events = client_events (clients[i]) };
          if (clients[i]->phase == PHASE_WAIT_OFFER)
            timeout = timeout < 0 || timeout > 100 ? 100 : timeout;
        }
      if (poll (pfd, (nfds_t) nfds, timeout) < 0 && errno != EINTR)
        {
          fprintf (stderr, "qube-vchan: poll: %s\n", strerror (errno));
          _exit (1);
        }
      if (host_absent)
        {
          /* Look again: the host may have come. */
          struct pollfd p = { .fd = vport, .events = POLLIN };

          if (poll (&p, 1, 0) > 0 && !((p.revents & POLLHUP) && !(p.revents & POLLIN)))
            {
              host_absent = 0;
              if (mux.trace != NULL)
                link_trace (&mux, "the host is connected again", NULL);
            }
        }
      else if ((pfd[1].revents & POLLHUP) && !(pfd[1].revents & POLLIN))
        {
          link_down ("the host is not connected to the port");
          host_absent = 1;
        }
      if (!host_absent)
        vport_read ();
      if (pfd[0].revents & POLLIN)
        {
          int fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
          Client *c = fd >= 0 ? calloc (1, sizeof *c) : NULL;

          if (c != NULL && (c->pend = malloc (PENDING_MAX)) != NULL)
            {
              c->fd = fd;
              clients[n_clients++] = c;
            }
          else
            {
              free (c);
              if (fd >= 0)
                close (fd);
            }
        }
      /* Every client, whether or not its descriptor woke: host events
       * (connected, data, credit, gone) arrive on the port. */
      for (int i = n_clients - 1; i >= 0; i--)
        {
          short revents = 0;

          for (int j = 2; j < nfds; j++)
            if (pfd[j].fd == clients[i]->fd)
              revents = pfd[j].revents;
          if (client_step (clients[i], revents) < 0)
            client_free (i);
        }
      vport_flush ();
    }
}

int
vlink_listen (const char *name)
{
  struct sockaddr_un sun;
  socklen_t sun_len = vlink_address (name, &sun);
  int fd;

  if (sun_len == 0)
    {
      errno = ENAMETOOLONG;
      return -1;
    }
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && (bind (fd, (struct sockaddr *) &sun, sun_len) < 0 || listen (fd, 64) < 0))
    {
      int saved = errno;

      close (fd);
      errno = saved;
      return -1;
    }
  return fd;
}

int
vlink_start (const char *name, char *err, size_t errlen)
{
  struct sockaddr_un sun;
  char path[300];
  int fd, listen_fd;
  pid_t pid;

  if (vlink_address (name, &sun) == 0)
    {
      agent_set_error (err, errlen, "virtio-serial port name '%s' is too long", name);
      return -1;
    }
  if (vlink_find_port (name, path, sizeof path) < 0)
    {
      agent_set_error (err, errlen, "no virtio-serial port named '%s' in /sys/class/virtio-ports",
                       name);
      return -1;
    }
  listen_fd = vlink_listen (name);
  if (listen_fd < 0)
    {
      int saved = errno;

      /* Another process started the link meanwhile: use it. */
      if (saved == EADDRINUSE)
        return 0;
      agent_set_error (err, errlen, "cannot listen for vchan users of port %s: %s", name,
                       strerror (saved));
      return -1;
    }
  fd = open (path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    {
      agent_set_error (err, errlen, "cannot open %s (port %s): %s", path, name, strerror (errno));
      close (listen_fd);
      return -1;
    }
  pid = fork ();
  if (pid < 0)
    {
      agent_set_error (err, errlen, "cannot fork the vchan link: %s", strerror (errno));
      close (fd);
      close (listen_fd);
      return -1;
    }
  if (pid == 0)
    {
      /* Detached from the process that happened to start it. */
      setsid ();
      if (fork () != 0)
        _exit (0);
      for (int i = 3; i < 1024; i++)
        if (i != fd && i != listen_fd)
          close (i);
      vlink_serve (name, fd, listen_fd, trace_wanted ());
    }
  close (fd);
  close (listen_fd);
  while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
    ;
  return 0;
}
