# Starting and stopping qubes on their isolation backend, and the qrexec
# daemon process that serves the running qubes.
qubeinclude_HEADERS += core/qube-lifecycle.h
core_libqube_internal_la_SOURCES += core/qube-lifecycle.h core/qube-lifecycle.c
core_libqube_internal_la_CFLAGS += -DQUBE_LIBEXECDIR=\"$(libexecdir)/qube\"

# qube-qrexec-daemon: serves qrexec for every running qube of a state
# directory, spawned detached by qube_vm_start() when it is not running.
qrexecdaemondir = $(libexecdir)/qube
qrexecdaemon_PROGRAMS = cli/qube-qrexec-daemon
cli_qube_qrexec_daemon_SOURCES = cli/qube-qrexec-daemon.c
cli_qube_qrexec_daemon_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) -DG_LOG_DOMAIN=\"qube-qrexec-daemon\"
cli_qube_qrexec_daemon_LDADD = core/libqube-1.la $(GLIB_LIBS)
