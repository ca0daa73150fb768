# tests/gi: the library through GObject introspection from /usr/bin/python3.
if HAVE_INTROSPECTION
TESTS += tests/gi/test-gi.py
if BUILD_STORAGE_FILE
TESTS += tests/gi/test-gi-volume.py
endif
endif
EXTRA_DIST += tests/gi/test-gi.py tests/gi/test-gi-volume.py
TEST_EXTENSIONS = .py
PY_LOG_COMPILER = env GI_TYPELIB_PATH='$(abs_top_builddir)' \
	LD_LIBRARY_PATH='$(abs_top_builddir)/core/.libs' /usr/bin/python3
