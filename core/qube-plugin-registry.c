/* qube-plugin-registry.c — finds, checks and loads plugins.
 *
 * Every "*.so" in QUBE_PLUGIN_PATH and then in the installed plugin
 * directory is dlopen()ed and checked against the ABI rules of
 * abi/qube-plugin.h.  Each file ends up as one QubePluginInfo: loaded,
 * unavailable (its probe said so) or refused, with a reason a person can
 * act on.  One bad file never stops the others.  Plugins are never
 * dlclose()d: a plugin may have started threads or handed out pointers.
 *
 * A command that needs one plugin (a qube's backend, its vchan transport,
 * a pool's driver) reads only the file named after it (NAME.so, for a
 * storage driver storage-DRIVER.so) when that file provides it: loading
 * and probing every plugin costs a process a good part of its start on a
 * slow host.  Listing, looking up by name, and a plugin not found so
 * read them all.
 */
#include "config.h"

#include <dlfcn.h>
#include <link.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "qube-plugin-private.h"

/* The smallest tables a plugin built against ABI 1.0 can have: everything
 * up to the last 1.0 slot.  Written against the slot, not sizeof(), so
 * they stay right when later minors append slots. */
#define SIZE_UP_TO(type, slot) (offsetof (type, slot) + sizeof (((type *) 0)->slot))
#define DESC_SIZE_1_0 SIZE_UP_TO (QubePluginDesc, net)
#define BACKEND_SIZE_1_0 SIZE_UP_TO (QubeBackendOps, vchan_transport)
#define VCHAN_SIZE_1_0 SIZE_UP_TO (QubeVchanOps, close)
#define STORAGE_SIZE_1_0 SIZE_UP_TO (QubeStorageOps, volume_clone)
#define NET_SIZE_1_0 SIZE_UP_TO (QubeNetOps, firewall_set)

/* A table claiming to be larger than this is not a table. */
#define TABLE_SIZE_MAX (64 * 1024)
#define PLUGIN_NAME_MAX 64
/* Longest descriptor string we copy; they are one-liners. */
#define DESC_STRING_MAX 1024

struct _QubePluginInfo
{
  GObject parent_instance;

  char *name;
  char *path;
  QubePluginStatus status;
  char *reason;
  char *description;
  char *version;
  char *license;
  guint abi_major;
  guint abi_minor;
  QubePluginKind kinds;
  /* The name came from a valid descriptor (not from the file name). */
  gboolean name_from_descriptor;
  /* This file is the one that owns its name in the registry. */
  gboolean owns_name;

  const QubePluginDesc *desc;
  void *data;
  QubeHost *host;
  /* Set once init() was called: the host table then belongs to the
   * plugin for good. */
  gboolean host_given;
  GRecMutex lock;
};

G_DEFINE_TYPE (QubePluginInfo, qube_plugin_info, G_TYPE_OBJECT)

struct _QubePluginRegistry
{
  GObject parent_instance;

  char *state_dir;
  char *runtime_dir;
  char **search_path;

  GMutex load_lock;
  /* Every file of the search path was read (else only the files that
   * _qube_plugin_registry_find() looked for by name). */
  gboolean loaded;
  /* QubePluginInfo, in load order once loaded (before, in the order the
   * files were read); unchanged once loaded. */
  GPtrArray *plugins;
  /* name -> QubePluginInfo that owns it (borrowed from plugins) */
  GHashTable *by_name;
  /* "dev:ino" of each file read -> its QubePluginInfo (borrowed), so that
   * no file is read twice, under two paths or by name and then in full */
  GHashTable *by_file;
  GKeyFile *config;     /* plugins.conf, NULL when there is none */
  gboolean config_read;
};

G_DEFINE_TYPE (QubePluginRegistry, qube_plugin_registry, G_TYPE_OBJECT)

/* ---- QubePluginInfo ---- */

static void
qube_plugin_info_finalize (GObject *object)
{
  QubePluginInfo *self = QUBE_PLUGIN_INFO (object);

  g_free (self->name);
  g_free (self->path);
  g_free (self->reason);
  g_free (self->description);
  g_free (self->version);
  g_free (self->license);
  /* A host table a plugin has seen may still be used by it. */
  if (!self->host_given)
    _qube_host_free (self->host);
  g_rec_mutex_clear (&self->lock);

  G_OBJECT_CLASS (qube_plugin_info_parent_class)->finalize (object);
}

static void
qube_plugin_info_class_init (QubePluginInfoClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qube_plugin_info_finalize;
}

static void
qube_plugin_info_init (QubePluginInfo *self)
{
  g_rec_mutex_init (&self->lock);
}

/**
 * qube_plugin_info_get_name:
 * @self: a #QubePluginInfo
 *
 * The plugin's name from its descriptor; for a file refused before its
 * descriptor could be read, the file name without ".so".
 *
 * Returns: (transfer none): the name
 */
const char *
qube_plugin_info_get_name (QubePluginInfo *self)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (self), NULL);
  return self->name;
}

