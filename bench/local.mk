# Benchmarks: built with everything, run by hand (`make bench` runs them
# all); each prints one "bench NAME: key=value ..." line.  A benchmark adds
# itself with `bench_programs += bench/NAME` in its own block below.
bench_programs =

if BUILD_SOCKET
noinst_PROGRAMS += bench/vchan-socket
bench_programs += bench/vchan-socket
if BUILD_KVM
noinst_PROGRAMS += bench/vchan
bench_programs += bench/vchan
endif
endif
bench_vchan_socket_SOURCES = bench/vchan-socket.c
bench_vchan_socket_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) \
	-DQUBE_BENCH_PLUGIN_DIR=\"$(abs_top_builddir)/plugins/socket/.libs\"
bench_vchan_socket_LDADD = core/libqube-internal.la $(GLIB_LIBS)

# storage: AppVM volume start from 1 GiB and 8 GiB template roots, per
# copy-on-write mode, beside cp (needs ~20 GiB free; reflink mode needs root).
if BUILD_STORAGE_FILE
noinst_PROGRAMS += bench/storage
bench_programs += bench/storage
endif
bench_storage_SOURCES = bench/storage.c \
	tests/storage/storage-harness.c \
	tests/storage/storage-harness.h
bench_storage_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/storage \
	-DQUBE_BUILDDIR=\"$(abs_top_builddir)\"
bench_storage_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS)
bench_storage_LDADD = core/libqube-internal.la $(GLIB_LIBS)

# bench/vchan: the kvm transport to a real qube, beside the socket one.
bench_vchan_SOURCES = bench/vchan.c \
	tests/kvm/kvm-vchan-fixture.c tests/kvm/kvm-vchan-fixture.h tests/kvm/vchan-peer-proto.h
bench_vchan_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/kvm
bench_vchan_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) \
	-DQUBE_BENCH_BUILDDIR=\"$(abs_top_builddir)\" -DQUBE_BENCH_SRCDIR=\"$(abs_top_srcdir)\"
bench_vchan_LDADD = core/libqube-internal.la $(GLIB_LIBS)
# start: cold start of an AppVM until a `true` call returns, beside the
# same QEMU command booted by hand (needs root and QEMU; TCG here).
if BUILD_KVM
noinst_PROGRAMS += bench/start
bench_programs += bench/start
endif
bench_start_SOURCES = bench/start.c
bench_start_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) -DQUBE_BENCH_BUILDDIR=\"$(abs_top_builddir)\"
bench_start_LDADD = core/libqube-internal.la $(GLIB_LIBS)
EXTRA_bench_start_DEPENDENCIES = cli/qube cli/qube-qrexec-daemon \
	template/qube-agent-static template/qrexec-client-vm-static

bench: $(bench_programs) $(plugin_LTLIBRARIES)
	@for b in $(bench_programs); do ./$$b || exit 1; done
.PHONY: bench
# dispvm: `qube run --dispvm` requests, normal against preloaded,
# sequential and 4 at once (needs root and QEMU; TCG here).
if BUILD_KVM
noinst_PROGRAMS += bench/dispvm
bench_programs += bench/dispvm
endif
bench_dispvm_SOURCES = bench/dispvm.c
bench_dispvm_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) -DQUBE_BENCH_BUILDDIR=\"$(abs_top_builddir)\"
bench_dispvm_LDADD = core/libqube-1.la $(GLIB_LIBS)
EXTRA_bench_dispvm_DEPENDENCIES = cli/qube cli/qube-qrexec-daemon \
	template/qube-agent-static template/qrexec-client-vm-static

# start-xen: the xen backend's cold start inside Xen booted under QEMU, beside
# a plain `xl create` of the same domain, with and without its volumes (a
# script: it builds the images as `make check-xen` does and boots them).
if BUILD_XEN
bench_programs += bench/start-xen
endif
EXTRA_DIST += bench/start-xen bench/start-xen-dom0.sh
clean-local: clean-bench-xen
clean-bench-xen:
	rm -rf "$(abs_top_builddir)/bench/xen-out"
.PHONY: clean-bench-xen
