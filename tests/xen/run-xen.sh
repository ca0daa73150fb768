#!/bin/sh
# run-xen.sh — boots Xen under QEMU (TCG) with the dom0 initramfs made by
# build-initramfs.sh, and turns the XENTEST lines the dom0 test script prints
# on the serial console into pass/fail.  Exit status: 0 all passed, 1 a
# failure (the serial log's tail is printed), 77 QEMU or Xen missing.
#
#   run-xen.sh OUTDIR [TIMEOUT_SECONDS]
#
# OUTDIR holds xen, vmlinuz and dom0-initrd.gz; the serial log is written to
# OUTDIR/serial.log.
set -u

outdir=$1
limit=${2:-${XENTEST_TIMEOUT:-600}}
log=$outdir/serial.log

command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 missing (Debian package qemu-system-x86)"; exit 77; }
for f in xen vmlinuz dom0-initrd.gz; do
  [ -r "$outdir/$f" ] || { echo "run-xen: $outdir/$f missing (run build-initramfs.sh)" >&2; exit 1; }
done

: > "$log"
start=$(date +%s%N)
# QEMU's multiboot loader takes the modules as "path args,path args".
timeout -k 5 "$limit" qemu-system-x86_64 -accel tcg -cpu qemu64 \
  -machine q35 -m 2048 -nodefaults -display none -serial stdio -no-reboot \
  -kernel "$outdir/xen" \
  -append "console=com1 com1=115200,8n1 dom0_mem=768M,max:768M smap=0 smep=0 noreboot" \
  -initrd "$outdir/vmlinuz console=hvc0 quiet,$outdir/dom0-initrd.gz" \
  < /dev/null > "$log" 2>&1 &
qpid=$!

# Xen halts rather than powering off when dom0 does: stop QEMU once the
# test script says it is done.
ready_ms=
while kill -0 $qpid 2>/dev/null; do
  if [ -z "$ready_ms" ] && grep -q '^XENTEST STAGE dom0-ready' "$log"; then
    ready_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  fi
  if grep -q '^XENTEST DONE' "$log"; then
    sleep 1
    kill $qpid 2>/dev/null
    break
  fi
  sleep 0.5
done
wait $qpid 2>/dev/null
end=$(date +%s%N)

tr -d '\r' < "$log" > "$log.txt"
grep -a '^XENTEST \(PASS\|FAIL\|TIME\|INFO\|STAGE\)' "$log.txt"
[ -n "$ready_ms" ] && echo "run-xen: QEMU start to dom0 ready: about $ready_ms ms (polled every 0.5 s)"
echo "run-xen: QEMU ran $(( (end - start) / 1000000 )) ms"
status=0
if ! grep -aq '^XENTEST DONE' "$log.txt"; then
  echo "run-xen: the test run did not finish within ${limit} s"
  status=1
fi
grep -aq '^XENTEST FAIL' "$log.txt" && status=1
grep -aq '^XENTEST PASS' "$log.txt" || status=1
if [ $status -ne 0 ]; then
  echo "run-xen: serial log tail ($log):"
  tail -n 40 "$log.txt" | sed 's/^/  | /'
fi
exit $status
