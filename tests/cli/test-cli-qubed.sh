#!/bin/sh
# The CLI suite again, each `qube` run talking to a qubed that serves the
# test's state directory: the suite's exact-output assertions then show
# that the output is the same as when the CLI works in-process.
QUBE_TEST_CLI_QUBED=1 exec "${QUBE_TEST_BUILDDIR:-.}/tests/cli/test-cli" "$@"
