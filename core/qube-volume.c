/* qube-volume.c — the volumes of qubes: the layout each class gets, the
 * records in the state store, and every operation on them through the
 * storage plugin of their pool.
 *
 * Creating, removing, cloning and re-pointing run inside the manager's
 * store transaction, so the records change only when the pools did; what a
 * failed step had already made in a pool is undone before returning.
 * Starting a qube's volumes is all or nothing: the ones started before a
 * failure are stopped again.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qube-error.h"
#include "qube-storage-private.h"
#include "qube-vm-private.h"

/* Bytes moved per read/write in imports and exports. */
#define COPY_CHUNK (1024 * 1024)
/* What `qube volume list` shows as the pool of the kernel volume. */
#define KERNEL_POOL "linux-kernel"
#define KERNEL_VOLUME "kernel"

/* Where a snapshot's source is, relative to the new qube. */
typedef enum {
  SOURCE_NONE,
  SOURCE_TEMPLATE,           /* the template's volume */
  SOURCE_TEMPLATE_TEMPLATE,  /* the template's template's volume (DispVM root) */
} SourceOf;

typedef struct {
  const char *name;
  guint32 flags;
  guint64 size;
  SourceOf source_of;
  const char *source_volume;
} LayoutEntry;

#define RW QUBE_VOLUME_RW
#define SNAP QUBE_VOLUME_SNAP_ON_START
#define SAVE QUBE_VOLUME_SAVE_ON_STOP

static const LayoutEntry app_layout[] = {
  { "root", RW | SNAP, QUBE_VOLUME_ROOT_SIZE, SOURCE_TEMPLATE, "root" },
  { "private", RW | SAVE, QUBE_VOLUME_PRIVATE_SIZE, SOURCE_NONE, NULL },
  { "volatile", RW, QUBE_VOLUME_VOLATILE_SIZE, SOURCE_NONE, NULL },
  { NULL },
};

static const LayoutEntry persistent_layout[] = {
  { "root", RW | SAVE, QUBE_VOLUME_ROOT_SIZE, SOURCE_NONE, NULL },
  { "private", RW | SAVE, QUBE_VOLUME_PRIVATE_SIZE, SOURCE_NONE, NULL },
  { "volatile", RW, QUBE_VOLUME_VOLATILE_SIZE, SOURCE_NONE, NULL },
  { NULL },
};

static const LayoutEntry disp_layout[] = {
  { "root", RW | SNAP, QUBE_VOLUME_ROOT_SIZE, SOURCE_TEMPLATE_TEMPLATE, "root" },
  { "private", RW | SNAP, QUBE_VOLUME_PRIVATE_SIZE, SOURCE_TEMPLATE, "private" },
  { "volatile", RW, QUBE_VOLUME_VOLATILE_SIZE, SOURCE_NONE, NULL },
  { NULL },
};

static const LayoutEntry no_layout[] = { { NULL } };

static const LayoutEntry *
layout_for (QubeClass klass)
{
  switch (klass)
    {
    case QUBE_CLASS_APP:
      return app_layout;
    case QUBE_CLASS_TEMPLATE:
    case QUBE_CLASS_STANDALONE:
      return persistent_layout;
    case QUBE_CLASS_DISP:
      return disp_layout;
    default:
      return no_layout;
    }
}

static const LayoutEntry *
layout_entry (QubeClass klass, const char *name)
{
  for (const LayoutEntry *e = layout_for (klass); e->name != NULL; e++)
    if (strcmp (e->name, name) == 0)
      return e;
  return NULL;
}

/* Qubes' device names, in the order volumes are started. */
static const char *const devnames[][2] = {
  { "root", "xvda" },
  { "private", "xvdb" },
  { "volatile", "xvdc" },
};

static int
start_rank (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (devnames); i++)
    if (strcmp (devnames[i][0], name) == 0)
      return (int) i;
  return G_N_ELEMENTS (devnames);
}

static char *
devname_for (const char *name, guint index)
{
  int rank = start_rank (name);

  if (rank < (int) G_N_ELEMENTS (devnames))
    return g_strdup (devnames[rank][1]);
  return g_strdup_printf ("xvd%c", 'e' + MIN (index, 20u));
}

/* ---- boxed types ---- */

/**
 * qube_block_device_copy:
 * @device: a #QubeBlockDevice
 *
 * Returns: (transfer full): a copy
 */
QubeBlockDevice *
qube_block_device_copy (const QubeBlockDevice *device)
{
  QubeBlockDevice *copy = g_new0 (QubeBlockDevice, 1);

  copy->volume = g_strdup (device->volume);
  copy->path = g_strdup (device->path);
  copy->format = g_strdup (device->format);
  copy->read_only = device->read_only;
  copy->devname = g_strdup (device->devname);
  return copy;
}

/**
 * qube_block_device_free:
 * @device: (nullable): a #QubeBlockDevice
 */
void
qube_block_device_free (QubeBlockDevice *device)
{
  if (device == NULL)
    return;
  g_free (device->volume);
  g_free (device->path);
  g_free (device->format);
  g_free (device->devname);
  g_free (device);
}

G_DEFINE_BOXED_TYPE (QubeBlockDevice, qube_block_device, qube_block_device_copy,
                     qube_block_device_free)

void
_qube_block_device_to_disk (const QubeBlockDevice *device, QubeDiskSpec *disk)
{
  memset (disk, 0, sizeof *disk);
  disk->size = sizeof *disk;
  disk->volume = device->volume;
  disk->path = device->path;
  disk->format = strcmp (device->format, "qcow2") == 0 ? QUBE_BLOCK_QCOW2 : QUBE_BLOCK_RAW;
  disk->readonly = device->read_only ? 1 : 0;
  disk->devname = device->devname;
}

/**
 * qube_volume_revision_copy:
 * @revision: a #QubeVolumeRevision
 *
 * Returns: (transfer full): a copy
 */
QubeVolumeRevision *
qube_volume_revision_copy (const QubeVolumeRevision *revision)
{
  QubeVolumeRevision *copy = g_new0 (QubeVolumeRevision, 1);

  copy->name = g_strdup (revision->name);
  copy->created = revision->created;
  return copy;
}

/**
 * qube_volume_revision_free:
 * @revision: (nullable): a #QubeVolumeRevision
 */
void
qube_volume_revision_free (QubeVolumeRevision *revision)
{
  if (revision == NULL)
    return;
  g_free (revision->name);
  g_free (revision);
}

G_DEFINE_BOXED_TYPE (QubeVolumeRevision, qube_volume_revision, qube_volume_revision_copy,
                     qube_volume_revision_free)

/* ---- calling the plugin ---- */

static char *
make_vid (const char *qube, const char *volume)
{
  return g_strconcat (qube, "/", volume, NULL);
}

/* What the plugin is told about a volume; valid while `row` and `vid` are. */
static void
fill_spec (QubeVolumeSpec *spec, const QubeStoreVolume *row, const char *vid)
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
static gboolean
volume_fail (QubePoolHandle *handle, int rc, const char *qube, GError **error)
{
  g_autofree char *what = qube != NULL ? g_strdup_printf ("qube '%s'", qube) : NULL;

  return _qube_plugin_take_error (handle->info, rc, what, error);
}

static gboolean
require_slot (QubePoolHandle *handle, gboolean present, const char *operation,
              GError **error)
{
  if (present)
    return TRUE;
  _qube_plugin_not_supported (handle->info, operation, error);
  g_prefix_error (error, "pool '%s': ", handle->name);
  return FALSE;
}

