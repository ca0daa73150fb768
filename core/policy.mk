# The qrexec policy engine (Qubes policy.d format), part of libqube.
qubeinclude_HEADERS += core/qube-policy.h

qube_policy_sources = \
	core/qube-policy.h \
	core/qube-policy-private.h \
	core/qube-policy-parse.c \
	core/qube-policy.c \
	core/qube-policy-ask.c

# The snapshot builder reads a QubeManager, so it stays out of the fuzzer.
core_libqube_internal_la_SOURCES += $(qube_policy_sources) core/qube-policy-snapshot.c
