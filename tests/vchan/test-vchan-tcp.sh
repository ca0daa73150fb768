#!/bin/sh
# Runs the vchan conformance suite with the socket plugin over TCP on
# loopback (the mode for qubes on another machine), enabled explicitly.
QUBE_VCHAN_PLUGIN=socket
QUBE_VCHAN_CONFIG=tcp=enabled
# Below the ephemeral range (32768+) with the suite's ports added (up to
# about 5100), so no client socket holds a port we listen on.
QUBE_VCHAN_ADDRESS=${QUBE_VCHAN_ADDRESS:-tcp:127.0.0.1:$((10000 + $$ % 12000))}
QUBE_VCHAN_STREAM_MIB=${QUBE_VCHAN_STREAM_MIB:-256}
export QUBE_VCHAN_PLUGIN QUBE_VCHAN_CONFIG QUBE_VCHAN_ADDRESS QUBE_VCHAN_STREAM_MIB
exec "${QUBE_TEST_BUILDDIR:-.}/tests/vchan/test-vchan"
