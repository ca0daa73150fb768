/* qube-manager.c — QubeManager: the qubes of one state directory.
 *
 * Creating, looking up, listing, removing and cloning qubes, and the global
 * properties.  Each operation is one store transaction, and its checks run
 * inside it, so two processes changing the same store cannot both pass a
 * check that only one of the changes may pass.  The property rules
 * themselves are in qube-property.c.
 */
#include "config.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sys/random.h>
#include <unistd.h>

#include "qube-error.h"
#include "qube-property.h"
#include "qube-storage-private.h"
#include "qube-vm-private.h"

#define STORE_FILE_NAME "qubes.db"
/* Tries at finding a free dispNNNN name before giving up. */
#define DISP_NAME_TRIES 100

struct _QubeManager {
  GObject parent_instance;

  char *state_dir;
  char *runtime_dir;
  QubeStore *store;
  QubePluginRegistry *plugins;
  GMutex plugins_lock;
  QubeRunningFunc running_func;
  gpointer running_data;
  QubePoolCache *pool_cache;
};

enum {
  PROP_0,
  PROP_STATE_DIR,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void qube_manager_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (QubeManager, qube_manager, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      qube_manager_initable_iface_init))

static void
qube_manager_finalize (GObject *object)
{
  QubeManager *self = QUBE_MANAGER (object);

  /* Pool instances go before the plugins that opened them. */
  g_clear_pointer (&self->pool_cache, _qube_pool_cache_free);
  g_clear_pointer (&self->store, _qube_store_close);
  g_clear_object (&self->plugins);
  g_mutex_clear (&self->plugins_lock);
  g_clear_pointer (&self->state_dir, g_free);
  g_clear_pointer (&self->runtime_dir, g_free);
  G_OBJECT_CLASS (qube_manager_parent_class)->finalize (object);
}

