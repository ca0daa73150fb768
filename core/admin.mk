# The Admin API (qubesd's calls), part of libqube; qubed and embedded
# callers share it.
qubeinclude_HEADERS += core/qube-admin.h
core_libqube_internal_la_SOURCES += core/qube-admin.h core/qube-admin.c
