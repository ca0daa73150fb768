#!/bin/sh
# The statically linked qube-agent has no program interpreter (it needs no
# shared library in the guest) and runs.
set -e
agent="$QUBE_TEST_BUILDDIR/agent/qube-agent-static"
if ! command -v readelf >/dev/null 2>&1; then
  echo "readelf is missing (binutils): cannot inspect the agent"; exit 77
fi
if readelf -l "$agent" | grep -q INTERP; then
  echo "FAIL: $agent has a program interpreter: it is not static"; exit 1
fi
if readelf -d "$agent" 2>/dev/null | grep -q NEEDED; then
  echo "FAIL: $agent needs shared libraries"; exit 1
fi
out=$("$agent" --help)
case "$out" in
  *"Usage: qube-agent"*) echo "PASS: $agent is static and runs" ;;
  *) echo "FAIL: $agent --help printed: $out"; exit 1 ;;
esac
