/* sf-meta.h — the per-volume metadata file of the storage-file pool driver.
 *
 * Each volume directory holds "volume.conf" (a GKeyFile), replaced
 * atomically.  It is the single source of truth for which revision files are
 * committed and whether the volume is started; any other file in the
 * volume directory is a leftover of an interrupted operation.
 */
#pragma once

#include <glib.h>

#include "abi/qube-storage.h"

G_BEGIN_DECLS

#define SF_META_FILE "volume.conf"

typedef struct
{
  guint64 size;          /* nominal size in bytes */
  guint32 flags;         /* QUBE_VOLUME_* at creation */
  char *current;         /* committed revision name, or NULL */
  GPtrArray *kept;       /* older revisions kept for revert, newest first */
  gboolean started;
  char *working;         /* working image file name while started */
  char *base;            /* hard link to the source revision (qcow2 snapshot) */
  char *snapshot_of;     /* vid the last snapshot was made from */
  char *snapshot_rev;    /* its revision at that time */
} SfMeta;

SfMeta *sf_meta_new (void);
void sf_meta_free (SfMeta *meta);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SfMeta, sf_meta_free)

/* Reads dir_fd/volume.conf; validates every name it holds. */
SfMeta *sf_meta_load (int dir_fd, const char *vid, GError **error);
gboolean sf_meta_save (const SfMeta *meta, int dir_fd, GError **error);

/* Revision names are decimal microsecond timestamps. */
gboolean sf_meta_revision_name_is_valid (const char *name);
gint64 sf_meta_revision_created (const char *name);
/* A new name, later than every revision the volume holds. */
char *sf_meta_new_revision_name (const SfMeta *meta);

/* Makes `rev` current: the previous current goes first in the kept list,
 * which is trimmed to `keep`; trimmed names are moved to `dropped`. */
void sf_meta_push_revision (SfMeta *meta, const char *rev, guint32 keep,
                            GPtrArray *dropped);

G_END_DECLS
