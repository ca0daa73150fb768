# bench: benchmark programs, run by `make bench` (each is also runnable on
# its own from the build tree).  Add a program with
# `qube_benchmarks += bench/NAME` in a fragment included after this one.
qube_benchmarks = bench/storage

if BUILD_STORAGE_FILE
noinst_PROGRAMS += bench/storage
bench_storage_SOURCES = bench/storage.c \
	tests/storage/storage-harness.c \
	tests/storage/storage-harness.h
bench_storage_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/storage \
	-DQUBE_BUILDDIR=\"$(abs_top_builddir)\"
bench_storage_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS)
bench_storage_LDADD = core/libqube-internal.la $(GLIB_LIBS)
endif

bench: $(qube_benchmarks)
	@for b in $(qube_benchmarks); do ./$$b || exit 1; done
.PHONY: bench
