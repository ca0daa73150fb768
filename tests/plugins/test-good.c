/* test-good.c — a well-behaved test plugin: a tiny isolation backend that
 * records the calls it gets, and a storage table (driver "testfs") with no
 * operations.  Its backend leaves kill() unset, and pause() always fails
 * with a message, so tests can see both paths. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <abi/qube-backend.h>
#include <abi/qube-storage.h>

#include "test-good.h"

static void
record (TestGoodData *data, const char *operation, const char *qube)
{
  size_t used = strlen (data->calls);

  snprintf (data->calls + used, sizeof data->calls - used, "%s %s;",
            operation, qube);
}

static int
good_create (void *plugin, const QubeDomainConfig *config, char **backend_id)
{
  TestGoodData *data = plugin;

  record (data, "create", config->ref.name);
  *backend_id = malloc (strlen (config->ref.name) + 4);
  if (*backend_id == NULL)
    return QUBE_ABI_E_NO_MEMORY;
  sprintf (*backend_id, "id-%s", config->ref.name);
  return QUBE_ABI_OK;
}

static int
good_start (void *plugin, const QubeDomainRef *ref)
{
  record (plugin, "start", ref->name);
  return QUBE_ABI_OK;
}

static int
good_pause (void *plugin, const QubeDomainRef *ref)
{
  TestGoodData *data = plugin;

  data->host->set_error (data->host, QUBE_ABI_E_BUSY,
                         "domain '%s' is busy", ref->name);
  return QUBE_ABI_E_BUSY;
}

static const QubeBackendOps good_backend = {
  .size = sizeof (QubeBackendOps),
  .block_formats = QUBE_BLOCK_RAW,
  .create = good_create,
  .start = good_start,
  .pause = good_pause,
};

static const QubeStorageOps good_storage = {
  .size = sizeof (QubeStorageOps),
  .driver = "testfs",
  .block_formats = QUBE_BLOCK_RAW,
};

static int
good_init (const QubeHost *host, void **plugin_data)
{
  TestGoodData *data = calloc (1, sizeof *data);

  if (data == NULL)
    {
      host->set_error (host, QUBE_ABI_E_NO_MEMORY, "out of memory");
      return QUBE_ABI_E_NO_MEMORY;
    }
  data->host = host;
  data->greeting = host->config_get (host, "greeting");
  *plugin_data = data;
  return QUBE_ABI_OK;
}

static int
good_describe (void *plugin_data, char *buf, size_t buflen)
{
  (void) plugin_data;
  snprintf (buf, buflen, "records calls;\nline two");
  return 0;
}

QUBE_PLUGIN_DEFINE (.name = "test-good",
                    .description = "a test backend that records its calls",
                    .version = "1.2.3",
                    .license = "LGPL-2.1-or-later",
                    .source = "libqube-tests",
                    .init = good_init,
                    .backend = &good_backend,
                    .storage = &good_storage,
                    .describe = good_describe);
