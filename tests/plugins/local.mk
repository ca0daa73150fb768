# Test plugins: small libtool modules, each good or bad in one way, loaded
# by tests/unit/test-plugin-registry.  -rpath makes libtool build real .so
# files for modules that are never installed.  Each is built from the .c
# file of its name.
qube_test_plugin_ldflags = -module -avoid-version -shared -rpath /nowhere

check_LTLIBRARIES += \
	tests/plugins/test-good.la \
	tests/plugins/test-good-again.la \
	tests/plugins/test-no-descriptor.la \
	tests/plugins/test-abi-major.la \
	tests/plugins/test-abi-minor.la \
	tests/plugins/test-bad-name.la \
	tests/plugins/test-bad-table.la \
	tests/plugins/test-init-fails.la \
	tests/plugins/test-unresolved.la \
	tests/plugins/test-unavailable.la \
	tests/plugins/test-vchan-v11.la

tests_plugins_test_good_la_SOURCES = tests/plugins/test-good.c tests/plugins/test-good.h
tests_plugins_test_good_la_LDFLAGS = $(qube_test_plugin_ldflags)
tests_plugins_test_good_again_la_LDFLAGS = $(qube_test_plugin_ldflags)
tests_plugins_test_no_descriptor_la_LDFLAGS = $(qube_test_plugin_ldflags)
tests_plugins_test_abi_major_la_LDFLAGS = $(qube_test_plugin_ldflags)
tests_plugins_test_abi_minor_la_LDFLAGS = $(qube_test_plugin_ldflags)
tests_plugins_test_bad_name_la_LDFLAGS = $(qube_test_plugin_ldflags)
tests_plugins_test_bad_table_la_LDFLAGS = $(qube_test_plugin_ldflags)
tests_plugins_test_init_fails_la_LDFLAGS = $(qube_test_plugin_ldflags)
# Its one undefined symbol must survive the link so that dlopen() fails.
tests_plugins_test_unresolved_la_LDFLAGS = $(qube_test_plugin_ldflags) \
	-Wl,--unresolved-symbols=ignore-all
tests_plugins_test_unavailable_la_LDFLAGS = $(qube_test_plugin_ldflags)
tests_plugins_test_vchan_v11_la_LDFLAGS = $(qube_test_plugin_ldflags)

# Named like a plugin, but text.
EXTRA_DIST += tests/plugins/test-not-elf.so

if HAVE_CHECK
check_PROGRAMS += tests/unit/test-plugin-registry
TESTS += tests/unit/test-plugin-registry
UNIT_TESTS += tests/unit/test-plugin-registry
tests_unit_test_plugin_registry_SOURCES = tests/unit/test-plugin-registry.c
tests_unit_test_plugin_registry_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/plugins
tests_unit_test_plugin_registry_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_plugin_registry_LDADD = core/libqube-internal.la $(GLIB_LIBS) $(CHECK_LIBS)
endif
