/* test-abi-minor.c — a plugin built against a newer ABI minor than the
 * core's: it may use slots the core does not have. */
#include <abi/qube-plugin.h>

QUBE_PLUGIN_EXPORT extern const QubePluginDesc qube_plugin_descriptor;
QUBE_PLUGIN_EXPORT const QubePluginDesc qube_plugin_descriptor = {
  .abi_major = QUBE_ABI_MAJOR,
  .abi_minor = QUBE_ABI_MINOR + 1,
  .size = sizeof (QubePluginDesc),
  .name = "test-abi-minor",
};