#define POOL_LOCK(handle) \
  g_autoptr(GRecMutexLocker) G_PASTE (locker_, __LINE__) = \
    g_rec_mutex_locker_new (_qube_plugin_info_get_lock ((handle)->info))

static gboolean pool_volume_remove (QubePoolHandle *handle, const QubeStoreVolume *row,
                                    const char *qube, GError **error);

/* Only for a qube being created or cloned: its name is free in the store
 * (checked under the store's write lock), so a volume already in the pool
 * under its vid belongs to no qube — a creation killed half way — and is
 * removed before trying again. */
static gboolean
pool_volume_create (QubePoolHandle *handle, const QubeStoreVolume *row, const char *qube,
                    GError **error)
{
  g_autofree char *vid = make_vid (qube, row->name);
  QubeVolumeSpec spec;
  POOL_LOCK (handle);
  int rc;

  if (!require_slot (handle, handle->ops->volume_create != NULL, "creating a volume", error))
    return FALSE;
  fill_spec (&spec, row, vid);
  rc = handle->ops->volume_create (handle->pool, &spec);
  if (rc == QUBE_ABI_E_EXISTS)
    {
      g_autoptr(GError) exists = NULL;

      volume_fail (handle, rc, NULL, &exists);
      g_message ("pool '%s': removing volume '%s' left by an interrupted creation",
                 handle->name, vid);
      if (!pool_volume_remove (handle, row, qube, error))
        return FALSE;
      rc = handle->ops->volume_create (handle->pool, &spec);
    }
  return rc == 0 || volume_fail (handle, rc, NULL, error);
}

/* Removes a volume; one already gone counts as removed, so that a removal
 * interrupted half way can be repeated. */
static gboolean
pool_volume_remove (QubePoolHandle *handle, const QubeStoreVolume *row, const char *qube,
                    GError **error)
{
  g_autofree char *vid = make_vid (qube, row->name);
  QubeVolumeSpec spec;
  POOL_LOCK (handle);
  int rc;

  if (!require_slot (handle, handle->ops->volume_remove != NULL, "removing a volume", error))
    return FALSE;
  fill_spec (&spec, row, vid);
  rc = handle->ops->volume_remove (handle->pool, &spec);
  if (rc == QUBE_ABI_E_NOT_FOUND)
    {
      g_autoptr(GError) gone = NULL;
      volume_fail (handle, rc, NULL, &gone);
      return TRUE;
    }
  return rc == 0 || volume_fail (handle, rc, NULL, error);
}

static gboolean
pool_volume_info (QubePoolHandle *handle, const QubeStoreVolume *row, const char *qube,
                  QubeVolumeInfo *info, GError **error)
{
  g_autofree char *vid = make_vid (qube, row->name);
  QubeVolumeSpec spec;
  POOL_LOCK (handle);
  int rc;

  memset (info, 0, sizeof *info);
  info->size = sizeof *info;
  if (!require_slot (handle, handle->ops->volume_info != NULL, "volume info", error))
    return FALSE;
  fill_spec (&spec, row, vid);
  rc = handle->ops->volume_info (handle->pool, &spec, info);
  return rc == 0 || volume_fail (handle, rc, qube, error);
}

static gboolean
pool_volume_stop (QubePoolHandle *handle, const QubeStoreVolume *row, const char *qube,
                  GError **error)
{
  g_autofree char *vid = make_vid (qube, row->name);
  QubeVolumeSpec spec;
  POOL_LOCK (handle);
  int rc;

  if (!require_slot (handle, handle->ops->volume_stop != NULL, "stopping a volume", error))
    return FALSE;
  fill_spec (&spec, row, vid);
  rc = handle->ops->volume_stop (handle->pool, &spec);
  return rc == 0 || volume_fail (handle, rc, qube, error);
}

/* ---- the layout of a new qube ---- */

static char *
read_template (QubeStore *store, gint64 qube_id, GError **error)
{
  char *value = NULL;

  if (!_qube_store_get_property (store, qube_id, "template", &value, error))
    return NULL;
  if (value == NULL)
    g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND, "it has no template");
  return value;
}

/* The index of the row named `name`, or -1. */
static int
find_row (GPtrArray *rows, const char *name)
{
  for (guint i = 0; i < rows->len; i++)
    if (strcmp (((QubeStoreVolume *) rows->pdata[i])->name, name) == 0)
      return (int) i;
  return -1;
}

/* The source of a snapshot of layout entry `entry` for a qube whose
 * template is `template_name`: the source qube's volume record. */
static QubeStoreVolume *
find_source (QubeStore *store, const LayoutEntry *entry, const char *template_name,
             char **source_qube, GError **error)
{
  g_auto(QubeStoreQube) qube = { 0 };
  g_autoptr(GPtrArray) rows = NULL;
  g_autofree char *owner = g_strdup (template_name);
  int index;

  if (!_qube_store_get_qube (store, owner, &qube, error))
    return NULL;
  if (entry->source_of == SOURCE_TEMPLATE_TEMPLATE)
    {
      g_free (owner);
      owner = read_template (store, qube.id, error);
      if (owner == NULL)
        {
          g_prefix_error (error, "template '%s': ", template_name);
          return NULL;
        }
      if (!_qube_store_get_qube (store, owner, &qube, error))
        return NULL;
    }
  rows = _qube_store_list_volumes (store, qube.id, error);
  if (rows == NULL)
    return NULL;
  index = find_row (rows, entry->source_volume);
  if (index < 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
                   "qube '%s' has no volume '%s' to take a snapshot of", owner,
                   entry->source_volume);
      return NULL;
    }
  *source_qube = g_steal_pointer (&owner);
  return g_ptr_array_steal_index (rows, (guint) index);
}

/* The record of the volume `entry` of a new qube. */
static QubeStoreVolume *
plan_volume (QubeStore *store, gint64 qube_id, const LayoutEntry *entry,
             const char *template_name, const char *default_pool, GError **error)
{
  g_autoptr(QubeStoreVolume) row = g_new0 (QubeStoreVolume, 1);

  row->qube_id = qube_id;
  row->name = g_strdup (entry->name);
  row->flags = entry->flags;
  row->size = entry->size;
  row->revisions_to_keep = QUBE_VOLUME_REVISIONS_TO_KEEP;
  if (entry->source_of != SOURCE_NONE)
    {
      g_autofree char *source_qube = NULL;
      g_autoptr(QubeStoreVolume) source = NULL;

      source = find_source (store, entry, template_name, &source_qube, error);
      if (source == NULL)
        return NULL;
      /* A snapshot lives beside its source, and is as large. */
      row->pool = g_strdup (source->pool);
      row->size = source->size;
      row->source = make_vid (source_qube, source->name);
    }
  else
    row->pool = g_strdup (default_pool);
  return g_steal_pointer (&row);
}

/* Volumes made in pools so far, undone on failure. */
typedef struct {
  QubePoolHandle *handle;
  QubeStoreVolume *row;
} MadeVolume;

static void
made_volume_free (MadeVolume *made)
{
  _qube_pool_handle_unref (made->handle);
  _qube_store_volume_free (made->row);
  g_free (made);
}

static void
undo_made (GPtrArray *made, const char *qube)
{
  for (guint i = made->len; i > 0; i--)
    {
      MadeVolume *m = made->pdata[i - 1];
      g_autoptr(GError) error = NULL;

      if (!pool_volume_remove (m->handle, m->row, qube, &error))
        g_warning ("qube '%s': cannot remove volume '%s' again: %s", qube, m->row->name,
                   error->message);
    }
  g_ptr_array_set_size (made, 0);
}

/* Makes `row` in its pool (by cloning `clone_from` of qube `clone_qube`
 * when given) and records it. */
