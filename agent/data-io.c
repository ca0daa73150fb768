/* data-io.c — the guest side of a qrexec data connection (see data-io.h).
 * Every header from the peer is checked (type allowed for this side,
 * length within the chunk size) before its payload is touched. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include "data-io.h"
#include "common/qrexec-filter.h"
#include "qrexec-wire.h"

const char *agent_program_name = "qube-agent";

void
agent_log (const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "%s: ", agent_program_name);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

int
data_send_msg (const AgentTransport *t, AgentChan *chan, uint32_t type,
               const void *payload, size_t len)
{
  struct msg_header hdr = { type, (uint32_t) len };

  if (agent_chan_write_all (t, chan, &hdr, sizeof hdr) < 0)
    return -1;
  return len > 0 ? agent_chan_write_all (t, chan, payload, len) : 0;
}

int
data_hello (const AgentTransport *t, AgentChan *chan, const char *what)
{
  struct peer_info mine = { QREXEC_PROTOCOL_VERSION };
  struct {
    struct msg_header hdr;
    struct peer_info info;
  } theirs;

  /* Both sides send first and then read: compatible with a peer that
   * waits for ours before answering, and with one that does not. */
  if (data_send_msg (t, chan, MSG_HELLO, &mine, sizeof mine) < 0 ||
      agent_chan_read_exact (t, chan, &theirs, sizeof theirs) < 0)
    {
      agent_log ("%s: the peer went away during the hello: %s", what, t->error (chan));
      return -1;
    }
  if (theirs.hdr.type != MSG_HELLO || theirs.hdr.len != sizeof (struct peer_info))
    {
      agent_log ("%s: the first message is not a hello (type 0x%x, %u bytes)", what,
                 theirs.hdr.type, theirs.hdr.len);
      return -1;
    }
  if (theirs.info.version < 2)
    {
      agent_log ("%s: the peer speaks qrexec protocol %u, older than 2", what, theirs.info.version);
      return -1;
    }
  return theirs.info.version < QREXEC_PROTOCOL_VERSION ? (int) theirs.info.version
                                                        : QREXEC_PROTOCOL_VERSION;
}

static int sigchld_pipe[2] = { -1, -1 };

static void
on_sigchld (int sig)
{
  int saved = errno;

  (void) sig;
  (void) !write (sigchld_pipe[1], "c", 1);
  errno = saved;
}

