# The xen isolation backend: Xen domains built with libxl in dom0.
if BUILD_XEN
plugin_LTLIBRARIES += plugins/xen/xen.la
plugins_xen_xen_la_SOURCES = \
	plugins/xen/xen-plugin.c \
	plugins/xen/xen-loop.h \
	plugins/xen/xen-loop.c \
	plugins/xen/xen-store.h \
	plugins/xen/xen-store.c \
	plugins/xen/xen-vchan.h \
	plugins/xen/xen-vchan.c
plugins_xen_xen_la_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(XEN_CFLAGS) \
	-fvisibility=hidden -DG_LOG_DOMAIN=\"qube-xen\" \
	-DQUBE_XEN_BLOCK_SCRIPT=\"$(xenblockdir)/qube-xen-block\"
plugins_xen_xen_la_LIBADD = $(GLIB_LIBS) $(XEN_LIBS)
plugins_xen_xen_la_LDFLAGS = -module -avoid-version -no-undefined \
	-export-symbols-regex '^qube_plugin_descriptor$$'

# The block hotplug program libxl runs for the plugin's disks: it links
# libxenstore and GLib only (--as-needed drops the rest of XEN_LIBS), since
# libxl starts it once per disk.
xenblockdir = $(libexecdir)/qube
xenblock_PROGRAMS = plugins/xen/qube-xen-block
plugins_xen_qube_xen_block_SOURCES = plugins/xen/qube-xen-block.c
plugins_xen_qube_xen_block_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(XEN_CFLAGS)
plugins_xen_qube_xen_block_LDFLAGS = -Wl,--as-needed
plugins_xen_qube_xen_block_LDADD = $(GLIB_LIBS) $(XEN_LIBS)
endif
EXTRA_DIST += plugins/xen/README.md