static gboolean
make_volume (QubeManager *manager, QubeStore *store, QubeStoreVolume *row, const char *qube,
             const QubeStoreVolume *clone_from, const char *clone_qube, GPtrArray *made,
             GError **error)
{
  g_autoptr(QubePoolHandle) handle = _qube_pool_open (manager, store, row->pool, error);
  MadeVolume *m;

  if (handle == NULL)
    return FALSE;
  if (clone_from == NULL)
    {
      if (!pool_volume_create (handle, row, qube, error))
        return FALSE;
    }
  else
    {
      g_autofree char *dst_vid = make_vid (qube, row->name);
      g_autofree char *src_vid = make_vid (clone_qube, clone_from->name);
      QubeVolumeSpec dst, src;
      POOL_LOCK (handle);
      int rc;

      if (!require_slot (handle, handle->ops->volume_clone != NULL, "cloning a volume",
                         error))
        return FALSE;
      fill_spec (&dst, row, dst_vid);
      fill_spec (&src, clone_from, src_vid);
      rc = handle->ops->volume_clone (handle->pool, &dst, handle->pool, &src);
      if (rc != 0)
        return volume_fail (handle, rc, NULL, error);
    }
  m = g_new0 (MadeVolume, 1);
  m->handle = _qube_pool_handle_ref (handle);
  m->row = g_new0 (QubeStoreVolume, 1);
  *m->row = *row;
  m->row->name = g_strdup (row->name);
  m->row->pool = g_strdup (row->pool);
  m->row->source = g_strdup (row->source);
  g_ptr_array_add (made, m);
  return _qube_store_add_volume (store, row, error);
}

