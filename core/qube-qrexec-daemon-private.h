/* qube-qrexec-daemon-private.h — the qrexec daemon's internal settings,
 * for the test fixture. */
#ifndef QUBE_QREXEC_DAEMON_PRIVATE_H
#define QUBE_QREXEC_DAEMON_PRIVATE_H

#include "qube-qrexec-daemon.h"

G_BEGIN_DECLS

void _qube_qrexec_daemon_set_call_connect_timeout (QubeQrexecDaemon *self, guint seconds);
void _qube_qrexec_daemon_set_last_data_port (QubeQrexecDaemon *self, guint32 port);
void _qube_qrexec_daemon_set_control_queue_max (QubeQrexecDaemon *self, gsize bytes);

G_END_DECLS

#endif
