/* qube-backend.h — the isolation backend ABI.
 *
 * An isolation backend turns a qube into a running compartment (a Xen
 * domain, a QEMU process, ...).  The core decides *what* runs — volumes are
 * already prepared by a storage pool, links by a network plugin — and the
 * backend only builds, runs and tears down the compartment.
 *
 * Operations are stateless with respect to the calling process: a domain is
 * named by a QubeDomainRef, and a backend must find a running domain again
 * from it (by name, by the files it keeps in ref->runtime_dir, or by the
 * backend_id it returned from create) even from a process other than the one
 * that created it.  Running qubes outlive the `qube` command that started
 * them.
 */
#ifndef QUBE_ABI_BACKEND_H
#define QUBE_ABI_BACKEND_H

#include "qube-plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Run state of a compartment as the backend sees it. */
typedef enum QubeDomainState {
  QUBE_DOMAIN_HALTED = 0,    /* does not exist (never started, or gone) */
  QUBE_DOMAIN_CREATED = 1,   /* built but not yet running (after create) */
  QUBE_DOMAIN_RUNNING = 2,
  QUBE_DOMAIN_PAUSED = 3,
  QUBE_DOMAIN_SHUTTING_DOWN = 4,
  QUBE_DOMAIN_CRASHED = 5    /* died on its own; kill() cleans up */
} QubeDomainState;

/* One block device to give the domain. */
typedef struct QubeDiskSpec {
  uint32_t size;            /* sizeof(QubeDiskSpec) */
  /* --- ABI 1.0 --- */
  const char *volume;       /* volume name in the qube: "root", "private", ... */
  const char *path;         /* file or block device on the host */
  uint32_t format;          /* one QubeBlockFormat bit */
  uint32_t readonly;        /* non-zero: the guest must not write */
  const char *devname;      /* guest-visible name hint: "xvda", "vda" */
} QubeDiskSpec;

/* One network interface to give the domain (made by a network plugin). */
typedef struct QubeNicSpec {
  uint32_t size;            /* sizeof(QubeNicSpec) */
  /* --- ABI 1.0 --- */
  const char *host_ifname;  /* host side: tap device or vif name */
  const char *mac;          /* "00:16:3e:xx:xx:xx" */
  const char *bridge;       /* host bridge to join, or NULL */
} QubeNicSpec;

/* Identifies a domain in every operation after create. */
typedef struct QubeDomainRef {
  uint32_t size;            /* sizeof(QubeDomainRef) */
  /* --- ABI 1.0 --- */
  const char *name;         /* the qube's name */
  const char *uuid;         /* the qube's UUID, 36 characters */
  const char *runtime_dir;  /* a directory for this qube while it exists;
                               the core creates it before create() and
                               removes it after the domain is gone */
  const char *backend_id;   /* what create() returned, or NULL */
} QubeDomainRef;

/* Everything needed to build a domain. */
typedef struct QubeDomainConfig {
  uint32_t size;            /* sizeof(QubeDomainConfig) */
  /* --- ABI 1.0 --- */
  QubeDomainRef ref;
  const char *klass;        /* "AppVM", "TemplateVM", "DispVM", ... */
  uint64_t memory_mib;      /* initial memory */
  uint64_t maxmem_mib;      /* ceiling for balloon growth (>= memory_mib) */
  uint32_t vcpus;
  const char *virt_mode;    /* "pvh", "hvm" or "pv": the backend may refuse */
  const char *kernel;       /* kernel image path (uncompressed for PVH) */
  const char *initramfs;    /* initramfs path, or NULL */
  const char *kernelopts;   /* kernel command line additions, or NULL */
  const QubeDiskSpec *disks;
  uint32_t n_disks;
  const QubeNicSpec *nics;
  uint32_t n_nics;
  /* Extra key/value settings for this backend (the qube's features
   * "backend.<plugin>.<key>"), may be empty. */
  const QubeKeyValue *extra;
  uint32_t n_extra;
} QubeDomainConfig;

/* What info() reports. */
typedef struct QubeDomainInfo {
  uint32_t size;            /* sizeof(QubeDomainInfo) as the *core* built it;
                               the plugin fills only the fields that fit */
  /* --- ABI 1.0 --- */
  QubeDomainState state;
  uint64_t memory_kib;      /* memory the domain has now */
  uint64_t maxmem_kib;
  uint32_t vcpus;
  uint64_t cpu_time_ns;     /* CPU time used so far, 0 if unknown */
  uint64_t host_overhead_kib; /* host memory the backend uses for the domain
                                 beyond guest RAM (device model...), 0 if
                                 unknown */
  char accel[16];           /* acceleration in use: "kvm", "tcg", "xen" */
} QubeDomainInfo;

/* The isolation backend operations.  Every slot may be NULL, meaning "not
 * supported by this backend": the core turns that into an error naming the
 * plugin and the operation.  All return 0 or a QubeAbiError (with
 * host->set_error() called). */
typedef struct QubeBackendOps {
  uint32_t size;            /* sizeof(QubeBackendOps) */
  /* --- ABI 1.0 --- */

  /* Block formats this backend can attach (QubeBlockFormat bits). */
  uint32_t block_formats;

  /* Build the domain, not yet running its guest (QUBE_DOMAIN_CREATED).
   * May set *backend_id to a malloc()ed string the core keeps and passes
   * back in ref->backend_id.  On failure nothing of the domain remains. */
  int (*create)(void *plugin, const QubeDomainConfig *config,
                char **backend_id);

  /* Let a created domain run. */
  int (*start)(void *plugin, const QubeDomainRef *ref);

  int (*pause)(void *plugin, const QubeDomainRef *ref);
  int (*unpause)(void *plugin, const QubeDomainRef *ref);

  /* Ask the guest to power off (ACPI or PV shutdown) and return at once;
   * the core waits, asks the agent, and calls kill() after its timeout. */
  int (*shutdown)(void *plugin, const QubeDomainRef *ref);

  /* Destroy the domain now and release everything the backend made for it
   * (processes, sockets, device nodes).  Killing a halted domain is not an
   * error. */
  int (*kill)(void *plugin, const QubeDomainRef *ref);

  /* Fill *info (info->size is set by the caller). A domain that does not
   * exist is reported as QUBE_DOMAIN_HALTED, not as an error. */
  int (*info)(void *plugin, const QubeDomainRef *ref, QubeDomainInfo *info);

  /* Hot-plug and unplug (NULL: only at create). */
  int (*attach_disk)(void *plugin, const QubeDomainRef *ref,
                     const QubeDiskSpec *disk);
  int (*detach_disk)(void *plugin, const QubeDomainRef *ref,
                     const char *devname);
  int (*attach_nic)(void *plugin, const QubeDomainRef *ref,
                    const QubeNicSpec *nic);
  int (*detach_nic)(void *plugin, const QubeDomainRef *ref,
                    const char *host_ifname);

  /* Memory accounting: set the balloon target of a running domain, and
   * report the host's memory available for new domains. */
  int (*set_memory)(void *plugin, const QubeDomainRef *ref,
                    uint64_t memory_mib);
  int (*host_memory)(void *plugin, uint64_t *total_mib, uint64_t *free_mib);

  /* Name of the vchan plugin that reaches this backend's guests (e.g. "kvm"
   * or "xen"), or NULL for none. */
  const char *vchan_transport;
} QubeBackendOps;

#ifdef __cplusplus
}
#endif

#endif /* QUBE_ABI_BACKEND_H */
