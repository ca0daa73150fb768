/* test-vchan-v11.c — the socket vchan plugin as a plugin built for ABI 1.1
 * presents a transport: the same operations, in a table that ends before
 * peek() and consume().  It lets tests run the core's reading path for
 * transports that can only copy (xen's libvchan, kvm) on any host.  The
 * socket plugin it wraps is the shared object QUBE_TEST_SOCKET_PLUGIN
 * names; without it the table is empty and the registry refuses this
 * plugin. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <abi/qube-vchan.h>

static QubeVchanOps v11_ops;
static const QubePluginDesc *socket_desc;

__attribute__((constructor)) static void
load_socket (void)
{
  const char *path = getenv ("QUBE_TEST_SOCKET_PLUGIN");
  void *handle = path != NULL ? dlopen (path, RTLD_NOW | RTLD_LOCAL) : NULL;
  const QubePluginDesc *desc;

  if (handle == NULL)
    return;
  desc = dlsym (handle, QUBE_PLUGIN_DESCRIPTOR_SYMBOL);
  if (desc == NULL || desc->vchan == NULL || desc->init == NULL ||
      desc->vchan->size < offsetof (QubeVchanOps, peek))
    return;
  socket_desc = desc;
  memcpy (&v11_ops, desc->vchan, offsetof (QubeVchanOps, peek));
  v11_ops.size = offsetof (QubeVchanOps, peek);
}

static int
v11_init (const QubeHost *host, void **plugin_data)
{
  return socket_desc->init (host, plugin_data);
}

QUBE_PLUGIN_EXPORT extern const QubePluginDesc qube_plugin_descriptor;
QUBE_PLUGIN_EXPORT const QubePluginDesc qube_plugin_descriptor = {
  .abi_major = QUBE_ABI_MAJOR,
  .abi_minor = 1,
  .size = sizeof (QubePluginDesc),
  .name = "test-vchan-v11",
  .description = "the socket vchan plugin through an ABI 1.1 table (tests only)",
  .version = "1",
  .license = "LGPL-2.1-or-later",
  .source = "libqube tests",
  .init = v11_init,
  .vchan = &v11_ops,
};
