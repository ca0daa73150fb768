/* skeleton.c — the smallest complete libqube plugin, to copy when writing
 * your own.  It builds out of tree against the installed ABI headers only
 * (see Makefile) and implements one operation of the isolation backend ABI;
 * every slot left NULL is reported by the core as "not supported by plugin
 * 'skeleton'". */
#include <stdlib.h>
#include <string.h>

#include <abi/qube-plugin.h>
#include <abi/qube-backend.h>

struct skeleton {
  const QubeHost *host;
};

static int
skeleton_init (const QubeHost *host, void **plugin_data)
{
  struct skeleton *self = calloc (1, sizeof *self);

  if (self == NULL)
    {
      host->set_error (host, QUBE_ABI_E_NO_MEMORY, "skeleton: out of memory");
      return QUBE_ABI_E_NO_MEMORY;
    }
  self->host = host;
  host->log (host, QUBE_LOG_DEBUG, "skeleton plugin ready (state in %s)",
             host->state_dir);
  *plugin_data = self;
  return QUBE_ABI_OK;
}

/* A real backend asks its hypervisor; the skeleton never runs anything, so
 * every domain it is asked about is halted. */
static int
skeleton_info (void *plugin, const QubeDomainRef *ref, QubeDomainInfo *info)
{
  (void) plugin;
  (void) ref;
  if (info->size < sizeof (QubeDomainInfo))
    return QUBE_ABI_E_INVALID;
  info->state = QUBE_DOMAIN_HALTED;
  strcpy (info->accel, "none");
  return QUBE_ABI_OK;
}

static const QubeBackendOps skeleton_backend = {
  .size = sizeof (QubeBackendOps),
  .block_formats = QUBE_BLOCK_RAW,
  .info = skeleton_info,
};

QUBE_PLUGIN_DEFINE (.name = "skeleton",
                    .description = "example plugin for plugin authors",
                    .version = "1.0",
                    .license = "LGPL-2.1-or-later",
                    .source = "plugin-skeleton",
                    .init = skeleton_init,
                    .backend = &skeleton_backend);
