/* test-abi-major.c — a plugin built for a plugin ABI major the core does not
 * speak.  Written without QUBE_PLUGIN_DEFINE, which always stamps the
 * current version. */
#include <abi/qube-plugin.h>

QUBE_PLUGIN_EXPORT extern const QubePluginDesc qube_plugin_descriptor;
QUBE_PLUGIN_EXPORT const QubePluginDesc qube_plugin_descriptor = {
  .abi_major = QUBE_ABI_MAJOR + 1,
  .abi_minor = 0,
  .size = sizeof (QubePluginDesc),
  .name = "test-abi-major",
};
