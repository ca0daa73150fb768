/* qube-volume-layout.c — the volumes each class of qube gets (Qubes'
 * layout, see qube-volume.h), made, removed, cloned and re-pointed with
 * the qube itself.
 *
 * Everything here runs inside the manager's store transaction, so the
 * records change only when the pools did; what a failed step had already
 * made in a pool is removed again when the transaction rolls back (which
 * the failure makes it do), as on any other rollback.  The backends' block format
 * check is here too: it looks at the pools a qube's layout uses.
 */
#include "config.h"

#include <string.h>

#include "qube-error.h"
#include "qube-storage-private.h"
#include "qube-vm-private.h"

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
      row->source = _qube_volume_vid (source_qube, source->name);
    }
  else
    row->pool = g_strdup (default_pool);
  return g_steal_pointer (&row);
}

/* A volume made (or to be removed) in a pool. */
typedef struct {
  QubePoolHandle *handle;
  QubeStoreVolume *row;
} MadeVolume;

static MadeVolume *
made_volume_new (QubePoolHandle *handle, const QubeStoreVolume *row)
{
  MadeVolume *m = g_new0 (MadeVolume, 1);

  m->handle = _qube_pool_handle_ref (handle);
  m->row = g_new0 (QubeStoreVolume, 1);
  *m->row = *row;
  m->row->name = g_strdup (row->name);
  m->row->pool = g_strdup (row->pool);
  m->row->source = g_strdup (row->source);
  return m;
}

static void
made_volume_free (MadeVolume *made)
{
  _qube_pool_handle_unref (made->handle);
  _qube_store_volume_free (made->row);
  g_free (made);
}

/* Volumes in pools whose fate follows the store transaction: the ones
 * made are removed again when it rolls back (a failed commit included);
 * the ones of a removed qube are removed once it is committed. */
typedef struct {
  GPtrArray *volumes;   /* MadeVolume */
  char *qube;
} PendingVolumes;

static void
pending_volumes_free (PendingVolumes *p)
{
  g_ptr_array_unref (p->volumes);
  g_free (p->qube);
  g_free (p);
}

static void
pending_volumes_undo (gpointer data)
{
  PendingVolumes *p = data;

  for (guint i = p->volumes->len; i > 0; i--)
    {
      MadeVolume *m = p->volumes->pdata[i - 1];
      g_autoptr(GError) error = NULL;

      if (!_qube_pool_volume_remove (m->handle, m->row, p->qube, &error))
        g_warning ("qube '%s': cannot remove volume '%s' again: %s", p->qube, m->row->name,
                   error->message);
    }
}

/* After the commit the qube is gone whatever happens here: a volume that
 * cannot be removed is only reported. */
static void
pending_volumes_remove (gpointer data)
{
  PendingVolumes *p = data;

  for (guint i = 0; i < p->volumes->len; i++)
    {
      MadeVolume *m = p->volumes->pdata[i];
      g_autoptr(GError) error = NULL;

      if (!_qube_pool_volume_remove (m->handle, m->row, p->qube, &error))
        g_warning ("qube '%s' was removed, but not its volume '%s' in pool '%s': %s", p->qube,
                   m->row->name, m->row->pool, error->message);
    }
}

/* Hands the volumes in `made` over to the outcome of the transaction. */
static void
volumes_follow_outcome (QubeStore *store, GPtrArray **made, const char *qube, gboolean on_commit)
{
  PendingVolumes *p = g_new0 (PendingVolumes, 1);

  p->volumes = g_steal_pointer (made);
  p->qube = g_strdup (qube);
  _qube_store_on_outcome (store, on_commit, on_commit ? pending_volumes_remove : pending_volumes_undo,
                          p, (GDestroyNotify) pending_volumes_free);
}

/* Makes `row` in its pool (by cloning `clone_from` of qube `clone_qube`
 * when given) and records it. */
static gboolean
make_volume (QubeManager *manager, QubeStore *store, QubeStoreVolume *row, const char *qube,
             const QubeStoreVolume *clone_from, const char *clone_qube, GPtrArray *made,
             GError **error)
{
  g_autoptr(QubePoolHandle) handle = _qube_pool_open (manager, store, row->pool, error);

  if (handle == NULL)
    return FALSE;
  if (clone_from == NULL)
    {
      if (!_qube_pool_volume_create (handle, row, qube, error))
        return FALSE;
    }
  else
    {
      g_autofree char *dst_vid = _qube_volume_vid (qube, row->name);
      g_autofree char *src_vid = _qube_volume_vid (clone_qube, clone_from->name);
      QubeVolumeSpec dst, src;
      QUBE_POOL_LOCK (handle);
      int rc;

      if (!_qube_volume_require_slot (handle, handle->ops->volume_clone != NULL, "cloning a volume",
                         error))
        return FALSE;
      _qube_volume_fill_spec (&dst, row, dst_vid);
      _qube_volume_fill_spec (&src, clone_from, src_vid);
      rc = handle->ops->volume_clone (handle->pool, &dst, handle->pool, &src);
      if (rc != 0)
        return _qube_volume_fail (handle, rc, NULL, error);
    }
  g_ptr_array_add (made, made_volume_new (handle, row));
  return _qube_store_add_volume (store, row, error);
}

