# Integration tests of the kvm backend: real qubes under QEMU (TCG here).
if BUILD_KVM
if HAVE_CHECK
check_PROGRAMS += tests/kvm/test-kvm
TESTS += tests/kvm/test-kvm
tests_kvm_test_kvm_SOURCES = tests/kvm/test-kvm.c
tests_kvm_test_kvm_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_kvm_test_kvm_LDADD = core/libqube-internal.la $(GLIB_LIBS) $(CHECK_LIBS)
# The test loads the plugin from the build tree.
EXTRA_tests_kvm_test_kvm_DEPENDENCIES = plugins/kvm/kvm.la
endif
endif
