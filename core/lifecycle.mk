# Starting and stopping qubes on their isolation backend, and the per-qube
# qrexec daemon process a started qube gets.
qubeinclude_HEADERS += core/qube-lifecycle.h
core_libqube_internal_la_SOURCES += core/qube-lifecycle.h core/qube-lifecycle.c
core_libqube_internal_la_CFLAGS += -DQUBE_LIBEXECDIR=\"$(libexecdir)/qube\"

# qube-qrexec-daemon NAME: serves qrexec for one running qube, spawned
# detached by qube_vm_start() (as Qubes runs one qrexec-daemon per domain).
qrexecdaemondir = $(libexecdir)/qube
qrexecdaemon_PROGRAMS = cli/qube-qrexec-daemon
cli_qube_qrexec_daemon_SOURCES = cli/qube-qrexec-daemon.c
cli_qube_qrexec_daemon_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) -DG_LOG_DOMAIN=\"qube-qrexec-daemon\"
cli_qube_qrexec_daemon_LDADD = core/libqube-1.la $(GLIB_LIBS)
