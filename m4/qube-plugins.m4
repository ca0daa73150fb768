dnl Plugin switches, one per plugin. Each plugin adds its own block here when
dnl the plugin itself arrives; qube_plugin_summary feeds configure's summary.
qube_plugin_summary=""

QUBE_PLUGIN_SWITCH([socket], [build the socket vchan plugin (unix sockets; TCP to remote qubes)],
  [qube_have=yes], [it has no dependencies])
qube_plugin_summary="$qube_plugin_summary    socket (vchan over unix/TCP sockets): $build_socket
"
