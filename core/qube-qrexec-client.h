/* qube-qrexec-client.h — running a command or a service in a qube from
 * dom0 (what `qube run` does), through the qrexec daemon serving it.
 */
#pragma once

#include <glib.h>

#include "qube-manager.h"

G_BEGIN_DECLS

/**
 * QubeQrexecRunFlags:
 * @QUBE_QREXEC_RUN_NONE: stdin, stdout and stderr are passed through
 * @QUBE_QREXEC_RUN_NO_STDIN: the command's stdin is empty (EOF at once)
 * @QUBE_QREXEC_RUN_FILTER_STDOUT: every byte of the command's stdout but
 *   printable ASCII, tab, newline, carriage return, backspace and bell is
 *   written as `_` (the qube cannot drive the terminal that shows it)
 * @QUBE_QREXEC_RUN_FILTER_STDERR: the same for its stderr
 *
 * How qube_qrexec_run() connects the command.
 */
typedef enum {
  QUBE_QREXEC_RUN_NONE = 0,
  QUBE_QREXEC_RUN_NO_STDIN = 1 << 0,
  QUBE_QREXEC_RUN_FILTER_STDOUT = 1 << 1,
  QUBE_QREXEC_RUN_FILTER_STDERR = 1 << 2,
} QubeQrexecRunFlags;

gboolean qube_qrexec_run (QubeManager *manager, const char *qube, const char *user,
                          const char *command, QubeQrexecRunFlags flags, int stdin_fd,
                          int stdout_fd, int stderr_fd, int *exit_code, GError **error);

G_END_DECLS
