dnl Plugin switches, one per plugin. Each plugin adds its own block here when
dnl the plugin itself arrives; qube_plugin_summary feeds configure's summary.
qube_plugin_summary=""