/**
 * qube_plugin_info_get_path:
 * @self: a #QubePluginInfo
 *
 * Returns: (transfer none): the file the plugin was read from
 */
const char *
qube_plugin_info_get_path (QubePluginInfo *self)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (self), NULL);
  return self->path;
}

/**
 * qube_plugin_info_get_status:
 * @self: a #QubePluginInfo
 *
 * Returns: whether the plugin is loaded, unavailable or refused
 */
QubePluginStatus
qube_plugin_info_get_status (QubePluginInfo *self)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (self), QUBE_PLUGIN_REFUSED);
  return self->status;
}

/**
 * qube_plugin_info_get_reason:
 * @self: a #QubePluginInfo
 *
 * Why the plugin was refused or is unavailable.
 *
 * Returns: (transfer none) (nullable): the reason, or %NULL for a loaded
 *   plugin
 */
const char *
qube_plugin_info_get_reason (QubePluginInfo *self)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (self), NULL);
  return self->reason;
}

/**
 * qube_plugin_info_get_detail:
 * @self: a #QubePluginInfo
 *
 * How a loaded plugin works on this host right now, in one line, as the
 * plugin itself says it (e.g. the kvm backend's acceleration: `acceleration:
 * tcg (cannot open /dev/kvm: No such file or directory)`).  Asked anew at
 * each call.
 *
 * Returns: (transfer full) (nullable): the detail, or %NULL when the plugin
 *   is not loaded or has nothing to say
 */
char *
qube_plugin_info_get_detail (QubePluginInfo *self)
{
  char buf[512] = "";
  int rc;

  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (self), NULL);
  if (self->status == QUBE_PLUGIN_REFUSED || self->desc == NULL ||
      self->desc->size < SIZE_UP_TO (QubePluginDesc, describe) || self->desc->describe == NULL)
    return NULL;
  g_rec_mutex_lock (&self->lock);
  rc = self->desc->describe (self->data, buf, sizeof buf);
  g_rec_mutex_unlock (&self->lock);
  buf[sizeof buf - 1] = '\0';
  /* One line: a plugin's text never breaks a listing. */
  for (char *c = buf; *c != '\0'; c++)
    if (*c == '\n' || *c == '\r' || *c == '\t')
      *c = ' ';
  if (rc != 0 || buf[0] == '\0' || !g_utf8_validate (buf, -1, NULL))
    return NULL;
  return g_strdup (buf);
}

/**
 * qube_plugin_info_get_description:
 * @self: a #QubePluginInfo
 *
 * Returns: (transfer none) (nullable): the plugin's one-line description
 */
const char *
qube_plugin_info_get_description (QubePluginInfo *self)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (self), NULL);
  return self->description;
}

/**
 * qube_plugin_info_get_version:
 * @self: a #QubePluginInfo
 *
 * Returns: (transfer none) (nullable): the plugin's own version
 */
const char *
qube_plugin_info_get_version (QubePluginInfo *self)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (self), NULL);
  return self->version;
}

/**
 * qube_plugin_info_get_license:
 * @self: a #QubePluginInfo
 *
 * Returns: (transfer none) (nullable): the plugin's licence (SPDX)
 */
const char *
qube_plugin_info_get_license (QubePluginInfo *self)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (self), NULL);
  return self->license;
}

/**
 * qube_plugin_info_get_abi_major:
 * @self: a #QubePluginInfo
 *
 * Returns: the ABI major the plugin was built against (0 when unknown)
 */
guint
qube_plugin_info_get_abi_major (QubePluginInfo *self)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (self), 0);
  return self->abi_major;
}

/**
 * qube_plugin_info_get_abi_minor:
 * @self: a #QubePluginInfo
 *
 * Returns: the ABI minor the plugin was built against
 */
guint
qube_plugin_info_get_abi_minor (QubePluginInfo *self)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (self), 0);
  return self->abi_minor;
}

/**
 * qube_plugin_info_get_kinds:
 * @self: a #QubePluginInfo
 *
 * Returns: the ABIs the plugin implements
 */
QubePluginKind
qube_plugin_info_get_kinds (QubePluginInfo *self)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (self), QUBE_PLUGIN_KIND_NONE);
  return self->kinds;
}

const QubePluginDesc *
_qube_plugin_info_get_desc (QubePluginInfo *info)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (info), NULL);
  return info->status == QUBE_PLUGIN_REFUSED ? NULL : info->desc;
}

void *
_qube_plugin_info_get_data (QubePluginInfo *info)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (info), NULL);
  return info->data;
}

const QubeHost *
_qube_plugin_info_get_host (QubePluginInfo *info)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (info), NULL);
  return info->host;
}

GRecMutex *
_qube_plugin_info_get_lock (QubePluginInfo *info)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (info), NULL);
  return &info->lock;
}

/* ---- errors from plugins ---- */

