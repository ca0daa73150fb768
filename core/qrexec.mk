# The qrexec protocol: wire definitions, the message parser, its unit test
# and its fuzzer.
core_libqube_internal_la_SOURCES += \
	core/qrexec-protocol.h \
	core/qrexec-protocol.c

if HAVE_CHECK
check_PROGRAMS += tests/unit/test-qrexec-protocol
TESTS += tests/unit/test-qrexec-protocol
UNIT_TESTS += tests/unit/test-qrexec-protocol
endif
tests_unit_test_qrexec_protocol_SOURCES = tests/unit/test-qrexec-protocol.c
tests_unit_test_qrexec_protocol_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_qrexec_protocol_LDADD = core/libqube-internal.la $(GLIB_LIBS) $(CHECK_LIBS)

# make fuzz-qrexec builds the libFuzzer harness of the parser with clang;
# make fuzz-run-qrexec FUZZ_SECONDS=60 runs it for a bounded time and fails
# on any crash, leak or undefined behaviour.  `fuzz` and `fuzz-run` cover
# every harness.
FUZZ_QREXEC_CC = clang
FUZZ_QREXEC_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_QREXEC_SRC = tests/fuzz/fuzz-qrexec.c core/qrexec-protocol.c core/qube-error.c
tests/fuzz/fuzz-qrexec: $(FUZZ_QREXEC_SRC:%=$(srcdir)/%) $(srcdir)/core/qrexec-protocol.h
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CCLD)$(FUZZ_QREXEC_CC) $(FUZZ_QREXEC_FLAGS) -I$(top_builddir) -I$(top_srcdir) \
	  -I$(top_srcdir)/core $(GLIB_CFLAGS) -o $@ \
	  $(FUZZ_QREXEC_SRC:%=$(srcdir)/%) $(GLIB_LIBS)
fuzz-qrexec: tests/fuzz/fuzz-qrexec
fuzz-run-qrexec: fuzz-qrexec
	@$(MKDIR_P) tests/fuzz/corpus-qrexec
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  tests/fuzz/fuzz-qrexec -max_total_time=$(if $(FUZZ_SECONDS),$(FUZZ_SECONDS),60) \
	  -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	  -dict=$(srcdir)/tests/fuzz/fuzz-qrexec.dict \
	  -artifact_prefix=tests/fuzz/ tests/fuzz/corpus-qrexec
fuzz: fuzz-qrexec
fuzz-run: fuzz-run-qrexec
.PHONY: fuzz fuzz-run fuzz-qrexec fuzz-run-qrexec
CLEANFILES += tests/fuzz/fuzz-qrexec
EXTRA_DIST += tests/fuzz/fuzz-qrexec.c tests/fuzz/fuzz-qrexec.dict
