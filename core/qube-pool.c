/* qube-pool.c — storage pools: their records in the state store, and their
 * instances, opened on demand through the plugin of their driver.
 *
 * A pool is recorded only once its driver has opened it with create=1, so
 * a failure leaves no record; it is removed only when no volume lives in
 * it.  Open instances are cached per manager, keyed by name and checked
 * against the recorded driver and options at each use (another process may
 * have removed the pool and added another under the same name).
 */
#include "config.h"

#include <string.h>

#include "qube-error.h"
#include "qube-storage-private.h"
#include "qube-vm-private.h"

#define DEFAULT_POOL_NAME "default"
#define DEFAULT_POOL_DRIVER "file"
/* Most options a pool may have: a command line, not a database. */
#define POOL_OPTIONS_MAX 64

struct _QubePoolCache {
  GMutex lock;
  GHashTable *pools; /* name -> QubePoolHandle */
};

struct _QubeStoragePool {
  GObject parent_instance;

  QubeManager *manager;
  QubeStorePool row;
};

G_DEFINE_FINAL_TYPE (QubeStoragePool, qube_storage_pool, G_TYPE_OBJECT)

/* ---- open instances ---- */

QubePoolHandle *
_qube_pool_handle_ref (QubePoolHandle *handle)
{
  return g_atomic_rc_box_acquire (handle);
}

static void
pool_handle_clear (QubePoolHandle *handle)
{
  if (handle->pool != NULL)
    {
      g_autoptr(GRecMutexLocker) locker =
        g_rec_mutex_locker_new (_qube_plugin_info_get_lock (handle->info));
      handle->ops->pool_close (handle->pool);
    }
  g_free (handle->name);
  g_free (handle->signature);
}

void
_qube_pool_handle_unref (QubePoolHandle *handle)
{
  g_atomic_rc_box_release_full (handle, (GDestroyNotify) pool_handle_clear);
}

QubePoolCache *
_qube_pool_cache_new (void)
{
  QubePoolCache *cache = g_new0 (QubePoolCache, 1);

  g_mutex_init (&cache->lock);
  cache->pools = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify) _qube_pool_handle_unref);
  return cache;
}

void
_qube_pool_cache_free (QubePoolCache *cache)
{
  if (cache == NULL)
    return;
  g_hash_table_unref (cache->pools);
  g_mutex_clear (&cache->lock);
  g_free (cache);
}

static char *
pool_signature (const QubeStorePool *row)
{
  GString *s = g_string_new (row->driver);

  for (guint i = 0; row->keys[i] != NULL; i++)
    g_string_append_printf (s, "\n%s=%s", row->keys[i], row->values[i]);
  return g_string_free (s, FALSE);
}

/* The plugin providing `driver`, and its storage table. */
static QubePluginInfo *
find_driver (QubeManager *manager, const char *driver, const QubeStorageOps **ops,
             GError **error)
{
  QubePluginInfo *info = _qube_plugin_registry_find (qube_manager_get_plugins (manager),
                                                     QUBE_PLUGIN_KIND_STORAGE, driver,
                                                     error);

  if (info == NULL)
    return NULL;
  *ops = _qube_plugin_info_get_desc (info)->storage;
  return info;
}

/* Opens the pool of `row` through its driver (create: set it up first). */
static QubePoolHandle *
pool_handle_open (QubeManager *manager, const QubeStorePool *row, gboolean create,
                  GError **error)
{
  g_autoptr(QubePoolHandle) handle = g_atomic_rc_box_new0 (QubePoolHandle);
  g_autofree QubeKeyValue *options = NULL;
  guint n_options = g_strv_length (row->keys);
  int rc;

  handle->name = g_strdup (row->name);
  handle->signature = pool_signature (row);
  handle->info = find_driver (manager, row->driver, &handle->ops, error);
  if (handle->info == NULL)
    {
      g_prefix_error (error, "pool '%s': ", row->name);
      return NULL;
    }
  if (handle->ops->pool_open == NULL)
    {
      _qube_plugin_not_supported (handle->info, "opening a pool", error);
      g_prefix_error (error, "pool '%s': ", row->name);
      return NULL;
    }
  options = g_new0 (QubeKeyValue, n_options + 1);
  for (guint i = 0; i < n_options; i++)
    {
      options[i].key = row->keys[i];
      options[i].value = row->values[i];
    }
  {
    g_autoptr(GRecMutexLocker) locker =
      g_rec_mutex_locker_new (_qube_plugin_info_get_lock (handle->info));
    rc = handle->ops->pool_open (_qube_plugin_info_get_data (handle->info), row->name,
                                 options, n_options, create ? 1 : 0, &handle->pool);
    if (rc != 0)
      {
        handle->pool = NULL;
        g_autofree char *what = g_strdup_printf ("cannot open pool '%s' (driver %s)",
                                                 row->name, row->driver);
        return (_qube_plugin_take_error (handle->info, rc, what, error), NULL);
      }
  }
  return g_steal_pointer (&handle);
}