static void
qube_manager_get_gproperty (GObject *object, guint prop_id, GValue *value,
                            GParamSpec *pspec)
{
  QubeManager *self = QUBE_MANAGER (object);

  switch (prop_id)
    {
    case PROP_STATE_DIR:
      g_value_set_string (value, self->state_dir);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qube_manager_set_gproperty (GObject *object, guint prop_id,
                            const GValue *value, GParamSpec *pspec)
{
  QubeManager *self = QUBE_MANAGER (object);

  switch (prop_id)
    {
    case PROP_STATE_DIR:
      g_free (self->state_dir);
      self->state_dir = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qube_manager_class_init (QubeManagerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = qube_manager_finalize;
  object_class->get_property = qube_manager_get_gproperty;
  object_class->set_property = qube_manager_set_gproperty;

  /**
   * QubeManager:state-dir:
   *
   * The directory holding the state store; %NULL at construction means
   * qube_manager_default_state_dir().
   */
  properties[PROP_STATE_DIR] =
    g_param_spec_string ("state-dir", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
qube_manager_init (QubeManager *self)
{
  g_mutex_init (&self->plugins_lock);
  self->pool_cache = _qube_pool_cache_new ();
  /* Whether a qube runs is its isolation backend's answer. */
  self->running_func = _qube_vm_running_func;
}

static gboolean
qube_manager_initable_init (GInitable *initable, GCancellable *cancellable,
                            GError **error)
{
  QubeManager *self = QUBE_MANAGER (initable);
  g_autofree char *path = NULL;

  if (self->store != NULL)
    return TRUE;
  if (self->state_dir == NULL)
    self->state_dir = qube_manager_default_state_dir ();

  /* The store says who may use which qube: keep it private to the owner. */
  if (g_mkdir_with_parents (self->state_dir, 0700) != 0)
    {
      int saved_errno = errno;
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IO,
                   "cannot create state directory %s: %s",
                   self->state_dir, g_strerror (saved_errno));
      return FALSE;
    }
  self->runtime_dir = qube_manager_default_runtime_dir (self->state_dir);
  path = g_build_filename (self->state_dir, STORE_FILE_NAME, NULL);
  self->store = _qube_store_open (path, error);
  return self->store != NULL;
}

static void
qube_manager_initable_iface_init (GInitableIface *iface)
{
  iface->init = qube_manager_initable_init;
}

/**
 * qube_manager_new:
 * @state_dir: (nullable) (type filename): the state directory, or %NULL for
 *   qube_manager_default_state_dir()
 * @error: return location for a #GError, or %NULL
 *
 * Opens (creating it when needed, mode 0700) the state directory and the
 * state store in it, upgrading an older store's schema.
 *
 * Returns: (transfer full) (nullable): a new manager, or %NULL with @error set
 */
QubeManager *
qube_manager_new (const char *state_dir, GError **error)
{
  return g_initable_new (QUBE_TYPE_MANAGER, NULL, error, "state-dir", state_dir, NULL);
}

/**
 * qube_manager_default_runtime_dir:
 * @state_dir: (type filename): a state directory
 *
 * Where volatile files of running qubes (sockets, pid files) live for a
 * state directory. `$QUBE_RUNTIME_DIR` when set, else `/run/qube` for root
 * using `/var/lib/qube`, else `STATE_DIR/run`, so that two state
 * directories never share runtime files.
 *
 * Returns: (transfer full) (type filename): a directory path
 */
char *
qube_manager_default_runtime_dir (const char *state_dir)
{
  const char *env = g_getenv ("QUBE_RUNTIME_DIR");

  if (env != NULL && *env != '\0')
    return g_strdup (env);
  if (geteuid () == 0 && g_strcmp0 (state_dir, "/var/lib/qube") == 0)
    return g_strdup ("/run/qube");
  return g_build_filename (state_dir, "run", NULL);
}

/**
 * qube_manager_get_runtime_dir:
 * @self: a #QubeManager
 *
 * Returns: (type filename): the runtime directory (see
 *   qube_manager_default_runtime_dir())
 */
const char *
qube_manager_get_runtime_dir (QubeManager *self)
{
  g_return_val_if_fail (QUBE_IS_MANAGER (self), NULL);
  return self->runtime_dir;
}

/**
 * qube_manager_get_plugins:
 * @self: a #QubeManager
 *
 * The plugin registry of this manager, made on first use, of
 * `$QUBE_PLUGIN_PATH` and the installed plugin directory.  Its plugins are
 * read as operations need them; qube_plugin_registry_list() and
 * qube_plugin_registry_lookup() read them all.
 *
 * Returns: (transfer none): the registry
 */
QubePluginRegistry *
qube_manager_get_plugins (QubeManager *self)
{
  g_return_val_if_fail (QUBE_IS_MANAGER (self), NULL);

  g_mutex_lock (&self->plugins_lock);
  if (self->plugins == NULL)
    self->plugins = qube_plugin_registry_new (self->state_dir, self->runtime_dir);
  g_mutex_unlock (&self->plugins_lock);
  return self->plugins;
}

/**
 * qube_manager_default_state_dir:
 *
 * Where the state lives when no directory is given: `$QUBE_STATE_DIR` when
 * set, else `/var/lib/qube` for root, else `$XDG_DATA_HOME/qube`.
 *
 * Returns: (transfer full) (type filename): a directory path
 */
char *
qube_manager_default_state_dir (void)
{
  const char *env = g_getenv ("QUBE_STATE_DIR");

  if (env != NULL && *env != '\0')
    return g_strdup (env);
  if (geteuid () == 0)
    return g_strdup ("/var/lib/qube");
  return g_build_filename (g_get_user_data_dir (), "qube", NULL);
}

/**
 * qube_manager_get_state_dir:
 * @self: a #QubeManager
 *
 * Returns: (type filename): the state directory
 */
const char *
qube_manager_get_state_dir (QubeManager *self)
{
  g_return_val_if_fail (QUBE_IS_MANAGER (self), NULL);
  return self->state_dir;
}

QubeStore *
_qube_manager_get_store (QubeManager *self)
{
  return self->store;
}

QubePoolCache *
_qube_manager_get_pool_cache (QubeManager *self)
{
  return self->pool_cache;
}

void
_qube_manager_set_running_func (QubeManager *self, QubeRunningFunc func,
                                gpointer user_data)
{
  self->running_func = func;
  self->running_data = user_data;
}

gboolean
_qube_manager_states_from_backend (QubeManager *self)
{
  return self->running_func == _qube_vm_running_func;
}

gboolean
_qube_manager_is_running (QubeManager *self, QubeVm *vm)
{
  return self->running_func != NULL && self->running_func (vm, self->running_data);
}

/* ---- creating ---- */

/* A random (version 4) UUID from the kernel's generator.  Not GLib's
 * g_uuid_string_random(): its generator state is copied by fork(), so two
 * processes forked from one parent would make the same UUIDs. */
static char *
new_uuid (GError **error)
{
  guint8 b[16];
  size_t got = 0;

  while (got < sizeof b)
    {
      ssize_t n = getrandom (b + got, sizeof b - got, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int saved_errno = errno;
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_IO,
                       "cannot make a UUID: getrandom: %s", g_strerror (saved_errno));
          return NULL;
        }
      got += (size_t) n;
    }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return g_strdup_printf ("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                          "%02x%02x%02x%02x%02x%02x",
                          b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
                          b[10], b[11], b[12], b[13], b[14], b[15]);
}

typedef struct {
  QubeManager *self;
  QubeClass klass;
  const char *name;
  const char *template_name;
  const char *label;
  /* Where the new volumes go, instead of default_pool: "VOLUME=POOL"
   * items, "*" for every volume (NULL: the default). */
  const char *const *pools;
  QubeStoreQube *made;
} CreateData;

static gboolean
check_name_free (QubeStore *store, const char *name, GError **error)
{
  g_auto(QubeStoreQube) existing = { 0 };
  g_autoptr(GError) local_error = NULL;

  if (_qube_store_get_qube (store, name, &existing, &local_error))
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_EXISTS,
                   "a qube named '%s' already exists", name);
      return FALSE;
    }
  if (!g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  return TRUE;
}

/* An unused "dispNNNN", the name Qubes gives unnamed disposables. */
static char *
pick_disposable_name (QubeStore *store, GError **error)
{
  for (int i = 0; i < DISP_NAME_TRIES; i++)
    {
      g_autofree char *name = g_strdup_printf ("disp%d", g_random_int_range (1, 10000));
      g_autoptr(GError) local_error = NULL;

      if (check_name_free (store, name, &local_error))
        return g_steal_pointer (&name);
      if (!g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_EXISTS))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return NULL;
        }
    }
  g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_EXISTS,
                       "no free disposable name (dispNNNN) found");
  return NULL;
}

