# cli: the `qube` command. It links only the public library.
bin_PROGRAMS += cli/qube
cli_qube_SOURCES = \
	cli/qube.c \
	cli/qube-cli.h \
	cli/qube-cli.c \
	cli/output.h \
	cli/output.c \
	cli/cmd-qube.c \
	cli/cmd-prefs.c \
	cli/cmd-features.c \
	cli/cmd-tags.c \
	cli/cmd-plugins.c \
	cli/cmd-pool.c \
	cli/cmd-volume.c \
	cli/cmd-run.c \
	cli/cmd-policy.c \
	cli/cmd-power.c \
	cli/cmd-template.c
cli_qube_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS) $(JSON_GLIB_CFLAGS) -DG_LOG_DOMAIN=\"qube-cli\" \
	-DQUBE_PKGDATADIR=\"$(pkgdatadir)\" -DQUBE_LIBEXECDIR=\"$(libexecdir)/qube\"
cli_qube_LDADD = core/libqube-1.la $(GLIB_LIBS) $(JSON_GLIB_LIBS)
