/* qube-vm.c — QubeVm, a view of one qube in its manager's state store.
 *
 * A QubeVm keeps only what never changes for a qube (id, name, UUID,
 * class); every property, feature and tag is read from the store when
 * asked and written through at once, one transaction per change, so that
 * several processes sharing the store see each other's changes.
 */
#include "config.h"

#include <string.h>

#include "qube-error.h"
#include "qube-property.h"
#include "qube-storage-private.h"
#include "qube-vm-private.h"

/* Longest feature value accepted. */
#define FEATURE_VALUE_MAX 65536

struct _QubeVm {
  GObject parent_instance;

  QubeManager *manager;
  QubeStoreQube row;
};

G_DEFINE_FINAL_TYPE (QubeVm, qube_vm, G_TYPE_OBJECT)

static void
qube_vm_finalize (GObject *object)
{
  QubeVm *self = QUBE_VM (object);

  g_clear_object (&self->manager);
  _qube_store_qube_clear (&self->row);
  G_OBJECT_CLASS (qube_vm_parent_class)->finalize (object);
}

static void
qube_vm_class_init (QubeVmClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qube_vm_finalize;
}

static void
qube_vm_init (QubeVm *self)
{
}

QubeVm *
_qube_vm_new (QubeManager *manager, const QubeStoreQube *row)
{
  QubeVm *self = g_object_new (QUBE_TYPE_VM, NULL);

  self->manager = g_object_ref (manager);
  self->row.id = row->id;
  self->row.name = g_strdup (row->name);
  self->row.uuid = g_strdup (row->uuid);
  self->row.klass = g_strdup (row->klass);
  return self;
}

gint64
_qube_vm_get_id (QubeVm *self)
{
  return self->row.id;
}

QubeManager *
_qube_vm_get_manager (QubeVm *self)
{
  return self->manager;
}

gboolean
_qube_vm_is_running (QubeVm *self)
{
  if (_qube_class_from_name (self->row.klass) == QUBE_CLASS_ADMIN)
    return TRUE;
  return _qube_manager_is_running (self->manager, self);
}

static QubeStore *
vm_store (QubeVm *self)
{
  return _qube_manager_get_store (self->manager);
}

/* The qube may have been removed (by another process, or through another
 * view) since this view was made; a recreated qube of the same name is
 * another qube, with another id. */
static gboolean
vm_check_exists (QubeVm *self, GError **error)
{
  g_auto(QubeStoreQube) row = { 0 };
  g_autoptr(GError) local_error = NULL;

  if (_qube_store_get_qube_by_id (vm_store (self), self->row.id, &row, &local_error)
      && g_strcmp0 (row.name, self->row.name) == 0)
    return TRUE;
  if (local_error != NULL && !g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
               "qube '%s' no longer exists", self->row.name);
  return FALSE;
}

/* A change to this qube, run in one transaction once the qube is known to
 * still exist. */
typedef gboolean (*VmChangeFunc) (QubeStore *store, const QubeStoreQube *qube,
                                  const char *key, const char *value,
                                  GError **error);

typedef struct {
  QubeVm *vm;
  VmChangeFunc func;
  const char *key;
  const char *value;
} VmChange;

static gboolean
vm_change_in_transaction (QubeStore *store, gpointer data, GError **error)
{
  VmChange *change = data;

  return vm_check_exists (change->vm, error)
         && change->func (store, &change->vm->row, change->key, change->value, error);
}

static gboolean
vm_change (QubeVm *self, VmChangeFunc func, const char *key, const char *value,
           GError **error)
{
  VmChange change = { self, func, key, value };

  return _qube_store_transact (vm_store (self), vm_change_in_transaction, &change, error);
}

/* Some properties are what the running compartment was made from. */
static gboolean
vm_check_halted_for (QubeVm *self, const char *name, const char *value,
                     GError **error)
{
  g_autofree char *shown = NULL;

  if (!_qube_property_needs_halted (_qube_class_from_name (self->row.klass), name)
      || !_qube_vm_is_running (self))
    return TRUE;
  if (value != NULL)
    {
      shown = _qube_printable (value);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_RUNNING,
                   "cannot set %s of qube '%s' to '%s': the qube is running",
                   name, self->row.name, shown);
    }
  else
    g_set_error (error, QUBE_ERROR, QUBE_ERROR_RUNNING,
                 "cannot reset %s of qube '%s': the qube is running", name, self->row.name);
  return FALSE;
}

