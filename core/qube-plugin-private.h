/* qube-plugin-private.h — what core files use to call into plugins.
 *
 * Internal (not installed, not exported).  Other core files find a plugin
 * with _qube_plugin_registry_find(), call its operation tables directly, and
 * turn a failed call into a GError with _qube_plugin_take_error() or a NULL
 * slot into one with _qube_plugin_not_supported().
 *
 * Rules for callers:
 *  - A table's ABI 1.0 slots may be used directly (the loader checked the
 *    table is at least that large); a slot added in a later minor must be
 *    guarded with QUBE_ABI_HAS().
 *  - Calls into the backend, storage and net tables of one plugin are
 *    serialised: hold _qube_plugin_info_get_lock() around them.  vchan
 *    channels are not: one channel is used by one thread at a time.
 *  - Host services live in qube-host.c; the registry is their only user.
 */
#pragma once

#include <glib-object.h>

#include "abi/qube-plugin.h"
#include "abi/qube-backend.h"
#include "abi/qube-vchan.h"
#include "abi/qube-storage.h"
#include "abi/qube-net.h"

#include "qube-error.h"
#include "qube-plugin-registry.h"

G_BEGIN_DECLS

/* The plugin's descriptor, or NULL unless the plugin was loaded (status
 * LOADED or UNAVAILABLE). */
const QubePluginDesc *_qube_plugin_info_get_desc (QubePluginInfo *info);

/* What the plugin's init() set as its plugin_data. */
void *_qube_plugin_info_get_data (QubePluginInfo *info);

/* The plugin's host table (the one handed to its init()), or NULL for a
 * file refused before it got one. */
const QubeHost *_qube_plugin_info_get_host (QubePluginInfo *info);

/* The lock that serialises calls into this plugin's backend, storage and
 * net tables (recursive, so a core path may nest calls to one plugin). */
GRecMutex *_qube_plugin_info_get_lock (QubePluginInfo *info);

/* A loaded, available plugin implementing `kind` (exactly one kind) named
 * `name` (for QUBE_PLUGIN_KIND_STORAGE `name` is the storage driver name,
 * e.g. "file").  Loads the registry first if needed.  The error says why
 * not: not found (with the search path), refused (reason), unavailable
 * (reason), or found but without that kind.  (transfer none) */
QubePluginInfo *_qube_plugin_registry_find (QubePluginRegistry *self,
                                            QubePluginKind kind,
                                            const char *name,
                                            GError **error);

/* After an operation returned rc != 0: set *error from the message the
 * plugin gave host->set_error() on this thread, as "<what>: <message>",
 * with the QubeAbiError mapped onto QubeError, and clear the thread's
 * error.  A plugin that gave no message still yields a clear error.
 * Always returns FALSE. */
gboolean _qube_plugin_take_error (QubePluginInfo *info,
                                  int rc,
                                  const char *what,
                                  GError **error);

/* For a NULL slot: "<operation> is not supported by plugin '<name>'"
 * (QUBE_ERROR_NOT_SUPPORTED).  Always returns FALSE. */
gboolean _qube_plugin_not_supported (QubePluginInfo *info,
                                     const char *operation,
                                     GError **error);

/* The QubeError matching a QubeAbiError. */
QubeError _qube_abi_error_to_qube_error (int abi_error);

/* ---- qube-host.c: host services, used by the registry only ---- */

/* A host table for plugin `plugin_name`.  The table must outlive the
 * plugin, which is never unloaded: once handed to init() it is never
 * freed. `config` (nullable) holds the parsed plugins.conf. */
QubeHost *_qube_host_new (const char *plugin_name,
                          const char *state_dir,
                          const char *runtime_dir,
                          GKeyFile *config);
/* Only for a host table that was never handed to a plugin. */
void _qube_host_free (QubeHost *host);

/* The calling thread's last plugin error, for the plugin that owns `host`
 * (NULL: any plugin).  Returns FALSE when there is none.  Clears it either
 * way.  *message is (transfer full). */
gboolean _qube_host_take_thread_error (const QubeHost *host,
                                       int *code,
                                       char **message);

G_END_DECLS
