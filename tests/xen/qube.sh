# qube.sh — run in dom0 by tests/xen: the installed `qube` command runs
# qubes as Xen domains.  The minimal template (built on the host by
# template/build-template.sh, copied to /xentest/template) becomes the
# TemplateVM debian-minimal in a raw ("copy") file pool; two AppVMs with
# backend=xen start, `qube run` reaches them, one calls the other through
# qrexec-client-vm under the policy (allowed one way, denied the other),
# pause, unpause and shutdown behave as with kvm, and `qube run` starts a
# halted qube (refuses it with --no-autostart).
. /xentest/lib.sh

log=/tmp/qube.log
failed=
fail () { xentest_fail "$@"; failed=1; }
xentest_qube_state
mkdir -p $QUBE_POLICY_DIR
cat > $QUBE_POLICY_DIR/30-xentest.policy <<'POLICY'
qubes.VMShell * work other allow
qubes.VMShell * other work deny
POLICY

# state_is QUBE STATE: `qube list` shows QUBE in STATE.
state_is () {
  qube list 2>/dev/null | awk -v q="$1" -v s="$2" '$1 == q && $2 == s { found = 1 } END { exit !found }'
}

start () {
  t0=$(xentest_now_ms)
  if qube start $1 > $log 2>&1 && state_is $1 Running; then
    xentest_time qube-start-$1-ms $(( $(xentest_now_ms) - t0 ))
    echo "XENTEST INFO start of $1:" $(cat $QUBE_STATE_DIR/run/qubes/$1/start-times 2>/dev/null)
    xentest_pass qube-start-$1
  else
    fail qube-start-$1 "$(tail -n 12 $log | tr '\n' ' ')"
    xentest_console_tail $1 25
    return 1
  fi
}

if ! xentest_qube_setup work other > $log 2>&1; then
  fail qube-setup "$(tail -n 8 $log | tr '\n' ' ')"
  exit 0
fi
xentest_pass qube-setup

if start work; then
  t0=$(xentest_now_ms)
  out=$(qube run work -- uname -a 2>$log)
  rc=$?
  case "$rc|$out" in
    "0|Linux work "*) xentest_time qube-run-uname-ms $(( $(xentest_now_ms) - t0 ))
                      xentest_pass qube-run-uname
                      echo "XENTEST INFO uname in work: $out" ;;
    *) fail qube-run-uname "exit $rc, output '$out', $(tail -n 5 $log | tr '\n' ' ')" ;;
  esac
  # The guest's xvdb is the private volume, mounted on /rw: it keeps what
  # the qube writes there.
  out=$(qube run work -- sh -c 'echo kept > /rw/kept && cat /rw/kept && grep -c " /rw " /proc/mounts' 2>$log)
  if [ "$out" = "kept
1" ]; then
    xentest_pass qube-run-private-volume
  else
    fail qube-run-private-volume "output '$out', $(tail -n 5 $log | tr '\n' ' ')"
  fi
fi

if start other; then
  # work may call other: the call runs qubes.VMShell in other.
  out=$(qube run work -- sh -c "echo 'uname -n' | qrexec-client-vm other qubes.VMShell" 2>$log)
  rc=$?
  if [ $rc -eq 0 ] && [ "$out" = other ]; then
    xentest_pass qube-qrexec-call-allowed
  else
    fail qube-qrexec-call-allowed "exit $rc, output '$out', $(tail -n 5 $log | tr '\n' ' ')"
  fi
  # other may not call work: refused with 126, and nothing ran.
  out=$(qube run other -- sh -c "echo 'touch /tmp/ran; uname -n' | qrexec-client-vm work qubes.VMShell" 2>$log)
  rc=$?
  ran=$(qube run work -- sh -c 'test -e /tmp/ran && echo yes || echo no' 2>/dev/null)
  if [ $rc -eq 126 ] && [ -z "$out" ] && [ "$ran" = no ]; then
    xentest_pass qube-qrexec-call-denied
  else
    fail qube-qrexec-call-denied "exit $rc, output '$out', ran: $ran"
  fi
fi

if qube pause work > $log 2>&1 && state_is work Paused && xl list work 2>/dev/null | grep -q ' --p'; then
  xentest_pass qube-pause
else
  fail qube-pause "$(tail -n 3 $log | tr '\n' ' '); $(qube list 2>&1 | tr '\n' ' ')"
fi
if qube unpause work > $log 2>&1 && state_is work Running &&
   [ "$(qube run work -- echo back 2>>$log)" = back ]; then
  xentest_pass qube-unpause
else
  fail qube-unpause "$(tail -n 3 $log | tr '\n' ' ')"
fi

for vm in work other; do
  : > /var/log/xen/console/guest-$vm.log
  t0=$(xentest_now_ms)
  if qube shutdown --wait $vm > $log 2>&1 && state_is $vm Halted && ! xl domid $vm > /dev/null 2>&1; then
    xentest_time qube-shutdown-$vm-ms $(( $(xentest_now_ms) - t0 ))
    xentest_pass qube-shutdown-$vm
    xentest_console_tail $vm 6
  else
    fail qube-shutdown-$vm "$(tail -n 3 $log | tr '\n' ' '); $(xl list 2>&1 | tail -n +2 | tr '\n' ' ')"
    qube kill $vm > /dev/null 2>&1
  fi
done
# A halted qube is refused by `qube run --no-autostart`, and started by
# `qube run`, whose call then reaches it.  What work wrote on its private
# volume was committed at shutdown and is there at this next start.
out=$(qube run --no-autostart work -- true 2>&1)
rc=$?
case "$rc|$out" in
  "125|"*"qube 'work' is not running"*)
    if state_is work Halted; then xentest_pass qube-run-no-autostart
    else fail qube-run-no-autostart "work is not halted: $(qube list 2>&1 | tr '\n' ' ')"; fi ;;
  *) fail qube-run-no-autostart "exit $rc, output '$out'" ;;
esac
t0=$(xentest_now_ms)
out=$(qube run work -- cat /rw/kept 2>$log)
rc=$?
if [ $rc -eq 0 ] && state_is work Running; then
  xentest_time qube-run-autostart-ms $(( $(xentest_now_ms) - t0 ))
  xentest_pass qube-run-autostart
  if [ "$out" = kept ]; then
    xentest_pass qube-private-kept
  else
    fail qube-private-kept "output '$out'"
    ls -ls $QUBE_STATE_DIR/pools/default/work/private/ | sed 's/^/  private| /'
    grep -l kept $QUBE_STATE_DIR/pools/default/work/private/* | sed 's/^/  has kept| /'
    qube run work -- sh -c 'ls -la /rw; mount' 2>&1 | sed 's/^/  guest| /'
  fi
else
  fail qube-run-autostart "exit $rc, output '$out', $(tail -n 12 $log | tr '\n' ' ')"
  xentest_console_tail work 25
fi
qube kill work > /dev/null 2>&1

# When something failed: what dom0's kernel said and its memory.
if [ -n "$failed" ]; then
  echo "XENTEST INFO dom0 memory: $(free -m | awk 'NR == 2 { print "used " $3 " MiB, free " $4 " MiB" }')"
  dmesg | tail -n 25 | sed 's/^/  dmesg| /'
fi
xentest_crashes
