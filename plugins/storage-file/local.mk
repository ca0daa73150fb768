# plugins/storage-file: the "file" storage pool driver (image files with
# reflink, qcow2 or copy copy-on-write).
if BUILD_STORAGE_FILE
plugin_LTLIBRARIES += plugins/storage-file/storage-file.la
plugins_storage_file_storage_file_la_SOURCES = \
	plugins/storage-file/storage-file.c \
	plugins/storage-file/sf-fs.c \
	plugins/storage-file/sf-fs.h \
	plugins/storage-file/sf-meta.c \
	plugins/storage-file/sf-meta.h \
	plugins/storage-file/sf-image.c \
	plugins/storage-file/sf-pool.h \
	plugins/storage-file/sf-volume.c \
	plugins/storage-file/sf-volume.h
plugins_storage_file_storage_file_la_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) \
	-fvisibility=hidden -DG_LOG_DOMAIN=\"qube-storage-file\"
plugins_storage_file_storage_file_la_LIBADD = $(GLIB_LIBS)
plugins_storage_file_storage_file_la_LDFLAGS = -module -avoid-version -no-undefined \
	-export-symbols-regex '^qube_plugin_descriptor$$'
endif
EXTRA_DIST += plugins/storage-file/README.md
