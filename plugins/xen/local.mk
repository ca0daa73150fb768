# The xen isolation backend: Xen domains built with libxl in dom0.
if BUILD_XEN
plugin_LTLIBRARIES += plugins/xen/xen.la
plugins_xen_xen_la_SOURCES = \
	plugins/xen/xen-plugin.c \
	plugins/xen/xen-store.h \
	plugins/xen/xen-store.c \
	plugins/xen/xen-vchan.h \
	plugins/xen/xen-vchan.c
plugins_xen_xen_la_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(XEN_CFLAGS) \
	-fvisibility=hidden -DG_LOG_DOMAIN=\"qube-xen\"
plugins_xen_xen_la_LIBADD = $(GLIB_LIBS) $(XEN_LIBS)
plugins_xen_xen_la_LDFLAGS = -module -avoid-version -no-undefined \
	-export-symbols-regex '^qube_plugin_descriptor$$'
endif
EXTRA_DIST += plugins/xen/README.md
