/* test-bad-name.c — a plugin whose name breaks the naming rule. */
#include <abi/qube-plugin.h>

QUBE_PLUGIN_DEFINE (.name = "Test_Bad_Name");
