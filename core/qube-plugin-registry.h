/* qube-plugin-registry.h — finding, checking and loading plugins.
 *
 * The registry searches QUBE_PLUGIN_PATH (colon-separated) and then the
 * installed plugin directory, dlopen()s every "*.so" it finds, checks the
 * descriptor (ABI major must match, minor may be older, name unique), calls
 * the plugin's init and probe, and records every refusal with its reason.
 * One bad plugin never stops the others.  Plugins are never unloaded.
 */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

/**
 * QubePluginStatus:
 * @QUBE_PLUGIN_LOADED: loaded, initialised and available on this host
 * @QUBE_PLUGIN_UNAVAILABLE: loaded, but its probe says it cannot work here
 * @QUBE_PLUGIN_REFUSED: not loaded; see qube_plugin_info_get_reason()
 *
 * What became of a plugin file.
 */
typedef enum {
  QUBE_PLUGIN_LOADED,
  QUBE_PLUGIN_UNAVAILABLE,
  QUBE_PLUGIN_REFUSED,
} QubePluginStatus;

/**
 * QubePluginKind:
 * @QUBE_PLUGIN_KIND_NONE: no table
 * @QUBE_PLUGIN_KIND_BACKEND: isolation backend
 * @QUBE_PLUGIN_KIND_VCHAN: vchan transport
 * @QUBE_PLUGIN_KIND_STORAGE: storage pool driver
 * @QUBE_PLUGIN_KIND_NET: network uplink
 *
 * The ABIs a plugin implements (flags).
 */
typedef enum /*< flags >*/ {
  QUBE_PLUGIN_KIND_NONE = 0,
  QUBE_PLUGIN_KIND_BACKEND = 1 << 0,
  QUBE_PLUGIN_KIND_VCHAN = 1 << 1,
  QUBE_PLUGIN_KIND_STORAGE = 1 << 2,
  QUBE_PLUGIN_KIND_NET = 1 << 3,
} QubePluginKind;

/**
 * QubePluginInfo:
 *
 * One plugin file the registry found, and what became of it: its name,
 * path and descriptor fields, its status and, unless it is loaded, the
 * reason.  Immutable once the registry is loaded.
 */
#define QUBE_TYPE_PLUGIN_INFO (qube_plugin_info_get_type ())
G_DECLARE_FINAL_TYPE (QubePluginInfo, qube_plugin_info, QUBE, PLUGIN_INFO, GObject)

const char *qube_plugin_info_get_name (QubePluginInfo *self);
const char *qube_plugin_info_get_path (QubePluginInfo *self);
QubePluginStatus qube_plugin_info_get_status (QubePluginInfo *self);
const char *qube_plugin_info_get_reason (QubePluginInfo *self);
char *qube_plugin_info_get_detail (QubePluginInfo *self);
const char *qube_plugin_info_get_description (QubePluginInfo *self);
const char *qube_plugin_info_get_version (QubePluginInfo *self);
const char *qube_plugin_info_get_license (QubePluginInfo *self);
guint qube_plugin_info_get_abi_major (QubePluginInfo *self);
guint qube_plugin_info_get_abi_minor (QubePluginInfo *self);
QubePluginKind qube_plugin_info_get_kinds (QubePluginInfo *self);

/**
 * QubePluginRegistry:
 *
 * The plugins of one process (normally one registry per process): where
 * they are searched, which were loaded, and why the others were not.
 */
#define QUBE_TYPE_PLUGIN_REGISTRY (qube_plugin_registry_get_type ())
G_DECLARE_FINAL_TYPE (QubePluginRegistry, qube_plugin_registry, QUBE, PLUGIN_REGISTRY, GObject)

QubePluginRegistry *qube_plugin_registry_new (const char *state_dir,
                                              const char *runtime_dir);
void qube_plugin_registry_load (QubePluginRegistry *self);
GPtrArray *qube_plugin_registry_list (QubePluginRegistry *self);
QubePluginInfo *qube_plugin_registry_lookup (QubePluginRegistry *self,
                                             const char *name);
char **qube_plugin_registry_get_search_path (QubePluginRegistry *self);

G_END_DECLS
