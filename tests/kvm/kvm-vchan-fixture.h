/* kvm-vchan-fixture.h — a real qube under QEMU for vchan tests and
 * benchmarks: builds the guest image with extra programs in its initramfs,
 * boots it through the kvm plugin (loaded by the core's registry), drives
 * the guest peer (vchan-peer.c) and streams through it.  Used by
 * tests/kvm/test-kvm-vchan.c and bench/vchan.c.
 */
#pragma once

#include <glib.h>

#include "qube-plugin-private.h"

typedef struct {
  char *tmp_dir;
  char *template_dir;
  char *state_dir;
  char *runtime_dir;
  QubePluginRegistry *registry;
  QubePluginInfo *info;
  const QubeBackendOps *backend;
  const QubeVchanOps *ops;
  void *plugin;
  QubeDomainRef ref;
  QubeVchanPeer peer;
  gboolean created;
} KvmTestQube;

/* A temporary directory with the guest image built with `extra` programs
 * (build-template.sh -x) and the kvm plugin loaded from the build tree. */
gboolean kvm_test_qube_prepare (KvmTestQube *q, const char *const *extra, GError **error);
/* Boots the qube (name, runtime_dir, kernel command line `kernelopts`) and
 * waits for its ready marker. */
gboolean kvm_test_qube_boot (KvmTestQube *q, const char *name, const char *runtime_dir,
                             const char *kernelopts, GError **error);
/* Kills the qube, anything left running from the directory, and removes it. */
void kvm_test_qube_destroy (KvmTestQube *q);
/* Kills the qube only. */
void kvm_test_qube_kill (KvmTestQube *q);
/* The message of the plugin's last error on this thread. */
char *kvm_test_plugin_error (KvmTestQube *q, int rc);
/* Programs built beside the test: QUBE_TEST_BUILDDIR/rel. */
char *kvm_test_build_path (const char *rel);

/* The guest peer's commands (vchan-peer-proto.h) on its control channel. */
gboolean kvm_test_peer_command (KvmTestQube *q, QubeVchan *ctrl, guint32 op, guint32 port,
                                guint32 count, guint32 size, GError **error);
gboolean kvm_test_peer_reply (KvmTestQube *q, QubeVchan *ctrl, guint64 *value, GError **error);
/* Connects to the peer's control port, retrying while the guest comes up. */
QubeVchan *kvm_test_peer_connect (KvmTestQube *q, int timeout_s, GError **error);

/* Streams `bytes` of the test pattern to (or from) the guest through a
 * channel on `port`, checks them, and gives the rate in MB/s. */
gboolean kvm_test_stream (KvmTestQube *q, QubeVchan *ctrl, gboolean to_guest, guint32 port,
                          gsize bytes, double *mbps, GError **error);
