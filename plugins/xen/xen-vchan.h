/* xen-vchan.h — the vchan transport of the xen plugin, over libxenvchan
 * (grant-shared rings and an event channel between two domains). */
#pragma once

#include "abi/qube-plugin.h"
#include "abi/qube-vchan.h"

/* The plugin's vchan table. */
extern const QubeVchanOps xen_vchan_ops;

/* The plugin's data must start with a pointer to its QubeHost: the vchan
 * operations read the host from there. */
typedef struct
{
  const QubeHost *host;
} XenVchanPluginHead;