/* For the getters that have no GError: a store failure is logged and
 * reads as "nothing there". */
static void
vm_warn (QubeVm *self, GError *error)
{
  g_warning ("qube '%s': %s", self->row.name, error->message);
}

/**
 * qube_vm_get_name:
 * @self: a #QubeVm
 *
 * Returns: the qube's name, e.g. `work`
 */
const char *
qube_vm_get_name (QubeVm *self)
{
  g_return_val_if_fail (QUBE_IS_VM (self), NULL);
  return self->row.name;
}

/**
 * qube_vm_get_uuid:
 * @self: a #QubeVm
 *
 * Returns: the qube's UUID, fixed when it was created (a clone gets a new one)
 */
const char *
qube_vm_get_uuid (QubeVm *self)
{
  g_return_val_if_fail (QUBE_IS_VM (self), NULL);
  return self->row.uuid;
}

/**
 * qube_vm_get_klass:
 * @self: a #QubeVm
 *
 * Returns: the qube's class: `AdminVM`, `TemplateVM`, `AppVM`,
 *   `StandaloneVM` or `DispVM`
 */
const char *
qube_vm_get_klass (QubeVm *self)
{
  g_return_val_if_fail (QUBE_IS_VM (self), NULL);
  return self->row.klass;
}

/**
 * qube_vm_get_state:
 * @self: a #QubeVm
 *
 * The power state as the Admin API names it, from the qube's isolation
 * backend.  A qube found stopped since it was started (its guest powered
 * off, its compartment died) has its volumes stopped here.
 *
 * Returns: `Running`, `Paused`, `Transient` (starting), `Halting`,
 *   `Halted` or `Unknown`
 */
const char *
qube_vm_get_state (QubeVm *self)
{
  g_return_val_if_fail (QUBE_IS_VM (self), NULL);
  if (!_qube_manager_states_from_backend (self->manager))
    return _qube_vm_is_running (self) ? "Running" : "Halted";
  return _qube_vm_power_state (self);
}

/**
 * qube_vm_list_properties:
 * @self: a #QubeVm
 *
 * The names of the properties a qube of this class has, sorted.
 *
 * Returns: (transfer full) (array zero-terminated=1): property names
 */
char **
qube_vm_list_properties (QubeVm *self)
{
  g_return_val_if_fail (QUBE_IS_VM (self), NULL);
  return _qube_property_list (_qube_class_from_name (self->row.klass));
}

/**
 * qube_vm_get_property:
 * @self: a #QubeVm
 * @name: a property name, e.g. `netvm`
 * @is_default: (out) (optional): set to whether the value is the default
 *   (not set on this qube: a constant, a global property or the template's value)
 * @type: (out) (optional): set to the property's type
 * @error: return location for a #GError, or %NULL
 *
 * Reads a property's effective value.  Values are strings as the Admin API
 * shows them: integers in decimal, booleans `True`/`False`, a qube's name
 * or `""` for none.
 *
 * Returns: (transfer full) (nullable): the value, or %NULL with @error set
 *   (%QUBE_ERROR_NOT_FOUND when the qube has no such property)
 */
char *
qube_vm_get_property (QubeVm *self, const char *name, gboolean *is_default,
                      QubePropertyType *type, GError **error)
{
  char *value = NULL;

  g_return_val_if_fail (QUBE_IS_VM (self), NULL);
  g_return_val_if_fail (name != NULL, NULL);

  if (!vm_check_exists (self, error)
      || !_qube_property_get (vm_store (self), &self->row, name, &value,
                              is_default, type, error))
    return NULL;
  return value;
}

typedef struct {
  QubeVm *vm;
  const char *value;
} TemplateChange;

/* A new template: the qube's snapshots follow it, in the same transaction. */
static gboolean
template_change_in_transaction (QubeStore *store, gpointer data, GError **error)
{
  TemplateChange *change = data;

  return vm_check_exists (change->vm, error)
         && _qube_property_set (store, &change->vm->row, "template", change->value, error)
         && _qube_volumes_follow_template (change->vm->manager, store, &change->vm->row, error);
}