gboolean
_qube_volumes_create (QubeManager *manager, QubeStore *store, const QubeStoreQube *qube,
                      QubeClass klass, const char *template_name, GError **error)
{
  g_autoptr(GPtrArray) made = g_ptr_array_new_with_free_func ((GDestroyNotify) made_volume_free);
  g_autofree char *default_pool = NULL;

  if (layout_for (klass)->name == NULL)
    return TRUE;
  if (!_qube_global_get (store, "default_pool", &default_pool, NULL, NULL, error))
    return FALSE;
  for (const LayoutEntry *e = layout_for (klass); e->name != NULL; e++)
    {
      g_autoptr(QubeStoreVolume) row = plan_volume (store, qube->id, e, template_name,
                                                    default_pool, error);

      if (row == NULL
          || !make_volume (manager, store, row, qube->name, NULL, NULL, made, error))
        {
          undo_made (made, qube->name);
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
_qube_volumes_remove (QubeManager *manager, QubeStore *store, const QubeStoreQube *qube,
                      GError **error)
{
  g_autoptr(GPtrArray) rows = _qube_store_list_volumes (store, qube->id, error);
  g_autoptr(GPtrArray) handles =
    g_ptr_array_new_with_free_func ((GDestroyNotify) _qube_pool_handle_unref);

  if (rows == NULL)
    return FALSE;
  /* All checked before any is removed: a started one refuses the lot. */
  for (guint i = 0; i < rows->len; i++)
    {
      QubeStoreVolume *row = rows->pdata[i];
      QubePoolHandle *handle = _qube_pool_open (manager, store, row->pool, error);
      QubeVolumeInfo info;

      if (handle == NULL)
        return FALSE;
      g_ptr_array_add (handles, handle);
      if (!pool_volume_info (handle, row, qube->name, &info, error))
        return FALSE;
      if (info.started)
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_IN_USE,
                       "its volume '%s' in pool '%s' is in use (started)", row->name,
                       row->pool);
          return FALSE;
        }
    }
  for (guint i = 0; i < rows->len; i++)
    if (!pool_volume_remove (handles->pdata[i], rows->pdata[i], qube->name, error))
      return FALSE;
  return TRUE;
}

gboolean
_qube_volumes_clone (QubeManager *manager, QubeStore *store, const QubeStoreQube *src,
                     const QubeStoreQube *dst, GError **error)
{
  g_autoptr(GPtrArray) made = g_ptr_array_new_with_free_func ((GDestroyNotify) made_volume_free);
  g_autoptr(GPtrArray) rows = _qube_store_list_volumes (store, src->id, error);

  if (rows == NULL)
    return FALSE;
  for (guint i = 0; i < rows->len; i++)
    {
      QubeStoreVolume *from = rows->pdata[i];
      QubeStoreVolume row = *from;

      row.qube_id = dst->id;
      /* Only an origin has data of its own to copy; snapshots and volatile
       * volumes are made anew (a snapshot keeps its source). */
      if (!make_volume (manager, store, &row, dst->name,
                        (from->flags & QUBE_VOLUME_SAVE_ON_STOP) ? from : NULL, src->name,
                        made, error))
        {
          undo_made (made, dst->name);
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
_qube_volumes_follow_template (QubeManager *manager, QubeStore *store,
                               const QubeStoreQube *qube, GError **error)
{
  QubeClass klass = _qube_class_from_name (qube->klass);
  g_autoptr(GPtrArray) rows = _qube_store_list_volumes (store, qube->id, error);
  g_autofree char *template_name = NULL;

  if (rows == NULL)
    return FALSE;
  template_name = read_template (store, qube->id, error);
  if (template_name == NULL)
    return FALSE;
  for (guint i = 0; i < rows->len; i++)
    {
      QubeStoreVolume *row = rows->pdata[i];
      const LayoutEntry *entry = layout_entry (klass, row->name);
      g_autoptr(QubeStoreVolume) planned = NULL;

      if (entry == NULL || entry->source_of == SOURCE_NONE
          || !(row->flags & QUBE_VOLUME_SNAP_ON_START))
        continue;
      planned = plan_volume (store, qube->id, entry, template_name, row->pool, error);
      if (planned == NULL)
        return FALSE;
      planned->flags = row->flags;
      planned->revisions_to_keep = row->revisions_to_keep;
      planned->size = MAX (planned->size, row->size);
      if (strcmp (planned->pool, row->pool) != 0)
        {
          /* A snapshot must live in its source's pool: make it there.  It
           * holds no data of its own, so nothing is lost. */
          g_autoptr(GPtrArray) made =
            g_ptr_array_new_with_free_func ((GDestroyNotify) made_volume_free);
          g_autoptr(QubePoolHandle) old = _qube_pool_open (manager, store, row->pool, error);
          g_autoptr(QubePoolHandle) handle =
            _qube_pool_open (manager, store, planned->pool, error);

          if (old == NULL || handle == NULL
              || !pool_volume_create (handle, planned, qube->name, error))
            return FALSE;
          if (!pool_volume_remove (old, row, qube->name, error))
            {
              g_autoptr(GError) undo_error = NULL;
              pool_volume_remove (handle, planned, qube->name, &undo_error);
              return FALSE;
            }
        }
      if (!_qube_store_update_volume (store, planned, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
_qube_volumes_check_formats (QubeVm *vm, const char *backend, guint32 accepted,
                             GError **error)
{
  QubeManager *manager = _qube_vm_get_manager (vm);
  QubeStore *store = _qube_manager_get_store (manager);
  g_autoptr(GPtrArray) rows = _qube_store_list_volumes (store, _qube_vm_get_id (vm), error);

  if (rows == NULL)
    return FALSE;
  for (guint i = 0; i < rows->len; i++)
    {
      QubeStoreVolume *row = rows->pdata[i];
      g_autoptr(QubePoolHandle) handle = _qube_pool_open (manager, store, row->pool, error);
      guint32 made, refused;

      if (handle == NULL || !_qube_pool_handle_formats (handle, &made, error))
        return FALSE;
      refused = made & ~accepted;
      if (refused != 0)
        {
          g_autoptr(GString) takes = g_string_new (NULL);
          g_autoptr(GString) makes = g_string_new (NULL);

          for (guint32 bit = 1; bit != 0; bit <<= 1)
            {
              if (accepted & bit)
                g_string_append_printf (takes, "%s%s", takes->len ? " and " : "",
                                        _qube_block_format_name (bit));
              if (made & bit)
                g_string_append_printf (makes, "%s%s", makes->len ? " and " : "",
                                        _qube_block_format_name (bit));
            }
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_SUPPORTED,
                       "qube '%s': backend '%s' accepts %s volumes only, pool '%s' makes "
                       "%s volumes", qube_vm_get_name (vm), backend,
                       takes->len ? takes->str : "no", row->pool, makes->str);
          return FALSE;
        }
    }
  return TRUE;
}

/* ---- QubeVolume ---- */

struct _QubeVolume {
  GObject parent_instance;

  QubeManager *manager;
  char *qube;
  char *vid;
  QubeStoreVolume row;
  gboolean kernel;   /* the storage-less kernel volume */
};

G_DEFINE_FINAL_TYPE (QubeVolume, qube_volume, G_TYPE_OBJECT)

static void
qube_volume_finalize (GObject *object)
{
  QubeVolume *self = QUBE_VOLUME (object);

  g_clear_object (&self->manager);
  g_free (self->qube);
  g_free (self->vid);
  _qube_store_volume_clear (&self->row);
  G_OBJECT_CLASS (qube_volume_parent_class)->finalize (object);
}

static void
qube_volume_class_init (QubeVolumeClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qube_volume_finalize;
}

static void
qube_volume_init (QubeVolume *self)
{
}

/* Takes the contents of `row`. */
static QubeVolume *
volume_new (QubeManager *manager, const char *qube, QubeStoreVolume *row)
{
  QubeVolume *self = g_object_new (QUBE_TYPE_VOLUME, NULL);

  self->manager = g_object_ref (manager);
  self->qube = g_strdup (qube);
  self->row = *row;
  memset (row, 0, sizeof *row);
  self->vid = make_vid (qube, self->row.name);
  return self;
}

/* The kernel volume of a qube: no storage, its source the kernel's name. */
static QubeVolume *
kernel_volume_new (QubeVm *vm)
{
  QubeStoreVolume row = { 0 };
  g_autofree char *kernel = qube_vm_get_property (vm, "kernel", NULL, NULL, NULL);
  QubeVolume *self;

  row.qube_id = _qube_vm_get_id (vm);
  row.name = g_strdup (KERNEL_VOLUME);
  row.pool = g_strdup (KERNEL_POOL);
  row.source = kernel != NULL && *kernel != '\0' ? g_strdup (kernel) : NULL;
  self = volume_new (_qube_vm_get_manager (vm), qube_vm_get_name (vm), &row);
  self->kernel = TRUE;
  return self;
}

static gboolean
has_kernel_volume (QubeVm *vm)
{
  return _qube_class_from_name (qube_vm_get_klass (vm)) & QUBE_CLASS_DOMU;
}

/**
 * qube_vm_list_volumes:
 * @vm: a #QubeVm
 * @error: return location for a #GError, or %NULL
 *
 * The qube's volumes, sorted by name (`kernel` among them, see
 * qube_volume_has_storage()).
 *
 * Returns: (transfer container) (element-type QubeVolume) (nullable): the
 *   volumes, or %NULL with @error set
 */
GPtrArray *
qube_vm_list_volumes (QubeVm *vm, GError **error)
{
  QubeManager *manager;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GPtrArray) volumes = g_ptr_array_new_with_free_func (g_object_unref);
  gboolean kernel_added;

  g_return_val_if_fail (QUBE_IS_VM (vm), NULL);
  manager = _qube_vm_get_manager (vm);
  rows = _qube_store_list_volumes (_qube_manager_get_store (manager), _qube_vm_get_id (vm),
                                   error);
  if (rows == NULL)
    return NULL;
  kernel_added = !has_kernel_volume (vm);
  for (guint i = 0; i < rows->len; i++)
    {
      QubeStoreVolume *row = rows->pdata[i];

      if (!kernel_added && strcmp (row->name, KERNEL_VOLUME) > 0)
        {
          g_ptr_array_add (volumes, kernel_volume_new (vm));
          kernel_added = TRUE;
        }
      g_ptr_array_add (volumes, volume_new (manager, qube_vm_get_name (vm), row));
    }
  if (!kernel_added)
    g_ptr_array_add (volumes, kernel_volume_new (vm));
  return g_steal_pointer (&volumes);
}

/**
 * qube_vm_get_volume:
 * @vm: a #QubeVm
 * @name: a volume's name, e.g. `private`
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the volume, or %NULL with @error set
 *   (%QUBE_ERROR_NOT_FOUND when the qube has no such volume)
 */
QubeVolume *
qube_vm_get_volume (QubeVm *vm, const char *name, GError **error)
{
  g_autoptr(GPtrArray) volumes = NULL;
  g_autofree char *shown = NULL;
  g_autofree char *names = NULL;
  g_autoptr(GPtrArray) known = g_ptr_array_new ();

  g_return_val_if_fail (QUBE_IS_VM (vm), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  volumes = qube_vm_list_volumes (vm, error);
  if (volumes == NULL)
    return NULL;
  for (guint i = 0; i < volumes->len; i++)
    {
      QubeVolume *volume = volumes->pdata[i];

      if (strcmp (volume->row.name, name) == 0)
        return g_object_ref (volume);
      g_ptr_array_add (known, volume->row.name);
    }
  g_ptr_array_add (known, NULL);
  names = g_strjoinv (", ", (char **) known->pdata);
  shown = _qube_printable (name);
  g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
               "qube '%s' has no volume '%s' (it has: %s)", qube_vm_get_name (vm), shown,
               *names != '\0' ? names : "none");
  return NULL;
}

/**
 * qube_volume_get_name:
 * @self: a #QubeVolume
 *
 * Returns: the volume's name, e.g. `root`
 */
const char *
qube_volume_get_name (QubeVolume *self)
{
  g_return_val_if_fail (QUBE_IS_VOLUME (self), NULL);
  return self->row.name;
}

/**
 * qube_volume_get_qube_name:
 * @self: a #QubeVolume
 *
 * Returns: the name of the qube the volume belongs to
 */
const char *
qube_volume_get_qube_name (QubeVolume *self)
{
  g_return_val_if_fail (QUBE_IS_VOLUME (self), NULL);
  return self->qube;
}

/**
 * qube_volume_get_pool:
 * @self: a #QubeVolume
 *
 * Returns: the name of the pool holding the volume (`linux-kernel` for the
 *   kernel volume, which is in no recorded pool)
 */
const char *
qube_volume_get_pool (QubeVolume *self)
{
  g_return_val_if_fail (QUBE_IS_VOLUME (self), NULL);
  return self->row.pool;
}

/**
 * qube_volume_get_vid:
 * @self: a #QubeVolume
 *
 * Returns: the volume's id in its pool, `qube/volume`
 */
const char *
qube_volume_get_vid (QubeVolume *self)
{
  g_return_val_if_fail (QUBE_IS_VOLUME (self), NULL);
  return self->vid;
}

/**
 * qube_volume_get_source:
 * @self: a #QubeVolume
 *
 * Returns: (nullable): the vid of the volume a snapshot is taken of (e.g.
 *   `debian-12/root`), the kernel's name for the kernel volume, or %NULL
 */
const char *
qube_volume_get_source (QubeVolume *self)
{
  g_return_val_if_fail (QUBE_IS_VOLUME (self), NULL);
  return self->row.source;
}

/**
 * qube_volume_get_size:
 * @self: a #QubeVolume
 *
 * Returns: the nominal size in bytes (0 for the kernel volume)
 */
guint64
qube_volume_get_size (QubeVolume *self)
{
  g_return_val_if_fail (QUBE_IS_VOLUME (self), 0);
  return self->row.size;
}

/**
 * qube_volume_get_revisions_to_keep:
 * @self: a #QubeVolume
 *
 * Returns: how many older revisions are kept for qube_volume_revert()
 */
guint
qube_volume_get_revisions_to_keep (QubeVolume *self)
{
  g_return_val_if_fail (QUBE_IS_VOLUME (self), 0);
  return self->row.revisions_to_keep;
}

/**
 * qube_volume_get_rw:
 * @self: a #QubeVolume
 *
 * Returns: whether the qube may write to the volume
 */
gboolean
qube_volume_get_rw (QubeVolume *self)
{
  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  return (self->row.flags & QUBE_VOLUME_RW) != 0;
}

/**
 * qube_volume_get_snap_on_start:
 * @self: a #QubeVolume
 *
 * Returns: whether each start makes a fresh copy-on-write view of the source
 */
gboolean
qube_volume_get_snap_on_start (QubeVolume *self)
{
  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  return (self->row.flags & QUBE_VOLUME_SNAP_ON_START) != 0;
}

/**
 * qube_volume_get_save_on_stop:
 * @self: a #QubeVolume
 *
 * Returns: whether each stop commits the volume's data as a new revision
 */
gboolean
qube_volume_get_save_on_stop (QubeVolume *self)
{
  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  return (self->row.flags & QUBE_VOLUME_SAVE_ON_STOP) != 0;
}

/**
 * qube_volume_has_storage:
 * @self: a #QubeVolume
 *
 * The kernel volume has none: it names the kernel files, which the
 * isolation backend reads itself.
 *
 * Returns: whether the volume lives in a pool
 */
gboolean
qube_volume_has_storage (QubeVolume *self)
{
  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  return !self->kernel;
}

/* Opens the volume's pool, refusing the kernel volume for `operation`. */
static QubePoolHandle *
volume_open_pool (QubeVolume *self, const char *operation, GError **error)
{
  if (self->kernel && self->row.source != NULL)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_SUPPORTED,
                   "cannot %s volume '%s' of qube '%s': it has no storage (it names "
                   "the files of the kernel '%s')", operation, self->row.name, self->qube,
                   self->row.source);
      return NULL;
    }
  if (self->kernel)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_SUPPORTED,
                   "cannot %s volume '%s' of qube '%s': it has no storage (the qube "
                   "boots the kernel inside its root: its kernel property is empty)",
                   operation, self->row.name, self->qube);
      return NULL;
    }
  return _qube_pool_open (self->manager, _qube_manager_get_store (self->manager),
                          self->row.pool, error);
}

/**
 * qube_volume_query:
 * @self: a #QubeVolume
 * @usage_bytes: (out) (optional): space the volume takes in its pool
 * @started: (out) (optional): whether it is started (its qube runs)
 * @outdated: (out) (optional): whether its snapshot was taken of an older
 *   revision of its source than the committed one (the template changed
 *   since the qube started)
 * @created: (out) (optional): when its current revision was made (Unix
 *   time, 0 when it has none)
 * @error: return location for a #GError, or %NULL
 *
 * Asks the pool about the volume.
 *
 * Returns: %TRUE on success
 */
gboolean
qube_volume_query (QubeVolume *self, guint64 *usage_bytes, gboolean *started,
                   gboolean *outdated, gint64 *created, GError **error)
{
  g_autoptr(QubePoolHandle) handle = NULL;
  QubeVolumeInfo info = { 0 };

  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  if (!self->kernel)
    {
      handle = volume_open_pool (self, "inspect", error);
      if (handle == NULL || !pool_volume_info (handle, &self->row, self->qube, &info, error))
        return FALSE;
    }
  if (usage_bytes != NULL)
    *usage_bytes = info.usage_bytes;
  if (started != NULL)
    *started = info.started != 0;
  if (outdated != NULL)
    *outdated = info.outdated != 0;
  if (created != NULL)
    *created = info.created;
  return TRUE;
}

/**
 * qube_volume_is_outdated:
 * @self: a #QubeVolume
 * @outdated: (out): set to whether the snapshot predates its source's
 *   committed revision
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE on success
 */
gboolean
qube_volume_is_outdated (QubeVolume *self, gboolean *outdated, GError **error)
{
  return qube_volume_query (self, NULL, NULL, outdated, NULL, error);
}

/**
 * qube_volume_get_usage:
 * @self: a #QubeVolume
 * @usage_bytes: (out): set to the space the volume takes in its pool
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE on success
 */
gboolean
qube_volume_get_usage (QubeVolume *self, guint64 *usage_bytes, GError **error)
{
  return qube_volume_query (self, usage_bytes, NULL, NULL, NULL, error);
}

/**
 * qube_volume_list_revisions:
 * @self: a #QubeVolume
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer container) (element-type QubeVolumeRevision) (nullable): the
 *   kept revisions, newest first, or %NULL with @error set
 */
GPtrArray *
qube_volume_list_revisions (QubeVolume *self, GError **error)
{
  g_autoptr(QubePoolHandle) handle = NULL;
  g_autoptr(GPtrArray) out =
    g_ptr_array_new_with_free_func ((GDestroyNotify) qube_volume_revision_free);
  QubeRevision *revisions = NULL;
  uint32_t n = 0;
  QubeVolumeSpec spec;
  int rc;

  g_return_val_if_fail (QUBE_IS_VOLUME (self), NULL);
  handle = volume_open_pool (self, "list the revisions of", error);
  if (handle == NULL
      || !require_slot (handle, handle->ops->volume_revisions != NULL,
                        "listing revisions", error))
    return NULL;
  fill_spec (&spec, &self->row, self->vid);
  {
    POOL_LOCK (handle);
    rc = handle->ops->volume_revisions (handle->pool, &spec, &revisions, &n);
    if (rc != 0)
      return (volume_fail (handle, rc, self->qube, error), NULL);
  }
  for (uint32_t i = 0; i < n; i++)
    {
      QubeVolumeRevision *revision = g_new0 (QubeVolumeRevision, 1);

      /* The name is a fixed array from the plugin: never trust its end. */
      revision->name = g_strndup (revisions[i].name, sizeof revisions[i].name);
      revision->created = revisions[i].created;
      g_ptr_array_add (out, revision);
    }
  free (revisions);
  return g_steal_pointer (&out);
}

/**
 * qube_volume_revert:
 * @self: a #QubeVolume
 * @revision: (nullable): a revision's name from
 *   qube_volume_list_revisions(), or %NULL for the newest kept one
 * @error: return location for a #GError, or %NULL
 *
 * Makes a kept revision the volume's data again (the replaced data becomes
 * a kept revision in turn).  Refused while the volume is started.
 *
 * Returns: %TRUE on success
 */
gboolean
qube_volume_revert (QubeVolume *self, const char *revision, GError **error)
{
  g_autoptr(QubePoolHandle) handle = NULL;
  QubeVolumeSpec spec;
  int rc;

  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  handle = volume_open_pool (self, "revert", error);
  if (handle == NULL
      || !require_slot (handle, handle->ops->volume_revert != NULL, "revert", error))
    return FALSE;
  fill_spec (&spec, &self->row, self->vid);
  {
    POOL_LOCK (handle);
    rc = handle->ops->volume_revert (handle->pool, &spec, revision);
  }
  return rc == 0 || volume_fail (handle, rc, self->qube, error);
}

/**
 * qube_volume_verify:
 * @self: a #QubeVolume
 * @error: return location for a #GError, or %NULL
 *
 * Checks that the volume's committed data (or its source's, for a
 * snapshot) is present and readable.
 *
 * Returns: %TRUE when it is
 */
gboolean
qube_volume_verify (QubeVolume *self, GError **error)
{
  g_autoptr(QubePoolHandle) handle = NULL;
  QubeVolumeSpec spec;
  int rc;

  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  if (self->kernel)
    return TRUE;
  handle = volume_open_pool (self, "verify", error);
  if (handle == NULL
      || !require_slot (handle, handle->ops->volume_verify != NULL, "verify", error))
    return FALSE;
  fill_spec (&spec, &self->row, self->vid);
  {
    POOL_LOCK (handle);
    rc = handle->ops->volume_verify (handle->pool, &spec);
  }
  return rc == 0 || volume_fail (handle, rc, self->qube, error);
}

/* "2.0 GiB", with a plain space: messages are plain text. */
static char *
format_size (guint64 bytes)
{
  g_autofree char *text = g_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);
  g_auto(GStrv) parts = g_strsplit (text, "\u00a0", -1);

  return g_strjoinv (" ", parts);
}

typedef struct {
  QubeVolume *self;
  QubePoolHandle *handle;
  guint64 size;
} VolumeResize;

static gboolean
resize_in_transaction (QubeStore *store, gpointer data, GError **error)
{
  VolumeResize *resize = data;
  QubeVolume *self = resize->self;
  QubeStoreVolume row = self->row;
  QubeVolumeSpec spec;
  int rc;

  row.size = resize->size;
  if (!_qube_store_update_volume (store, &row, error))
    return FALSE;
  fill_spec (&spec, &self->row, self->vid);
  {
    POOL_LOCK (resize->handle);
    rc = resize->handle->ops->volume_resize (resize->handle->pool, &spec, resize->size);
  }
  return rc == 0 || volume_fail (resize->handle, rc, self->qube, error);
}

/**
 * qube_volume_resize:
 * @self: a #QubeVolume
 * @size_bytes: the new size in bytes, a multiple of 512
 * @error: return location for a #GError, or %NULL
 *
 * Grows the volume.  Shrinking is refused: it would cut data off.
 *
 * Returns: %TRUE on success
 */
gboolean
qube_volume_resize (QubeVolume *self, guint64 size_bytes, GError **error)
{
  g_autoptr(QubePoolHandle) handle = NULL;
  VolumeResize resize = { self, NULL, size_bytes };

  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  if (!self->kernel && size_bytes < self->row.size)
    {
      g_autofree char *from = format_size (self->row.size);
      g_autofree char *to = format_size (size_bytes);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "cannot resize volume '%s' of qube '%s' in pool '%s' from %s to %s: "
                   "shrinking would cut off data; volumes only grow", self->row.name,
                   self->qube, self->row.pool, from, to);
      return FALSE;
    }
  handle = volume_open_pool (self, "resize", error);
  if (handle == NULL
      || !require_slot (handle, handle->ops->volume_resize != NULL, "resize", error))
    return FALSE;
  if (size_bytes == self->row.size)
    return TRUE;
  resize.handle = handle;
  if (!_qube_store_transact (_qube_manager_get_store (self->manager), resize_in_transaction,
                             &resize, error))
    return FALSE;
  self->row.size = size_bytes;
  return TRUE;
}