QubePoolHandle *
_qube_pool_open (QubeManager *manager, QubeStore *store, const char *name,
                 GError **error)
{
  QubePoolCache *cache = _qube_manager_get_pool_cache (manager);
  g_auto(QubeStorePool) row = { 0 };
  g_autofree char *signature = NULL;
  QubePoolHandle *handle;

  if (!_qube_store_get_pool (store, name, &row, error))
    return NULL;
  signature = pool_signature (&row);

  g_mutex_lock (&cache->lock);
  handle = g_hash_table_lookup (cache->pools, name);
  if (handle != NULL && strcmp (handle->signature, signature) == 0)
    {
      handle = _qube_pool_handle_ref (handle);
      g_mutex_unlock (&cache->lock);
      return handle;
    }
  g_mutex_unlock (&cache->lock);

  /* Opened outside the cache lock: a driver may take its time. */
  handle = pool_handle_open (manager, &row, FALSE, error);
  if (handle == NULL)
    return NULL;
  g_mutex_lock (&cache->lock);
  g_hash_table_replace (cache->pools, g_strdup (name), _qube_pool_handle_ref (handle));
  g_mutex_unlock (&cache->lock);
  return handle;
}

static void
pool_cache_forget (QubeManager *manager, const char *name)
{
  QubePoolCache *cache = _qube_manager_get_pool_cache (manager);

  g_mutex_lock (&cache->lock);
  g_hash_table_remove (cache->pools, name);
  g_mutex_unlock (&cache->lock);
}

/* ---- QubeStoragePool ---- */

static void
qube_storage_pool_finalize (GObject *object)
{
  QubeStoragePool *self = QUBE_STORAGE_POOL (object);

  g_clear_object (&self->manager);
  _qube_store_pool_clear (&self->row);
  G_OBJECT_CLASS (qube_storage_pool_parent_class)->finalize (object);
}

static void
qube_storage_pool_class_init (QubeStoragePoolClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qube_storage_pool_finalize;
}

static void
qube_storage_pool_init (QubeStoragePool *self)
{
}

static QubeStoragePool *
storage_pool_new (QubeManager *manager, QubeStorePool *row)
{
  QubeStoragePool *self = g_object_new (QUBE_TYPE_STORAGE_POOL, NULL);

  self->manager = g_object_ref (manager);
  self->row = *row;
  memset (row, 0, sizeof *row);
  return self;
}

/**
 * qube_storage_pool_get_name:
 * @self: a #QubeStoragePool
 *
 * Returns: the pool's name
 */
const char *
qube_storage_pool_get_name (QubeStoragePool *self)
{
  g_return_val_if_fail (QUBE_IS_STORAGE_POOL (self), NULL);
  return self->row.name;
}

/**
 * qube_storage_pool_get_driver:
 * @self: a #QubeStoragePool
 *
 * Returns: the storage driver, e.g. `file`
 */
const char *
qube_storage_pool_get_driver (QubeStoragePool *self)
{
  g_return_val_if_fail (QUBE_IS_STORAGE_POOL (self), NULL);
  return self->row.driver;
}

/**
 * qube_storage_pool_get_options:
 * @self: a #QubeStoragePool
 *
 * Returns: (transfer full) (array zero-terminated=1): the options the pool
 *   was added with, as `key=value`, sorted by key
 */
char **
qube_storage_pool_get_options (QubeStoragePool *self)
{
  GPtrArray *out = g_ptr_array_new ();

  g_return_val_if_fail (QUBE_IS_STORAGE_POOL (self), NULL);
  for (guint i = 0; self->row.keys[i] != NULL; i++)
    g_ptr_array_add (out, g_strdup_printf ("%s=%s", self->row.keys[i], self->row.values[i]));
  g_ptr_array_add (out, NULL);
  return (char **) g_ptr_array_free (out, FALSE);
}

const char *
_qube_block_format_name (guint32 format)
{
  switch (format)
    {
    case QUBE_BLOCK_RAW:
      return "raw";
    case QUBE_BLOCK_QCOW2:
      return "qcow2";
    default:
      return "unknown";
    }
}

