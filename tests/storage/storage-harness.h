/* storage-harness.h — loading the storage-file plugin through the core's
 * plugin registry and reading/writing the images it hands out, shared by
 * tests/storage and bench/storage. */
#pragma once

#include <glib.h>

#include "qube-plugin-private.h"

typedef struct
{
  QubePluginRegistry *registry;
  QubePluginInfo *info;
  const QubeStorageOps *ops;
  void *data;
} StorageDriver;

/* Loads the "file" driver from the build tree (QUBE_PLUGIN_PATH is set to
 * plugins/storage-file/.libs under QUBE_TEST_BUILDDIR). */
StorageDriver *storage_driver_load (const char *state_dir, GError **error);
void storage_driver_free (StorageDriver *driver);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StorageDriver, storage_driver_free)

/* TRUE when rc is 0; otherwise the plugin's error as a QubeError. */
gboolean storage_driver_ok (StorageDriver *driver, int rc, const char *what,
                            GError **error);

/* Opens (creating) pool `name` in `dir` with cow=`cow` (NULL: auto). */
QubePool *storage_pool_open (StorageDriver *driver, const char *name,
                             const char *dir, const char *cow,
                             GError **error);

/* Fills [offset, offset+len) of an image with `byte` / checks it holds only
 * `byte` there (raw files directly, qcow2 through qemu-io). */
gboolean storage_image_fill (const QubeBlockDev *dev, guint64 offset,
                             guint64 len, guint8 byte, GError **error);
gboolean storage_image_check (const QubeBlockDev *dev, guint64 offset,
                              guint64 len, guint8 byte, GError **error);
