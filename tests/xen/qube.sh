# qube.sh — run in dom0 by tests/xen: the installed `qube` command runs
# qubes as Xen domains.  The minimal template (built on the host by
# template/build-template.sh, copied to /xentest/template) becomes the
# TemplateVM debian-minimal in a raw ("copy") file pool; two AppVMs with
# backend=xen start, `qube run` reaches them, one calls the other through
# qrexec-client-vm under the policy (allowed one way, denied the other),
# and pause, unpause and shutdown behave as with kvm.
. /xentest/lib.sh

state=/var/lib/qube-xentest
tpl=debian-minimal
log=/tmp/qube.log
# The pool refuses volumes it could never hold (the template's root is
# 20 GiB): a tmpfs whose limit is larger than dom0's memory; its images
# are sparse.
mkdir -p $state
mount -t tmpfs -o size=100g,mode=0700 tmpfs $state
export QUBE_STATE_DIR=$state
export QUBE_POLICY_DIR=$state/policy.d
mkdir -p $QUBE_POLICY_DIR
cat > $QUBE_POLICY_DIR/30-xentest.policy <<'POLICY'
qubes.VMShell * work other allow
qubes.VMShell * other work deny
POLICY

# must TEST COMMAND...: runs COMMAND, failing TEST (and the script) when it fails.
must () {
  name=$1
  shift
  if ! "$@" > $log 2>&1; then
    xentest_fail $name "$* failed: $(tail -n 8 $log | tr '\n' ' ')"
    return 1
  fi
}

# Where the template's kernel and initramfs are found (the kernel is the one
# dom0's test guest has, the template was built from the same one).
setup () {
  [ "$(cat /xentest/template/kernel-version)" = "$(cat /etc/kernel-version)" ] || {
    xentest_fail qube-setup "the template's kernel is not dom0's guest kernel"; return 1; }
  mkdir -p $state/kernels/$tpl
  ln -s /xentest/guest/vmlinux $state/kernels/$tpl/vmlinux
  cp /xentest/template/initramfs.img $state/kernels/$tpl/
  must qube-setup qube pool add default file dir_path=$state/pools/default cow=copy &&
  must qube-setup qube create --class TemplateVM --label black --property kernel=$tpl $tpl &&
  must qube-setup qube volume import $tpl:root /xentest/template/root.img &&
  for vm in work other; do
    must qube-setup qube create --template $tpl --label red --property backend=xen \
      --property virt_mode=pv --property memory=160 --property maxmem=160 \
      --property vcpus=1 --property kernel=$tpl $vm || return 1
  done
}

# state_is QUBE STATE: `qube list` shows QUBE in STATE.
state_is () {
  qube list 2>/dev/null | awk -v q="$1" -v s="$2" '$1 == q && $2 == s { found = 1 } END { exit !found }'
}

start () {
  t0=$(xentest_now_ms)
  if qube start $1 > $log 2>&1 && state_is $1 Running; then
    xentest_time qube-start-$1-ms $(( $(xentest_now_ms) - t0 ))
    xentest_pass qube-start-$1
  else
    xentest_fail qube-start-$1 "$(tail -n 12 $log | tr '\n' ' ')"
    xentest_console_tail $1 25
    return 1
  fi
}

if ! setup; then
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
    *) xentest_fail qube-run-uname "exit $rc, output '$out', $(tail -n 5 $log | tr '\n' ' ')" ;;
  esac
  # The guest's xvdb is the private volume, mounted on /rw: it keeps what
  # the qube writes there.
  out=$(qube run work -- sh -c 'echo kept > /rw/kept && cat /rw/kept && grep -c " /rw " /proc/mounts' 2>$log)
  if [ "$out" = "kept
1" ]; then
    xentest_pass qube-run-private-volume
  else
    xentest_fail qube-run-private-volume "output '$out', $(tail -n 5 $log | tr '\n' ' ')"
  fi
fi

if start other; then
  # work may call other: the call runs qubes.VMShell in other.
  out=$(qube run work -- sh -c "echo 'uname -n' | qrexec-client-vm other qubes.VMShell" 2>$log)
  rc=$?
  if [ $rc -eq 0 ] && [ "$out" = other ]; then
    xentest_pass qube-qrexec-call-allowed
  else
    xentest_fail qube-qrexec-call-allowed "exit $rc, output '$out', $(tail -n 5 $log | tr '\n' ' ')"
  fi
  # other may not call work: refused with 126, and nothing ran.
  out=$(qube run other -- sh -c "echo 'touch /tmp/ran; uname -n' | qrexec-client-vm work qubes.VMShell" 2>$log)
  rc=$?
  ran=$(qube run work -- sh -c 'test -e /tmp/ran && echo yes || echo no' 2>/dev/null)
  if [ $rc -eq 126 ] && [ -z "$out" ] && [ "$ran" = no ]; then
    xentest_pass qube-qrexec-call-denied
  else
    xentest_fail qube-qrexec-call-denied "exit $rc, output '$out', ran: $ran"
  fi
fi

if qube pause work > $log 2>&1 && state_is work Paused && xl list work 2>/dev/null | grep -q ' --p'; then
  xentest_pass qube-pause
else
  xentest_fail qube-pause "$(tail -n 3 $log | tr '\n' ' '); $(qube list 2>&1 | tr '\n' ' ')"
fi
if qube unpause work > $log 2>&1 && state_is work Running &&
   [ "$(qube run work -- echo back 2>>$log)" = back ]; then
  xentest_pass qube-unpause
else
  xentest_fail qube-unpause "$(tail -n 3 $log | tr '\n' ' ')"
fi

for vm in work other; do
  t0=$(xentest_now_ms)
  if qube shutdown --wait $vm > $log 2>&1 && state_is $vm Halted && ! xl domid $vm > /dev/null 2>&1; then
    xentest_time qube-shutdown-$vm-ms $(( $(xentest_now_ms) - t0 ))
    xentest_pass qube-shutdown-$vm
  else
    xentest_fail qube-shutdown-$vm "$(tail -n 3 $log | tr '\n' ' '); $(xl list 2>&1 | tail -n +2 | tr '\n' ' ')"
    qube kill $vm > /dev/null 2>&1
  fi
done
# What work wrote on its private volume was committed at shutdown and is
# there at its next start.
if start work; then
  if [ "$(qube run work -- cat /rw/kept 2>$log)" = kept ]; then
    xentest_pass qube-private-kept
  else
    xentest_fail qube-private-kept "$(tail -n 3 $log | tr '\n' ' ')"
  fi
  qube kill work > /dev/null 2>&1
fi