/* ---- import and export ---- */

static gboolean
io_fail (QubeVolume *self, const char *operation, const char *what, int saved_errno,
         GError **error)
{
  g_set_error (error, QUBE_ERROR, saved_errno == ENOSPC ? QUBE_ERROR_NO_SPACE : QUBE_ERROR_IO,
               "cannot %s volume '%s' of qube '%s' (pool '%s'): %s: %s", operation,
               self->row.name, self->qube, self->row.pool, what, g_strerror (saved_errno));
  return FALSE;
}

static gboolean
write_all (int fd, const guint8 *data, gsize len, off_t *offset)
{
  while (len > 0)
    {
      ssize_t n = offset != NULL ? pwrite (fd, data, len, *offset) : write (fd, data, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          if (n == 0)
            errno = EIO;
          return FALSE;
        }
      data += n;
      len -= (gsize) n;
      if (offset != NULL)
        *offset += n;
    }
  return TRUE;
}

/* Reads up to `len` bytes, short only at end of input. */
static gssize
read_full (int fd, guint8 *buf, gsize len)
{
  gsize got = 0;

  while (got < len)
    {
      ssize_t n = read (fd, buf + got, len - got);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -1;
      if (n == 0)
        break;
      got += (gsize) n;
    }
  return (gssize) got;
}

