/* transport.c — choosing a guest transport by its spec, and the blocking
 * helpers every transport shares. */
#include <poll.h>
#include <string.h>
#include <errno.h>

#include "transport.h"

static const AgentTransport *const transports[] = {
  &agent_transport_socket,
  &agent_transport_virtio,
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
