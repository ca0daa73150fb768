# GObject introspection: Qube-1.0.gir and its typelib, built by `make`.
-include $(INTROSPECTION_MAKEFILE)
INTROSPECTION_GIRS =
INTROSPECTION_SCANNER_ARGS = --warn-all --warn-error
INTROSPECTION_COMPILER_ARGS =

if HAVE_INTROSPECTION
Qube-1.0.gir: core/libqube-1.la
Qube_1_0_gir_NAMESPACE = Qube
Qube_1_0_gir_VERSION = 1.0
Qube_1_0_gir_LIBS = core/libqube-1.la
Qube_1_0_gir_INCLUDES = GObject-2.0 Gio-2.0
Qube_1_0_gir_CFLAGS = -I$(top_srcdir)/core -I$(top_builddir) $(GLIB_CFLAGS)
Qube_1_0_gir_FILES = $(qubeinclude_HEADERS) \
	$(filter-out core/qube-host.c core/qube-store.c,$(filter %.c,$(core_libqube_internal_la_SOURCES)))
Qube_1_0_gir_SCANNERFLAGS = --identifier-prefix=Qube --symbol-prefix=qube \
	--c-include=qube.h --pkg-export=libqube-1
INTROSPECTION_GIRS += Qube-1.0.gir

girdir = $(datadir)/gir-1.0
gir_DATA = $(INTROSPECTION_GIRS)
typelibdir = $(libdir)/girepository-1.0
typelib_DATA = $(INTROSPECTION_GIRS:.gir=.typelib)
CLEANFILES += $(gir_DATA) $(typelib_DATA)
endif
