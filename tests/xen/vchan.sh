# vchan.sh — run in dom0 by tests/xen: the vchan conformance suite
# (tests/vchan/test-vchan) against the xen plugin's libxenvchan transport,
# both ends in dom0 (the peer is addressed as domid:0).
. /xentest/lib.sh

# 64 channels at once need more grant pages than gntalloc's default 1024.
echo 65536 > /sys/module/xen_gntalloc/parameters/limit 2>/dev/null

QUBE_VCHAN_PLUGIN=xen QUBE_PLUGIN_PATH=/usr/local/lib/qube/plugins \
QUBE_VCHAN_ADDRESS=domid:0 QUBE_VCHAN_STREAM_MIB=${XENTEST_VCHAN_MIB:-16} \
CK_DEFAULT_TIMEOUT=240 QUBE_TEST_BUILDDIR=/nonexistent \
  timeout 400 test-vchan > /tmp/vchan.log 2>&1
rc=$?
summary=$(grep -a '^[0-9]*%: Checks:' /tmp/vchan.log)
if [ $rc -eq 0 ]; then
  xentest_pass "vchan-conformance ($summary)"
else
  xentest_fail vchan-conformance "exit status $rc: $summary"
  grep -a ':[FE]:' /tmp/vchan.log | head -n 20 | sed 's/^/  vchan| /'
  tail -n 5 /tmp/vchan.log | sed 's/^/  vchan| /'
fi
