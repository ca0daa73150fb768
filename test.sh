#!/bin/sh
# Runs libqube's test suite on a fresh Debian 12 machine: installs the
# packages it needs, builds with warnings as errors, and runs `make check`.
# Run as root (or with sudo available): integration tests use loop devices
# and QEMU.
set -eu
cd "$(dirname "$0")"
./.ci/deps
[ -x configure ] || ./autogen.sh
[ -f Makefile ] || ./configure --enable-werror
make -j"$(nproc)"
make -j"$(nproc)" check || { find . -name 'test-suite.log' -path './*' -newer configure -exec cat {} + ; exit 1; }
