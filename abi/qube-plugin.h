/* qube-plugin.h — the libqube plugin ABI: descriptor, host services, errors.
 *
 * This header is the whole contract between the libqube core and a plugin
 * shared object.  It is plain C99, depends on no library, and is stable:
 * within ABI major 1, structures only ever grow at the end.  See README.md in
 * this directory for the rules (versioning, threads, memory, errors).
 *
 * A plugin exports exactly one symbol, `qube_plugin_descriptor`, produced by
 * QUBE_PLUGIN_DEFINE().  The descriptor points at up to four operation
 * tables, one per ABI (qube-backend.h, qube-vchan.h, qube-storage.h,
 * qube-net.h); a plugin fills the ones it implements and leaves the others
 * NULL.
 */
#ifndef QUBE_ABI_PLUGIN_H
#define QUBE_ABI_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI major: the core refuses a plugin whose major differs.
 * ABI minor: the core accepts a plugin built against an older or equal
 * minor and refuses a newer one. */
#define QUBE_ABI_MAJOR 1
#define QUBE_ABI_MINOR 2

/* The one symbol every plugin exports. */
#define QUBE_PLUGIN_DESCRIPTOR_SYMBOL "qube_plugin_descriptor"

/* Error codes returned by every operation (0 is success).  A plugin reports
 * an error by returning one of these and, before returning, calling
 * host->set_error() with a message for a person. */
typedef enum QubeAbiError {
  QUBE_ABI_OK = 0,
  QUBE_ABI_E_FAILED = 1,        /* anything not listed below */
  QUBE_ABI_E_INVALID = 2,       /* an argument the plugin cannot accept */
  QUBE_ABI_E_NOT_FOUND = 3,     /* no such domain, volume, pool, link */
  QUBE_ABI_E_EXISTS = 4,        /* it is already there */
  QUBE_ABI_E_BUSY = 5,          /* in use (a running domain, an open volume) */
  QUBE_ABI_E_NO_SPACE = 6,      /* a pool or the host is out of space */
  QUBE_ABI_E_NO_MEMORY = 7,     /* the host is out of memory */
  QUBE_ABI_E_UNAVAILABLE = 8,   /* the plugin cannot work on this host */
  QUBE_ABI_E_NOT_SUPPORTED = 9, /* the operation is not implemented */
  QUBE_ABI_E_TIMEOUT = 10,      /* a guest or a helper did not answer in time */
  QUBE_ABI_E_IO = 11,           /* an I/O error from the host system */
  QUBE_ABI_E_PROTOCOL = 12      /* a peer sent something it must not */
} QubeAbiError;

/* Log levels for host->log(), lowest is most severe (syslog order). */
typedef enum QubeLogLevel {
  QUBE_LOG_ERROR = 3,
  QUBE_LOG_WARNING = 4,
  QUBE_LOG_MESSAGE = 5,
  QUBE_LOG_INFO = 6,
  QUBE_LOG_DEBUG = 7
} QubeLogLevel;

/* Block image formats; a storage pool states which it produces and an
 * isolation backend which it accepts (a bit mask of these). */
typedef enum QubeBlockFormat {
  QUBE_BLOCK_RAW = 1u << 0,   /* a raw image file or a block device */
  QUBE_BLOCK_QCOW2 = 1u << 1  /* a qcow2 file, possibly with a backing file */
} QubeBlockFormat;

/* A key/value pair, used for pool options and plugin configuration. */
typedef struct QubeKeyValue {
  const char *key;
  const char *value;
} QubeKeyValue;

/* What a plugin does for the result of host->run(). */
typedef struct QubeRunResult {
  int exit_status;   /* exit code, or 128+signal when killed by a signal */
  char *out;         /* standard output, NUL-terminated; free() it */
  size_t out_len;
  char *err;         /* standard error, NUL-terminated; free() it */
  size_t err_len;
} QubeRunResult;

/* Services the core offers a plugin.  Handed to the plugin's init(); valid
 * for the life of the process.  A plugin never links core internals: this
 * table is all it may call.  Check `size` before using a slot added after
 * minor 0 (see QUBE_ABI_HAS). */
