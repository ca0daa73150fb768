/* xen-store.h — the per-qube xenstore keys a Xen guest reads (the data Qubes
 * keeps in qubesdb): written by dom0 under /local/domain/<domid>/qube/,
 * readable but not writable by the guest. */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "abi/qube-backend.h"

G_BEGIN_DECLS

/* Checks that every extra setting "xenstore.KEY" names a key xenstore
 * accepts; xen_create() asks before it makes anything. */
gboolean xen_store_check_qube_keys (const QubeDomainConfig *config,
                                    GError **error);

/* Writes name, uuid and type (the qube's class) for `domid`, plus every
 * extra setting "xenstore.KEY" of the qube's backend features as KEY, in one
 * transaction; fails naming the key and the errno text.  The keys are
 * those xen_store_check_qube_keys() accepted before the domain was made. */
gboolean xen_store_write_qube_keys (uint32_t domid,
                                    const QubeDomainConfig *config,
                                    GError **error);

G_END_DECLS
