# Integration tests of the kvm backend: real qubes under QEMU (TCG here).
if BUILD_KVM
if HAVE_CHECK
check_PROGRAMS += tests/kvm/test-kvm tests/kvm/test-kvm-qmp tests/kvm/test-kvm-accel
TESTS += tests/kvm/test-kvm tests/kvm/test-kvm-qmp tests/kvm/test-kvm-accel

# The vchan multiplexer both sides share, and a peer breaking its rules.
check_PROGRAMS += tests/kvm/test-vchan-mux
TESTS += tests/kvm/test-vchan-mux
tests_kvm_test_vchan_mux_SOURCES = tests/kvm/test-vchan-mux.c common/vchan-mux.c common/vchan-mux.h
tests_kvm_test_vchan_mux_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_kvm_test_vchan_mux_LDADD = $(CHECK_LIBS)

# vchan between the host and a real qube: the plugin's vchan side against
# vchan-peer, a static guest program on agent/transport-virtio.c that the
# test puts in the qube's initramfs.
check_PROGRAMS += tests/kvm/test-kvm-vchan
TESTS += tests/kvm/test-kvm-vchan
tests_kvm_test_kvm_vchan_SOURCES = tests/kvm/test-kvm-vchan.c tests/kvm/vchan-peer-proto.h \
	tests/kvm/kvm-vchan-fixture.c tests/kvm/kvm-vchan-fixture.h
tests_kvm_test_kvm_vchan_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_kvm_test_kvm_vchan_LDADD = core/libqube-internal.la $(GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_kvm_test_kvm_vchan_DEPENDENCIES = plugins/kvm/kvm.la

# The core's qrexec daemon says HELLO to qube-agent in a real qube over the
# kvm transport; the agent is linked statically for the initramfs.
check_PROGRAMS += tests/kvm/test-kvm-agent tests/kvm/qube-agent-static
TESTS += tests/kvm/test-kvm-agent
tests_kvm_test_kvm_agent_SOURCES = tests/kvm/test-kvm-agent.c \
	tests/kvm/kvm-vchan-fixture.c tests/kvm/kvm-vchan-fixture.h
tests_kvm_test_kvm_agent_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_kvm_test_kvm_agent_LDADD = core/libqube-internal.la $(GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_kvm_test_kvm_agent_DEPENDENCIES = plugins/kvm/kvm.la
tests_kvm_qube_agent_static_SOURCES = $(agent_qube_agent_SOURCES)
tests_kvm_qube_agent_static_CPPFLAGS = $(agent_qube_agent_CPPFLAGS)
tests_kvm_qube_agent_static_CFLAGS = $(AGENT_CFLAGS_)
tests_kvm_qube_agent_static_LDFLAGS = -all-static
tests_kvm_qube_agent_static_LDADD = $(AGENT_XEN_LIBS)
endif
endif

# The guest peer (static, libc only), also used by bench/vchan.
if BUILD_KVM
noinst_PROGRAMS += tests/kvm/vchan-peer
endif
tests_kvm_vchan_peer_SOURCES = tests/kvm/vchan-peer.c tests/kvm/vchan-peer-proto.h \
	$(AGENT_TRANSPORT_SOURCES)
tests_kvm_vchan_peer_CPPFLAGS = -I$(top_srcdir)/agent -I$(top_srcdir)
tests_kvm_vchan_peer_CFLAGS = $(WARN_CFLAGS) -D_GNU_SOURCE
tests_kvm_vchan_peer_LDFLAGS = -all-static
if BUILD_KVM
if HAVE_CHECK

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
