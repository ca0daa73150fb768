# The kvm isolation backend: qubes as QEMU microvm processes driven over QMP.
if BUILD_KVM
plugin_LTLIBRARIES += plugins/kvm/kvm.la
plugins_kvm_kvm_la_SOURCES = \
	plugins/kvm/kvm-plugin.c \
	plugins/kvm/kvm-qmp.h \
	plugins/kvm/kvm-qmp.c \
	plugins/kvm/kvm-process.h \
	plugins/kvm/kvm-process.c \
	plugins/kvm/kvm-accel.h \
	plugins/kvm/kvm-accel.c \
	plugins/kvm/kvm-vchan.h \
	plugins/kvm/kvm-vchan.c \
	common/vchan-mux.h \
	common/vchan-mux.c
plugins_kvm_kvm_la_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(JSON_GLIB_CFLAGS) \
	-fvisibility=hidden -DG_LOG_DOMAIN=\"qube-kvm\"
plugins_kvm_kvm_la_LIBADD = $(GLIB_LIBS) $(JSON_GLIB_LIBS)
plugins_kvm_kvm_la_LDFLAGS = -module -avoid-version -no-undefined \
	-export-symbols-regex '^qube_plugin_descriptor$$'
endif
EXTRA_DIST += plugins/kvm/README.md
