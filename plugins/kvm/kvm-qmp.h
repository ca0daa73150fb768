/* kvm-qmp.h — a small synchronous QMP client for one QEMU process.
 *
 * One command at a time over QEMU's unix-socket monitor, every message built
 * and parsed with json-glib.  QEMU is treated as an untrusted peer: each
 * reply line is bounded in size and must be a JSON object.  Asynchronous
 * events that arrive between replies are kept, by name, for the caller.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _KvmQmp KvmQmp;

/* Connects to the monitor socket at `path`, reads QEMU's greeting and
 * leaves capability negotiation mode.  Every later read or write fails
 * after `timeout_ms` without progress. */
KvmQmp *kvm_qmp_connect (const char *path, guint timeout_ms, GError **error);
void kvm_qmp_set_timeout (KvmQmp *self, guint timeout_ms);

/* Runs `command` with `arguments` (nullable) and returns its "return"
 * value (transfer full), or NULL with an error naming the command and
 * QEMU's error description. */
JsonNode *kvm_qmp_execute (KvmQmp *self, const char *command,
                           JsonObject *arguments, GError **error);

/* Waits up to `timeout_ms` for the event `name` (which may have arrived
 * already).  Returns FALSE when it did not come or the connection ended. */
gboolean kvm_qmp_wait_event (KvmQmp *self, const char *name, guint timeout_ms);

/* Names of the events seen so far, oldest first (the first 1024). */
const GPtrArray *kvm_qmp_get_events (KvmQmp *self);

void kvm_qmp_free (KvmQmp *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KvmQmp, kvm_qmp_free)

G_END_DECLS
