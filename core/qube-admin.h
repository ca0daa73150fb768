/* qube-admin.h — the Admin API (Qubes' qubesd calls) over a QubeManager.
 *
 * A QubeAdmin answers one Admin API call at a time: it checks the call
 * against the qrexec policy, runs it on the manager and encodes the reply
 * in the qubesd wire format ('0' OK + content, '2' exception).  It serves
 * the qubed daemon and any program that wants the same answers in-process.
 * It does no I/O of its own besides the state store and the policy
 * directory; streaming admin.Events is the caller's job (see the
 * #QubeAdmin::event signal).
 */
#pragma once

#include <gio/gio.h>

#include "qube-manager.h"

G_BEGIN_DECLS

/**
 * QUBE_ADMIN_REQUEST_MAX:
 *
 * The largest request (header, NUL and payload) the Admin API accepts,
 * in bytes.
 */
#define QUBE_ADMIN_REQUEST_MAX (1024 * 1024)

/**
 * QUBE_ADMIN_HEADER_MAX:
 *
 * The longest request header (`method+arg source dest_type dest`) accepted.
 */
#define QUBE_ADMIN_HEADER_MAX 1024

/**
 * QUBE_ADMIN_QREXEC_SOCKET:
 *
 * The file name, in the runtime directory of a state directory, of the
 * socket where qubed takes the `admin.*` calls of qubes that the qrexec
 * daemon forwards (the caller's name as source).
 */
#define QUBE_ADMIN_QREXEC_SOCKET "qubed-qrexec.sock"

#define QUBE_TYPE_ADMIN (qube_admin_get_type ())
G_DECLARE_FINAL_TYPE (QubeAdmin, qube_admin, QUBE, ADMIN, GObject)

char *qube_admin_default_socket (void);

QubeAdmin *qube_admin_new (QubeManager *manager, const char *policy_dir);
QubeManager *qube_admin_get_manager (QubeAdmin *self);
void qube_admin_emit_event (QubeAdmin *self, const char *subject, const char *event,
                            const char *const *kwargs);

GBytes *qube_admin_call (QubeAdmin *self, const char *source,
                         const char *method, const char *arg,
                         const char *dest, GBytes *payload);
GBytes *qube_admin_handle_request (QubeAdmin *self, GBytes *request,
                                   gboolean trust_source);
GBytes *qube_admin_handle_qrexec_call (QubeAdmin *self, const char *source,
                                       const char *service,
                                       const char *target,
                                       GBytes *input);
gboolean qube_admin_parse_request (GBytes *request, char **method,
                                   char **arg, char **source, char **dest,
                                   GBytes **payload, GError **error);

GBytes *qube_admin_encode_exception (const char *type, const char *message);
GBytes *qube_admin_encode_event (const char *subject, const char *event,
                                 const char *const *kwargs);
gboolean qube_admin_event_visible (QubeAdmin *self, const char *source,
                                   const char *subject);

GBytes *qube_admin_reply_get_content (GBytes *reply, char **exception_type,
                                      char **message);

G_END_DECLS
