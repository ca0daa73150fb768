# Tests. Each suite's fragment adds its programs to TESTS; the unit suites
# (fast, no root, QEMU or loop devices) also go into UNIT_TESTS, which
# `make check-unit` runs alone — CI runs it again under sanitizers.
UNIT_TESTS =
check-unit:
	$(MAKE) $(AM_MAKEFLAGS) check TESTS="$(UNIT_TESTS)"
.PHONY: check-unit
