# start-xen-dom0.sh — run in dom0 (Xen under QEMU) by bench/start-xen: cold
# starts of a halted Xen AppVM by `qube run` until its `true` call through
# qrexec returns, beside
# `xl create` of the same kernel and initramfs (no disks, no libqube) until
# the guest's /init prints its ready line on the console, and the same with
# the three volumes of a qube.  Each figure is a
# XENTEST TIME line; the host side takes the medians.
. /xentest/lib.sh

runs=${XENTEST_BENCH_RUNS:-3}
log=/tmp/bench.log
xentest_qube_state
if ! xentest_qube_setup bench > $log 2>&1; then
  xentest_fail bench-setup "$(tail -n 8 $log | tr '\n' ' ')"
  exit 0
fi
# The first start makes the private volume: not measured.
if ! qube start bench > $log 2>&1 || ! qube kill bench >> $log 2>&1; then
  xentest_fail bench-first-start "$(tail -n 8 $log | tr '\n' ' ')"
  exit 0
fi

# The guest's own uptime when its /init said it was ready, from the last
# ready line on the console of domain $1.
guest_ready () {
  grep -a -o 'qube-guest: ready (up [0-9.]* s)' /var/log/xen/console/guest-$1.log 2>/dev/null |
    tail -n 1 | sed 's/qube-guest: //'
}

run=0
while [ $run -lt $runs ]; do
  run=$((run + 1))
  t0=$(xentest_now_ms)
  # One command, as a user starts a halted qube for a call: `qube run`
  # starts it first.
  if qube run --no-stdin bench -- true > $log 2>&1; then
    xentest_time bench-qube-ms $(( $(xentest_now_ms) - t0 ))
    echo "XENTEST INFO start $run:" $(cat $QUBE_STATE_DIR/run/qubes/bench/start-times 2>/dev/null) \
      "guest $(guest_ready bench)"
  else
    xentest_fail bench-qube "run $run: $(tail -n 8 $log | tr '\n' ' ')"
  fi
  qube kill bench > /dev/null 2>&1
done

# xl_boot NAME DISKS KEY: xl create of the template's kernel and initramfs
# as domain NAME with DISKS (an xl disk list, may be empty) until the ready
# line; reports bench-KEY-ms.
xl_boot () {
  cat > /tmp/$1.cfg <<CFG
name = "$1"
type = "pv"
kernel = "$QUBE_STATE_DIR/kernels/debian-minimal/vmlinux"
ramdisk = "$QUBE_STATE_DIR/kernels/debian-minimal/initramfs.img"
extra = "console=hvc0 qube.name=$1"
memory = 160
maxmem = 160
vcpus = 1
disk = [ $2 ]
on_poweroff = "destroy"
on_crash = "destroy"
CFG
  t0=$(xentest_now_ms)
  if xl create /tmp/$1.cfg > $log 2>&1 && xentest_wait_console $1 120 'qube-guest: ready'; then
    xentest_time bench-$3-ms $(( $(xentest_now_ms) - t0 ))
    echo "XENTEST INFO $1: guest $(guest_ready $1)"
  else
    # A baseline boot that hangs (the nested guest kernel now and then
    # does) is left out of the figures, and said.
    echo "XENTEST INFO bench-$3: $1 did not reach its ready line in 120 s: $(tail -n 3 $log | tr '\n' ' ')"
    xentest_console_tail $1 5
  fi
  xl destroy $1 > /dev/null 2>&1
}

run=0
while [ $run -lt $runs ]; do
  run=$((run + 1))
  xl_boot xlbase$run "" xl
done

# The same with the three volumes a qube has (the template's root read-only,
# the qube's committed private volume, a fresh volatile one): Xen's own
# cost of disks, without libqube.
private=$(ls $QUBE_STATE_DIR/pools/default/bench/private/rev-*.img | tail -n 1)
truncate -s 10G /tmp/xl-volatile.img
run=0
while [ $run -lt $runs ]; do
  run=$((run + 1))
  xl_boot xldisks$run "'format=raw,vdev=xvda,access=ro,target=/xentest/template/root.img', \
'format=raw,vdev=xvdb,access=rw,target=$private', \
'format=raw,vdev=xvdc,access=rw,target=/tmp/xl-volatile.img'" xl-disks
done
xentest_crashes
xentest_pass bench
