# Unit tests of the qube model and the state store (check framework),
# white-box: linked against all core code.
if HAVE_CHECK
model_unit_tests = \
	tests/unit/test-names \
	tests/unit/test-property \
	tests/unit/test-manager \
	tests/unit/test-store \
	tests/unit/test-store-crash
check_PROGRAMS += $(model_unit_tests)
TESTS += $(model_unit_tests)
UNIT_TESTS += $(model_unit_tests)

model_unit_cflags = $(AM_CFLAGS) $(GLIB_CFLAGS) $(SQLITE_CFLAGS) $(CHECK_CFLAGS) \
	-DG_LOG_DOMAIN=\"qube-test\"
model_unit_ldadd = core/libqube-internal.la $(GLIB_LIBS) $(SQLITE_LIBS) $(CHECK_LIBS)
model_unit_fixture = tests/unit/state-fixture.c tests/unit/state-fixture.h

tests_unit_test_names_SOURCES = tests/unit/test-names.c $(model_unit_fixture)
tests_unit_test_names_CFLAGS = $(model_unit_cflags)
tests_unit_test_names_LDADD = $(model_unit_ldadd)

tests_unit_test_property_SOURCES = tests/unit/test-property.c $(model_unit_fixture)
tests_unit_test_property_CFLAGS = $(model_unit_cflags)
tests_unit_test_property_LDADD = $(model_unit_ldadd)

tests_unit_test_manager_SOURCES = tests/unit/test-manager.c $(model_unit_fixture)
tests_unit_test_manager_CFLAGS = $(model_unit_cflags)
tests_unit_test_manager_LDADD = $(model_unit_ldadd)

tests_unit_test_store_SOURCES = tests/unit/test-store.c $(model_unit_fixture)
tests_unit_test_store_CFLAGS = $(model_unit_cflags)
tests_unit_test_store_LDADD = $(model_unit_ldadd)

tests_unit_test_store_crash_SOURCES = tests/unit/test-store-crash.c $(model_unit_fixture)
tests_unit_test_store_crash_CFLAGS = $(model_unit_cflags)
tests_unit_test_store_crash_LDADD = $(model_unit_ldadd)
endif

# Pools and volumes with the real storage-file plugin (QUBE_PLUGIN_PATH
# from AM_TESTS_ENVIRONMENT) and real data; images are written through the
# storage tests' harness (qemu-io for qcow2).  test-volume also mounts a
# tmpfs and a loop XFS (as root), so it is not a unit test.
if HAVE_CHECK
if BUILD_STORAGE_FILE
storage_unit_tests = tests/unit/test-pool tests/unit/test-volume
check_PROGRAMS += $(storage_unit_tests)
TESTS += $(storage_unit_tests)
UNIT_TESTS += tests/unit/test-pool
storage_unit_sources = $(model_unit_fixture) tests/storage/storage-harness.c \
	tests/storage/storage-harness.h
storage_unit_cppflags = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/storage \
	-DQUBE_BUILDDIR=\"$(abs_top_builddir)\"

tests_unit_test_pool_SOURCES = tests/unit/test-pool.c $(storage_unit_sources)
tests_unit_test_pool_CPPFLAGS = $(storage_unit_cppflags)
tests_unit_test_pool_CFLAGS = $(model_unit_cflags)
tests_unit_test_pool_LDADD = $(model_unit_ldadd)

tests_unit_test_volume_SOURCES = tests/unit/test-volume.c $(storage_unit_sources)
tests_unit_test_volume_CPPFLAGS = $(storage_unit_cppflags)
tests_unit_test_volume_CFLAGS = $(model_unit_cflags)
tests_unit_test_volume_LDADD = $(model_unit_ldadd)
endif
endif

# A qrexec channel over a local socket (the relayed data channel).
if HAVE_CHECK
check_PROGRAMS += tests/unit/test-qrexec-chan
TESTS += tests/unit/test-qrexec-chan
UNIT_TESTS += tests/unit/test-qrexec-chan
endif
tests_unit_test_qrexec_chan_SOURCES = tests/unit/test-qrexec-chan.c $(model_unit_fixture)
tests_unit_test_qrexec_chan_CFLAGS = $(model_unit_cflags)
tests_unit_test_qrexec_chan_LDADD = $(model_unit_ldadd)