/* The pool `pools` names for volume `name` ("name=POOL" before "*=POOL"),
 * else `fallback`. */
static const char *
pool_for (const char *const *pools, const char *name, const char *fallback)
{
  const char *all = NULL;
  gsize len = strlen (name);

  for (guint i = 0; pools != NULL && pools[i] != NULL; i++)
    {
      if (strncmp (pools[i], name, len) == 0 && pools[i][len] == '=')
        return pools[i] + len + 1;
      if (g_str_has_prefix (pools[i], "*="))
        all = pools[i] + 2;
    }
  return all != NULL ? all : fallback;
}

gboolean
_qube_volumes_create (QubeManager *manager, QubeStore *store, const QubeStoreQube *qube,
                      QubeClass klass, const char *template_name, const char *const *pools,
                      GError **error)
{
  g_autoptr(GPtrArray) made = g_ptr_array_new_with_free_func ((GDestroyNotify) made_volume_free);
  g_autofree char *default_pool = NULL;
  gboolean ok = TRUE;

  if (layout_for (klass)->name == NULL)
    return TRUE;
  if (!_qube_global_get (store, "default_pool", &default_pool, NULL, NULL, error))
    return FALSE;
  for (const LayoutEntry *e = layout_for (klass); ok && e->name != NULL; e++)
    {
      g_autoptr(QubeStoreVolume) row = plan_volume (store, qube->id, e, template_name,
                                                    pool_for (pools, e->name, default_pool),
                                                    error);

      ok = row != NULL && make_volume (manager, store, row, qube->name, NULL, NULL, made, error);
    }
  /* A failure rolls the transaction back, which removes what was made. */
  volumes_follow_outcome (store, &made, qube->name, FALSE);
  return ok;
}

gboolean
_qube_volumes_remove (QubeManager *manager, QubeStore *store, const QubeStoreQube *qube,
                      GError **error)
{
  g_autoptr(GPtrArray) rows = _qube_store_list_volumes (store, qube->id, error);
  g_autoptr(GPtrArray) doomed = g_ptr_array_new_with_free_func ((GDestroyNotify) made_volume_free);

  if (rows == NULL)
    return FALSE;
  /* All checked before any is removed: a started one refuses the lot. */
  for (guint i = 0; i < rows->len; i++)
    {
      QubeStoreVolume *row = rows->pdata[i];
      g_autoptr(QubePoolHandle) handle = _qube_pool_open (manager, store, row->pool, error);
      QubeVolumeInfo info;

      if (handle == NULL)
        return FALSE;
      if (!_qube_pool_volume_info (handle, row, qube->name, &info, error))
        return FALSE;
      if (info.started)
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_IN_USE,
                       "its volume '%s' in pool '%s' is in use (started)", row->name,
                       row->pool);
          return FALSE;
        }
      g_ptr_array_add (doomed, made_volume_new (handle, row));
    }
  /* Removed once the qube's rows are gone for good: a failed commit
   * leaves the qube whole. */
  volumes_follow_outcome (store, &doomed, qube->name, TRUE);
  return TRUE;
}

gboolean
_qube_volumes_clone (QubeManager *manager, QubeStore *store, const QubeStoreQube *src,
                     const QubeStoreQube *dst, GError **error)
{
  g_autoptr(GPtrArray) made = g_ptr_array_new_with_free_func ((GDestroyNotify) made_volume_free);
  g_autoptr(GPtrArray) rows = _qube_store_list_volumes (store, src->id, error);
  gboolean ok = TRUE;

  if (rows == NULL)
    return FALSE;
  for (guint i = 0; ok && i < rows->len; i++)
    {
      QubeStoreVolume *from = rows->pdata[i];
      QubeStoreVolume row = *from;

      row.qube_id = dst->id;
      /* Only an origin has data of its own to copy; snapshots and volatile
       * volumes are made anew (a snapshot keeps its source). */
      ok = make_volume (manager, store, &row, dst->name,
                        (from->flags & QUBE_VOLUME_SAVE_ON_STOP) ? from : NULL, src->name, made,
                        error);
    }
  /* A failure rolls the transaction back, which removes what was made. */
  volumes_follow_outcome (store, &made, dst->name, FALSE);
  return ok;
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
           * holds no data of its own, so nothing is lost.  The new one
           * goes again if the change is not committed, the old one once
           * it is. */
          g_autoptr(GPtrArray) made =
            g_ptr_array_new_with_free_func ((GDestroyNotify) made_volume_free);
          g_autoptr(GPtrArray) doomed =
            g_ptr_array_new_with_free_func ((GDestroyNotify) made_volume_free);
          g_autoptr(QubePoolHandle) old = _qube_pool_open (manager, store, row->pool, error);
          g_autoptr(QubePoolHandle) handle =
            _qube_pool_open (manager, store, planned->pool, error);

          if (old == NULL || handle == NULL
              || !_qube_pool_volume_create (handle, planned, qube->name, error))
            return FALSE;
          g_ptr_array_add (made, made_volume_new (handle, planned));
          g_ptr_array_add (doomed, made_volume_new (old, row));
          volumes_follow_outcome (store, &made, qube->name, FALSE);
          volumes_follow_outcome (store, &doomed, qube->name, TRUE);
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
