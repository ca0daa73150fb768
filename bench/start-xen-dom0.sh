# start-xen-dom0.sh — run in dom0 (Xen under QEMU) by bench/start-xen: cold
# starts of a Xen AppVM until a `true` call through qrexec returns, beside
# `xl create` of the same kernel and initramfs (no disks, no libqube) until
# the guest's /init prints its ready line on the console.  Each figure is a
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

i=0
while [ $i -lt $runs ]; do
  i=$((i + 1))
  t0=$(xentest_now_ms)
  if qube start bench > $log 2>&1 && qube run --no-stdin bench -- true >> $log 2>&1; then
    xentest_time bench-qube-ms $(( $(xentest_now_ms) - t0 ))
    echo "XENTEST INFO start $i:" $(cat $QUBE_STATE_DIR/run/qubes/bench/start-times 2>/dev/null)
  else
    xentest_fail bench-qube "run $i: $(tail -n 8 $log | tr '\n' ' ')"
  fi
  qube kill bench > /dev/null 2>&1
done

i=0
while [ $i -lt $runs ]; do
  i=$((i + 1))
  name=xlbase$i
  cat > /tmp/$name.cfg <<CFG
name = "$name"
type = "pv"
kernel = "$QUBE_STATE_DIR/kernels/debian-minimal/vmlinux"
ramdisk = "$QUBE_STATE_DIR/kernels/debian-minimal/initramfs.img"
extra = "console=hvc0 qube.name=$name"
memory = 160
maxmem = 160
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
  t0=$(xentest_now_ms)
  if xl create /tmp/$name.cfg > $log 2>&1 && xentest_wait_console $name 300 'qube-guest: ready'; then
    xentest_time bench-xl-ms $(( $(xentest_now_ms) - t0 ))
  else
    xentest_fail bench-xl "run $i: $(tail -n 5 $log | tr '\n' ' ')"
    xentest_console_tail $name
  fi
  xl destroy $name > /dev/null 2>&1
done
xentest_pass bench