QubeError
_qube_abi_error_to_qube_error (int abi_error)
{
  switch (abi_error)
    {
    case QUBE_ABI_E_INVALID: return QUBE_ERROR_INVALID;
    case QUBE_ABI_E_NOT_FOUND: return QUBE_ERROR_NOT_FOUND;
    case QUBE_ABI_E_EXISTS: return QUBE_ERROR_EXISTS;
    case QUBE_ABI_E_BUSY: return QUBE_ERROR_IN_USE;
    case QUBE_ABI_E_NO_SPACE: return QUBE_ERROR_NO_SPACE;
    case QUBE_ABI_E_UNAVAILABLE: return QUBE_ERROR_UNAVAILABLE;
    case QUBE_ABI_E_NOT_SUPPORTED: return QUBE_ERROR_NOT_SUPPORTED;
    case QUBE_ABI_E_TIMEOUT: return QUBE_ERROR_TIMEOUT;
    case QUBE_ABI_E_IO: return QUBE_ERROR_IO;
    case QUBE_ABI_E_PROTOCOL: return QUBE_ERROR_PROTOCOL;
    case QUBE_ABI_E_NO_MEMORY:
    case QUBE_ABI_E_FAILED:
    default:
      return QUBE_ERROR_FAILED;
    }
}

static gboolean
abi_error_is_known (int code)
{
  return code > QUBE_ABI_OK && code <= QUBE_ABI_E_PROTOCOL;
}

/* The plugin's message for the failure the calling thread just saw, or a
 * sentence saying it gave none.  *code_out is the code to report: `rc`
 * when it is a QubeAbiError, else the one passed to set_error(). */
static char *
take_plugin_message (QubePluginInfo *info, int rc, int *code_out)
{
  g_autofree char *message = NULL;
  int code = 0;
  gboolean have = _qube_host_take_thread_error (info->host, &code, &message);

  *code_out = abi_error_is_known (rc) ? rc
              : (have && abi_error_is_known (code)) ? code : QUBE_ABI_E_FAILED;
  if (message != NULL && message[0] != '\0')
    return g_steal_pointer (&message);
  return g_strdup_printf ("plugin '%s' failed (error %d) without saying why",
                          info->name, rc);
}

gboolean
_qube_plugin_take_error (QubePluginInfo *info,
                         int rc,
                         const char *what,
                         GError **error)
{
  g_autofree char *message = NULL;
  int code;

  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (info), FALSE);

  message = take_plugin_message (info, rc, &code);
  if (what != NULL)
    g_set_error (error, QUBE_ERROR, _qube_abi_error_to_qube_error (code),
                 "%s: %s", what, message);
  else
    g_set_error_literal (error, QUBE_ERROR,
                         _qube_abi_error_to_qube_error (code), message);
  return FALSE;
}

gboolean
_qube_plugin_not_supported (QubePluginInfo *info,
                            const char *operation,
                            GError **error)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_INFO (info), FALSE);

  g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_SUPPORTED,
               "%s is not supported by plugin '%s'", operation, info->name);
  return FALSE;
}

/* ---- checking a descriptor ---- */

/* Marks the file refused, taking `reason`. */
static void
refuse (QubePluginInfo *info, char *reason)
{
  info->status = QUBE_PLUGIN_REFUSED;
  g_free (info->reason);
  info->reason = reason;
}

static gboolean
plugin_name_is_valid (const char *name)
{
  size_t len;

  if (name == NULL)
    return FALSE;
  len = strnlen (name, PLUGIN_NAME_MAX + 1);
  if (len == 0 || len > PLUGIN_NAME_MAX)
    return FALSE;
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_islower (name[i]) && !g_ascii_isdigit (name[i]) && name[i] != '-')
      return FALSE;
  return TRUE;
}

/* A copy of a descriptor string that is safe to show. */
static char *
desc_string (const char *s)
{
  g_autofree char *bounded = NULL;

  if (s == NULL)
    return NULL;
  bounded = g_strndup (s, DESC_STRING_MAX);
  return g_utf8_make_valid (bounded, -1);
}

/* Table sizes are read from the plugin; `size` is the table's first
 * field in every ABI. */
static gboolean
check_table (QubePluginInfo *info, const void *table, const char *what,
             size_t min_size)
{
  uint32_t size;

  if (table == NULL)
    return TRUE;
  size = *(const uint32_t *) table;
  if (size < min_size || size > TABLE_SIZE_MAX)
    {
      refuse (info, g_strdup_printf ("its %s table says it is %u bytes; "
                                     "an ABI 1.0 table is at least %zu",
                                     what, size, min_size));
      return FALSE;
    }
  return TRUE;
}

/* Says why a plugin failed init() or probe(). */
static char *
plugin_failure (QubePluginInfo *info, int rc, const char *what)
{
  int code;
  g_autofree char *message = take_plugin_message (info, rc, &code);

  return g_strdup_printf ("%s: %s", what, message);
}

/* dlerror() repeats the path first; the info already has it. */
static char *
dl_reason (const char *path)
{
  const char *text = dlerror ();
  size_t path_len = strlen (path);

  if (text == NULL)
    return g_strdup ("unknown dynamic loader error");
  if (strncmp (text, path, path_len) == 0 && strncmp (text + path_len, ": ", 2) == 0)
    text += path_len + 2;
  return g_strdup (text);
}