/* The template a new qube gets: the one given, else the global default
 * (default_template for an AppVM, default_dispvm for a DispVM). */
static char *
choose_template (QubeStore *store, QubeClass klass, const char *template_name,
                 GError **error)
{
  const char *global = klass == QUBE_CLASS_DISP ? "default_dispvm" : "default_template";
  g_autofree char *value = NULL;

  if (template_name != NULL)
    value = g_strdup (template_name);
  else if (!_qube_global_get (store, global, &value, NULL, NULL, error))
    return NULL;

  if (*value == '\0')
    {
      g_autofree char *what = _qube_class_describe (klass);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "%s needs a template, and none was given nor set as the global %s",
                   what, global);
      return NULL;
    }
  if (!_qube_property_check_template (store, klass, value, error))
    {
      g_prefix_error (error, "template '%s': ", value);
      return NULL;
    }
  return g_steal_pointer (&value);
}

static gboolean
create_in_transaction (QubeStore *store, gpointer data, GError **error)
{
  CreateData *create = data;
  g_autofree char *picked = NULL;
  g_autofree char *template_name = NULL;
  g_autofree char *uuid = NULL;
  const char *name = create->name;
  gint64 id;

  if (name == NULL && create->klass == QUBE_CLASS_DISP)
    {
      picked = pick_disposable_name (store, error);
      if (picked == NULL)
        return FALSE;
      name = picked;
    }
  if (!qube_name_is_valid (name, error))
    return FALSE;

  if (!check_name_free (store, name, error))
    goto fail;
  uuid = new_uuid (error);
  if (uuid == NULL)
    goto fail;
  if (create->klass & (QUBE_CLASS_APP | QUBE_CLASS_DISP))
    {
      template_name = choose_template (store, create->klass, create->template_name, error);
      if (template_name == NULL)
        goto fail;
    }
  else if (create->template_name != NULL)
    {
      g_autofree char *what = _qube_class_describe (create->klass);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID, "%s has no template", what);
      goto fail;
    }

  if (!_qube_store_add_qube (store, name, uuid, _qube_class_to_name (create->klass), &id, error)
      || !_qube_store_get_qube_by_id (store, id, create->made, error))
    goto fail;
  if (template_name != NULL
      && !_qube_store_set_property (store, id, "template", template_name, error))
    goto fail;
  if (create->label != NULL
      && !_qube_property_set (store, create->made, "label", create->label, error))
    goto fail;
  /* Last: a failure rolls the transaction back, which also removes what
   * was made in the pools. */
  if (!_qube_volumes_create (create->self, store, create->made, create->klass, template_name,
                             create->pools, error))
    goto fail;
  return TRUE;

