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

# Built with the xen transport, the same static binary knows it; outside
# Xen it says why it cannot offer its channel (no xenstore here), and it
# refuses a peer that is not a domain id.
sock=$(mktemp -u /tmp/qube-agent-test.XXXXXX)
if out=$("$agent" --transport=xen:dom0 --trigger-socket="$sock" --once 2>&1); then
  echo "FAIL: the agent ran over xen outside Xen: $out"; rm -f "$sock"; exit 1
fi
case "$out" in
  *"unknown transport"*) echo "SKIP: built without the xen transport" ;;
  *"cannot offer the control channel: cannot reach xenstore"*|\
  *"cannot offer the control channel: cannot read this domain's id"*)
    out=$("$agent" --transport=xen:7x --trigger-socket="$sock" --once 2>&1 || true)
    case "$out" in
      *"'7x' is not a Xen domain id"*) echo "PASS: the xen transport is built in and refuses what it cannot do" ;;
      *) echo "FAIL: xen:7x gave: $out"; rm -f "$sock"; exit 1 ;;
    esac ;;
  *) echo "FAIL: the xen transport outside Xen said: $out"; rm -f "$sock"; exit 1 ;;
esac
rm -f "$sock"