/* The formats a pool makes: what its info says, else all its driver can. */
static guint32
pool_formats (QubePoolHandle *handle, const QubePoolInfo *info)
{
  if (QUBE_ABI_HAS (QubePoolInfo, info, block_formats) && info->block_formats != 0)
    return info->block_formats;
  return handle->ops->block_formats;
}

static gboolean
pool_handle_info (QubePoolHandle *handle, QubePoolInfo *info, GError **error)
{
  g_autoptr(GRecMutexLocker) locker =
    g_rec_mutex_locker_new (_qube_plugin_info_get_lock (handle->info));
  int rc;

  memset (info, 0, sizeof *info);
  info->size = sizeof *info;
  if (handle->ops->pool_info == NULL)
    return _qube_plugin_not_supported (handle->info, "pool info", error);
  rc = handle->ops->pool_info (handle->pool, info);
  if (rc != 0)
    {
      g_autofree char *what = g_strdup_printf ("cannot read the figures of pool '%s'",
                                               handle->name);
      return _qube_plugin_take_error (handle->info, rc, what, error);
    }
  info->mode[sizeof info->mode - 1] = '\0';
  info->location[sizeof info->location - 1] = '\0';
  return TRUE;
}

gboolean
_qube_pool_handle_formats (QubePoolHandle *handle, guint32 *formats, GError **error)
{
  QubePoolInfo info;

  if (!pool_handle_info (handle, &info, error))
    return FALSE;
  *formats = pool_formats (handle, &info);
  return TRUE;
}

/**
 * qube_storage_pool_query:
 * @self: a #QubeStoragePool
 * @size_bytes: (out) (optional): capacity
 * @usage_bytes: (out) (optional): space in use
 * @mode: (out) (optional) (transfer full): how copy-on-write is done, e.g.
 *   `reflink`, `qcow2`, `copy`
 * @location: (out) (optional) (transfer full): where the pool is (a
 *   directory, a volume group), for a person
 * @formats: (out) (optional) (transfer full) (array zero-terminated=1): the
 *   block formats its volumes come in (`raw`, `qcow2`)
 * @error: return location for a #GError, or %NULL
 *
 * Asks the pool's driver for its figures.
 *
 * Returns: %TRUE on success
 */
gboolean
qube_storage_pool_query (QubeStoragePool *self, guint64 *size_bytes, guint64 *usage_bytes,
                         char **mode, char **location, char ***formats, GError **error)
{
  g_autoptr(QubePoolHandle) handle = NULL;
  QubePoolInfo info;
  guint32 bits;

  g_return_val_if_fail (QUBE_IS_STORAGE_POOL (self), FALSE);
  handle = _qube_pool_open (self->manager, _qube_manager_get_store (self->manager),
                            self->row.name, error);
  if (handle == NULL || !pool_handle_info (handle, &info, error))
    return FALSE;
  bits = pool_formats (handle, &info);
  if (size_bytes != NULL)
    *size_bytes = info.size_bytes;
  if (usage_bytes != NULL)
    *usage_bytes = info.usage_bytes;
  if (mode != NULL)
    *mode = g_strdup (info.mode);
  if (location != NULL)
    *location = g_strdup (info.location);
  if (formats != NULL)
    {
      GPtrArray *names = g_ptr_array_new ();

      for (guint32 bit = 1; bit != 0; bit <<= 1)
        if (bits & bit)
          g_ptr_array_add (names, g_strdup (_qube_block_format_name (bit)));
      g_ptr_array_add (names, NULL);
      *formats = (char **) g_ptr_array_free (names, FALSE);
    }
  return TRUE;
}

/**
 * qube_storage_pool_list_volumes:
 * @self: a #QubeStoragePool
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (array zero-terminated=1): the volumes living in
 *   the pool, as `qube:volume`, sorted
 */
char **
qube_storage_pool_list_volumes (QubeStoragePool *self, GError **error)
{
  g_return_val_if_fail (QUBE_IS_STORAGE_POOL (self), NULL);
  return _qube_store_list_pool_volumes (_qube_manager_get_store (self->manager),
                                        self->row.name, error);
}

/* ---- adding and removing ---- */

typedef struct {
  QubeManager *manager;
  QubeStorePool *row;
} PoolAdd;

