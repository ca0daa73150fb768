# agent: the guest side of qrexec (qube-agent, qrexec-client-vm).  Plain C
# and libc only, so that both link statically into minimal guest images;
# they are installed in $(libexecdir)/qube (they run inside qubes, not in
# dom0).  --enable-static-agent links them with -static.
agentdir = $(libexecdir)/qube
agent_PROGRAMS = agent/qube-agent agent/qrexec-client-vm
# Every guest transport (transport.c lists them all): link these together.
AGENT_TRANSPORT_SOURCES = \
	agent/transport.h \
	agent/transport.c \
	agent/transport-socket.c \
	agent/transport-virtio.c \
	agent/virtio-link.h \
	agent/virtio-link.c \
	common/vchan-mux.h \
	common/vchan-mux.c
AGENT_COMMON = \
	agent/qrexec-wire.h \
	agent/agent-config.h \
	$(AGENT_TRANSPORT_SOURCES) \
	agent/data-io.h \
	agent/data-io.c \
	common/qrexec-filter.h
if BUILD_XEN
AGENT_COMMON += agent/transport-xen.c
endif
agent_qube_agent_SOURCES = agent/qube-agent.c agent/rpc-service.h agent/rpc-service.c $(AGENT_COMMON)
agent_qrexec_client_vm_SOURCES = agent/qrexec-client-vm.c $(AGENT_COMMON)
AGENT_CFLAGS_ = $(WARN_CFLAGS) -D_GNU_SOURCE
if BUILD_XEN
AGENT_CFLAGS_ += -DAGENT_HAVE_XEN
endif
agent_qube_agent_LDADD = $(AGENT_XEN_LIBS)
agent_qrexec_client_vm_LDADD = $(AGENT_XEN_LIBS)
agent_qube_agent_CFLAGS = $(AGENT_CFLAGS_)
agent_qrexec_client_vm_CFLAGS = $(AGENT_CFLAGS_)
agent_qube_agent_CPPFLAGS = -I$(top_srcdir)/agent -I$(top_srcdir)
agent_qrexec_client_vm_CPPFLAGS = -I$(top_srcdir)/agent -I$(top_srcdir)
if STATIC_AGENT
agent_qube_agent_LDFLAGS = -all-static
agent_qrexec_client_vm_LDFLAGS = -all-static
endif

# Always built for `make check`: the agent linked statically, as minimal
# guest images need it (tests/qrexec/test-agent-static.sh checks it).
check_PROGRAMS += agent/qube-agent-static
agent_qube_agent_static_SOURCES = $(agent_qube_agent_SOURCES)
agent_qube_agent_static_CFLAGS = $(AGENT_CFLAGS_)
agent_qube_agent_static_CPPFLAGS = $(agent_qube_agent_CPPFLAGS)
agent_qube_agent_static_LDFLAGS = -all-static
agent_qube_agent_static_LDADD = $(AGENT_XEN_LIBS)
EXTRA_DIST += agent/README.md
