# daemon: qubed, the admin daemon (the Admin API on a unix socket), its
# systemd unit, its tests (tests/qubed) and its benchmark (bench/admin).
sbin_PROGRAMS += daemon/qubed
daemon_qubed_SOURCES = daemon/qubed.c
daemon_qubed_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) -DG_LOG_DOMAIN=\"qubed\"
daemon_qubed_LDADD = core/libqube-1.la $(GLIB_LIBS)

systemdsystemunit_DATA = daemon/qubed.service
daemon/qubed.service: daemon/qubed.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) daemon && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' $(srcdir)/daemon/qubed.service.in > $@
EXTRA_DIST += daemon/qubed.service.in
CLEANFILES += daemon/qubed.service

# A real qubed in a temporary state directory, driven over its sockets.
if HAVE_CHECK
check_PROGRAMS += tests/qubed/test-qubed
TESTS += tests/qubed/test-qubed
UNIT_TESTS += tests/qubed/test-qubed
endif
tests_qubed_test_qubed_SOURCES = tests/qubed/test-qubed.c \
	tests/qubed/qubed-fixture.h tests/qubed/qubed-fixture.c
tests_qubed_test_qubed_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS) \
	-DG_LOG_DOMAIN=\"test-qubed\"
tests_qubed_test_qubed_LDADD = core/libqube-1.la $(GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_qubed_test_qubed_DEPENDENCIES = daemon/qubed

# The Python example: a tiny admin daemon through Qube-1.0 only.
if HAVE_INTROSPECTION
TESTS += tests/qubed/test-admin-example.py
endif
EXTRA_DIST += examples/admin-daemon.py tests/qubed/test-admin-example.py

# bench/admin: Admin API latency through qubed beside the library in-process.
noinst_PROGRAMS += bench/admin
bench_admin_SOURCES = bench/admin.c \
	tests/qubed/qubed-fixture.h tests/qubed/qubed-fixture.c
bench_admin_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) -I$(top_srcdir)/tests/qubed -DG_LOG_DOMAIN=\"bench-admin\"
bench_admin_LDADD = core/libqube-1.la $(GLIB_LIBS)
bench_programs += bench/admin
# bench/admin runs the daemon it measures.
bench: daemon/qubed