fail:
  g_prefix_error (error, "cannot create %s '%s': ", _qube_class_to_name (create->klass), name);
  return FALSE;
}

/**
 * qube_manager_create_vm:
 * @self: a #QubeManager
 * @klass: the class: `TemplateVM`, `AppVM`, `StandaloneVM` or `DispVM`
 * @name: (nullable): the new qube's name (see qube_name_is_valid()); %NULL
 *   only for a DispVM, which then gets a free `dispNNNN` name
 * @template_name: (nullable): the template, for an AppVM (a TemplateVM) or
 *   a DispVM (an AppVM with template_for_dispvms=True); %NULL for the global
 *   default_template / default_dispvm
 * @label: (nullable): the label, or %NULL for the default
 * @error: return location for a #GError, or %NULL
 *
 * Creates a qube with a new UUID, and its volumes in their pools (see
 * qube-volume.h for the layout of each class; pool `default` is made on
 * first use).  When any step fails, nothing of it is left.
 *
 * Returns: (transfer full) (nullable): the new qube, or %NULL with @error set
 */
QubeVm *
qube_manager_create_vm (QubeManager *self, const char *klass, const char *name,
                        const char *template_name, const char *label,
                        GError **error)
{
  return _qube_manager_create_vm_in_pools (self, klass, name, template_name, label, NULL, error);
}

/* qube_manager_create_vm() with the new qube's own volumes in the pools
 * `pools` names ("VOLUME=POOL", or "*=POOL" for all of them); the
 * snapshots of a template's volumes stay beside their sources. */
QubeVm *
_qube_manager_create_vm_in_pools (QubeManager *self, const char *klass, const char *name,
                                  const char *template_name, const char *label,
                                  const char *const *pools, GError **error)
{
  g_auto(QubeStoreQube) made = { 0 };
  CreateData create = { self, _qube_class_from_name (klass), name, template_name, label, pools,
                        &made };

  g_return_val_if_fail (QUBE_IS_MANAGER (self), NULL);
  g_return_val_if_fail (klass != NULL, NULL);

  if (create.klass == QUBE_CLASS_NONE)
    {
      g_autofree char *shown = _qube_printable (klass);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "cannot create qube '%s': unknown class '%s' (TemplateVM, AppVM, "
                   "StandaloneVM or DispVM)", name != NULL ? name : "", shown);
      return NULL;
    }
  if (create.klass == QUBE_CLASS_ADMIN)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "cannot create qube '%s': there is only one AdminVM, '%s'",
                   name != NULL ? name : "", QUBE_STORE_ADMIN_NAME);
      return NULL;
    }
  if (!_qube_pool_ensure_default (self, error))
    {
      g_prefix_error (error, "cannot create %s '%s': ", klass, name != NULL ? name : "");
      return NULL;
    }
  if (!_qube_store_transact (self->store, create_in_transaction, &create, error))
    return NULL;
  return _qube_vm_new (self, &made);
}

/* ---- looking up ---- */

/**
 * qube_manager_lookup:
 * @self: a #QubeManager
 * @name: a qube's name
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the qube, or %NULL with @error set
 *   (%QUBE_ERROR_NOT_FOUND when there is no such qube)
 */
QubeVm *
qube_manager_lookup (QubeManager *self, const char *name, GError **error)
{
  g_auto(QubeStoreQube) row = { 0 };

  g_return_val_if_fail (QUBE_IS_MANAGER (self), NULL);
  g_return_val_if_fail (name != NULL, NULL);

  if (!_qube_store_get_qube (self->store, name, &row, error))
    return NULL;
  return _qube_vm_new (self, &row);
}

