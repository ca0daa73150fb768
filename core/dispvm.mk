# Disposables: unnamed DispVMs made for one call, and preload queues.
qubeinclude_HEADERS += core/qube-dispvm.h
core_libqube_internal_la_SOURCES += core/qube-dispvm.h core/qube-dispvm.c \
	core/qube-dispvm-private.h core/qube-dispvm-preload.c
