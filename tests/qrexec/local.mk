# tests/qrexec: qrexec end to end — `qube run`, services, qube-to-qube
# calls under policy, hostile guests — with qubes pretended by a test
# fixture (agents as host processes over the socket vchan transport), the
# policy CLI, the wire layout, and the static agent.
check_PROGRAMS += tests/qrexec/fixture-qubes
tests_qrexec_fixture_qubes_SOURCES = tests/qrexec/fixture-qubes.c
tests_qrexec_fixture_qubes_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS)
tests_qrexec_fixture_qubes_LDADD = core/libqube-internal.la $(GLIB_LIBS)

if HAVE_CHECK
if BUILD_SOCKET
check_PROGRAMS += tests/qrexec/test-qrexec
TESTS += tests/qrexec/test-qrexec
endif
endif
tests_qrexec_test_qrexec_SOURCES = tests/qrexec/test-qrexec.c \
	$(AGENT_TRANSPORT_SOURCES) agent/qrexec-wire.h
tests_qrexec_test_qrexec_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent -D_GNU_SOURCE
tests_qrexec_test_qrexec_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_qrexec_test_qrexec_LDADD = $(GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_qrexec_test_qrexec_DEPENDENCIES = cli/qube$(EXEEXT) agent/qube-agent$(EXEEXT) \
	agent/qrexec-client-vm$(EXEEXT) tests/qrexec/fixture-qubes$(EXEEXT) $(plugin_LTLIBRARIES)
