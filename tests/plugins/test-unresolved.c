/* test-unresolved.c — a plugin that needs a function no library provides,
 * so the dynamic loader cannot bind it. */
#include <abi/qube-plugin.h>

extern int qube_test_symbol_nobody_defines (void);

static int
unresolved_init (const QubeHost *host, void **plugin_data)
{
  return qube_test_symbol_nobody_defines ();
}

QUBE_PLUGIN_DEFINE (.name = "test-unresolved", .init = unresolved_init);
