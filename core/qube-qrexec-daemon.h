/* qube-qrexec-daemon.h — the dom0 side of qrexec: one control connection
 * per running qube, service calls decided by the policy, commands run for
 * local clients (`qube run`).
 */
#pragma once

#include <glib-object.h>

#include "qube-manager.h"
#include "qube-policy.h"

G_BEGIN_DECLS

/**
 * QUBE_QREXEC_CLIENT_SOCKET:
 *
 * The file name, in a qube's runtime directory, of the socket where the
 * daemon serving that qube takes requests from dom0 programs.
 */
#define QUBE_QREXEC_CLIENT_SOCKET "qrexec.sock"

/**
 * QUBE_QREXEC_RELAY_TRANSPORT:
 *
 * The transport the daemon names in its answer to a dom0 program when it
 * relays the call's data channel itself over the program's socket: for a
 * qube whose vchan link only one process may hold (the kvm transport).
 */
#define QUBE_QREXEC_RELAY_TRANSPORT "relay"

#define QUBE_TYPE_QREXEC_DAEMON (qube_qrexec_daemon_get_type ())
G_DECLARE_FINAL_TYPE (QubeQrexecDaemon, qube_qrexec_daemon, QUBE, QREXEC_DAEMON, GObject)

QubeQrexecDaemon *qube_qrexec_daemon_new (QubeManager *manager);
void qube_qrexec_daemon_set_policy_dir (QubeQrexecDaemon *self, const char *policy_dir);
void qube_qrexec_daemon_set_ask_agent (QubeQrexecDaemon *self, const char *agent);
gboolean qube_qrexec_daemon_connect (QubeQrexecDaemon *self, const char *name,
                                     const char *vchan_transport, GError **error);
void qube_qrexec_daemon_disconnect (QubeQrexecDaemon *self, const char *name);
gboolean qube_qrexec_daemon_is_connected (QubeQrexecDaemon *self, const char *name);

char *qube_qrexec_qube_runtime_dir (QubeManager *manager, const char *name);

G_END_DECLS
