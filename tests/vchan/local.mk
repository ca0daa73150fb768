# The vchan conformance suite: every vchan plugin must pass it.  Here it
# runs against the socket plugin, over unix sockets and over TCP.
if HAVE_CHECK
if BUILD_SOCKET
check_PROGRAMS += tests/vchan/test-vchan
TESTS += tests/vchan/test-vchan tests/vchan/test-vchan-tcp.sh
endif
endif
tests_vchan_test_vchan_SOURCES = tests/vchan/test-vchan.c
tests_vchan_test_vchan_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_vchan_test_vchan_LDADD = core/libqube-internal.la $(GLIB_LIBS) $(CHECK_LIBS)
EXTRA_DIST += tests/vchan/test-vchan-tcp.sh tests/vchan/README.md
