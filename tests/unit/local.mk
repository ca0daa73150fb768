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
