# Integration tests of the kvm backend: real qubes under QEMU (TCG here).
if BUILD_KVM
if HAVE_CHECK
check_PROGRAMS += tests/kvm/test-kvm tests/kvm/test-kvm-qmp tests/kvm/test-kvm-accel
TESTS += tests/kvm/test-kvm tests/kvm/test-kvm-qmp tests/kvm/test-kvm-accel

# The QMP client against a scripted monitor.
tests_kvm_test_kvm_qmp_SOURCES = tests/kvm/test-kvm-qmp.c \
	plugins/kvm/kvm-qmp.c plugins/kvm/kvm-qmp.h
tests_kvm_test_kvm_qmp_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/kvm
tests_kvm_test_kvm_qmp_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(JSON_GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_kvm_test_kvm_qmp_LDADD = $(GLIB_LIBS) $(JSON_GLIB_LIBS) $(CHECK_LIBS)

# The KVM-or-TCG choice and its cache.
tests_kvm_test_kvm_accel_SOURCES = tests/kvm/test-kvm-accel.c \
	plugins/kvm/kvm-accel.c plugins/kvm/kvm-accel.h
tests_kvm_test_kvm_accel_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/kvm
tests_kvm_test_kvm_accel_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_kvm_test_kvm_accel_LDADD = $(GLIB_LIBS) $(CHECK_LIBS)
tests_kvm_test_kvm_SOURCES = tests/kvm/test-kvm.c
tests_kvm_test_kvm_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_kvm_test_kvm_LDADD = core/libqube-internal.la $(GLIB_LIBS) $(CHECK_LIBS)
# The test loads the plugin from the build tree.
EXTRA_tests_kvm_test_kvm_DEPENDENCIES = plugins/kvm/kvm.la
endif
endif

# tests/kvm/measure-boot (built by make check, not a test): boot time and
# host memory per qube on this host (figures in plugins/kvm/README.md).
if BUILD_KVM
check_PROGRAMS += tests/kvm/measure-boot
tests_kvm_measure_boot_SOURCES = tests/kvm/measure-boot.c
tests_kvm_measure_boot_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS)
tests_kvm_measure_boot_LDADD = core/libqube-internal.la $(GLIB_LIBS)
endif
