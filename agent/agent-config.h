/* agent-config.h — where the guest programs find the host transport and
 * each other; both overridable from the environment so the same binaries
 * run in a qube and as host processes under tests. */
#pragma once

/* The transport spec (see transport.h): $QUBE_AGENT_TRANSPORT, else this. */
#define AGENT_DEFAULT_TRANSPORT "socket:/run/qubes/vchan"
/* The local socket where qrexec-client-vm asks the agent for a call:
 * $QREXEC_AGENT_SOCKET, else Qubes' path. */
#define AGENT_DEFAULT_TRIGGER_SOCKET "/var/run/qubes/qrexec-agent"
/* Where services are looked up, first match wins: $QREXEC_SERVICE_PATH,
 * else Qubes' directories (local overrides first). */
#define AGENT_DEFAULT_SERVICE_PATH "/usr/local/etc/qubes-rpc:/etc/qubes-rpc"
/* Where Qubes keeps the services' own settings (force-user and others);
 * $QUBES_RPC_CONFIG_PATH (Qubes' name) wins. */
#define AGENT_DEFAULT_RPC_CONFIG "/etc/qubes/rpc-config"
/* How long a data connection waits for its peer to offer the channel. */
#define AGENT_CONNECT_TIMEOUT_MS 10000

static inline const char *
agent_env_or (const char *name, const char *fallback)
{
  const char *value = getenv (name);

  return value != NULL && *value != '\0' ? value : fallback;
}
