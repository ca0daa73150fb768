/* test-good-again.c — a second plugin that calls itself "test-good": the
 * registry must use whichever copy it finds first and refuse the other. */
#include <abi/qube-backend.h>

static const QubeBackendOps again_backend = {
  .size = sizeof (QubeBackendOps),
};

QUBE_PLUGIN_DEFINE (.name = "test-good",
                    .description = "the second copy of test-good",
                    .version = "9.9",
                    .license = "LGPL-2.1-or-later",
                    .source = "libqube-tests",
                    .backend = &again_backend);
