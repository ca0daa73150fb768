dnl Plugin switches, one per plugin. Each plugin adds its own block here when
dnl the plugin itself arrives; qube_plugin_summary feeds configure's summary.
qube_plugin_summary=""

dnl storage-file: needs nothing to build; qcow2 mode runs qemu-img at run
dnl time (reflink and copy modes do not), so its absence is only reported.
QUBE_PLUGIN_SWITCH([storage-file], [build the file storage pool driver],
  [qube_have=yes], [it cannot fail])
AC_PATH_PROG([QEMU_IMG], [qemu-img], [no])
AS_IF([test "x$QEMU_IMG" = xno],
  [qube_storage_file_note="yes (qemu-img not found: qcow2 mode unavailable until qemu-utils is installed)"],
  [qube_storage_file_note="yes (qcow2 mode via $QEMU_IMG)"])
AS_IF([test "x$build_storage_file" != xyes], [qube_storage_file_note=no])
qube_plugin_summary="$qube_plugin_summary    storage-file      : $qube_storage_file_note
"
