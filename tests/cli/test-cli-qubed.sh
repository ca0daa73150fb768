#!/bin/sh
# The CLI suite again, each `qube` run talking to a qubed that serves the
# test's state directory: the suite's exact-output assertions then show
# that the output is the same as when the CLI works in-process, and the
# commands the suite runs with qube_run_both_ways() (pool info and list,
# volume list, info and revisions, also with --json) run again with
# --embedded and must print the same bytes.
QUBE_TEST_CLI_QUBED=1 exec "${QUBE_TEST_BUILDDIR:-.}/tests/cli/test-cli" "$@"
