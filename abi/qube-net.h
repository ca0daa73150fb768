/* qube-net.h — the network uplink ABI.
 *
 * Every qube with a netvm has one uplink: a host-side link (tap device,
 * vif, veth end) joined to the downlink side of its netvm, with an address,
 * a gateway and DNS servers, and a firewall that says what the qube may
 * reach.  A qube that provides network (provides_network=True) has one
 * downlink to which its clients' uplinks connect.  The host itself
 * (dom0) may be a netvm for tests.
 *
 * Links are real kernel objects (netlink), made atomically: a failed
 * operation leaves no link behind.
 */
#ifndef QUBE_ABI_NET_H
#define QUBE_ABI_NET_H

#include "qube-plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One address family's configuration of a link. */
typedef struct QubeNetAddress {
  const char *address;      /* "10.137.0.5" or "fd09:24ef:4179::a89:5" */
  uint32_t prefix_len;
  const char *gateway;      /* NULL for none */
} QubeNetAddress;

/* Describes an uplink (a client qube's side) or a downlink (a netvm's
 * side). */
typedef struct QubeNetLinkSpec {
  uint32_t size;            /* sizeof(QubeNetLinkSpec) */
  /* --- ABI 1.0 --- */
  const char *qube;         /* the qube the link belongs to */
  const char *netvm;        /* uplink: the qube providing network;
                               downlink: NULL */
  const char *mac;          /* guest MAC address */
  QubeNetAddress ipv4;
  QubeNetAddress ipv6;      /* address NULL: no IPv6 */
  const char *const *dns;   /* NULL-terminated list of DNS servers */
  const char *runtime_dir;  /* the qube's runtime directory */
} QubeNetLinkSpec;

/* What was made, to hand to the isolation backend (see QubeNicSpec). */
typedef struct QubeNetLink {
  uint32_t size;            /* sizeof(QubeNetLink) as the core built it */
  /* --- ABI 1.0 --- */
  char host_ifname[64];     /* tap/vif/veth name on the host */
  char bridge[64];          /* bridge the link joined, or "" */
} QubeNetLink;

typedef enum QubeFirewallAction {
  QUBE_FW_ACCEPT = 0,
  QUBE_FW_DROP = 1
} QubeFirewallAction;

/* One firewall rule, in Qubes' terms; the first matching rule wins and the
 * list ends with an implicit drop. */
typedef struct QubeFirewallRule {
  uint32_t size;            /* sizeof(QubeFirewallRule) */
  /* --- ABI 1.0 --- */
  QubeFirewallAction action;
  const char *dsthost;      /* address or prefix "a.b.c.d/n", or NULL: any */
  const char *proto;        /* "tcp", "udp", "icmp", or NULL: any */
  uint32_t dstport_low;     /* 0: any */
  uint32_t dstport_high;
  uint32_t specialtarget_dns; /* non-zero: the qube's DNS servers */
} QubeFirewallRule;

typedef struct QubeNetOps {
  uint32_t size;            /* sizeof(QubeNetOps) */
  /* --- ABI 1.0 --- */

  /* Make the downlink side of a netvm (bridge or routing point). */
  int (*downlink_create)(void *plugin, const QubeNetLinkSpec *spec,
                         QubeNetLink *link);
  int (*downlink_destroy)(void *plugin, const QubeNetLinkSpec *spec);

  /* Make a qube's uplink and connect it to its netvm's downlink. */
  int (*uplink_create)(void *plugin, const QubeNetLinkSpec *spec,
                       QubeNetLink *link);
  int (*uplink_destroy)(void *plugin, const QubeNetLinkSpec *spec);

  /* Replace the qube's firewall atomically. */
  int (*firewall_set)(void *plugin, const QubeNetLinkSpec *spec,
                      const QubeFirewallRule *rules, uint32_t n_rules);
} QubeNetOps;

#ifdef __cplusplus
}
#endif

#endif /* QUBE_ABI_NET_H */
