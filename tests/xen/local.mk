# tests/xen: Xen 4.17 booted under QEMU (TCG) with a dom0 built from Debian's
# Xen tools; not part of `make check` (it needs the Xen packages and takes
# about a minute).  `make check-xen` builds the images and runs the tests.
xentest_files = tests/xen/build-initramfs.sh tests/xen/run-xen.sh \
	tests/xen/dom0-init tests/xen/domu-init tests/xen/xentest-lib.sh \
	tests/xen/smoke.sh tests/xen/plugin.sh tests/xen/qube.sh tests/xen/vchan.sh \
	tests/xen/vchan-domu.sh tests/xen/vchan-domu-init tests/xen/qubes-dom0.sh \
	tests/xen/README.md
EXTRA_DIST += $(xentest_files)

XENTEST_DIR = $(abs_top_builddir)/tests/xen/out
XENTEST_TIMEOUT ?= 900

# One boot runs the toolstack smoke test, then the installed build (plugins
# included) driven through the registry by xen-driver, then `qube` running
# Xen qubes made from the minimal template, then the vchan conformance
# suite over the xen plugin's libxenvchan transport, in dom0 and between
# two domUs, then the guest programs under a dom0 that speaks qrexec as
# Qubes' does.
XENTEST_RUN = $(srcdir)/tests/xen/smoke.sh $(srcdir)/tests/xen/plugin.sh \
	$(srcdir)/tests/xen/qube.sh $(srcdir)/tests/xen/vchan.sh \
	$(srcdir)/tests/xen/vchan-domu.sh $(srcdir)/tests/xen/qubes-dom0.sh
if BUILD_XEN
xentest-images: tests/xen/xen-driver tests/xen/qubes-dom0-call tests/vchan/test-vchan \
		template/qube-agent-static template/qrexec-client-vm-static
	rm -rf "$(XENTEST_DIR)/destdir"
	$(MAKE) $(AM_MAKEFLAGS) install DESTDIR="$(XENTEST_DIR)/destdir" >/dev/null
	$(SHELL) $(srcdir)/template/build-template.sh -a template/qube-agent-static \
		-a template/qrexec-client-vm-static "$(XENTEST_DIR)/template" >/dev/null
	$(SHELL) $(srcdir)/tests/xen/build-initramfs.sh -d "$(XENTEST_DIR)/destdir" \
		-p tests/xen/xen-driver -p tests/xen/qubes-dom0-call \
		-p tests/vchan/test-vchan -g tests/vchan/test-vchan \
		-t "$(XENTEST_DIR)/template" \
		"$(XENTEST_DIR)/boot" $(XENTEST_RUN)
check-xen: xentest-images
	$(SHELL) $(srcdir)/tests/xen/run-xen.sh "$(XENTEST_DIR)/boot" $(XENTEST_TIMEOUT)
else
check-xen:
	@echo "check-xen needs the xen plugin: install the Debian package libxen-dev and configure with --enable-xen" >&2; exit 1
endif
.PHONY: check-xen xentest-images

clean-local: clean-xentest
clean-xentest:
	rm -rf "$(XENTEST_DIR)"
.PHONY: clean-xentest

# Outside Xen (here and in CI's plain run) the xen plugin loads and says why
# it cannot work.
if BUILD_XEN
if HAVE_CHECK
check_PROGRAMS += tests/xen/test-xen-plugin
TESTS += tests/xen/test-xen-plugin
UNIT_TESTS += tests/xen/test-xen-plugin
tests_xen_test_xen_plugin_SOURCES = tests/xen/test-xen-plugin.c
tests_xen_test_xen_plugin_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_xen_test_xen_plugin_LDADD = core/libqube-internal.la $(GLIB_LIBS) $(CHECK_LIBS)
# A qube's start goes through the storage-file pool to the xen plugin.
EXTRA_tests_xen_test_xen_plugin_DEPENDENCIES = $(plugin_LTLIBRARIES)
endif
# Run inside Xen by check-xen: drives the plugin through the registry.
check_PROGRAMS += tests/xen/xen-driver
tests_xen_xen_driver_SOURCES = tests/xen/xen-driver.c
tests_xen_xen_driver_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS)
tests_xen_xen_driver_LDADD = core/libqube-internal.la $(GLIB_LIBS)
# Run inside Xen by check-xen: Qubes' dom0 side of one qube-to-qube call,
# over the guest side's own transport code.
check_PROGRAMS += tests/xen/qubes-dom0-call
tests_xen_qubes_dom0_call_SOURCES = tests/xen/qubes-dom0-call.c $(AGENT_TRANSPORT_SOURCES) \
	agent/transport-xen.c agent/data-io.h agent/data-io.c agent/qrexec-wire.h
tests_xen_qubes_dom0_call_CFLAGS = $(AGENT_CFLAGS_)
tests_xen_qubes_dom0_call_CPPFLAGS = -I$(top_srcdir)/agent -I$(top_srcdir)
tests_xen_qubes_dom0_call_LDADD = $(AGENT_XEN_LIBS)
endif
