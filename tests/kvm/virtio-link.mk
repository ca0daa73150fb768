# The guest's vchan link process (agent/virtio-link.c) run on the host
# against a multiplexer in the test: no qube needed.
if HAVE_CHECK
check_PROGRAMS += tests/kvm/test-virtio-link
TESTS += tests/kvm/test-virtio-link
UNIT_TESTS += tests/kvm/test-virtio-link
endif
tests_kvm_test_virtio_link_SOURCES = tests/kvm/test-virtio-link.c $(AGENT_TRANSPORT_SOURCES)
tests_kvm_test_virtio_link_CPPFLAGS = -I$(top_srcdir)/agent -I$(top_srcdir) -I$(top_builddir)
tests_kvm_test_virtio_link_CFLAGS = $(WARN_CFLAGS) -D_GNU_SOURCE $(CHECK_CFLAGS)
tests_kvm_test_virtio_link_LDADD = $(CHECK_LIBS)
