# Tests. Each suite's fragment adds its programs to TESTS; the unit suites
# (fast, no root, QEMU or loop devices) also go into UNIT_TESTS, which
# `make check-unit` runs alone — CI runs it again under sanitizers.
UNIT_TESTS =
check-unit:
	$(MAKE) $(AM_MAKEFLAGS) check TESTS="$(UNIT_TESTS)"
.PHONY: check-unit

# distcheck proves the tarball builds and its unit suites pass; the
# integration suites (real qubes under QEMU) already ran on the tree.
distcheck-unit:
	$(MAKE) $(AM_MAKEFLAGS) distcheck TESTS="$(UNIT_TESTS)"
.PHONY: distcheck-unit
