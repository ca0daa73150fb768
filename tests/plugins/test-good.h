/* test-good.h — what the test-good plugin records, shared with the tests
 * that load it (they read it through the plugin's plugin_data). */
#ifndef QUBE_TEST_GOOD_H
#define QUBE_TEST_GOOD_H

#include <abi/qube-plugin.h>

typedef struct TestGoodData {
  const QubeHost *host;
  /* Every backend call, as "operation qube;" in call order. */
  char calls[1024];
  /* plugins.conf's "greeting" for this plugin, read in init(). */
  const char *greeting;
} TestGoodData;

#endif
