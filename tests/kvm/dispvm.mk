# Disposables for real (kvm qubes under TCG): qube run --dispvm, @dispvm
# calls, admin.vm.CreateDisposable, the preload queues and their faults.
if BUILD_KVM
if HAVE_CHECK
check_PROGRAMS += tests/kvm/test-dispvm
TESTS += tests/kvm/test-dispvm
tests_kvm_test_dispvm_SOURCES = tests/kvm/test-dispvm.c \
	tests/kvm/kvm-qube-fixture.c tests/kvm/kvm-qube-fixture.h
tests_kvm_test_dispvm_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_kvm_test_dispvm_LDADD = core/libqube-1.la $(GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_kvm_test_dispvm_DEPENDENCIES = plugins/kvm/kvm.la cli/qube cli/qube-qrexec-daemon \
	template/qube-agent-static template/qrexec-client-vm-static
endif
endif
