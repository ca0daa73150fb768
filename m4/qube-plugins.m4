dnl Plugin switches, one per plugin. Each plugin adds its own block here when
dnl the plugin itself arrives; qube_plugin_summary feeds configure's summary.
qube_plugin_summary=""

QUBE_PLUGIN_SWITCH([socket], [build the socket vchan plugin (unix sockets; TCP to remote qubes)],
  [qube_have=yes], [it has no dependencies])
qube_plugin_summary="$qube_plugin_summary    socket (vchan over unix/TCP sockets): $build_socket
"

dnl xen: isolation backend building Xen domains with libxl (runs in dom0).
QUBE_PLUGIN_SWITCH([xen], [build the xen isolation backend (libxl, libxenctrl, libxenstore)],
  [PKG_CHECK_MODULES([XEN], [xenlight xencontrol xenstore xentoollog xenvchan], [qube_have=yes], [qube_have=no])],
  [the Xen libraries (xenlight, xencontrol, xenstore) were not found: install the Debian package libxen-dev])
qube_plugin_summary="$qube_plugin_summary    xen               : $build_xen
"
