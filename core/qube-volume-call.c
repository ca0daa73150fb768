/* qube-volume-call.c — the calls into a storage plugin that the volume
 * code makes, each under the plugin's lock, with the plugin's error turned
 * into a GError and a missing slot into "not supported". */
#include "config.h"

#include <string.h>

#include "qube-error.h"
#include "qube-storage-private.h"

char *
_qube_volume_vid (const char *qube, const char *volume)
{
  return g_strconcat (qube, "/", volume, NULL);
}

/* What the plugin is told about a volume; valid while `row` and `vid` are. */
void
_qube_volume_fill_spec (QubeVolumeSpec *spec, const QubeStoreVolume *row, const char *vid)
{
  memset (spec, 0, sizeof *spec);
  spec->size = sizeof *spec;
  spec->vid = vid;
  spec->flags = row->flags;
  spec->size_bytes = row->size;
  spec->source = row->source;
  spec->revisions_to_keep = row->revisions_to_keep;
}

/* A plugin call's failure as an error; `qube` (nullable) prefixes it. */
gboolean
_qube_volume_fail (QubePoolHandle *handle, int rc, const char *qube, GError **error)
{
  g_autofree char *what = qube != NULL ? g_strdup_printf ("qube '%s'", qube) : NULL;

  return _qube_plugin_take_error (handle->info, rc, what, error);
}

gboolean
_qube_volume_require_slot (QubePoolHandle *handle, gboolean present, const char *operation,
              GError **error)
{
  if (present)
    return TRUE;
  _qube_plugin_not_supported (handle->info, operation, error);
  g_prefix_error (error, "pool '%s': ", handle->name);
  return FALSE;
}

/* Only for a qube being created or cloned: its name is free in the store
 * (checked under the store's write lock), so a volume already in the pool
 * under its vid belongs to no qube — a creation killed half way — and is
 * removed before trying again. */
gboolean
_qube_pool_volume_create (QubePoolHandle *handle, const QubeStoreVolume *row, const char *qube,
                    GError **error)
{
  g_autofree char *vid = _qube_volume_vid (qube, row->name);
  QubeVolumeSpec spec;
  QUBE_POOL_LOCK (handle);
  int rc;

  if (!_qube_volume_require_slot (handle, handle->ops->volume_create != NULL, "creating a volume", error))
    return FALSE;
  _qube_volume_fill_spec (&spec, row, vid);
  rc = handle->ops->volume_create (handle->pool, &spec);
  if (rc == QUBE_ABI_E_EXISTS)
    {
      g_autoptr(GError) exists = NULL;

      _qube_volume_fail (handle, rc, NULL, &exists);
      g_message ("pool '%s': removing volume '%s' left by an interrupted creation",
                 handle->name, vid);
      if (!_qube_pool_volume_remove (handle, row, qube, error))
        return FALSE;
      rc = handle->ops->volume_create (handle->pool, &spec);
    }
  return rc == 0 || _qube_volume_fail (handle, rc, NULL, error);
}

/* Removes a volume; one already gone counts as removed, so that a removal
 * interrupted half way can be repeated. */
gboolean
_qube_pool_volume_remove (QubePoolHandle *handle, const QubeStoreVolume *row, const char *qube,
                    GError **error)
{
  g_autofree char *vid = _qube_volume_vid (qube, row->name);
  QubeVolumeSpec spec;
  QUBE_POOL_LOCK (handle);
  int rc;

  if (!_qube_volume_require_slot (handle, handle->ops->volume_remove != NULL, "removing a volume", error))
    return FALSE;
  _qube_volume_fill_spec (&spec, row, vid);
  rc = handle->ops->volume_remove (handle->pool, &spec);
  if (rc == QUBE_ABI_E_NOT_FOUND)
    {
      g_autoptr(GError) gone = NULL;
      _qube_volume_fail (handle, rc, NULL, &gone);
      return TRUE;
    }
  return rc == 0 || _qube_volume_fail (handle, rc, NULL, error);
}

gboolean
_qube_pool_volume_info (QubePoolHandle *handle, const QubeStoreVolume *row, const char *qube,
                  QubeVolumeInfo *info, GError **error)
{
  g_autofree char *vid = _qube_volume_vid (qube, row->name);
  QubeVolumeSpec spec;
  QUBE_POOL_LOCK (handle);
  int rc;

  memset (info, 0, sizeof *info);
  info->size = sizeof *info;
  if (!_qube_volume_require_slot (handle, handle->ops->volume_info != NULL, "volume info", error))
    return FALSE;
  _qube_volume_fill_spec (&spec, row, vid);
  rc = handle->ops->volume_info (handle->pool, &spec, info);
  return rc == 0 || _qube_volume_fail (handle, rc, qube, error);
}

gboolean
_qube_pool_volume_stop (QubePoolHandle *handle, const QubeStoreVolume *row, const char *qube,
                  GError **error)
{
  g_autofree char *vid = _qube_volume_vid (qube, row->name);
  QubeVolumeSpec spec;
  QUBE_POOL_LOCK (handle);
  int rc;

  if (!_qube_volume_require_slot (handle, handle->ops->volume_stop != NULL, "stopping a volume", error))
    return FALSE;
  _qube_volume_fill_spec (&spec, row, vid);
  rc = handle->ops->volume_stop (handle->pool, &spec);
  return rc == 0 || _qube_volume_fail (handle, rc, qube, error);
}