static gboolean
pool_add_in_transaction (QubeStore *store, gpointer data, GError **error)
{
  PoolAdd *add = data;
  g_auto(QubeStorePool) existing = { 0 };
  g_autoptr(GError) local_error = NULL;
  g_autoptr(QubePoolHandle) handle = NULL;

  if (_qube_store_get_pool (store, add->row->name, &existing, &local_error))
    {
      g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_EXISTS, "it already exists");
      return FALSE;
    }
  if (!g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  handle = pool_handle_open (add->manager, add->row, TRUE, error);
  if (handle == NULL)
    return FALSE;
  if (!_qube_store_add_pool (store, add->row, error))
    {
      g_autoptr(GRecMutexLocker) locker =
        g_rec_mutex_locker_new (_qube_plugin_info_get_lock (handle->info));
      if (handle->ops->pool_destroy != NULL)
        handle->ops->pool_destroy (handle->pool);
      return FALSE;
    }
  return TRUE;
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Splits key=value options into the sorted keys and values of `row`. */
static gboolean
parse_options (const char *const *options, QubeStorePool *row, GError **error)
{
  g_autoptr(GPtrArray) sorted = g_ptr_array_new ();
  guint n = options != NULL ? g_strv_length ((char **) options) : 0;

  if (n > POOL_OPTIONS_MAX)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "%u options given, at most %d are accepted", n, POOL_OPTIONS_MAX);
      return FALSE;
    }
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (sorted, (gpointer) options[i]);
  g_ptr_array_sort (sorted, compare_strings);
  row->keys = g_new0 (char *, n + 1);
  row->values = g_new0 (char *, n + 1);
  for (guint i = 0; i < n; i++)
    {
      const char *option = sorted->pdata[i];
      const char *eq = strchr (option, '=');
      g_autofree char *key = eq != NULL ? g_strndup (option, eq - option) : NULL;

      if (key == NULL || !_qube_key_is_valid ("option name", key, NULL))
        {
          g_autofree char *shown = _qube_printable (option);
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                       "invalid option '%s': expected KEY=VALUE with KEY made of "
                       "[A-Za-z0-9_.-]", shown);
          return FALSE;
        }
      if (!g_utf8_validate (eq + 1, -1, NULL) || strlen (eq + 1) > 4096)
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                       "invalid value of option '%s': not UTF-8 text of at most 4096 bytes",
                       key);
          return FALSE;
        }
      if (i > 0 && strcmp (row->keys[i - 1], key) == 0)
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                       "option '%s' given twice", key);
          return FALSE;
        }
      row->keys[i] = g_steal_pointer (&key);
      row->values[i] = g_strdup (eq + 1);
    }
  return TRUE;
}

/**
 * qube_manager_add_pool:
 * @self: a #QubeManager
 * @name: the new pool's name ([A-Za-z0-9_.-]+)
 * @driver: the storage driver, e.g. `file`
 * @options: (nullable) (array zero-terminated=1): the driver's options as
 *   `key=value` (for `file`: `dir_path=DIR`, `cow=auto|reflink|qcow2|copy`)
 * @error: return location for a #GError, or %NULL
 *
 * Sets the pool up through its driver, then records it.  When the driver
 * refuses, nothing is recorded.
 *
 * Returns: (transfer full) (nullable): the new pool, or %NULL with @error set
 */
QubeStoragePool *
qube_manager_add_pool (QubeManager *self, const char *name, const char *driver,
                       const char *const *options, GError **error)
{
  g_auto(QubeStorePool) row = { 0 };
  PoolAdd add = { self, &row };
  g_autofree char *shown = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (self), NULL);
  g_return_val_if_fail (name != NULL && driver != NULL, NULL);

  shown = _qube_printable (name);
  row.name = g_strdup (name);
  row.driver = g_strdup (driver);
  if (!_qube_key_is_valid ("pool name", name, error)
      || !_qube_key_is_valid ("driver name", driver, error)
      || !parse_options (options, &row, error)
      || !_qube_store_transact (_qube_manager_get_store (self), pool_add_in_transaction,
                                &add, error))
    {
      g_prefix_error (error, "cannot add pool '%s': ", shown);
      return NULL;
    }
  pool_cache_forget (self, name);
  return storage_pool_new (self, &row);
}

/**
 * qube_manager_lookup_pool:
 * @self: a #QubeManager
 * @name: a pool's name
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the pool, or %NULL with @error set
 *   (%QUBE_ERROR_NOT_FOUND when there is no such pool)
 */
