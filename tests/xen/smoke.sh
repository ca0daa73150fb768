# smoke.sh — run in dom0 by tests/xen: the toolstack answers (xl list) and a
# PV guest with Debian's kernel and a tiny initramfs boots to its console
# marker, then shuts down.
. /xentest/lib.sh

if xl list > /tmp/xl-list 2>&1 && grep -q '^Domain-0 ' /tmp/xl-list; then
  xentest_pass xl-list
else
  xentest_fail xl-list "$(cat /tmp/xl-list)"
fi
xl info 2>/dev/null | grep -E '^(virt_caps|xen_version|free_memory)' | sed 's/^/XENTEST INFO /'

cat > /tmp/smoke.cfg <<CFG
name = "smoke"
type = "pv"
kernel = "/xentest/guest/vmlinuz"
ramdisk = "/xentest/guest/initrd.gz"
extra = "console=hvc0 quiet"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
t0=$(xentest_now_ms)
if ! xl create /tmp/smoke.cfg > /tmp/xl-create 2>&1; then
  xentest_fail xl-create-pv "$(tail -n 5 /tmp/xl-create)"
elif xentest_wait_console smoke 120 XENTEST-DOMU-UP; then
  t1=$(xentest_now_ms)
  xentest_time xl-create-to-marker-ms $((t1 - t0))
  xentest_pass xl-create-pv
  xl shutdown -w smoke > /tmp/xl-shutdown 2>&1 &
  spid=$!
  i=0
  while xl domid smoke >/dev/null 2>&1 && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  if xl domid smoke >/dev/null 2>&1; then
    xentest_fail xl-shutdown-pv "domain still exists 30 s after xl shutdown"
    xl destroy smoke
  else
    xentest_time xl-shutdown-ms $(( $(xentest_now_ms) - t1 ))
    xentest_pass xl-shutdown-pv
  fi
  kill $spid 2>/dev/null
else
  xentest_fail xl-create-pv "no marker on the guest console after 120 s"
  xentest_console_tail smoke
  xl list
  xl destroy smoke
fi

# The same PV guest from the uncompressed ELF kernel (what the xen plugin
# gives libxl): no decompression in dom0's toolstack.
cat > /tmp/elf.cfg <<CFG
name = "elf"
type = "pv"
kernel = "/xentest/guest/vmlinux"
ramdisk = "/xentest/guest/initrd.gz"
extra = "console=hvc0 quiet xentest.poweroff"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
t0=$(xentest_now_ms)
if ! xl create /tmp/elf.cfg > /tmp/xl-create 2>&1; then
  xentest_fail xl-create-pv-elf "$(tail -n 5 /tmp/xl-create)"
elif xentest_wait_console elf 120 XENTEST-DOMU-UP; then
  xentest_time xl-create-elf-to-marker-ms $(( $(xentest_now_ms) - t0 ))
  xentest_pass xl-create-pv-elf
else
  xentest_fail xl-create-pv-elf "no marker on the guest console after 120 s"
  xentest_console_tail elf
fi
xl destroy elf 2>/dev/null
