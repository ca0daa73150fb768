/* sf-meta.c — reading and atomically writing a volume's volume.conf. */
#include "config.h"

#include "sf-meta.h"

#include <string.h>

#include "sf-fs.h"

#define GROUP "volume"

SfMeta *
sf_meta_new (void)
{
  SfMeta *meta = g_new0 (SfMeta, 1);

  meta->kept = g_ptr_array_new_with_free_func (g_free);
  return meta;
}

void
sf_meta_free (SfMeta *meta)
{
  if (meta == NULL)
    return;
  g_free (meta->current);
  g_ptr_array_unref (meta->kept);
  g_free (meta->working);
  g_free (meta->base);
  g_free (meta->snapshot_of);
  g_free (meta->snapshot_rev);
  g_free (meta);
}

gboolean
sf_meta_revision_name_is_valid (const char *name)
{
  size_t len = strlen (name);

  if (len == 0 || len > 20)
    return FALSE;
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_isdigit (name[i]))
      return FALSE;
  return TRUE;
}

gint64
sf_meta_revision_created (const char *name)
{
  return (gint64) (g_ascii_strtoull (name, NULL, 10) / G_USEC_PER_SEC);
}

char *
sf_meta_new_revision_name (const SfMeta *meta)
{
  guint64 name = (guint64) g_get_real_time ();

  if (meta->current != NULL)
    name = MAX (name, g_ascii_strtoull (meta->current, NULL, 10) + 1);
  for (guint i = 0; i < meta->kept->len; i++)
    name = MAX (name, g_ascii_strtoull (meta->kept->pdata[i], NULL, 10) + 1);
  return g_strdup_printf ("%" G_GUINT64_FORMAT, name);
}

void
sf_meta_push_revision (SfMeta *meta, const char *rev, guint32 keep,
                       GPtrArray *dropped)
{
  /* A revision that becomes current again leaves the kept list. */
  for (guint i = 0; i < meta->kept->len; i++)
    if (strcmp (meta->kept->pdata[i], rev) == 0)
      {
        g_ptr_array_remove_index (meta->kept, i);
        break;
      }
  if (meta->current != NULL)
    g_ptr_array_insert (meta->kept, 0, g_steal_pointer (&meta->current));
  meta->current = g_strdup (rev);
  while (meta->kept->len > keep)
    {
      char *old = g_ptr_array_steal_index (meta->kept, meta->kept->len - 1);

      g_ptr_array_add (dropped, old);
    }
}

static gboolean
working_name_is_valid (const char *name)
{
  return name == NULL || strcmp (name, "work.img") == 0 ||
         strcmp (name, "work.qcow2") == 0 || strcmp (name, "base.qcow2") == 0;
}

static char *
get_optional (GKeyFile *kf, const char *key)
{
  g_autofree char *value = g_key_file_get_string (kf, GROUP, key, NULL);

  if (value == NULL || value[0] == '\0')
    return NULL;
  return g_steal_pointer (&value);
}

SfMeta *
sf_meta_load (int dir_fd, const char *vid, GError **error)
{
  g_autoptr (SfMeta) meta = sf_meta_new ();
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local = NULL;
  g_autofree char *path = sf_fd_path (dir_fd, SF_META_FILE);
  g_auto (GStrv) kept = NULL;

  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, &local))
    {
      g_set_error (error, SF_ERROR,
                   g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT)
                     ? QUBE_ABI_E_NOT_FOUND
                     : QUBE_ABI_E_IO,
                   "cannot read the metadata of volume '%s': %s", vid,
                   local->message);
      return NULL;
    }
  meta->size = g_key_file_get_uint64 (kf, GROUP, "size", NULL);
  meta->flags = (guint32) g_key_file_get_uint64 (kf, GROUP, "flags", NULL);
  meta->current = get_optional (kf, "current");
  meta->started = g_key_file_get_boolean (kf, GROUP, "started", NULL);
  meta->working = get_optional (kf, "working");
  meta->base = get_optional (kf, "base");
  meta->snapshot_of = get_optional (kf, "snapshot-of");
  meta->snapshot_rev = get_optional (kf, "snapshot-revision");
  kept = g_key_file_get_string_list (kf, GROUP, "kept", NULL, NULL);
  for (guint i = 0; kept != NULL && kept[i] != NULL; i++)
    {
      if (!sf_meta_revision_name_is_valid (kept[i]))
        goto corrupt;
      g_ptr_array_add (meta->kept, g_strdup (kept[i]));
    }
  /* The names end up in file names: never trust them blindly. */
  if (meta->size == 0 ||
      (meta->current != NULL &&
       !sf_meta_revision_name_is_valid (meta->current)) ||
      !working_name_is_valid (meta->working) ||
      !working_name_is_valid (meta->base))
    goto corrupt;
  return g_steal_pointer (&meta);

corrupt:
  g_set_error (error, SF_ERROR, QUBE_ABI_E_IO,
               "the metadata of volume '%s' is corrupt", vid);
  return NULL;
}

gboolean
sf_meta_save (const SfMeta *meta, int dir_fd, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree char *data = NULL;
  gsize len;

  g_key_file_set_uint64 (kf, GROUP, "size", meta->size);
  g_key_file_set_uint64 (kf, GROUP, "flags", meta->flags);
  g_key_file_set_string (kf, GROUP, "current",
                         meta->current ? meta->current : "");
  g_key_file_set_string_list (kf, GROUP, "kept",
                              (const char *const *) meta->kept->pdata,
                              meta->kept->len);
  g_key_file_set_boolean (kf, GROUP, "started", meta->started);
  g_key_file_set_string (kf, GROUP, "working",
                         meta->working ? meta->working : "");
  g_key_file_set_string (kf, GROUP, "base", meta->base ? meta->base : "");
  g_key_file_set_string (kf, GROUP, "snapshot-of",
                         meta->snapshot_of ? meta->snapshot_of : "");
  g_key_file_set_string (kf, GROUP, "snapshot-revision",
                         meta->snapshot_rev ? meta->snapshot_rev : "");
  data = g_key_file_to_data (kf, &len, NULL);
  return sf_write_atomic (dir_fd, SF_META_FILE, data, len, error);
}
