# The plugin ABI headers, their pkg-config file, and the mechanical ABI check.
abiinclude_HEADERS = \
	abi/qube-plugin.h \
	abi/qube-backend.h \
	abi/qube-vchan.h \
	abi/qube-storage.h \
	abi/qube-net.h
pkgconfig_DATA += abi/qube-plugin-1.pc
EXTRA_DIST += abi/qube-plugin-1.pc.in abi/baseline/libqube.abi \
	abi/baseline/abi-probe.abi abi/abi-probe.c

# Each header must compile on its own as C99 without GLib.
check-abi-headers:
	@for h in $(abiinclude_HEADERS); do \
	  printf '#include "%s"\nint qube_abi_header_probe;\n' "$(abs_top_srcdir)/$$h" > abi-header-check.c; \
	  $(CC) -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only abi-header-check.c || exit 1; \
	  echo "  ABI header $$h compiles alone (c99)"; \
	done; rm -f abi-header-check.c
check-local: check-abi-headers

# A shared object that uses every ABI type, so abidw records their layout.
noinst_LTLIBRARIES += abi/libqube-abi-probe.la
abi_libqube_abi_probe_la_SOURCES = abi/abi-probe.c
abi_libqube_abi_probe_la_CFLAGS = -std=c99 -g -Og $(WARN_CFLAGS)
abi_libqube_abi_probe_la_LDFLAGS = -rpath /nowhere -avoid-version -module

# make abi-check: compare the built library and the probe against the
# committed baseline. make abi-baseline: rewrite the baseline (on purpose).
ABIDW_FLAGS = --no-show-locs --no-corpus-path --drop-private-types
abi-dump: core/libqube-1.la abi/libqube-abi-probe.la
	@test "$(ABIDIFF)" != no || { echo "abi-check needs abidw and abidiff: install the Debian package abigail-tools"; exit 1; }
	$(AM_V_GEN)$(ABIDW) $(ABIDW_FLAGS) --headers-dir $(srcdir)/core \
	  --out-file abi/libqube.abi core/.libs/libqube-1.so && \
	$(ABIDW) --no-show-locs --no-corpus-path \
	  --out-file abi/abi-probe.abi abi/.libs/libqube-abi-probe.so
abi-check: abi-dump
	$(AM_V_GEN)$(ABIDIFF) $(srcdir)/abi/baseline/libqube.abi abi/libqube.abi && \
	$(ABIDIFF) $(srcdir)/abi/baseline/abi-probe.abi abi/abi-probe.abi && \
	echo "abi-check: libqube-1 and the plugin ABI match abi/baseline/"
abi-baseline: abi-dump
	cp abi/libqube.abi abi/abi-probe.abi $(srcdir)/abi/baseline/
.PHONY: check-abi-headers abi-dump abi-check abi-baseline
# The plugin author's contract is installed beside the headers.
dist_abiinclude_DATA = abi/README.md
