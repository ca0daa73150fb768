# The socket vchan plugin: unix sockets on one host, TCP to remote qubes.
if BUILD_SOCKET
plugin_LTLIBRARIES += plugins/socket/socket.la
endif
plugins_socket_socket_la_SOURCES = \
	plugins/socket/socket-vchan.c \
	plugins/socket/socket-ring.c \
	plugins/socket/socket-ring.h
plugins_socket_socket_la_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) -fvisibility=hidden \
	-DG_LOG_DOMAIN=\"qube-socket\"
plugins_socket_socket_la_LIBADD = $(GLIB_LIBS)
plugins_socket_socket_la_LDFLAGS = -module -avoid-version -no-undefined \
	-export-symbols-regex '^qube_plugin_descriptor$$'
EXTRA_DIST += plugins/socket/README.md
