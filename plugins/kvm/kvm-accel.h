/* kvm-accel.h — choosing between hardware KVM and TCG emulation.
 *
 * /dev/kvm being there does not mean KVM works (a nested or paravirtual KVM
 * may abort QEMU or stall the guest), so the answer comes from booting the
 * qube's own kernel once under KVM with a short timeout.  It is cached in
 * <state_dir>/kvm/accel together with the QEMU binary and host kernel it
 * was measured with, and measured again when either changes.  Without a
 * usable /dev/kvm the answer is TCG, found without probing and not cached.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  char *accel;   /* "kvm" or "tcg" */
  char *reason;  /* why, for the log and `qube plugins` */
  gboolean settled;  /* FALSE: a guess until KVM can be measured */
} KvmAccelChoice;

void kvm_accel_choice_free (KvmAccelChoice *choice);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KvmAccelChoice, kvm_accel_choice_free)

/* The acceleration to use.  `forced` ("kvm", "tcg" or NULL) comes from the
 * QUBE_KVM_ACCEL environment variable or the plugin's "accel" setting and
 * wins.  Otherwise TCG when `kvm_device` (/dev/kvm) cannot be opened;
 * else the cache in `cache_dir` answers when it was made with the same
 * `qemu_id` (an identity of the QEMU binary, cheap to compute) and host
 * kernel, or `qemu` boots `kernel` under KVM to find out (and the answer
 * is cached with QEMU's version).  `kernel` may be NULL: then without a
 * cached answer the choice is TCG, not settled.  The cache is written only
 * after a probe. */
KvmAccelChoice *kvm_accel_choose (const char *forced,
                                  const char *cache_dir,
                                  const char *qemu,
                                  const char *qemu_id,
                                  const char *kernel,
                                  const char *kvm_device);

G_END_DECLS