typedef struct QubeHost {
  uint32_t size;        /* sizeof(QubeHost) as the core was built */
  uint32_t abi_minor;   /* the core's QUBE_ABI_MINOR */

  /* --- ABI 1.0 --- */

  /* Log a message in the plugin's log domain. Any thread. */
  void (*log)(const struct QubeHost *host, QubeLogLevel level,
              const char *fmt, ...)
#if defined(__GNUC__)
      __attribute__((format(printf, 3, 4)))
#endif
      ;

  /* Record the error of the operation the calling thread is running; the
   * message should name the thing, the operation and the cause.  The core
   * reads it when the operation returns non-zero.  Any thread. */
  void (*set_error)(const struct QubeHost *host, QubeAbiError code,
                    const char *fmt, ...)
#if defined(__GNUC__)
      __attribute__((format(printf, 3, 4)))
#endif
      ;

  /* Run a command (argv[0] is looked up in PATH) with `input` (may be NULL)
   * on its standard input, wait for it, capture its output.  Returns 0 when
   * the command ran (whatever its exit status; see result->exit_status) or
   * an error code when it could not be started (message set).  Any thread. */
  int (*run)(const struct QubeHost *host, const char *const *argv,
             const void *input, size_t input_len, QubeRunResult *result);

  /* Look up a configuration value for this plugin ("key" in the section of
   * the plugin in the core's configuration), or NULL.  The string belongs to
   * the core and stays valid for the life of the process. */
  const char *(*config_get)(const struct QubeHost *host, const char *key);

  /* Directories the core owns: persistent state, and volatile runtime
   * files (sockets, pid files).  A plugin keeps its files under
   * <dir>/<plugin name>/ and creates that directory itself. */
  const char *state_dir;
  const char *runtime_dir;

  /* The plugin's own name, as given in its descriptor. */
  const char *plugin_name;

  /* Opaque to the plugin. */
  void *core_data;
} QubeHost;

struct QubeBackendOps;
struct QubeVchanOps;
struct QubeStorageOps;
struct QubeNetOps;

/* The descriptor.  Produce it with QUBE_PLUGIN_DEFINE so the ABI fields are
 * always right. */
typedef struct QubePluginDesc {
  uint32_t abi_major;   /* QUBE_ABI_MAJOR the plugin was built against */
  uint32_t abi_minor;   /* QUBE_ABI_MINOR the plugin was built against */
  uint32_t size;        /* sizeof(QubePluginDesc) as the plugin was built */
  uint32_t reserved;

  /* --- ABI 1.0 --- */
  const char *name;         /* unique, [a-z0-9-]+, e.g. "kvm", "storage-file" */
  const char *description;  /* one line for `qube plugins` */
  const char *version;      /* the plugin's own version */
  const char *license;      /* SPDX identifier */
  const char *source;       /* source package it comes from */
  const char *origin;       /* where to get it (URL), may be NULL */

  /* Called once, after the ABI checks, before any other call.  Sets
   * *plugin_data to the value handed back to every operation of the
   * plugin.  Returns 0, or an error code with host->set_error() called.
   * May be NULL (then plugin_data is NULL). */
  int (*init)(const QubeHost *host, void **plugin_data);

  /* Says whether the plugin can work on this host right now (hardware,
   * kernel features, daemons).  Returns 0 when it can, or
   * QUBE_ABI_E_UNAVAILABLE with the reason set through host->set_error().
   * A plugin that is unavailable stays loaded and is shown as such.
   * May be NULL (always available). */
  int (*probe)(void *plugin_data);

  /* Operation tables; NULL for the ABIs the plugin does not implement. */
  const struct QubeBackendOps *backend;
  const struct QubeVchanOps *vchan;
  const struct QubeStorageOps *storage;
  const struct QubeNetOps *net;

  /* Since 1.1.  Writes one NUL-terminated line into buf (at most buflen
   * bytes) saying how the plugin works on this host right now, for
   * `qube plugins`: e.g. the kvm backend's "acceleration: tcg (cannot
   * open /dev/kvm)".  Must be cheap (no guest booted to find out).
   * Returns 0, or an error code.  May be NULL. */
  int (*describe)(void *plugin_data, char *buf, size_t buflen);
} QubePluginDesc;

/* True when `table`, a pointer to a struct of type `type` with a
 * `uint32_t size` member, was built recent enough to have `slot`. */
#define QUBE_ABI_HAS(type, table, slot)                                \
  ((table) != NULL &&                                                  \
   (size_t)(table)->size >= offsetof(type, slot) + sizeof((table)->slot))

#if defined(__GNUC__)
#define QUBE_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define QUBE_PLUGIN_EXPORT
#endif

/* Defines the plugin's descriptor.  Pass the remaining fields as designated
 * initializers:
 *
 *   QUBE_PLUGIN_DEFINE(.name = "storage-file",
 *                      .description = "volumes as image files",
 *                      .version = "1.0", .license = "LGPL-2.1-or-later",
 *                      .source = "libqube", .init = file_init,
 *                      .storage = &file_storage_ops);
 */
#define QUBE_PLUGIN_DEFINE(...)                                        \
  QUBE_PLUGIN_EXPORT extern const QubePluginDesc qube_plugin_descriptor; \
  QUBE_PLUGIN_EXPORT const QubePluginDesc qube_plugin_descriptor = {   \
    .abi_major = QUBE_ABI_MAJOR,                                       \
    .abi_minor = QUBE_ABI_MINOR,                                       \
    .size = (uint32_t)sizeof(QubePluginDesc),                          \
    __VA_ARGS__ }

#ifdef __cplusplus
}
#endif

#endif /* QUBE_ABI_PLUGIN_H */