static gboolean
all_zero (const guint8 *buf, gsize len)
{
  return len == 0 || (buf[0] == 0 && memcmp (buf, buf + 1, len - 1) == 0);
}

/* Copies the input into the import image, leaving zero blocks as holes
 * (the image starts sparse).  FALSE with errno, or with *too_much set. */
static gboolean
import_copy (QubeVolume *self, int in, int out, guint64 expected, guint64 limit,
             QubeProgressFunc progress, gpointer user_data, guint64 *copied,
             gboolean *too_much, GError **error)
{
  g_autofree guint8 *buf = g_malloc (COPY_CHUNK);
  off_t offset = 0;

  *copied = 0;
  *too_much = FALSE;
  for (;;)
    {
      gssize n = read_full (in, buf, COPY_CHUNK);

      if (n < 0)
        return io_fail (self, "import into", "reading the input", errno, error);
      if (n == 0)
        break;
      if (*copied + (guint64) n > limit)
        {
          *too_much = TRUE;
          return FALSE;
        }
      if (all_zero (buf, (gsize) n))
        offset += n;
      else if (!write_all (out, buf, (gsize) n, &offset))
        return io_fail (self, "import into", "writing the image", errno, error);
      *copied += (guint64) n;
      if (progress != NULL)
        progress (*copied, expected, user_data);
    }
  if (fsync (out) < 0)
    return io_fail (self, "import into", "flushing the image", errno, error);
  return TRUE;
}

static gboolean
transfer_end (QubePoolHandle *handle, QubeVolume *self, gboolean import, gboolean commit,
              GError **error)
{
  QubeVolumeSpec spec;
  POOL_LOCK (handle);
  int rc;

  fill_spec (&spec, &self->row, self->vid);
  rc = import ? handle->ops->volume_import_end (handle->pool, &spec, commit ? 1 : 0)
              : handle->ops->volume_export_end (handle->pool, &spec);
  return rc == 0 || volume_fail (handle, rc, self->qube, error);
}

/**
 * qube_volume_import_fd:
 * @self: a #QubeVolume
 * @fd: a file descriptor to read the data from (a file, a pipe)
 * @size_bytes: how much data @fd holds, or 0 when unknown (a pipe): then
 *   everything up to its end, at most the volume's size
 * @progress: (nullable) (scope call): called as the copy advances
 * @user_data: (closure): data for @progress
 * @error: return location for a #GError, or %NULL
 *
 * Replaces the volume's data with raw image data read from @fd; the
 * volume's committed revision becomes a kept one.  More data than the
 * volume holds is refused and nothing changes.
 *
 * Returns: %TRUE on success
 */