/**
 * qube_manager_list_vms:
 * @self: a #QubeManager
 *
 * All qubes, the admin qube included, sorted by name.  A store failure is
 * logged and gives an empty list.  The array owns its qubes:
 * g_ptr_array_unref() frees them too.
 *
 * Returns: (transfer container) (element-type QubeVm): the qubes
 */
GPtrArray *
qube_manager_list_vms (QubeManager *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  GPtrArray *vms = g_ptr_array_new_with_free_func (g_object_unref);

  g_return_val_if_fail (QUBE_IS_MANAGER (self), vms);

  rows = _qube_store_list_qubes (self->store, &error);
  if (rows == NULL)
    {
      g_warning ("cannot list qubes: %s", error->message);
      return vms;
    }
  for (guint i = 0; i < rows->len; i++)
    g_ptr_array_add (vms, _qube_vm_new (self, rows->pdata[i]));
  return vms;
}

/* ---- removing ---- */

typedef struct {
  QubeManager *self;
  const char *name;
} RemoveData;

static gboolean
remove_in_transaction (QubeStore *store, gpointer data, GError **error)
{
  RemoveData *remove = data;
  g_auto(QubeStoreQube) row = { 0 };
  g_autoptr(QubeVm) vm = NULL;
  g_autofree char *users = NULL;

  if (!_qube_store_get_qube (store, remove->name, &row, error))
    goto fail;
  if (_qube_class_from_name (row.klass) == QUBE_CLASS_ADMIN)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "it is the AdminVM (the host itself)");
      goto fail;
    }
  vm = _qube_vm_new (remove->self, &row);
  if (_qube_vm_is_running (vm))
    {
      g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_RUNNING, "it is running");
      goto fail;
    }
  if (!_qube_property_find_users (store, row.name, &users, error))
    goto fail;
  if (users != NULL)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_IN_USE, "%s", users);
      goto fail;
    }
  if (!_qube_volumes_remove (remove->self, store, &row, error)
      || !_qube_store_remove_qube (store, row.id, error))
    goto fail;
  return TRUE;

fail:
  {
    g_autofree char *shown = _qube_printable (remove->name);
    g_prefix_error (error, "cannot remove qube '%s': ", shown);
  }
  return FALSE;
}

/**
 * qube_manager_remove_vm:
 * @self: a #QubeManager
 * @name: the qube's name
 * @error: return location for a #GError, or %NULL
 *
 * Removes a halted qube that nothing refers to (as template, netvm,
 * default_dispvm or a global default), with its properties, features,
 * tags and volumes (refused while a volume is started).  The error lists what still refers to it.
 * The volumes are removed once the qube's removal is committed; one that
 * cannot be removed then is only logged, as the qube is gone.
 *
 * Returns: %TRUE when the qube was removed
 */
