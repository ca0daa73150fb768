/* test-unavailable.c — a plugin that loads but whose probe says it cannot
 * work on this host. */
#include <abi/qube-backend.h>

static const QubeBackendOps unavailable_backend = {
  .size = sizeof (QubeBackendOps),
};

static int
unavailable_init (const QubeHost *host, void **plugin_data)
{
  /* The probe needs the host table to report why. */
  *plugin_data = (void *) host;
  return QUBE_ABI_OK;
}

static int
unavailable_probe (void *plugin_data)
{
  const QubeHost *host = plugin_data;

  host->set_error (host, QUBE_ABI_E_UNAVAILABLE,
                   "/dev/qube-test-device is missing");
  return QUBE_ABI_E_UNAVAILABLE;
}

QUBE_PLUGIN_DEFINE (.name = "test-unavailable",
                    .init = unavailable_init,
                    .probe = unavailable_probe,
                    .backend = &unavailable_backend);