gboolean
qube_volume_import_fd (QubeVolume *self, int fd, guint64 size_bytes, QubeProgressFunc progress,
                       gpointer user_data, GError **error)
{
  g_autoptr(QubePoolHandle) handle = NULL;
  g_autoptr(GError) local_error = NULL;
  QubeVolumeSpec spec;
  QubeBlockDev dev;
  guint64 copied = 0;
  gboolean too_much = FALSE;
  gboolean ok;
  int out, rc;

  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  g_return_val_if_fail (fd >= 0, FALSE);
  if (!self->kernel && size_bytes > self->row.size)
    {
      g_autofree char *have = format_size (size_bytes);
      g_autofree char *room = format_size (self->row.size);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NO_SPACE,
                   "cannot import into volume '%s' of qube '%s' (pool '%s'): %s of data "
                   "(%" G_GUINT64_FORMAT " bytes) does not fit in its %s (%" G_GUINT64_FORMAT
                   " bytes); resize it first", self->row.name, self->qube, self->row.pool,
                   have, size_bytes, room, self->row.size);
      return FALSE;
    }
  handle = volume_open_pool (self, "import into", error);
  if (handle == NULL
      || !require_slot (handle, handle->ops->volume_import_begin != NULL
                                && handle->ops->volume_import_end != NULL, "import", error))
    return FALSE;
  fill_spec (&spec, &self->row, self->vid);
  memset (&dev, 0, sizeof dev);
  dev.size = sizeof dev;
  {
    POOL_LOCK (handle);
    rc = handle->ops->volume_import_begin (handle->pool, &spec,
                                           size_bytes != 0 ? size_bytes : self->row.size, &dev);
    if (rc != 0)
      return volume_fail (handle, rc, self->qube, error);
  }
  dev.path[sizeof dev.path - 1] = '\0';
  out = open (dev.path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (out < 0)
    ok = io_fail (self, "import into", dev.path, errno, &local_error);
  else
    {
      ok = import_copy (self, fd, out, size_bytes, size_bytes != 0 ? size_bytes : self->row.size,
                        progress, user_data, &copied, &too_much, &local_error);
      close (out);
    }
  if (ok && size_bytes != 0 && copied != size_bytes)
    ok = (g_set_error (&local_error, QUBE_ERROR, QUBE_ERROR_IO,
                       "cannot import into volume '%s' of qube '%s' (pool '%s'): the input "
                       "ended after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes",
                       self->row.name, self->qube, self->row.pool, copied, size_bytes),
          FALSE);
  if (too_much)
    {
      g_autofree char *room = format_size (self->row.size);
      g_set_error (&local_error, QUBE_ERROR, QUBE_ERROR_NO_SPACE,
                   "cannot import into volume '%s' of qube '%s' (pool '%s'): the input holds "
                   "more than its %s (%" G_GUINT64_FORMAT " bytes); resize it first; "
                   "nothing was changed", self->row.name, self->qube, self->row.pool, room,
                   self->row.size);
    }
  if (!ok)
    {
      g_autoptr(GError) end_error = NULL;
      if (!transfer_end (handle, self, TRUE, FALSE, &end_error))
        g_warning ("%s", end_error->message);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  return transfer_end (handle, self, TRUE, TRUE, error);
}

/**
 * qube_volume_import_file:
 * @self: a #QubeVolume
 * @path: (type filename): a raw image file
 * @progress: (nullable) (scope call): called as the copy advances
 * @user_data: (closure): data for @progress
 * @error: return location for a #GError, or %NULL
 *
 * qube_volume_import_fd() from a file.
 *
 * Returns: %TRUE on success
 */
gboolean
qube_volume_import_file (QubeVolume *self, const char *path, QubeProgressFunc progress,
                         gpointer user_data, GError **error)
{
  struct stat st;
  gboolean ok;
  int fd;

  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat (fd, &st) < 0)
    {
      int saved_errno = errno;
      if (fd >= 0)
        close (fd);
      return io_fail (self, "import into", path, saved_errno, error);
    }
  ok = qube_volume_import_fd (self, fd, S_ISREG (st.st_mode) ? (guint64) st.st_size : 0,
                              progress, user_data, error);
  close (fd);
  return ok;
}

/* Copies `size` bytes of the raw image `in` to `out`, skipping holes
 * where `out` can seek (it is then truncated to `size`). */
static gboolean
export_copy (QubeVolume *self, int in, int out, guint64 size, QubeProgressFunc progress,
             gpointer user_data, GError **error)
{
  g_autofree guint8 *buf = g_malloc0 (COPY_CHUNK);
  struct stat st;
  gboolean seekable = fstat (out, &st) == 0 && S_ISREG (st.st_mode);
  off_t out_offset = seekable ? lseek (out, 0, SEEK_CUR) : 0;
  guint64 pos = 0;

  while (pos < size)
    {
      off_t data = lseek (in, (off_t) pos, SEEK_DATA);
      off_t hole;

      if (data < 0)
        data = (off_t) size; /* ENXIO: only a hole is left */
      if ((guint64) data > pos)
        {
          guint64 end = MIN ((guint64) data, size);

          if (!seekable)
            {
              memset (buf, 0, COPY_CHUNK);
              for (guint64 p = pos; p < end; p += MIN ((guint64) COPY_CHUNK, end - p))
                if (!write_all (out, buf, (gsize) MIN ((guint64) COPY_CHUNK, end - p), NULL))
                  return io_fail (self, "export", "writing the output", errno, error);
            }
          pos = end;
          if (progress != NULL)
            progress (pos, size, user_data);
          continue;
        }
      hole = lseek (in, (off_t) pos, SEEK_HOLE);
      if (hole < 0 || (guint64) hole > size)
        hole = (off_t) size;
      while (pos < (guint64) hole)
        {
          gsize want = (gsize) MIN ((guint64) COPY_CHUNK, (guint64) hole - pos);
          ssize_t n = pread (in, buf, want, (off_t) pos);
          off_t at = out_offset + (off_t) pos;

          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            return io_fail (self, "export", "reading the image", n < 0 ? errno : EIO, error);
          if (!write_all (out, buf, (gsize) n, seekable ? &at : NULL))
            return io_fail (self, "export", "writing the output", errno, error);
          pos += (guint64) n;
          if (progress != NULL)
            progress (pos, size, user_data);
        }
    }
  if (seekable && ftruncate (out, out_offset + (off_t) size) < 0)
    return io_fail (self, "export", "setting the output's size", errno, error);
  return TRUE;
}

/**
 * qube_volume_export_fd:
 * @self: a #QubeVolume
 * @fd: a file descriptor to write the data to (a file, a pipe)
 * @progress: (nullable) (scope call): called as the copy advances
 * @user_data: (closure): data for @progress
 * @error: return location for a #GError, or %NULL
 *
 * Writes the volume's committed data, as a raw image of its size, to @fd.
 *
 * Returns: %TRUE on success
 */
gboolean
qube_volume_export_fd (QubeVolume *self, int fd, QubeProgressFunc progress, gpointer user_data,
                       GError **error)
{
  g_autoptr(QubePoolHandle) handle = NULL;
  g_autoptr(GError) local_error = NULL;
  QubeVolumeSpec spec;
  QubeBlockDev dev;
  struct stat st;
  gboolean ok;
  int in, rc;

  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  handle = volume_open_pool (self, "export", error);
  if (handle == NULL
      || !require_slot (handle, handle->ops->volume_export_begin != NULL
                                && handle->ops->volume_export_end != NULL, "export", error))
    return FALSE;
  fill_spec (&spec, &self->row, self->vid);
  memset (&dev, 0, sizeof dev);
  dev.size = sizeof dev;
  {
    POOL_LOCK (handle);
    rc = handle->ops->volume_export_begin (handle->pool, &spec, &dev);
    if (rc != 0)
      return volume_fail (handle, rc, self->qube, error);
  }
  dev.path[sizeof dev.path - 1] = '\0';
  in = open (dev.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0 || fstat (in, &st) < 0)
    ok = io_fail (self, "export", dev.path, errno, &local_error);
  else
    ok = export_copy (self, in, fd, MIN ((guint64) st.st_size, self->row.size), progress,
                      user_data, &local_error);
  if (in >= 0)
    close (in);
  if (!transfer_end (handle, self, FALSE, FALSE, ok ? &local_error : NULL))
    ok = FALSE;
  if (!ok)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  return TRUE;
}

