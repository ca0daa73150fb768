/* transport.c — choosing a guest transport by its spec, and the blocking
 * helpers every transport shares. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "transport.h"

static const AgentTransport *const transports[] = {
  &agent_transport_socket,
  &agent_transport_virtio,
#ifdef AGENT_HAVE_XEN
  &agent_transport_xen,
#endif
};

const AgentTransport *
agent_transport_find (const char *spec, const char **arg)
{
  const char *colon = spec != NULL ? strchr (spec, ':') : NULL;

  if (colon == NULL)
    return NULL;
  for (size_t i = 0; i < sizeof transports / sizeof transports[0]; i++)
    if (strlen (transports[i]->name) == (size_t) (colon - spec) &&
        strncmp (transports[i]->name, spec, (size_t) (colon - spec)) == 0)
      {
        *arg = colon + 1;
        return transports[i];
      }
  return NULL;
}

const char *
agent_transport_domain_arg (const AgentTransport *t, const char *arg, uint32_t domain,
                            char *buf, size_t len, char *err, size_t errlen)
{
  if (domain == 0)
    return arg;
  if (t->domain_arg == NULL)
    {
      agent_set_error (err, errlen, "the daemon named domain %u as the other end, and the %s "
                       "transport reaches only the host", (unsigned) domain, t->name);
      return NULL;
    }
  return t->domain_arg (domain, buf, len, err, errlen) < 0 ? NULL : buf;
}

void
agent_set_error (char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if (err == NULL || errlen == 0)
    return;
  va_start (ap, fmt);
  vsnprintf (err, errlen, fmt, ap);
  va_end (ap);
}

void
agent_size_send_buffer (int sock, size_t bytes)
{
  int size = bytes > (size_t) 64 * 1024 * 1024 ? 64 * 1024 * 1024 : (int) bytes;

  if (setsockopt (sock, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
    (void) setsockopt (sock, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

long
agent_now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
agent_chan_read_exact (const AgentTransport *t, AgentChan *chan, void *buf, size_t len)
{
  size_t have = 0;

  while (have < len)
    {
      struct pollfd pfd = { .fd = t->fd (chan), .events = POLLIN };

      have += t->take (chan, (char *) buf + have, len - have);
      if (have == len)
        break;
      if (t->gone (chan))
        return -1;
      if (poll (&pfd, 1, -1) < 0 && errno != EINTR)
        return -1;
      if (t->pump (chan) < 0 && t->ready (chan) == 0)
        return -1;
    }
  return 0;
}

int
agent_chan_write_all (const AgentTransport *t, AgentChan *chan, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0)
    {
      struct pollfd pfd = { .fd = t->fd (chan), .events = t->room_events };
      long n = t->write_some (chan, p, len);

      if (n < 0)
        return -1;
      if (n > 0)
        {
          p += n;
          len -= (size_t) n;
          continue;
        }
      if (poll (&pfd, 1, -1) < 0 && errno != EINTR)
        return -1;
      if (t->pump (chan) < 0)
        return -1;
    }
  return 0;
}
