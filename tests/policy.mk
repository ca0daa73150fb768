# Tests of the qrexec policy engine: unit tests (check) on fixture
# directories under tests/policy/, and a libFuzzer harness built only on
# request (`make fuzz`, `make fuzz-run FUZZ_SECONDS=60`) since it needs clang.
if HAVE_CHECK
check_PROGRAMS += tests/unit/test-policy
TESTS += tests/unit/test-policy
UNIT_TESTS += tests/unit/test-policy
tests_unit_test_policy_SOURCES = tests/unit/test-policy.c
tests_unit_test_policy_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_policy_LDADD = core/libqube-internal.la $(GLIB_LIBS) $(CHECK_LIBS)
endif

EXTRA_DIST += tests/policy tests/fuzz/fuzz-policy.c tests/fuzz/fuzz-policy.dict

CLANG = clang
FUZZ_SECONDS = 60
FUZZ_FLAGS = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined
fuzz_policy_sources = $(filter %.c,$(qube_policy_sources)) core/qube-names.c core/qube-error.c

tests/fuzz/fuzz-policy: $(srcdir)/tests/fuzz/fuzz-policy.c \
		$(addprefix $(srcdir)/,$(fuzz_policy_sources)) $(srcdir)/core/qube-policy-private.h
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CCLD)$(CLANG) $(FUZZ_FLAGS) -I$(top_builddir) -I$(top_srcdir)/core \
		$(GLIB_CFLAGS) -o $@ $(srcdir)/tests/fuzz/fuzz-policy.c \
		$(addprefix $(srcdir)/,$(fuzz_policy_sources)) $(GLIB_LIBS)

fuzz: tests/fuzz/fuzz-policy

# Runs every fuzzer for FUZZ_SECONDS on a corpus seeded from the policy
# fixtures; a crash, leak or sanitizer report fails the target.
fuzz-run: fuzz
	@rm -rf tests/fuzz/corpus-policy && $(MKDIR_P) tests/fuzz/corpus-policy
	@find $(srcdir)/tests/policy -type f -name '*.policy' -exec cp {} tests/fuzz/corpus-policy/ \;
	ASAN_OPTIONS=detect_leaks=1 tests/fuzz/fuzz-policy -max_total_time=$(FUZZ_SECONDS) \
		-max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-dict=$(srcdir)/tests/fuzz/fuzz-policy.dict -artifact_prefix=tests/fuzz/ \
		tests/fuzz/corpus-policy

CLEANFILES += tests/fuzz/fuzz-policy
clean-local: clean-fuzz
clean-fuzz:
	rm -rf tests/fuzz/corpus-policy

.PHONY: fuzz fuzz-run clean-fuzz
