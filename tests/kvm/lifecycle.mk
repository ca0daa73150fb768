# The lifecycle of real qubes (start, pause, shutdown, faults) through the
# library, the kvm plugin and the per-qube qrexec daemon.
if BUILD_KVM
if HAVE_CHECK
check_PROGRAMS += tests/kvm/test-lifecycle
TESTS += tests/kvm/test-lifecycle
tests_kvm_test_lifecycle_SOURCES = tests/kvm/test-lifecycle.c \
	tests/kvm/kvm-qube-fixture.c tests/kvm/kvm-qube-fixture.h \
	plugins/kvm/kvm-qmp.c plugins/kvm/kvm-qmp.h
tests_kvm_test_lifecycle_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/kvm
tests_kvm_test_lifecycle_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(JSON_GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_kvm_test_lifecycle_LDADD = core/libqube-1.la $(GLIB_LIBS) $(JSON_GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_kvm_test_lifecycle_DEPENDENCIES = plugins/kvm/kvm.la cli/qube cli/qube-qrexec-daemon \
	template/qube-agent-static template/qrexec-client-vm-static
endif
endif
