/* kvm-vchan.h — the vchan transport ABI (abi/qube-vchan.h) for kvm qubes:
 * channels multiplexed (common/vchan-mux.[ch]) over the qube's
 * virtio-serial port KVM_VCHAN_PORT_NAME, reached on the host through
 * <runtime_dir>/vport-KVM_VCHAN_PORT_NAME.sock.  See README.md ("vchan").
 */
#pragma once

#include "abi/qube-vchan.h"

/* The virtio-serial port every kvm qube gets for vchan. */
#define KVM_VCHAN_PORT_NAME "org.qubes.vchan"

/* The vchan operations; their plugin data is the QubeHost. */
extern const QubeVchanOps kvm_vchan_ops;

/* Sets the host services the vchan side reports errors and logs through
 * (from the plugin's init). */
void kvm_vchan_set_host (const QubeHost *host);