/**
 * qube_vm_set_property:
 * @self: a #QubeVm
 * @name: a property name
 * @value: the new value (booleans also accept `true`, `false`, `1`, `0`;
 *   vm-typed properties take a qube's name, or `""` for none where allowed)
 * @error: return location for a #GError, or %NULL
 *
 * Sets a property after checking its type, range and the rules between
 * qubes (a template of the right class, a netvm that provides network and
 * forms no loop, memory not above maxmem ...).
 *
 * Returns: %TRUE when the value was stored
 */
gboolean
qube_vm_set_property (QubeVm *self, const char *name, const char *value,
                      GError **error)
{
  g_return_val_if_fail (QUBE_IS_VM (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (value != NULL, FALSE);
  if (!vm_check_halted_for (self, name, value, error))
    return FALSE;
  if (strcmp (name, "template") == 0)
    {
      TemplateChange change = { self, value };
      return _qube_store_transact (vm_store (self), template_change_in_transaction, &change,
                                   error);
    }
  return vm_change (self, _qube_property_set, name, value, error);
}

static gboolean
property_reset (QubeStore *store, const QubeStoreQube *qube, const char *name,
                const char *unused, GError **error)
{
  return _qube_property_reset (store, qube, name, error);
}

/**
 * qube_vm_reset_property:
 * @self: a #QubeVm
 * @name: a property name
 * @error: return location for a #GError, or %NULL
 *
 * Makes a property follow its default again.
 *
 * Returns: %TRUE on success
 */
gboolean
qube_vm_reset_property (QubeVm *self, const char *name, GError **error)
{
  g_return_val_if_fail (QUBE_IS_VM (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  if (!vm_check_halted_for (self, name, NULL, error))
    return FALSE;
  return vm_change (self, property_reset, name, NULL, error);
}

/**
 * qube_vm_list_features:
 * @self: a #QubeVm
 *
 * Returns: (transfer full) (array zero-terminated=1): the keys of the
 *   qube's features, sorted
 */
char **
qube_vm_list_features (QubeVm *self)
{
  g_autoptr(GError) error = NULL;
  char **keys;

  g_return_val_if_fail (QUBE_IS_VM (self), NULL);
  keys = _qube_store_list_features (vm_store (self), self->row.id, &error);
  if (keys == NULL)
    {
      vm_warn (self, error);
      return g_new0 (char *, 1);
    }
  return keys;
}

/**
 * qube_vm_get_feature:
 * @self: a #QubeVm
 * @key: a feature key
 *
 * Returns: (transfer full) (nullable): the feature's value, or %NULL when
 *   the qube has no such feature
 */
char *
qube_vm_get_feature (QubeVm *self, const char *key)
{
  g_autoptr(GError) error = NULL;
  char *value = NULL;

  g_return_val_if_fail (QUBE_IS_VM (self), NULL);
  g_return_val_if_fail (key != NULL, NULL);
  if (!_qube_store_get_feature (vm_store (self), self->row.id, key, &value, &error))
    vm_warn (self, error);
  return value;
}

static gboolean
feature_set (QubeStore *store, const QubeStoreQube *qube, const char *key,
             const char *value, GError **error)
{
  if (!_qube_key_is_valid ("feature name", key, error))
    goto fail;
  if (!g_utf8_validate (value, -1, NULL) || strlen (value) > FEATURE_VALUE_MAX)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "the value is not valid UTF-8 of at most %d bytes", FEATURE_VALUE_MAX);
      goto fail;
    }
  if (!_qube_store_set_feature (store, qube->id, key, value, error))
    goto fail;
  return TRUE;

fail:
  {
    g_autofree char *shown = _qube_printable (key);
    g_prefix_error (error, "cannot set feature '%s' of qube '%s': ", shown, qube->name);
  }
  return FALSE;
}

/**
 * qube_vm_set_feature:
 * @self: a #QubeVm
 * @key: a feature key: ASCII letters, digits, `_`, `.`, `-`
 * @value: its value, UTF-8
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE when the feature was stored
 */
gboolean
qube_vm_set_feature (QubeVm *self, const char *key, const char *value,
                     GError **error)
{
  g_return_val_if_fail (QUBE_IS_VM (self), FALSE);
  g_return_val_if_fail (key != NULL && value != NULL, FALSE);
  return vm_change (self, feature_set, key, value, error);
}

static gboolean
feature_remove (QubeStore *store, const QubeStoreQube *qube, const char *key,
                const char *unused, GError **error)
{
  gboolean removed = FALSE;

  if (!_qube_store_remove_feature (store, qube->id, key, &removed, error))
    return FALSE;
  if (!removed)
    {
      g_autofree char *shown = _qube_printable (key);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
                   "cannot remove feature '%s' of qube '%s': there is no such feature",
                   shown, qube->name);
      return FALSE;
    }
  return TRUE;
}

/**
 * qube_vm_remove_feature:
 * @self: a #QubeVm
 * @key: a feature key
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE when the feature was removed; %FALSE with
 *   %QUBE_ERROR_NOT_FOUND when the qube did not have it
 */
gboolean
qube_vm_remove_feature (QubeVm *self, const char *key, GError **error)
{
  g_return_val_if_fail (QUBE_IS_VM (self), FALSE);
  g_return_val_if_fail (key != NULL, FALSE);
  return vm_change (self, feature_remove, key, NULL, error);
}

/**
 * qube_vm_list_tags:
 * @self: a #QubeVm
 *
 * Returns: (transfer full) (array zero-terminated=1): the qube's tags, sorted
 */
char **
qube_vm_list_tags (QubeVm *self)
{
  g_autoptr(GError) error = NULL;
  char **tags;

  g_return_val_if_fail (QUBE_IS_VM (self), NULL);
  tags = _qube_store_list_tags (vm_store (self), self->row.id, &error);
  if (tags == NULL)
    {
      vm_warn (self, error);
      return g_new0 (char *, 1);
    }
  return tags;
}

/**
 * qube_vm_has_tag:
 * @self: a #QubeVm
 * @tag: a tag
 *
 * Returns: whether the qube carries @tag
 */
gboolean
qube_vm_has_tag (QubeVm *self, const char *tag)
{
  g_autoptr(GError) error = NULL;
  gboolean has = FALSE;

  g_return_val_if_fail (QUBE_IS_VM (self), FALSE);
  g_return_val_if_fail (tag != NULL, FALSE);
  if (!_qube_store_has_tag (vm_store (self), self->row.id, tag, &has, &error))
    vm_warn (self, error);
  return has;
}

static gboolean
tag_add (QubeStore *store, const QubeStoreQube *qube, const char *tag,
         const char *unused, GError **error)
{
  if (!_qube_key_is_valid ("tag", tag, error)
      || !_qube_store_add_tag (store, qube->id, tag, error))
    {
      g_autofree char *shown = _qube_printable (tag);
      g_prefix_error (error, "cannot add tag '%s' to qube '%s': ", shown, qube->name);
      return FALSE;
    }
  return TRUE;
}

/**
 * qube_vm_add_tag:
 * @self: a #QubeVm
 * @tag: a tag: ASCII letters, digits, `_`, `.`, `-`
 * @error: return location for a #GError, or %NULL
 *
 * Adds a tag; adding a tag the qube already carries is not an error.
 *
 * Returns: %TRUE on success
 */
gboolean
qube_vm_add_tag (QubeVm *self, const char *tag, GError **error)
{
  g_return_val_if_fail (QUBE_IS_VM (self), FALSE);
  g_return_val_if_fail (tag != NULL, FALSE);
  return vm_change (self, tag_add, tag, NULL, error);
}

static gboolean
tag_remove (QubeStore *store, const QubeStoreQube *qube, const char *tag,
            const char *unused, GError **error)
{
  gboolean removed = FALSE;

  if (!_qube_store_remove_tag (store, qube->id, tag, &removed, error))
    return FALSE;
  if (!removed)
    {
      g_autofree char *shown = _qube_printable (tag);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
                   "cannot remove tag '%s' from qube '%s': the qube does not carry it",
                   shown, qube->name);
      return FALSE;
    }
  return TRUE;
}

/**
 * qube_vm_remove_tag:
 * @self: a #QubeVm
 * @tag: a tag
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE when the tag was removed; %FALSE with
 *   %QUBE_ERROR_NOT_FOUND when the qube did not carry it
 */
gboolean
qube_vm_remove_tag (QubeVm *self, const char *tag, GError **error)
{
  g_return_val_if_fail (QUBE_IS_VM (self), FALSE);
  g_return_val_if_fail (tag != NULL, FALSE);
  return vm_change (self, tag_remove, tag, NULL, error);
}
