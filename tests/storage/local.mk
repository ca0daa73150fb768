# tests/storage: the storage-file pool driver with real files and data,
# in qcow2 mode on the ext4 work directory (test-storage-file as it is) and
# in reflink mode on a loop-mounted XFS (run-reflink.sh).
if HAVE_CHECK
if BUILD_STORAGE_FILE
check_PROGRAMS += tests/storage/test-storage-file
TESTS += tests/storage/test-storage-file tests/storage/run-reflink.sh
tests_storage_test_storage_file_SOURCES = \
	tests/storage/test-storage-file.c \
	tests/storage/storage-harness.c \
	tests/storage/storage-harness.h
tests_storage_test_storage_file_CPPFLAGS = $(AM_CPPFLAGS) \
	-DQUBE_BUILDDIR=\"$(abs_top_builddir)\"
tests_storage_test_storage_file_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(CHECK_CFLAGS)
tests_storage_test_storage_file_LDADD = core/libqube-internal.la $(GLIB_LIBS) $(CHECK_LIBS)
endif
endif
EXTRA_DIST += tests/storage/run-reflink.sh
