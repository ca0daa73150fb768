# tests/qrexec: qrexec end to end — `qube run`, services, qube-to-qube
# calls under policy, hostile guests — with qubes pretended by a test
# fixture (agents as host processes over the socket vchan transport), the
# policy CLI, the wire layout, and the static agent.
check_PROGRAMS += tests/qrexec/fixture-qubes
tests_qrexec_fixture_qubes_SOURCES = tests/qrexec/fixture-qubes.c
tests_qrexec_fixture_qubes_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS)
tests_qrexec_fixture_qubes_LDADD = core/libqube-internal.la $(GLIB_LIBS)
