# The Admin API with real qubes: qubed starting them, a management qube
# managing its own over qrexec, admin.Events, qubed killed and restarted.
if BUILD_KVM
if HAVE_CHECK
check_PROGRAMS += tests/kvm/test-admin
TESTS += tests/kvm/test-admin
tests_kvm_test_admin_SOURCES = tests/kvm/test-admin.c \
	tests/kvm/kvm-qube-fixture.c tests/kvm/kvm-qube-fixture.h \
	tests/qubed/qubed-fixture.h tests/qubed/qubed-fixture.c
tests_kvm_test_admin_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS) \
	-I$(top_srcdir)/tests/qubed -DG_LOG_DOMAIN=\"test-admin\"
tests_kvm_test_admin_LDADD = core/libqube-1.la $(GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_kvm_test_admin_DEPENDENCIES = plugins/kvm/kvm.la cli/qube cli/qube-qrexec-daemon \
	daemon/qubed template/qube-agent-static template/qrexec-client-vm-static
endif
endif