/* Checks what the descriptor says; on success info has its name, strings
 * and kinds.  Does not look at other plugins and calls nothing. */
static gboolean
check_descriptor (QubePluginInfo *info, const QubePluginDesc *desc)
{
  info->abi_major = desc->abi_major;
  info->abi_minor = desc->abi_minor;

  /* Only abi_major, abi_minor and size are laid out alike in every major. */
  if (desc->abi_major != QUBE_ABI_MAJOR)
    {
      refuse (info, g_strdup_printf ("it was built for plugin ABI %u.%u, but "
                                     "this libqube has plugin ABI %u.%u "
                                     "(the major version must match)",
                                     desc->abi_major, desc->abi_minor,
                                     QUBE_ABI_MAJOR, QUBE_ABI_MINOR));
      return FALSE;
    }
  if (desc->abi_minor > QUBE_ABI_MINOR)
    {
      refuse (info, g_strdup_printf ("it was built for plugin ABI %u.%u, newer "
                                     "than this libqube's plugin ABI %u.%u "
                                     "(update libqube or rebuild the plugin)",
                                     desc->abi_major, desc->abi_minor,
                                     QUBE_ABI_MAJOR, QUBE_ABI_MINOR));
      return FALSE;
    }
  if (desc->size < DESC_SIZE_1_0 || desc->size > TABLE_SIZE_MAX)
    {
      refuse (info, g_strdup_printf ("its descriptor says it is %u bytes; an "
                                     "ABI 1.0 descriptor is at least %zu",
                                     desc->size, (size_t) DESC_SIZE_1_0));
      return FALSE;
    }
  if (!plugin_name_is_valid (desc->name))
    {
      g_autofree char *shown = desc_string (desc->name);

      refuse (info, g_strdup_printf ("its name '%s' is not valid: a plugin "
                                     "name is 1 to %d characters of a-z, 0-9 "
                                     "and '-'",
                                     shown != NULL ? shown : "(none)",
                                     PLUGIN_NAME_MAX));
      return FALSE;
    }

  g_free (info->name);
  info->name = g_strdup (desc->name);
  info->name_from_descriptor = TRUE;
  info->description = desc_string (desc->description);
  info->version = desc_string (desc->version);
  info->license = desc_string (desc->license);

  if (!check_table (info, desc->backend, "isolation backend", BACKEND_SIZE_1_0) ||
      !check_table (info, desc->vchan, "vchan transport", VCHAN_SIZE_1_0) ||
      !check_table (info, desc->storage, "storage driver", STORAGE_SIZE_1_0) ||
      !check_table (info, desc->net, "network uplink", NET_SIZE_1_0))
    return FALSE;
  if (desc->storage != NULL && !plugin_name_is_valid (desc->storage->driver))
    {
      refuse (info, g_strdup ("its storage table has no valid driver name "
                              "(a-z, 0-9 and '-')"));
      return FALSE;
    }

  info->kinds = (desc->backend != NULL ? QUBE_PLUGIN_KIND_BACKEND : 0) |
                (desc->vchan != NULL ? QUBE_PLUGIN_KIND_VCHAN : 0) |
                (desc->storage != NULL ? QUBE_PLUGIN_KIND_STORAGE : 0) |
                (desc->net != NULL ? QUBE_PLUGIN_KIND_NET : 0);
  return TRUE;
}

/* ---- QubePluginRegistry ---- */

static void
qube_plugin_registry_finalize (GObject *object)
{
  QubePluginRegistry *self = QUBE_PLUGIN_REGISTRY (object);

  g_free (self->state_dir);
  g_free (self->runtime_dir);
  g_strfreev (self->search_path);
  g_hash_table_unref (self->by_name);
  g_hash_table_unref (self->by_file);
  g_clear_pointer (&self->config, g_key_file_unref);
  g_ptr_array_unref (self->plugins);
  g_mutex_clear (&self->load_lock);

  G_OBJECT_CLASS (qube_plugin_registry_parent_class)->finalize (object);
}

static void
qube_plugin_registry_class_init (QubePluginRegistryClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qube_plugin_registry_finalize;
}

static void
qube_plugin_registry_init (QubePluginRegistry *self)
{
  g_mutex_init (&self->load_lock);
  self->plugins = g_ptr_array_new_with_free_func (g_object_unref);
  self->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  self->by_file = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

static char **
build_search_path (void)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  const char *env = g_getenv ("QUBE_PLUGIN_PATH");

  if (env != NULL)
    {
      g_auto(GStrv) dirs = g_strsplit (env, ":", -1);

      for (gsize i = 0; dirs[i] != NULL; i++)
        if (dirs[i][0] != '\0')
          g_strv_builder_add (builder, dirs[i]);
    }
  g_strv_builder_add (builder, QUBE_PLUGIN_DIR);
  return g_strv_builder_end (builder);
}

/**
 * qube_plugin_registry_new:
 * @state_dir: the directory of persistent state (plugins keep their files
 *   under it; `plugins.conf` there configures them)
 * @runtime_dir: the directory of volatile runtime files
 *
 * Makes a registry.  The search path is QUBE_PLUGIN_PATH (as it is now)
 * followed by the installed plugin directory.  Nothing is loaded until
 * qube_plugin_registry_load().
 *
 * Returns: (transfer full): a new registry
 */