gboolean
qube_manager_remove_vm (QubeManager *self, const char *name, GError **error)
{
  RemoveData remove = { self, name };

  g_return_val_if_fail (QUBE_IS_MANAGER (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  return _qube_store_transact (self->store, remove_in_transaction, &remove, error);
}

/* ---- cloning ---- */

typedef struct {
  QubeManager *self;
  const char *src;
  const char *dst;
  QubeStoreQube *made;
} CloneData;

static gboolean
clone_in_transaction (QubeStore *store, gpointer data, GError **error)
{
  CloneData *clone = data;
  g_auto(QubeStoreQube) src = { 0 };
  g_autofree char *uuid = NULL;
  gint64 id;

  if (!qube_name_is_valid (clone->dst, error))
    goto fail;
  if (!_qube_store_get_qube (store, clone->src, &src, error))
    goto fail;
  if (_qube_class_from_name (src.klass) == QUBE_CLASS_ADMIN)
    {
      g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                           "the AdminVM cannot be cloned");
      goto fail;
    }
  if (!check_name_free (store, clone->dst, error)
      || (uuid = new_uuid (error)) == NULL
      || !_qube_store_add_qube (store, clone->dst, uuid, src.klass, &id, error)
      || !_qube_store_copy_qube_data (store, src.id, id, error)
      || !_qube_store_get_qube_by_id (store, id, clone->made, error)
      || !_qube_volumes_clone (clone->self, store, &src, clone->made, error))
    goto fail;
  return TRUE;

fail:
  {
    g_autofree char *src_shown = _qube_printable (clone->src);
    g_autofree char *dst_shown = _qube_printable (clone->dst);
    g_prefix_error (error, "cannot clone qube '%s' to '%s': ", src_shown, dst_shown);
  }
  return FALSE;
}

/**
 * qube_manager_clone_vm:
 * @self: a #QubeManager
 * @src: the qube to copy
 * @dst: the name of the copy
 * @error: return location for a #GError, or %NULL
 *
 * Makes a new qube of the same class with the same properties, features
 * and tags, under a new name and a new UUID, and copies of its volumes
 * (copy-on-write where the pool can).
 *
 * Returns: (transfer full) (nullable): the copy, or %NULL with @error set
 */
QubeVm *
qube_manager_clone_vm (QubeManager *self, const char *src, const char *dst,
                       GError **error)
{
  g_auto(QubeStoreQube) made = { 0 };
  CloneData clone = { self, src, dst, &made };

  g_return_val_if_fail (QUBE_IS_MANAGER (self), NULL);
  g_return_val_if_fail (src != NULL, NULL);

  if (!_qube_store_transact (self->store, clone_in_transaction, &clone, error))
    return NULL;
  return _qube_vm_new (self, &made);
}

/* ---- global properties ---- */

/**
 * qube_manager_list_properties:
 * @self: a #QubeManager
 *
 * Returns: (transfer full) (array zero-terminated=1): the names of the
 *   global properties, sorted
 */
char **
qube_manager_list_properties (QubeManager *self)
{
  g_return_val_if_fail (QUBE_IS_MANAGER (self), NULL);
  return _qube_global_list ();
}

/**
 * qube_manager_get_property:
 * @self: a #QubeManager
 * @name: a global property, e.g. `default_netvm`
 * @is_default: (out) (optional): set to whether the value is the default
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the value (`""` for no qube), or
 *   %NULL with @error set
 */
char *
qube_manager_get_property (QubeManager *self, const char *name,
                           gboolean *is_default, GError **error)
{
  char *value = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (self), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  if (!_qube_global_get (self->store, name, &value, is_default, NULL, error))
    return NULL;
  return value;
}

/**
 * qube_manager_get_property_type:
 * @self: a #QubeManager
 * @name: a global property
 * @type: (out): set to the property's type
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE when @name is a global property
 */
gboolean
qube_manager_get_property_type (QubeManager *self, const char *name,
                                QubePropertyType *type, GError **error)
{
  g_autofree char *value = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  return _qube_global_get (self->store, name, &value, NULL, type, error);
}

typedef struct {
  const char *name;
  const char *value;
} GlobalChange;

static gboolean
global_set_in_transaction (QubeStore *store, gpointer data, GError **error)
{
  GlobalChange *change = data;

  return change->value != NULL
         ? _qube_global_set (store, change->name, change->value, error)
         : _qube_global_reset (store, change->name, error);
}

/**
 * qube_manager_set_property:
 * @self: a #QubeManager
 * @name: a global property
 * @value: the new value; for vm-typed ones an existing qube of the right
 *   class, or `""` for none
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE when the value was stored
 */
gboolean
qube_manager_set_property (QubeManager *self, const char *name,
                           const char *value, GError **error)
{
  GlobalChange change = { name, value };

  g_return_val_if_fail (QUBE_IS_MANAGER (self), FALSE);
  g_return_val_if_fail (name != NULL && value != NULL, FALSE);
  return _qube_store_transact (self->store, global_set_in_transaction, &change, error);
}

/**
 * qube_manager_reset_property:
 * @self: a #QubeManager
 * @name: a global property
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE when the property follows its default again
 */
gboolean
qube_manager_reset_property (QubeManager *self, const char *name,
                             GError **error)
{
  GlobalChange change = { name, NULL };

  g_return_val_if_fail (QUBE_IS_MANAGER (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  return _qube_store_transact (self->store, global_set_in_transaction, &change, error);
}
