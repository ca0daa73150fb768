# vchan-domu.sh — run in dom0 by tests/xen: the vchan conformance suite
# (tests/vchan/test-vchan) over the xen plugin between two domUs, as a split
# run: the checks' own ends in domU vchan-a, their peers in domU vchan-b
# (vchan-domu-init in each).  Grants, event channels and the xenstore
# rendezvous are then between two unprivileged domains: each server offers
# its port under its own /local/domain/<self>/data/vchan/<peer>/<port>, and
# only the peer it names may read it.  dom0 only tells each domain the
# other's domid.  Each check is reported: it passed when it passed in both.
. /xentest/lib.sh

mib=${XENTEST_VCHAN_MIB:-16}
t0=$(xentest_now_ms)
ok=1
for role in a b; do
  cat > /tmp/vchan-$role.cfg <<CFG
name = "vchan-$role"
type = "pv"
kernel = "/xentest/guest/vmlinux"
ramdisk = "/xentest/guest/vchan-initrd.gz"
extra = "console=hvc0 quiet xentest.role=$role xentest.mib=$mib"
memory = 192
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
  # Paused: neither end may look for its peer before it knows its domid.
  if ! xl create -p /tmp/vchan-$role.cfg > /tmp/xl-create-vchan 2>&1; then
    xentest_fail vchan-domu "xl create of vchan-$role: $(tail -n 5 /tmp/xl-create-vchan)"
    ok=
  fi
done
if [ -n "$ok" ]; then
  a=$(xl domid vchan-a) b=$(xl domid vchan-b)
  # Written by dom0 under each domain's own directory: readable by it alone.
  xenstore-write /local/domain/$a/xentest/peer $b /local/domain/$b/xentest/peer $a &&
  xenstore-chmod /local/domain/$a/xentest/peer n0 r$a &&
  xenstore-chmod /local/domain/$b/xentest/peer n0 r$b &&
  xl unpause vchan-b && xl unpause vchan-a || {
    xentest_fail vchan-domu "cannot hand the domains their peer's domid"; ok=; }
fi
if [ -n "$ok" ]; then
  # One limit for both: the guests end on their own well before it.
  until_ms=$(( $(xentest_now_ms) + ${XENTEST_VCHAN_DOMU_WAIT:-600} * 1000 ))
  for role in a b; do
    left=$(( (until_ms - $(xentest_now_ms)) / 1000 ))
    [ $left -gt 0 ] || left=1
    if ! xentest_wait_console vchan-$role $left XENTEST-VCHAN-EXIT; then
      xentest_fail vchan-domu "vchan-$role did not finish in time"
      ok=
    fi
  done
  if [ -z "$ok" ]; then
    for role in a b; do
      echo "  vchan-$role console:"
      xentest_console_tail vchan-$role 25
    done
    xl list
  fi
fi
xl destroy vchan-a 2>/dev/null
xl destroy vchan-b 2>/dev/null
if [ -n "$ok" ]; then
  xentest_time vchan-domu-ms $(( $(xentest_now_ms) - t0 ))
  la=/var/log/xen/console/guest-vchan-a.log
  lb=/var/log/xen/console/guest-vchan-b.log
  tr -d '\r' < $la > /tmp/vchan-a.log
  tr -d '\r' < $lb > /tmp/vchan-b.log
  # check's verbose lines: FILE:LINE:P|F|E:TCASE:TEST:ITERATION: MESSAGE
  tests=$(sed -n 's/^[^:]*:[0-9]*:[PFE]:[^:]*:test_\([^:]*\):.*/\1/p' /tmp/vchan-a.log)
  [ -n "$tests" ] || { xentest_fail vchan-domu "vchan-a reported no checks"; ok=; }
  for t in $tests; do
    ra=$(grep -a -m 1 ":test_$t:" /tmp/vchan-a.log)
    rb=$(grep -a -m 1 ":test_$t:" /tmp/vchan-b.log)
    case "$ra" in *:P:*) ;; *) xentest_fail vchan-domu-$t "a: ${ra:-no result}"; continue ;; esac
    case "$rb" in *:P:*) ;; *) xentest_fail vchan-domu-$t "b: ${rb:-no result}"; continue ;; esac
    xentest_pass vchan-domu-$t
  done
  for role in a b; do
    summary=$(grep -a '^[0-9]*%: Checks:' /tmp/vchan-$role.log)
    status=$(sed -n 's/^XENTEST-VCHAN-EXIT //p' /tmp/vchan-$role.log)
    if [ "$status" = 0 ]; then
      xentest_pass "vchan-domu-$role ($summary)"
    else
      xentest_fail vchan-domu-$role "exit status $status: $summary"
      tail -n 30 /tmp/vchan-$role.log | sed 's/^/  vchan-'$role'| /'
    fi
  done
fi