QubeStoragePool *
qube_manager_lookup_pool (QubeManager *self, const char *name, GError **error)
{
  g_auto(QubeStorePool) row = { 0 };

  g_return_val_if_fail (QUBE_IS_MANAGER (self), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  if (!_qube_store_get_pool (_qube_manager_get_store (self), name, &row, error))
    return NULL;
  return storage_pool_new (self, &row);
}

/**
 * qube_manager_list_pools:
 * @self: a #QubeManager
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer container) (element-type QubeStoragePool) (nullable):
 *   the pools, sorted by name, or %NULL with @error set
 */
GPtrArray *
qube_manager_list_pools (QubeManager *self, GError **error)
{
  g_autoptr(GPtrArray) pools = g_ptr_array_new_with_free_func (g_object_unref);
  g_auto(GStrv) names = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (self), NULL);
  names = _qube_store_list_pools (_qube_manager_get_store (self), error);
  if (names == NULL)
    return NULL;
  for (char **name = names; *name != NULL; name++)
    {
      QubeStoragePool *pool = qube_manager_lookup_pool (self, *name, error);

      if (pool == NULL)
        return NULL;
      g_ptr_array_add (pools, pool);
    }
  return g_steal_pointer (&pools);
}

typedef struct {
  QubeManager *manager;
  const char *name;
} PoolRemove;

static gboolean
pool_remove_in_transaction (QubeStore *store, gpointer data, GError **error)
{
  PoolRemove *remove = data;
  g_autoptr(QubePoolHandle) handle = NULL;
  g_autoptr(GError) local_error = NULL;
  g_auto(QubeStorePool) row = { 0 };
  g_auto(GStrv) volumes = NULL;
  int rc;

  if (!_qube_store_get_pool (store, remove->name, &row, error))
    return FALSE;
  volumes = _qube_store_list_pool_volumes (store, remove->name, error);
  if (volumes == NULL)
    return FALSE;
  if (volumes[0] != NULL)
    {
      g_autofree char *list = g_strjoinv (", ", volumes);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IN_USE, "volumes live in it: %s", list);
      return FALSE;
    }
  handle = _qube_pool_open (remove->manager, store, remove->name, &local_error);
  if (handle == NULL)
    {
      /* A pool whose storage is gone can still be forgotten. */
      if (g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND))
        {
          g_message ("pool '%s': %s; removing its record", remove->name,
                     local_error->message);
          return _qube_store_remove_pool (store, remove->name, error);
        }
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  if (!_qube_store_remove_pool (store, remove->name, error))
    return FALSE;
  if (handle->ops->pool_destroy == NULL)
    return TRUE; /* nothing to tear down */
  {
    g_autoptr(GRecMutexLocker) locker =
      g_rec_mutex_locker_new (_qube_plugin_info_get_lock (handle->info));
    rc = handle->ops->pool_destroy (handle->pool);
  }
  if (rc != 0)
    return _qube_plugin_take_error (handle->info, rc, NULL, error);
  return TRUE;
}

/**
 * qube_manager_remove_pool:
 * @self: a #QubeManager
 * @name: a pool's name
 * @error: return location for a #GError, or %NULL
 *
 * Removes a pool and what its driver set up for it.  Refused
 * (%QUBE_ERROR_IN_USE, naming them) while volumes live in it.
 *
 * Returns: %TRUE when the pool was removed
 */
gboolean
qube_manager_remove_pool (QubeManager *self, const char *name, GError **error)
{
  PoolRemove remove = { self, name };
  g_autofree char *shown = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  if (!_qube_store_transact (_qube_manager_get_store (self), pool_remove_in_transaction,
                             &remove, error))
    {
      shown = _qube_printable (name);
      g_prefix_error (error, "cannot remove pool '%s': ", shown);
      return FALSE;
    }
  pool_cache_forget (self, name);
  return TRUE;
}

gboolean
_qube_pool_ensure_default (QubeManager *manager, GError **error)
{
  g_auto(QubeStorePool) row = { 0 };
  g_autoptr(GError) local_error = NULL;
  g_autoptr(QubeStoragePool) pool = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *option = NULL;
  const char *options[2] = { NULL, NULL };

  g_autofree char *default_pool = NULL;

  if (!_qube_global_get (_qube_manager_get_store (manager), "default_pool", &default_pool, NULL,
                         NULL, error))
    return FALSE;
  /* Made only when it is where new volumes go. */
  if (g_strcmp0 (default_pool, DEFAULT_POOL_NAME) != 0)
    return TRUE;
  if (_qube_store_get_pool (_qube_manager_get_store (manager), DEFAULT_POOL_NAME, &row,
                            &local_error))
    return TRUE;
  if (!g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  g_clear_error (&local_error);
  dir = g_build_filename (qube_manager_get_state_dir (manager), "pools", DEFAULT_POOL_NAME,
                          NULL);
  option = g_strconcat ("dir_path=", dir, NULL);
  options[0] = option;
  pool = qube_manager_add_pool (manager, DEFAULT_POOL_NAME, DEFAULT_POOL_DRIVER, options,
                                &local_error);
  /* Another process may have made it first. */
  if (pool == NULL && !g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_EXISTS))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  return TRUE;
}
