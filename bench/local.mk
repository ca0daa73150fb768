# Benchmarks: built with everything, run by hand (`make bench` runs them);
# each prints one "bench NAME: key=value ..." line.
if BUILD_SOCKET
noinst_PROGRAMS += bench/vchan-socket
bench_programs = bench/vchan-socket
endif
bench_vchan_socket_SOURCES = bench/vchan-socket.c
bench_vchan_socket_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) \
	-DQUBE_BENCH_PLUGIN_DIR=\"$(abs_top_builddir)/plugins/socket/.libs\"
bench_vchan_socket_LDADD = core/libqube-internal.la $(GLIB_LIBS)
bench: $(bench_programs) $(plugin_LTLIBRARIES)
	@for b in $(bench_programs); do ./$$b || exit 1; done
.PHONY: bench
