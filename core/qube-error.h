/* qube-error.h — the GError domain of libqube.
 *
 * Every public function that can fail takes a GError ** last and reports
 * one of these codes with a message that names the thing, the operation and
 * the cause.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QUBE_ERROR (qube_error_quark ())

/**
 * QubeError:
 * @QUBE_ERROR_FAILED: anything not listed below
 * @QUBE_ERROR_INVALID: an invalid argument or value
 * @QUBE_ERROR_INVALID_NAME: a qube, pool or volume name that breaks the rules
 * @QUBE_ERROR_NOT_FOUND: no such qube, property, plugin, pool, volume
 * @QUBE_ERROR_EXISTS: the thing already exists
 * @QUBE_ERROR_IN_USE: still used by something else (a template, a pool)
 * @QUBE_ERROR_RUNNING: the operation needs a halted qube
 * @QUBE_ERROR_NOT_RUNNING: the operation needs a running qube
 * @QUBE_ERROR_NOT_SUPPORTED: the plugin does not implement the operation
 * @QUBE_ERROR_UNAVAILABLE: a plugin cannot work on this host
 * @QUBE_ERROR_NO_SPACE: out of space
 * @QUBE_ERROR_TIMEOUT: a guest or a helper did not answer in time
 * @QUBE_ERROR_IO: an input/output error
 * @QUBE_ERROR_PROTOCOL: a peer broke the protocol
 * @QUBE_ERROR_DENIED: refused by policy
 * @QUBE_ERROR_STORE: the state store failed
 *
 * Error codes of the %QUBE_ERROR domain.
 */
typedef enum {
  QUBE_ERROR_FAILED,
  QUBE_ERROR_INVALID,
  QUBE_ERROR_INVALID_NAME,
  QUBE_ERROR_NOT_FOUND,
  QUBE_ERROR_EXISTS,
  QUBE_ERROR_IN_USE,
  QUBE_ERROR_RUNNING,
  QUBE_ERROR_NOT_RUNNING,
  QUBE_ERROR_NOT_SUPPORTED,
  QUBE_ERROR_UNAVAILABLE,
  QUBE_ERROR_NO_SPACE,
  QUBE_ERROR_TIMEOUT,
  QUBE_ERROR_IO,
  QUBE_ERROR_PROTOCOL,
  QUBE_ERROR_DENIED,
  QUBE_ERROR_STORE,
} QubeError;

GQuark qube_error_quark (void);

G_END_DECLS