/**
 * qube_volume_export_file:
 * @self: a #QubeVolume
 * @path: (type filename): the file to write (created, or truncated)
 * @progress: (nullable) (scope call): called as the copy advances
 * @user_data: (closure): data for @progress
 * @error: return location for a #GError, or %NULL
 *
 * qube_volume_export_fd() into a file, sparse where the volume is.
 *
 * Returns: %TRUE on success
 */
gboolean
qube_volume_export_file (QubeVolume *self, const char *path, QubeProgressFunc progress,
                         gpointer user_data, GError **error)
{
  gboolean ok;
  int fd;

  g_return_val_if_fail (QUBE_IS_VOLUME (self), FALSE);
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return io_fail (self, "export", path, errno, error);
  ok = qube_volume_export_fd (self, fd, progress, user_data, error);
  if (close (fd) < 0 && ok)
    ok = io_fail (self, "export", path, errno, error);
  return ok;
}

/* ---- starting and stopping a qube's volumes ---- */

static int
compare_start_order (gconstpointer a, gconstpointer b)
{
  const QubeStoreVolume *va = *(QubeStoreVolume *const *) a;
  const QubeStoreVolume *vb = *(QubeStoreVolume *const *) b;
  int ra = start_rank (va->name), rb = start_rank (vb->name);

  return ra != rb ? ra - rb : strcmp (va->name, vb->name);
}

static GPtrArray *
rows_in_start_order (QubeVm *vm, GError **error)
{
  QubeStore *store = _qube_manager_get_store (_qube_vm_get_manager (vm));
  GPtrArray *rows = _qube_store_list_volumes (store, _qube_vm_get_id (vm), error);

  if (rows != NULL)
    g_ptr_array_sort (rows, compare_start_order);
  return rows;
}

/* Stops rows[0 .. n) in reverse order; the first failure is kept. */
static gboolean
stop_rows (QubeVm *vm, GPtrArray *rows, guint n, GError **error)
{
  QubeManager *manager = _qube_vm_get_manager (vm);
  QubeStore *store = _qube_manager_get_store (manager);
  const char *qube = qube_vm_get_name (vm);
  gboolean ok = TRUE;

  for (guint i = n; i > 0; i--)
    {
      QubeStoreVolume *row = rows->pdata[i - 1];
      g_autoptr(GError) local_error = NULL;
      g_autoptr(QubePoolHandle) handle = _qube_pool_open (manager, store, row->pool,
                                                          &local_error);

      if (handle == NULL || !pool_volume_stop (handle, row, qube, &local_error))
        {
          if (ok)
            g_propagate_error (error, g_steal_pointer (&local_error));
          else
            g_warning ("%s", local_error->message);
          ok = FALSE;
        }
    }
  return ok;
}

/**
 * qube_vm_start_volumes:
 * @vm: a #QubeVm
 * @error: return location for a #GError, or %NULL
 *
 * Starts the qube's volumes (root, private, volatile, in that order)
 * applying Qubes' flag matrix: a snapshot of the source's committed data,
 * an origin's working copy, an empty volatile volume.  If one fails, those
 * already started are stopped again.  The kernel volume is not among
 * them: the backend boots the kernel named by the qube's kernel property.
 *
 * Returns: (transfer container) (element-type QubeBlockDevice) (nullable):
 *   the block devices to attach, or %NULL with @error set
 */
GPtrArray *
qube_vm_start_volumes (QubeVm *vm, GError **error)
{
  QubeManager *manager;
  QubeStore *store;
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GPtrArray) devices =
    g_ptr_array_new_with_free_func ((GDestroyNotify) qube_block_device_free);
  const char *qube;

  g_return_val_if_fail (QUBE_IS_VM (vm), NULL);
  manager = _qube_vm_get_manager (vm);
  store = _qube_manager_get_store (manager);
  qube = qube_vm_get_name (vm);
  rows = rows_in_start_order (vm, error);
  if (rows == NULL)
    return NULL;
  for (guint i = 0; i < rows->len; i++)
    {
      QubeStoreVolume *row = rows->pdata[i];
      g_autoptr(QubePoolHandle) handle = _qube_pool_open (manager, store, row->pool, error);
      g_autofree char *vid = make_vid (qube, row->name);
      QubeBlockDevice *device;
      QubeVolumeSpec spec;
      QubeBlockDev dev;
      guint n_started = i;  /* to stop again on failure */
      int rc = 0;

      if (handle != NULL
          && require_slot (handle, handle->ops->volume_start != NULL, "starting a volume",
                           error))
        {
          fill_spec (&spec, row, vid);
          memset (&dev, 0, sizeof dev);
          dev.size = sizeof dev;
          {
            POOL_LOCK (handle);
            rc = handle->ops->volume_start (handle->pool, &spec, &dev);
          }
          if (rc == 0 && dev.format != QUBE_BLOCK_RAW && dev.format != QUBE_BLOCK_QCOW2)
            {
              /* Never hand a backend a format it would have to guess. */
              g_set_error (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL,
                           "pool '%s' started volume '%s' in an unknown block format (%u)",
                           row->pool, row->name, dev.format);
              n_started = i + 1;
            }
          else if (rc == 0)
            {
              dev.path[sizeof dev.path - 1] = '\0';
              device = g_new0 (QubeBlockDevice, 1);
              device->volume = g_strdup (row->name);
              device->path = g_strdup (dev.path);
              device->format = g_strdup (_qube_block_format_name (dev.format));
              device->read_only = !(row->flags & QUBE_VOLUME_RW);
              device->devname = devname_for (row->name, i);
              g_ptr_array_add (devices, device);
              continue;
            }
          else
            volume_fail (handle, rc, NULL, error);
        }
      g_prefix_error (error, "cannot start the volumes of qube '%s': ", qube);
      /* All or nothing: stop what was started. */
      {
        g_autoptr(GError) stop_error = NULL;
        if (!stop_rows (vm, rows, n_started, &stop_error))
          g_warning ("qube '%s': %s", qube, stop_error->message);
      }
      return NULL;
    }
  return g_steal_pointer (&devices);
}

/**
 * qube_vm_stop_volumes:
 * @vm: a #QubeVm
 * @error: return location for a #GError, or %NULL
 *
 * Stops the qube's volumes in the reverse order of their start: an origin
 * commits its data as a new revision, snapshots and volatile volumes are
 * discarded.  Every volume is stopped even when one fails; the first
 * failure is reported.
 *
 * Returns: %TRUE when all were stopped
 */
gboolean
qube_vm_stop_volumes (QubeVm *vm, GError **error)
{
  g_autoptr(GPtrArray) rows = NULL;

  g_return_val_if_fail (QUBE_IS_VM (vm), FALSE);
  rows = rows_in_start_order (vm, error);
  if (rows == NULL)
    return FALSE;
  if (!stop_rows (vm, rows, rows->len, error))
    {
      g_prefix_error (error, "cannot stop the volumes of qube '%s': ", qube_vm_get_name (vm));
      return FALSE;
    }
  return TRUE;
}