int
agent_child_events (void)
{
  struct sigaction sa = { .sa_handler = on_sigchld, .sa_flags = SA_RESTART };

  if (sigchld_pipe[0] >= 0)
    return sigchld_pipe[0];
  if (pipe2 (sigchld_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
    return -1;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGCHLD, &sa, NULL);
  return sigchld_pipe[0];
}

void
agent_child_events_drain (void)
{
  char drain[64];

  while (sigchld_pipe[0] >= 0 && read (sigchld_pipe[0], drain, sizeof drain) > 0)
    ;
}

void
agent_child_events_forget (void)
{
  signal (SIGCHLD, SIG_DFL);
  for (int i = 0; i < 2; i++)
    if (sigchld_pipe[i] >= 0)
      {
        close (sigchld_pipe[i]);
        sigchld_pipe[i] = -1;
      }
}

int
data_exit_code (int status)
{
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  if (WIFSIGNALED (status))
    return 128 + WTERMSIG (status);
  return QREXEC_EXIT_FAILED;
}

/* Bytes received for a local descriptor and not yet written to it. */
typedef struct {
  int fd;
  char buf[MAX_DATA_CHUNK_V3];
  size_t off, len;
  int close_when_flushed;
} Pending;

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

/* The end of what goes to r->out_fd: a socket it shares with the input
 * has its writing half shut down, so that its reader sees EOF while the
 * input's descriptor still holds it. */
static void
close_out_fd (DataRelay *r)
{
  if (r->out_shutdown && r->out_fd >= 0)
    (void) shutdown (r->out_fd, SHUT_WR);
  close_fd (&r->out_fd);
}

/* Writes what it can; 0, or -1 when the reader is gone (the data is
 * dropped and the descriptor closed). */
static void
pending_flush (Pending *p, int *fd)
{
  while (p->len > 0 && *fd >= 0)
    {
      ssize_t n = write (*fd, p->buf + p->off, p->len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return;
      if (n <= 0)
        {
          close_fd (fd);
          p->len = 0;
          break;
        }
      p->off += (size_t) n;
      p->len -= (size_t) n;
    }
  if (p->len == 0 && p->close_when_flushed)
    {
      close_fd (fd);
      p->close_when_flushed = 0;
    }
}

/* How many messages one read of a local descriptor may fill. */
#define BATCH 16

/* Messages on their way to the channel, laid out header, payload,
 * header, payload... in buf: len bytes from off are not written yet.  A
 * local descriptor is read only when this is empty and the channel has
 * room, so that the relay never waits for the peer to make room. */
typedef struct {
  char *buf;
  size_t off, len;
} Outgoing;

/* Writes what the channel has room for: 0, or -1 when the peer is gone. */
static int
outgoing_flush (DataRelay *r, Outgoing *o)
{
  while (o->len > 0)
    {
      long n = r->t->write_some (r->chan, o->buf + o->off, o->len);

      if (n < 0)
        return -1;
      if (n == 0)
        return 0;
      o->off += (size_t) n;
      o->len -= (size_t) n;
    }
  o->off = 0;
  return 0;
}

static void
make_msg_header (void *header, size_t len, void *data)
{
  struct msg_header hdr = { *(uint32_t *) data, (uint32_t) len };

  memcpy (header, &hdr, sizeof hdr);
}

/* Whether the open descriptor `fd` is a socket. */
static int
fd_is_socket (int fd)
{
  struct stat st;

  return fd >= 0 && fstat (fd, &st) == 0 && S_ISSOCK (st.st_mode);
}

/* Reads a local descriptor into as many messages as it has data for and
 * the channel has room for (up to BATCH, so they leave in one write); on
 * EOF sends the empty message (for stderr too, as Qubes' agent does) and
 * closes it.  Only called with `o` empty and more than a header's room in
 * the channel. */
static int
forward_local (DataRelay *r, int *fd, int from_socket, uint32_t type, size_t chunk, Outgoing *o)
{
  const size_t hlen = sizeof (struct msg_header);
  const size_t slot = hlen + chunk;
  size_t room = r->t->space (r->chan);
  struct iovec iov[BATCH];
  int slots = 0;
  ssize_t n;

  /* The process' output pipe straight into the channel when the
   * transport can; an empty pipe is read below to tell EOF. */
  if (r->process_side && r->t->splice_from_pipe != NULL)
    {
      long moved = r->t->splice_from_pipe (r->chan, *fd, from_socket, BATCH * chunk, chunk,
                                           hlen, make_msg_header, &type);

      if (moved != 0)
        return moved < 0 ? -1 : 0;
    }

  /* Whole messages first: readv() fills the slots in order, so only the
   * last one filled can be short and the messages lie back to back. */
  for (; slots < BATCH && room > hlen; slots++)
    {
      size_t len = room - hlen < chunk ? room - hlen : chunk;

      iov[slots] = (struct iovec) { o->buf + slots * slot + hlen, len };
      room -= hlen + len;
    }
  do
    n = readv (*fd, iov, slots);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN)
    return 0;
  if (n <= 0)
    {
      close_fd (fd);
      make_msg_header (o->buf, 0, &type);
      o->len = hlen;
      return outgoing_flush (r, o);
    }
  for (int i = 0; n > 0; i++)
    {
      size_t len = (size_t) n < iov[i].iov_len ? (size_t) n : iov[i].iov_len;

      make_msg_header (o->buf + i * slot, len, &type);
      o->len = i * slot + hlen + len;
      n -= (ssize_t) len;
    }
  return outgoing_flush (r, o);
}

int
data_relay_run (DataRelay *r, int version)
{
  const size_t chunk = version >= 3 ? MAX_DATA_CHUNK_V3 : MAX_DATA_CHUNK_V2;
  Outgoing out = { malloc (BATCH * (sizeof (struct msg_header) + MAX_DATA_CHUNK_V3)), 0, 0 };
  Pending *pend = calloc (1, sizeof *pend);
  struct msg_header hdr;
  size_t hdr_have = 0;
  size_t payload_left = 0;
  int in_msg = 0;
  unsigned char code_buf[4];
  int exit_code = -1;
  int failed = 0;
  int chan_dead = 0;   /* the peer is gone: what it sent is handed out, nothing more comes */
  int in_is_socket, in2_is_socket;
  /* Process side: the child's exit is an event of the loop, so that its
   * stdin is still fed and the channel still watched after it closed
   * its outputs. */
  int child_done = r->process_side ? 0 : 1;
  int child_events = -1, check_child = r->process_side, code_sent = 0;
  int32_t child_code = QREXEC_EXIT_FAILED;

  if (out.buf == NULL || pend == NULL)
    {
      agent_log ("%s: out of memory", r->what);
      free (out.buf);
      free (pend);
      return r->process_side ? -1 : QREXEC_EXIT_FAILED;
    }
  pend->fd = -1;
  if (r->process_side && (child_events = agent_child_events ()) < 0)
    {
      agent_log ("%s: cannot make a pipe: %s", r->what, strerror (errno));
      failed = 1;
    }
  /* Whether the process' stdout / stderr are sockets rather than pipes
   * (a socket's bytes reach the channel through a pipe of the
   * transport's): found out once, here. */
  in_is_socket = r->process_side && fd_is_socket (r->in_fd);
  in2_is_socket = r->process_side && fd_is_socket (r->in2_fd);
  /* The caller keeps reading when a send fails: the process side may
   * have finished (and closed) with its exit code still on the way. */
  if (!r->process_side && r->in_fd < 0)
    (void) data_send_msg (r->t, r->chan, MSG_DATA_STDIN, NULL, 0);

  while (!failed)
    {
      struct pollfd pfd[5];
      int nfds = 0, i_chan = -1, i_in = -1, i_in2 = -1, i_out = -1, i_child = -1;
      int *sink;
      int can_read;

      if (check_child)
        {
          int status = 0;
          pid_t got;

          agent_child_events_drain ();
          do
            got = waitpid (r->child, &status, WNOHANG);
          while (got < 0 && errno == EINTR);
          if (got == r->child)
            child_code = data_exit_code (status);
          child_done = got == r->child || got < 0;
          check_child = 0;
        }
      /* The process side is done when its outputs are closed (and all
       * they gave sent) and it exited: the exit code goes out like the
       * rest, and it is done once that is sent.  The caller is done when
       * the exit code came. */
      if (r->process_side && child_done && r->in_fd < 0 && r->in2_fd < 0 && out.len == 0)
        {
          struct msg_header code_hdr = { MSG_DATA_EXIT_CODE, sizeof child_code };

          if (code_sent)
            break;
          memcpy (out.buf, &code_hdr, sizeof code_hdr);
          memcpy (out.buf + sizeof code_hdr, &child_code, sizeof child_code);
          out.len = sizeof code_hdr + sizeof child_code;
          code_sent = 1;
          if (outgoing_flush (r, &out) < 0)
            failed = 1;
          continue;
        }
      if (!r->process_side && exit_code >= 0 && pend->len == 0)
        break;

      /* Take in messages while nothing waits to be written locally. */
      while (pend->len == 0 && !failed && exit_code < 0)
        {
          if (!in_msg)
            {
              hdr_have += r->t->take (r->chan, (char *) &hdr + hdr_have, sizeof hdr - hdr_have);
              if (hdr_have < sizeof hdr)
                break;
              hdr_have = 0;
              int ok = r->process_side
                ? hdr.type == MSG_DATA_STDIN && hdr.len <= chunk
                : ((hdr.type == MSG_DATA_STDOUT || hdr.type == MSG_DATA_STDERR) && hdr.len <= chunk) ||
                  (hdr.type == MSG_DATA_EXIT_CODE && hdr.len == sizeof (int32_t));
              if (!ok)
                {
                  agent_log ("%s: refused a message of type 0x%x with %u bytes", r->what,
                             hdr.type, hdr.len);
                  failed = 1;
                  break;
                }
              if (hdr.len == 0)
                {
                  /* EOF of the main stream. */
                  if (hdr.type != MSG_DATA_STDERR)
                    close_out_fd (r);
                  continue;
                }
              in_msg = 1;
              payload_left = hdr.len;
            }
          if (hdr.type == MSG_DATA_EXIT_CODE)
            {
              size_t got = r->t->take (r->chan, code_buf + (4 - payload_left), payload_left);

              payload_left -= got;
              if (payload_left > 0)
                break;
              int32_t code;
              memcpy (&code, code_buf, 4);
              exit_code = code < 0 || code > 255 ? QREXEC_EXIT_FAILED : code;
              in_msg = 0;
              break;
            }
          size_t got = r->t->take (r->chan, pend->buf, payload_left);
          if (got == 0)
            break;
          payload_left -= got;
          if (payload_left == 0)
            in_msg = 0;
          sink = hdr.type == MSG_DATA_STDERR ? &r->err_fd : &r->out_fd;
          if (hdr.type == MSG_DATA_STDERR ? r->filter_err : r->filter_out)
            qrexec_filter_unsafe (pend->buf, got);
          if (*sink >= 0)
            {
              pend->fd = *sink;
              pend->off = 0;
              pend->len = got;
              pending_flush (pend, sink);
            }
        }
      if (failed || (!r->process_side && exit_code >= 0 && pend->len == 0))
        continue;
      /* A peer that is gone is not polled again (it would be ready at
       * once, for ever).  The process side ends the call: input that the
       * process did not take yet is dropped, its descriptors are closed.
       * The caller still writes out what came before (the exit code may
       * be among it), and sends nothing more. */
      if (r->t->gone (r->chan))
        chan_dead = 1;
      if (chan_dead && (r->process_side || (pend->len == 0 && exit_code < 0)))
        {
          if (!r->process_side)
            agent_log ("%s: the connection ended before the exit code: %s", r->what,
                       r->t->error (r->chan));
          failed = 1;
          break;
        }
      if (chan_dead)
        {
          close_fd (&r->in_fd);
          out.off = out.len = 0;
        }

      /* Local input is read only when what was read before is sent and
       * the channel has room for more than a header: the relay never
       * waits for room, it waits for the events that bring it. */
      can_read = !chan_dead && out.len == 0 && r->t->space (r->chan) > sizeof (struct msg_header);
      if (!chan_dead)
        {
          /* While what came cannot be handed out (the local reader is
           * slow) and more of it waits here, the channel is not read: a
           * transport whose descriptor other channels share (virtio)
           * would report it readable at once, for ever. */
          short events = pend->len > 0 && r->t->ready (r->chan) > 0 ? 0 : POLLIN;

          if (out.len > 0 || (!can_read && (r->in_fd >= 0 || r->in2_fd >= 0)))
            events |= r->t->room_events;
          if (events != 0)
            {
              pfd[nfds] = (struct pollfd) { .fd = r->t->fd (r->chan), .events = events };
              i_chan = nfds++;
            }
        }
      if (r->in_fd >= 0 && can_read)
        {
          pfd[nfds] = (struct pollfd) { .fd = r->in_fd, .events = POLLIN };
          i_in = nfds++;
        }
      if (r->in2_fd >= 0 && can_read)
        {
          pfd[nfds] = (struct pollfd) { .fd = r->in2_fd, .events = POLLIN };
          i_in2 = nfds++;
        }
      if (pend->len > 0)
        {
          pfd[nfds] = (struct pollfd) { .fd = pend->fd, .events = POLLOUT };
          i_out = nfds++;
        }
      if (!child_done)
        {
          pfd[nfds] = (struct pollfd) { .fd = child_events, .events = POLLIN };
          i_child = nfds++;
        }
      if (poll (pfd, (nfds_t) nfds, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          agent_log ("%s: poll: %s", r->what, strerror (errno));
          failed = 1;
          break;
        }
      if (i_chan >= 0 && pfd[i_chan].revents && r->t->pump (r->chan) < 0)
        chan_dead = 1;
      if (i_child >= 0 && pfd[i_child].revents)
        check_child = 1;
      if (i_out >= 0 && pfd[i_out].revents)
        {
          int *fdp = pend->fd == r->err_fd ? &r->err_fd : &r->out_fd;

          pending_flush (pend, fdp);
        }
      /* A send that fails means the peer is gone (see above); the caller
       * stops sending and keeps reading, as the peer may have closed
       * with its exit code still on the way. */
      if ((out.len > 0 && outgoing_flush (r, &out) < 0) ||
          (i_in >= 0 && pfd[i_in].revents &&
           forward_local (r, &r->in_fd, in_is_socket,
                          r->process_side ? MSG_DATA_STDOUT : MSG_DATA_STDIN, chunk, &out) < 0) ||
          (i_in2 >= 0 && pfd[i_in2].revents && out.len == 0 &&
           r->t->space (r->chan) > sizeof (struct msg_header) &&
           forward_local (r, &r->in2_fd, in2_is_socket, MSG_DATA_STDERR, chunk, &out) < 0))
        {
          if (r->process_side)
            chan_dead = 1;
          else
            {
              close_fd (&r->in_fd);
              out.off = out.len = 0;
            }
        }
    }

  free (out.buf);
  free (pend);
  close_fd (&r->in_fd);
  close_fd (&r->in2_fd);
  close_out_fd (r);
  if (r->process_side)
    {
      /* The call ended without the process: its descriptors are closed
       * (EOF, EPIPE) and it is told.  It is not waited for: this
       * process ends and the call with it. */
      if (!child_done)
        {
          kill (r->child, SIGHUP);
          (void) waitpid (r->child, NULL, WNOHANG);
        }
      return failed ? -1 : 0;
    }
  return failed || exit_code < 0 ? QREXEC_EXIT_FAILED : exit_code;
}
