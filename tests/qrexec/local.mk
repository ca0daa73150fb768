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
tests_qrexec_test_qrexec_SOURCES = tests/qrexec/test-qrexec.c tests/qrexec/qube-run.h \
	$(AGENT_TRANSPORT_SOURCES) agent/data-io.c agent/qrexec-wire.h
tests_qrexec_test_qrexec_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent -D_GNU_SOURCE
tests_qrexec_test_qrexec_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_qrexec_test_qrexec_LDADD = $(GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_qrexec_test_qrexec_DEPENDENCIES = cli/qube$(EXEEXT) agent/qube-agent$(EXEEXT) \
	agent/qrexec-client-vm$(EXEEXT) tests/qrexec/fixture-qubes$(EXEEXT) $(plugin_LTLIBRARIES) \
	daemon/qubed$(EXEEXT)

if HAVE_CHECK
check_PROGRAMS += tests/qrexec/test-policy-cli
TESTS += tests/qrexec/test-policy-cli
UNIT_TESTS += tests/qrexec/test-policy-cli
endif
tests_qrexec_test_policy_cli_SOURCES = tests/qrexec/test-policy-cli.c tests/qrexec/qube-run.h
tests_qrexec_test_policy_cli_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(JSON_GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_qrexec_test_policy_cli_LDADD = $(GLIB_LIBS) $(JSON_GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_qrexec_test_policy_cli_DEPENDENCIES = cli/qube$(EXEEXT)

TESTS += tests/qrexec/test-agent-static.sh
EXTRA_DIST += tests/qrexec/test-agent-static.sh

if HAVE_CHECK
check_PROGRAMS += tests/qrexec/test-agent-wire
TESTS += tests/qrexec/test-agent-wire
UNIT_TESTS += tests/qrexec/test-agent-wire
endif
tests_qrexec_test_agent_wire_SOURCES = tests/qrexec/test-agent-wire.c \
	$(AGENT_TRANSPORT_SOURCES) agent/data-io.c
tests_qrexec_test_agent_wire_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent -D_GNU_SOURCE
tests_qrexec_test_agent_wire_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_qrexec_test_agent_wire_LDADD = $(GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_qrexec_test_agent_wire_DEPENDENCIES = agent/qube-agent$(EXEEXT)

# The qube-qrexec-daemon program's request socket.
if HAVE_CHECK
if BUILD_SOCKET
check_PROGRAMS += tests/qrexec/test-qrexec-daemon
TESTS += tests/qrexec/test-qrexec-daemon
endif
endif
tests_qrexec_test_qrexec_daemon_SOURCES = tests/qrexec/test-qrexec-daemon.c
tests_qrexec_test_qrexec_daemon_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_qrexec_test_qrexec_daemon_LDADD = core/libqube-internal.la $(GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_qrexec_test_qrexec_daemon_DEPENDENCIES = cli/qube-qrexec-daemon$(EXEEXT) \
	agent/qube-agent$(EXEEXT) $(plugin_LTLIBRARIES)
