dnl Plugin switches, one per plugin. Each plugin adds its own block here when
dnl the plugin itself arrives; qube_plugin_summary feeds configure's summary.
qube_plugin_summary=""

dnl socket: vchan transport over unix sockets (TCP to remote qubes on request).
QUBE_PLUGIN_SWITCH([socket], [build the socket vchan plugin (unix sockets; TCP to remote qubes)],
  [qube_have=yes], [it has no dependencies])
qube_plugin_summary="$qube_plugin_summary    socket        (vchan over unix/TCP sockets)  : $build_socket
"

dnl kvm: isolation backend running qubes under QEMU (qemu-system-x86 at run time).
QUBE_PLUGIN_SWITCH([kvm], [build the kvm isolation backend (QEMU microvm over QMP)],
  [PKG_CHECK_MODULES([JSON_GLIB], [json-glib-1.0], [qube_have=yes], [qube_have=no])],
  [json-glib was not found: install the Debian package libjson-glib-dev])
qube_plugin_summary="$qube_plugin_summary    kvm           (isolation backend, QEMU)      : $build_kvm
"

dnl storage-file: needs nothing to build; qcow2 mode runs qemu-img at run
dnl time (reflink and copy modes do not), so its absence is only reported.
QUBE_PLUGIN_SWITCH([storage-file], [build the file storage pool driver],
  [qube_have=yes], [it cannot fail])
AC_PATH_PROG([QEMU_IMG], [qemu-img], [no])
AS_IF([test "x$QEMU_IMG" = xno],
  [qube_storage_file_note="yes (qemu-img not found: qcow2 mode unavailable until qemu-utils is installed)"],
  [qube_storage_file_note="yes (qcow2 mode via $QEMU_IMG)"])
AS_IF([test "x$build_storage_file" != xyes], [qube_storage_file_note=no])
qube_plugin_summary="$qube_plugin_summary    storage-file  (storage pool, image files)    : $qube_storage_file_note
"
