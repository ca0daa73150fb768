# libqube-1: the core library.
lib_LTLIBRARIES += core/libqube-1.la

qube_public_headers = \
	core/qube.h \
	core/qube-error.h \
	core/qube-plugin-registry.h \
	core/qube-vm.h \
	core/qube-manager.h \
	core/qube-pool.h \
	core/qube-volume.h

qubeincludedir = $(includedir)/qube-1
qubeinclude_HEADERS = $(qube_public_headers)

# Everything is built once into a convenience library that white-box unit
# tests link; libqube-1 is the same code with only the public API exported
# (internal functions are named _qube_* and fall outside the version script).
noinst_LTLIBRARIES += core/libqube-internal.la
core_libqube_internal_la_SOURCES = \
	$(qube_public_headers) \
	core/qube-error.c \
	core/qube-plugin-private.h \
	core/qube-plugin-registry.c \
	core/qube-host.c \
	core/qube-store.h \
	core/qube-store.c \
	core/qube-property.h \
	core/qube-property.c \
	core/qube-names.c \
	core/qube-vm-private.h \
	core/qube-vm.c \
	core/qube-manager.c \
	core/qube-storage-private.h \
	core/qube-pool.c \
	core/qube-volume.c
core_libqube_internal_la_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(SQLITE_CFLAGS) \
	-DG_LOG_DOMAIN=\"qube\"
core_libqube_internal_la_LIBADD = $(GLIB_LIBS) $(SQLITE_LIBS)

core_libqube_1_la_SOURCES =
nodist_EXTRA_core_libqube_1_la_SOURCES = dummy.c
core_libqube_1_la_LIBADD = core/libqube-internal.la $(GLIB_LIBS) $(SQLITE_LIBS)
core_libqube_1_la_LDFLAGS = -version-info $(LIBQUBE_LT_VERSION) -no-undefined \
	-Wl,--version-script=$(srcdir)/core/libqube.sym
EXTRA_core_libqube_1_la_DEPENDENCIES = core/libqube.sym
EXTRA_DIST += core/libqube.sym core/libqube-1.pc.in
pkgconfig_DATA += core/libqube-1.pc
