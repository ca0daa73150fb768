# smoke.sh — run in dom0 by tests/xen: the toolstack answers (xl list) and a
# PV guest with Debian's kernel and a tiny initramfs boots to its console
# marker, from the bzImage and from the uncompressed kernel, and goes away
# on xl shutdown.
. /xentest/lib.sh

if xl list > /tmp/xl-list 2>&1 && grep -q '^Domain-0 ' /tmp/xl-list; then
  xentest_pass xl-list
else
  xentest_fail xl-list "$(cat /tmp/xl-list)"
fi
xl info 2>/dev/null | grep -E '^(virt_caps|xen_version|free_memory)' | sed 's/^/XENTEST INFO /'

# boot_pv TEST NAME KERNEL: xl create of a PV guest, then wait for its
# marker; reports TEST and the time to the marker.  Returns 1 on failure.
boot_pv () {
  xentest_pv_config $2 "$3" /xentest/guest/initrd.gz "console=hvc0 quiet" 128
  t0=$(xentest_now_ms)
  if ! xl create /tmp/$2.cfg > /tmp/xl-create 2>&1; then
    xentest_fail $1 "$(tail -n 5 /tmp/xl-create)"
    return 1
  fi
  if ! xentest_wait_console $2 120 XENTEST-DOMU-UP; then
    xentest_fail $1 "no marker on the guest console after 120 s"
    xentest_console_tail $2
    xl destroy $2
    return 1
  fi
  xentest_time $2-create-to-marker-ms $(( $(xentest_now_ms) - t0 ))
  xentest_pass $1
}

if boot_pv xl-create-pv bzimage /xentest/guest/vmlinuz; then
  t1=$(xentest_now_ms)
  xl shutdown bzimage > /tmp/xl-shutdown 2>&1
  i=0
  while xl domid bzimage >/dev/null 2>&1 && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  if xl domid bzimage >/dev/null 2>&1; then
    xentest_fail xl-shutdown-pv "domain still exists 30 s after xl shutdown"
    xl destroy bzimage
  else
    xentest_time xl-shutdown-ms $(( $(xentest_now_ms) - t1 ))
    xentest_pass xl-shutdown-pv
  fi
fi

# The same guest from the uncompressed ELF kernel (what the xen plugin is
# given): no decompression in dom0's toolstack.
boot_pv xl-create-pv-elf elf /xentest/guest/vmlinux
xl destroy elf 2>/dev/null
