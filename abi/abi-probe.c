/* abi-probe.c — a shared object whose one exported function takes every
 * type of the plugin ABI, so that abidw records their exact layout and
 * `make abi-check` notices any change to them. Never installed. */
#include "qube-plugin.h"
#include "qube-backend.h"
#include "qube-vchan.h"
#include "qube-storage.h"
#include "qube-net.h"

void qube_abi_probe (const QubePluginDesc *desc, const QubeHost *host,
                     const QubeRunResult *run, const QubeKeyValue *kv,
                     const QubeBackendOps *backend, const QubeDomainConfig *config,
                     const QubeDomainInfo *info, const QubeVchanOps *vchan,
                     const QubeVchanPeer *peer, const QubeStorageOps *storage,
                     const QubeVolumeSpec *volume, const QubeBlockDev *dev,
                     const QubePoolInfo *pool, const QubeVolumeInfo *vinfo,
                     const QubeRevision *revision, const QubeNetOps *net,
                     const QubeNetLinkSpec *link_spec, const QubeNetLink *link,
                     const QubeFirewallRule *rule);

void
qube_abi_probe (const QubePluginDesc *desc, const QubeHost *host,
                const QubeRunResult *run, const QubeKeyValue *kv,
                const QubeBackendOps *backend, const QubeDomainConfig *config,
                const QubeDomainInfo *info, const QubeVchanOps *vchan,
                const QubeVchanPeer *peer, const QubeStorageOps *storage,
                const QubeVolumeSpec *volume, const QubeBlockDev *dev,
                const QubePoolInfo *pool, const QubeVolumeInfo *vinfo,
                const QubeRevision *revision, const QubeNetOps *net,
                const QubeNetLinkSpec *link_spec, const QubeNetLink *link,
                const QubeFirewallRule *rule)
{
  (void) desc; (void) host; (void) run; (void) kv; (void) backend;
  (void) config; (void) info; (void) vchan; (void) peer; (void) storage;
  (void) volume; (void) dev; (void) pool; (void) vinfo; (void) revision;
  (void) net; (void) link_spec; (void) link; (void) rule;
}
