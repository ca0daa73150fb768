# The Admin API (qubesd's calls), part of libqube; qubed and embedded
# callers share it.
qubeinclude_HEADERS += core/qube-admin.h
core_libqube_internal_la_SOURCES += core/qube-admin.h core/qube-admin.c

# make fuzz-admin builds a libFuzzer harness of qube_admin_handle_request
# (whole core, real store) with clang; make fuzz-run-admin runs it for
# FUZZ_SECONDS and fails on any crash, leak or undefined behaviour.
FUZZ_ADMIN_SRC = tests/fuzz/fuzz-admin.c \
	$(filter %.c,$(core_libqube_internal_la_SOURCES))
tests/fuzz/fuzz-admin: $(FUZZ_ADMIN_SRC:%=$(srcdir)/%)
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CCLD)$(FUZZ_QREXEC_CC) $(FUZZ_QREXEC_FLAGS) -I$(top_builddir) -I$(top_srcdir) \
	  -I$(top_srcdir)/core -DQUBE_PLUGIN_DIR=\"$(plugindir)\" -DG_LOG_DOMAIN=\"qube\" \
	  -DQUBE_LIBEXECDIR=\"$(libexecdir)/qube\" \
	  $(GLIB_CFLAGS) $(SQLITE_CFLAGS) -o $@ \
	  $(FUZZ_ADMIN_SRC:%=$(srcdir)/%) $(GLIB_LIBS) $(SQLITE_LIBS) $(LIBS)
fuzz-admin: tests/fuzz/fuzz-admin
fuzz-run-admin: fuzz-admin
	@$(MKDIR_P) tests/fuzz/corpus-admin
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  tests/fuzz/fuzz-admin -max_total_time=$(if $(FUZZ_SECONDS),$(FUZZ_SECONDS),60) \
	  -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	  -dict=$(srcdir)/tests/fuzz/fuzz-admin.dict \
	  -artifact_prefix=tests/fuzz/ tests/fuzz/corpus-admin
fuzz: fuzz-admin
fuzz-run: fuzz-run-admin
.PHONY: fuzz-admin fuzz-run-admin
CLEANFILES += tests/fuzz/fuzz-admin
EXTRA_DIST += tests/fuzz/fuzz-admin.c tests/fuzz/fuzz-admin.dict
