# The dom0 side of qrexec: the daemon serving running qubes, and running a
# command in a qube (`qube run`).
qubeinclude_HEADERS += core/qube-qrexec-daemon.h core/qube-qrexec-client.h
core_libqube_internal_la_SOURCES += \
	core/qube-qrexec-daemon.h \
	core/qube-qrexec-daemon-private.h \
	core/qube-qrexec-daemon.c \
	core/qube-qrexec-client.h \
	core/qube-qrexec-client.c \
	common/qrexec-filter.h \
	core/qube-qrexec-chan.h \
	core/qube-qrexec-chan.c
