# bench/qrexec: qrexec calls per second and stream throughput over the
# socket transport, beside a raw unix socket (`make bench` runs it).
if BUILD_SOCKET
noinst_PROGRAMS += bench/qrexec
bench_programs += bench/qrexec
endif
bench_qrexec_SOURCES = bench/qrexec.c
bench_qrexec_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) -DQUBE_BUILDDIR=\"$(abs_top_builddir)\"
bench_qrexec_LDADD = core/libqube-internal.la $(GLIB_LIBS)
EXTRA_bench_qrexec_DEPENDENCIES = tests/qrexec/fixture-qubes$(EXEEXT) agent/qube-agent$(EXEEXT)
