# The default minimal template (kernel, initramfs, root volume), built from
# the host's Debian packages.  Not part of `all`: run `make template`
# (output in TEMPLATE_DIR, default template/debian-minimal in the build tree).
TEMPLATE_DIR ?= $(abs_top_builddir)/template/debian-minimal
template_files = template/build-template.sh template/init \
	template/qubes-rpc/qubes.WaitForRunningSystem \
	template/qubes-rpc/qubes.VMShell
EXTRA_DIST += $(template_files)

template:
	$(SHELL) $(srcdir)/template/build-template.sh "$(TEMPLATE_DIR)"
.PHONY: template

clean-local: clean-template
clean-template:
	rm -rf "$(abs_top_builddir)/template/debian-minimal"
.PHONY: clean-template