QubePluginRegistry *
qube_plugin_registry_new (const char *state_dir,
                          const char *runtime_dir)
{
  QubePluginRegistry *self;

  g_return_val_if_fail (state_dir != NULL, NULL);
  g_return_val_if_fail (runtime_dir != NULL, NULL);

  self = g_object_new (QUBE_TYPE_PLUGIN_REGISTRY, NULL);
  self->state_dir = g_strdup (state_dir);
  self->runtime_dir = g_strdup (runtime_dir);
  self->search_path = build_search_path ();
  return self;
}

/**
 * qube_plugin_registry_get_search_path:
 * @self: a #QubePluginRegistry
 *
 * Returns: (transfer full) (array zero-terminated=1): the directories
 *   searched, in order
 */
char **
qube_plugin_registry_get_search_path (QubePluginRegistry *self)
{
  g_return_val_if_fail (QUBE_IS_PLUGIN_REGISTRY (self), NULL);
  return g_strdupv (self->search_path);
}

/* Reads plugins.conf; a missing file means no settings. */
static GKeyFile *
load_plugin_config (QubePluginRegistry *self)
{
  g_autoptr(GKeyFile) config = g_key_file_new ();
  g_autofree char *path = g_build_filename (self->state_dir, "plugins.conf", NULL);
  g_autoptr(GError) local_error = NULL;

  if (!g_key_file_load_from_file (config, path, G_KEY_FILE_NONE, &local_error))
    {
      if (!g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        g_warning ("cannot read plugin configuration %s, plugins get no "
                   "settings: %s", path, local_error->message);
      return NULL;
    }
  return g_steal_pointer (&config);
}



/* Forgets an error a plugin left on this thread, so that a failure of the
 * next call is not explained by an older message. */
static void
clear_thread_error (void)
{
  g_autofree char *message = NULL;
  int code;

  _qube_host_take_thread_error (NULL, &code, &message);
}

/* dlsym() also searches the libraries a file depends on; a descriptor
 * must be the file's own. */
static gboolean
symbol_is_from (void *handle, const void *symbol)
{
  struct link_map *map = NULL;
  Dl_info where;

  if (dlinfo (handle, RTLD_DI_LINKMAP, &map) != 0 || map == NULL)
    return FALSE;
  if (dladdr (symbol, &where) == 0)
    return FALSE;
  return (uintptr_t) where.dli_fbase == (uintptr_t) map->l_addr;
}

/* Loads one file and says what became of it. */
static QubePluginInfo *
load_plugin_file (QubePluginRegistry *self, const char *path, GKeyFile *config)
{
  g_autoptr(QubePluginInfo) info = g_object_new (QUBE_TYPE_PLUGIN_INFO, NULL);
  g_autofree char *base = g_path_get_basename (path);
  const QubePluginDesc *desc;
  QubePluginInfo *owner;
  void *handle;
  int rc;

  info->path = g_strdup (path);
  info->name = g_strndup (base, strlen (base) - strlen (".so"));
  info->status = QUBE_PLUGIN_REFUSED;

  dlerror ();
  handle = dlopen (path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL)
    {
      g_autofree char *why = dl_reason (path);

      refuse (info, g_strdup_printf ("it cannot be loaded as a shared object: %s",
                                     why));
      return g_steal_pointer (&info);
    }

  dlerror ();
  desc = dlsym (handle, QUBE_PLUGIN_DESCRIPTOR_SYMBOL);
  if (desc == NULL || !symbol_is_from (handle, desc))
    {
      refuse (info, g_strdup ("it is not a libqube plugin: it has no '"
                              QUBE_PLUGIN_DESCRIPTOR_SYMBOL "' symbol"));
      return g_steal_pointer (&info);
    }
  if (!check_descriptor (info, desc))
    return g_steal_pointer (&info);

  owner = g_hash_table_lookup (self->by_name, info->name);
  if (owner != NULL)
    {
      refuse (info, g_strdup_printf ("a plugin named '%s' was already found "
                                     "at %s (the first one found is used)",
                                     info->name, owner->path));
      return g_steal_pointer (&info);
    }
  /* The first file with a valid descriptor owns the name, even if its
   * init fails below: a later copy must not silently stand in for it. */
  info->owns_name = TRUE;
  info->desc = desc;
  info->host = _qube_host_new (info->name, self->state_dir, self->runtime_dir,
                               config);

  if (desc->init != NULL)
    {
      clear_thread_error ();
      info->host_given = TRUE;
      rc = desc->init (info->host, &info->data);
      if (rc != 0)
        {
          refuse (info, plugin_failure (info, rc, "its initialisation failed"));
          return g_steal_pointer (&info);
        }
    }

  if (desc->probe != NULL)
    {
      clear_thread_error ();
      rc = desc->probe (info->data);
      if (rc != 0)
        {
          int code;

          info->status = QUBE_PLUGIN_UNAVAILABLE;
          info->reason = take_plugin_message (info, rc, &code);
          return g_steal_pointer (&info);
        }
    }

  info->status = QUBE_PLUGIN_LOADED;
  return g_steal_pointer (&info);
}

static int
compare_file_names (gconstpointer a, gconstpointer b)
{
  /* Byte order: the C locale's order, whatever the user's locale. */
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static const char *
status_word (QubePluginStatus status)
{
  switch (status)
    {
    case QUBE_PLUGIN_LOADED: return "loaded";
    case QUBE_PLUGIN_UNAVAILABLE: return "unavailable";
    case QUBE_PLUGIN_REFUSED:
    default:
      return "refused";
    }
}

/* What identifies the file at `path` ("dev:ino"): the same file reached
 * twice (a symbolic link, a directory listed twice) is one plugin, not a
 * duplicate of itself.  NULL when it is not a regular file: a directory
 * or a device named *.so is not a plugin file. */
static char *
plugin_file_id (const char *path)
{
  GStatBuf st;

  if (g_stat (path, &st) != 0 || !S_ISREG (st.st_mode))
    return NULL;
  return g_strdup_printf ("%ju:%ju", (uintmax_t) st.st_dev, (uintmax_t) st.st_ino);
}

/* Reads the plugin file at `path` once: its QubePluginInfo (the one made
 * before when the same file was read already, under this path or
 * another), or NULL when it is not a regular file.  *is_new says which.
 * Called with load_lock held. */
static QubePluginInfo *
read_plugin_file (QubePluginRegistry *self, const char *path, gboolean *is_new)
{
  g_autofree char *file_id = plugin_file_id (path);
  QubePluginInfo *info;

  if (is_new != NULL)
    *is_new = FALSE;
  if (file_id == NULL)
    return NULL;
  info = g_hash_table_lookup (self->by_file, file_id);
  if (info != NULL)
    return info;

  if (!self->config_read)
    {
      self->config = load_plugin_config (self);
      self->config_read = TRUE;
    }
  info = load_plugin_file (self, path, self->config);
  g_debug ("plugin %s (%s): %s%s%s", info->name, path,
           status_word (info->status),
           info->reason != NULL ? ": " : "",
           info->reason != NULL ? info->reason : "");
  g_ptr_array_add (self->plugins, info);
  if (info->owns_name)
    g_hash_table_insert (self->by_name, info->name, info);
  g_hash_table_insert (self->by_file, g_steal_pointer (&file_id), info);
  if (is_new != NULL)
    *is_new = TRUE;
  return info;
}

/* The names of the "*.so" files of `dir`, in byte order: the order in
 * which they are read.  NULL when `dir` cannot be read; `quiet`: that is
 * said elsewhere. */
static GPtrArray *
plugin_file_names (const char *dir, gboolean quiet)
{
  g_autoptr(GDir) gdir = NULL;
  g_autoptr(GError) local_error = NULL;
  GPtrArray *names;
  const char *name;

  gdir = g_dir_open (dir, 0, &local_error);
  if (gdir == NULL)
    {
      if (quiet || g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        g_debug ("cannot read plugin directory %s: %s", dir, local_error->message);
      else
        g_warning ("cannot read plugin directory %s: %s", dir,
                   local_error->message);
      return NULL;
    }

  names = g_ptr_array_new_with_free_func (g_free);
  while ((name = g_dir_read_name (gdir)) != NULL)
    if (strlen (name) > strlen (".so") && g_str_has_suffix (name, ".so"))
      g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_file_names);
  return names;
}

/* Reads every "*.so" of `dir` in byte order, appending each plugin to
 * `ordered` the first time it is reached (`placed` holds those). */
static void
load_directory (QubePluginRegistry *self, const char *dir, GPtrArray *ordered,
                GHashTable *placed)
{
  g_autoptr(GPtrArray) names = plugin_file_names (dir, FALSE);

  if (names == NULL)
    return;
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *path = g_build_filename (dir, g_ptr_array_index (names, i), NULL);
      gboolean is_new;
      QubePluginInfo *info = read_plugin_file (self, path, &is_new);

      if (info == NULL)
        continue;
      if (!g_hash_table_add (placed, info))
        {
          g_debug ("plugin file %s was already read under another path", path);
          continue;
        }
      g_ptr_array_add (ordered, g_object_ref (info));
    }
}

/* Reads every file of the search path, in order.  With load_lock held. */
static void
load_all_locked (QubePluginRegistry *self)
{
  g_autoptr(GPtrArray) ordered = NULL;
  g_autoptr(GHashTable) placed = NULL;
  GPtrArray *before;

  if (self->loaded)
    return;
  ordered = g_ptr_array_new_with_free_func (g_object_unref);
  placed = g_hash_table_new (NULL, NULL);
  for (gsize i = 0; self->search_path[i] != NULL; i++)
    load_directory (self, self->search_path[i], ordered, placed);
  /* A file read by name earlier and gone from its directory since stays
   * listed (and alive: by_name may hold it). */
  before = self->plugins;
  for (guint i = 0; i < before->len; i++)
    if (g_hash_table_add (placed, g_ptr_array_index (before, i)))
      g_ptr_array_add (ordered, g_object_ref (g_ptr_array_index (before, i)));
  self->plugins = g_steal_pointer (&ordered);
  g_ptr_array_unref (before);
  self->loaded = TRUE;
}

/* Whether the plugin file at `path` declares the name `name` or (with
 * `driver`) provides that storage driver, from its descriptor alone (the
 * checks of a full load): its init and probe do not run.  A file that
 * cannot be loaded, or whose descriptor a full load refuses, claims
 * nothing. */
static gboolean
file_claims (const char *path, const char *name, const char *driver)
{
  g_autoptr(QubePluginInfo) probe = g_object_new (QUBE_TYPE_PLUGIN_INFO, NULL);
  const QubePluginDesc *desc;
  gboolean declares;
  void *handle;

  /* Never unloaded (not every library survives it): reading the file in
   * full later opens the same object again. */
  handle = dlopen (path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == NULL)
    {
      dlerror ();
      return FALSE;
    }
  desc = dlsym (handle, QUBE_PLUGIN_DESCRIPTOR_SYMBOL);
  declares = desc != NULL && symbol_is_from (handle, desc) && check_descriptor (probe, desc)
             && (g_str_equal (probe->name, name)
                 || (driver != NULL && desc->storage != NULL && desc->storage->driver != NULL
                     && g_str_equal (desc->storage->driver, driver)));
  dlclose (handle);
  return declares;
}

/* What a command that asks for one plugin by name needs, without loading
 * (and probing) all the others: the plugin that a full load makes the
 * owner of `name`, read from the file NAME.so (for a storage `driver`,
 * `name` is storage-DRIVER, and the driver's first provider is wanted).
 * A plugin's name is the one its descriptor declares, not its file's, so
 * NAME.so is read only when it declares `name`, and every file a full load
 * reads before it is looked at (by its descriptor alone); when one of them
 * claims `name` or the driver as well, everything is loaded instead.
 * With load_lock held. */
static void
load_named_locked (QubePluginRegistry *self, const char *name, const char *driver)
{
  g_autofree char *file = NULL;
  gboolean exists = FALSE;

  if (self->loaded || !plugin_name_is_valid (name))
    return;
  file = g_strconcat (name, ".so", NULL);
  for (gsize i = 0; self->search_path[i] != NULL && !exists; i++)
    {
      g_autofree char *path = g_build_filename (self->search_path[i], file, NULL);

      exists = g_file_test (path, G_FILE_TEST_IS_REGULAR);
    }
  /* No file of that name: the caller loads them all if it must. */
  if (!exists)
    return;

  for (gsize i = 0; self->search_path[i] != NULL; i++)
    {
      g_autoptr(GPtrArray) names = plugin_file_names (self->search_path[i], TRUE);

      for (guint j = 0; names != NULL && j < names->len; j++)
        {
          const char *base = g_ptr_array_index (names, j);
          g_autofree char *path = g_build_filename (self->search_path[i], base, NULL);
          g_autofree char *file_id = NULL;

          if (g_hash_table_contains (self->by_name, name))
            return;
          /* A file read already would own the name by now. */
          file_id = plugin_file_id (path);
          if (file_id == NULL || g_hash_table_contains (self->by_file, file_id))
            continue;
          if (g_str_equal (base, file))
            {
              /* Named so, it may still declare another name, which an
               * earlier file may own. */
              if (!file_claims (path, name, NULL))
                {
                  load_all_locked (self);
                  return;
                }
              read_plugin_file (self, path, NULL);
              return;
            }
          if (file_claims (path, name, driver))
            {
              g_debug ("plugin file %s also declares the name '%s': loading every plugin",
                       path, name);
              load_all_locked (self);
              return;
            }
        }
    }
}

/**
 * qube_plugin_registry_load:
 * @self: a #QubePluginRegistry
 *
 * Loads every plugin of the search path: in each directory, in order,
 * every "*.so" file in byte (C locale) order.  The first plugin found with
 * a name wins.  Files that are not plugins or break the ABI rules are
 * recorded as refused, with the reason.  Only the first call loads; later
 * calls do nothing.  Thread-safe.
 */
void
qube_plugin_registry_load (QubePluginRegistry *self)
{
  g_autoptr(GMutexLocker) locker = NULL;

  g_return_if_fail (QUBE_IS_PLUGIN_REGISTRY (self));

  locker = g_mutex_locker_new (&self->load_lock);
  load_all_locked (self);
}

/**
 * qube_plugin_registry_list:
 * @self: a #QubePluginRegistry
 *
 * Every plugin file found, loaded or not, in load order.  Loads the
 * registry first if that was not done yet.  The plugins belong to the
 * registry and live as long as it does.
 *
 * Returns: (transfer container) (element-type QubePluginInfo): the plugins
 */
GPtrArray *
qube_plugin_registry_list (QubePluginRegistry *self)
{
  GPtrArray *list;

  g_return_val_if_fail (QUBE_IS_PLUGIN_REGISTRY (self), NULL);

  qube_plugin_registry_load (self);
  list = g_ptr_array_sized_new (self->plugins->len);
  for (guint i = 0; i < self->plugins->len; i++)
    g_ptr_array_add (list, g_ptr_array_index (self->plugins, i));
  return list;
}

/**
 * qube_plugin_registry_lookup:
 * @self: a #QubePluginRegistry
 * @name: a plugin name
 *
 * The plugin called @name: the one that owns the name, or else the first
 * file of that name that was refused before its name could be read.  Loads
 * the registry first if that was not done yet.
 *
 * Returns: (transfer none) (nullable): the plugin, or %NULL
 */
QubePluginInfo *
qube_plugin_registry_lookup (QubePluginRegistry *self,
                             const char *name)
{
  QubePluginInfo *info;

  g_return_val_if_fail (QUBE_IS_PLUGIN_REGISTRY (self), NULL);
  g_return_val_if_fail (name != NULL, NULL);

  qube_plugin_registry_load (self);
  info = g_hash_table_lookup (self->by_name, name);
  if (info != NULL)
    return info;
  for (guint i = 0; i < self->plugins->len; i++)
    {
      info = g_ptr_array_index (self->plugins, i);
      if (g_str_equal (info->name, name))
        return info;
    }
  return NULL;
}

static const char *
kind_word (QubePluginKind kind)
{
  switch (kind)
    {
    case QUBE_PLUGIN_KIND_BACKEND: return "isolation backend";
    case QUBE_PLUGIN_KIND_VCHAN: return "vchan transport";
    case QUBE_PLUGIN_KIND_STORAGE: return "storage driver";
    case QUBE_PLUGIN_KIND_NET: return "network uplink";
    case QUBE_PLUGIN_KIND_NONE:
    default:
      return "nothing";
    }
}

/* Does `info` provide `kind` under `name`? */
static gboolean
provides (QubePluginInfo *info, QubePluginKind kind, const char *name)
{
  if (info->status == QUBE_PLUGIN_REFUSED || (info->kinds & kind) == 0)
    return FALSE;
  if (kind == QUBE_PLUGIN_KIND_STORAGE)
    return g_str_equal (info->desc->storage->driver, name);
  return g_str_equal (info->name, name);
}

/* The first plugin read that provides `kind` under `name`, or NULL.  With
 * load_lock held. */
static QubePluginInfo *
first_provider (QubePluginRegistry *self, QubePluginKind kind, const char *name)
{
  for (guint i = 0; i < self->plugins->len; i++)
    {
      QubePluginInfo *info = g_ptr_array_index (self->plugins, i);

      if (provides (info, kind, name))
        return info;
    }
  return NULL;
}

QubePluginInfo *
_qube_plugin_registry_find (QubePluginRegistry *self,
                            QubePluginKind kind,
                            const char *name,
                            GError **error)
{
  QubePluginInfo *info;
  g_autofree char *searched = NULL;

  g_return_val_if_fail (QUBE_IS_PLUGIN_REGISTRY (self), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (kind != QUBE_PLUGIN_KIND_NONE && (kind & (kind - 1)) == 0, NULL);

  /* The plugin named so (for a storage driver, the one named
   * storage-DRIVER) is tried first; all are loaded only when it does not
   * provide what is asked. */
  g_mutex_lock (&self->load_lock);
  if (kind == QUBE_PLUGIN_KIND_STORAGE)
    {
      g_autofree char *plugin_name = g_strconcat ("storage-", name, NULL);

      load_named_locked (self, plugin_name, name);
    }
  else
    load_named_locked (self, name, NULL);
  info = first_provider (self, kind, name);
  if (info == NULL)
    {
      load_all_locked (self);
      info = first_provider (self, kind, name);
    }
  g_mutex_unlock (&self->load_lock);
  if (info != NULL)
    {
      if (info->status == QUBE_PLUGIN_LOADED)
        return info;
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_UNAVAILABLE,
                   "plugin '%s' cannot be used: not available on this host: %s",
                   info->name, info->reason);
      return NULL;
    }

  info = qube_plugin_registry_lookup (self, name);
  /* A storage driver "file" comes from a plugin usually named "storage-file". */
  if (info == NULL && kind == QUBE_PLUGIN_KIND_STORAGE)
    {
      g_autofree char *plugin_name = g_strconcat ("storage-", name, NULL);

      info = qube_plugin_registry_lookup (self, plugin_name);
    }

  if (info != NULL && info->status == QUBE_PLUGIN_REFUSED)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_UNAVAILABLE,
                   "plugin '%s' was refused: %s", info->name, info->reason);
      return NULL;
    }
  if (info != NULL && (info->kinds & kind) == 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_SUPPORTED,
                   "plugin '%s' does not provide a %s", info->name,
                   kind_word (kind));
      return NULL;
    }

  searched = g_strjoinv (", ", self->search_path);
  g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
               "no plugin provides %s '%s' (searched: %s)",
               kind_word (kind), name, searched);
  return NULL;
}
