# tests/cli: runs the built `qube` command and checks its output and exit
# status.
if HAVE_CHECK
check_PROGRAMS += tests/cli/test-cli
TESTS += tests/cli/test-cli
UNIT_TESTS += tests/cli/test-cli
tests_cli_test_cli_SOURCES = tests/cli/test-cli.c \
	tests/qubed/qubed-fixture.h tests/qubed/qubed-fixture.c
tests_cli_test_cli_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(JSON_GLIB_CFLAGS) $(CHECK_CFLAGS) \
	-I$(top_srcdir)/tests/qubed
tests_cli_test_cli_LDADD = $(GLIB_LIBS) $(JSON_GLIB_LIBS) $(CHECK_LIBS)
EXTRA_tests_cli_test_cli_DEPENDENCIES = cli/qube$(EXEEXT) daemon/qubed$(EXEEXT)
# The same suite with every run going through a qubed.
TESTS += tests/cli/test-cli-qubed.sh
endif
EXTRA_DIST += tests/cli/test-cli-qubed.sh
# qubed's and the CLI's default socket are the same.
TESTS += tests/cli/test-qubed-default-socket.sh
EXTRA_DIST += tests/cli/test-qubed-default-socket.sh
