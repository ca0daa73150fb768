/* test-bad-table.c — a plugin whose backend table claims a size smaller
 * than any ABI 1.0 table. */
#include <abi/qube-backend.h>

static const QubeBackendOps short_backend = {
  .size = 8,
};

QUBE_PLUGIN_DEFINE (.name = "test-bad-table", .backend = &short_backend);
