/* test-init-fails.c — a plugin whose init() fails and says why. */
#include <abi/qube-backend.h>

static const QubeBackendOps init_fails_backend = {
  .size = sizeof (QubeBackendOps),
};

static int
init_fails_init (const QubeHost *host, void **plugin_data)
{
  host->set_error (host, QUBE_ABI_E_IO,
                   "cannot open %s/test-init-fails/lock: permission denied",
                   host->state_dir);
  return QUBE_ABI_E_IO;
}

QUBE_PLUGIN_DEFINE (.name = "test-init-fails",
                    .init = init_fails_init,
                    .backend = &init_fails_backend);
