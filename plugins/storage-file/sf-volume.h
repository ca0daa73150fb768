/* sf-volume.h — the volume operations of the storage-file driver (the
 * QubeStorageOps volume slots), in sf-volume.c. */
#pragma once

#include "sf-pool.h"

G_BEGIN_DECLS

/* Removes the leftovers of interrupted operations in volume `vid`. */
void sf_volume_tidy_vid (QubePool *pool, const char *vid);

int sf_volume_create (QubePool *pool, const QubeVolumeSpec *spec);
int sf_volume_remove (QubePool *pool, const QubeVolumeSpec *spec);
int sf_volume_start (QubePool *pool, const QubeVolumeSpec *spec,
                     QubeBlockDev *dev);
int sf_volume_stop (QubePool *pool, const QubeVolumeSpec *spec);
int sf_volume_info (QubePool *pool, const QubeVolumeSpec *spec,
                    QubeVolumeInfo *info);
int sf_volume_verify (QubePool *pool, const QubeVolumeSpec *spec);
int sf_volume_resize (QubePool *pool, const QubeVolumeSpec *spec,
                      uint64_t new_size);
int sf_volume_revert (QubePool *pool, const QubeVolumeSpec *spec,
                      const char *revision);
int sf_volume_revisions (QubePool *pool, const QubeVolumeSpec *spec,
                         QubeRevision **revisions, uint32_t *n_revisions);
int sf_volume_import_begin (QubePool *pool, const QubeVolumeSpec *spec,
                            uint64_t size_bytes, QubeBlockDev *dev);
int sf_volume_import_end (QubePool *pool, const QubeVolumeSpec *spec,
                          int commit);
int sf_volume_export_begin (QubePool *pool, const QubeVolumeSpec *spec,
                            QubeBlockDev *dev);
int sf_volume_export_end (QubePool *pool, const QubeVolumeSpec *spec);
int sf_volume_clone (QubePool *pool, const QubeVolumeSpec *dst,
                     QubePool *src_pool, const QubeVolumeSpec *src);

G_END_DECLS
