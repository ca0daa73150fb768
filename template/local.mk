# The default minimal template (kernel, initramfs, root volume), built from
# the host's Debian packages.  Not part of `all`: run `make template`
# (output in TEMPLATE_DIR, default template/debian-minimal in the build tree).
TEMPLATE_DIR ?= $(abs_top_builddir)/template/debian-minimal
template_files = template/build-template.sh template/init \
	template/qubes-rpc/qubes.WaitForRunningSystem \
	template/qubes-rpc/qubes.VMShell template/qubes-rpc/qubes.PowerOff
EXTRA_DIST += $(template_files)

template: template/qube-agent-static template/qrexec-client-vm-static
	$(SHELL) $(srcdir)/template/build-template.sh -a template/qube-agent-static \
	  -a template/qrexec-client-vm-static "$(TEMPLATE_DIR)"
.PHONY: template

clean-local: clean-template
clean-template:
	rm -rf "$(abs_top_builddir)/template/debian-minimal"
.PHONY: clean-template

# The guest programs a template carries (build-template.sh -a), linked
# statically; installed beside the builder for `qube template build`.
templatedir = $(pkgdatadir)/template
template_SCRIPTS = template/build-template.sh
template_DATA = template/init
templaterpcdir = $(pkgdatadir)/template/qubes-rpc
templaterpc_DATA = template/qubes-rpc/qubes.WaitForRunningSystem template/qubes-rpc/qubes.VMShell \
	template/qubes-rpc/qubes.PowerOff
templatebindir = $(pkgdatadir)/template/bin
templatebin_PROGRAMS = template/qube-agent-static template/qrexec-client-vm-static
template_qube_agent_static_SOURCES = $(agent_qube_agent_SOURCES)
template_qube_agent_static_CPPFLAGS = $(agent_qube_agent_CPPFLAGS)
template_qube_agent_static_CFLAGS = $(AGENT_CFLAGS_)
template_qube_agent_static_LDFLAGS = -all-static
template_qube_agent_static_LDADD = $(AGENT_XEN_LIBS)
template_qrexec_client_vm_static_SOURCES = $(agent_qrexec_client_vm_SOURCES)
template_qrexec_client_vm_static_CPPFLAGS = $(agent_qrexec_client_vm_CPPFLAGS)
template_qrexec_client_vm_static_CFLAGS = $(AGENT_CFLAGS_)
template_qrexec_client_vm_static_LDFLAGS = -all-static
template_qrexec_client_vm_static_LDADD = $(AGENT_XEN_LIBS)
