# qubes-dom0.sh — run in dom0 by tests/xen: the guest side (qube-agent,
# qrexec-client-vm, from the minimal template) under a dom0 that speaks
# qrexec as Qubes' does, played by the fixture qubes-dom0-call: for a
# qube-to-qube call Qubes' dom0 has the two qubes open the data channel
# between themselves (the target's agent connects to the source's domain,
# the source's qrexec-client-vm offers the port to the target's), where
# libqube's own daemon relays it.  Two PV domains qa and qb are booted
# with xl from the template (its root read-only, no private volume), with
# no `qube` and no libqube daemon; qa calls qubes.VMShell in qb.  dom0
# never offers the call's port, so the call only works if the channel
# goes between the domains.
. /xentest/lib.sh

log=/tmp/qubes-dom0.log

# boot NAME: xl create of the template's kernel and initramfs with its
# root image as xvda; the guest's /init starts qube-agent (xen:dom0).
boot () {
  xentest_pv_config $1 /xentest/guest/vmlinux /xentest/template/initramfs.img \
    "console=hvc0 quiet qube.name=$1" 160 \
    "'format=raw,vdev=xvda,access=ro,target=/xentest/template/root.img'"
  xl create /tmp/$1.cfg > $log 2>&1 || { xentest_fail qubes-dom0-boot "$1: $(tail -n 5 $log | tr '\n' ' ')"; return 1; }
}

if boot qa && boot qb; then
  for vm in qa qb; do
    xentest_wait_console $vm 240 'qube-guest: ready' ||
      echo "XENTEST INFO $vm printed no ready line in 240 s: $(xentest_console_tail $vm 5 | tr '\n' ' ')"
  done
  # In qa: a call of qubes.VMShell in qb, which tells who called it, its
  # own name and an exit code, which qrexec-client-vm returns.  Bounded:
  # an agent that took its data channel to dom0 instead would leave the
  # call waiting.
  t0=$(xentest_now_ms)
  out=$(timeout 120 qubes-dom0-call "$(xl domid qa)" qa "$(xl domid qb)" qb \
        "echo 'echo \$QREXEC_REMOTE_DOMAIN; uname -n; exit 3' | qrexec-client-vm qb qubes.VMShell; echo rc=\$?" 2>$log)
  rc=$?
  if [ $rc -eq 0 ] && [ "$out" = "qa
qb
rc=3" ]; then
    xentest_time qubes-dom0-direct-call-ms $(( $(xentest_now_ms) - t0 ))
    xentest_pass qubes-dom0-direct-call
  else
    xentest_fail qubes-dom0-direct-call "exit $rc, output '$(echo "$out" | tr '\n' ' ')', $(tail -n 8 $log | tr '\n' ' ')"
    xentest_console_tail qa 10
    xentest_console_tail qb 10
  fi
fi
xl destroy qa > /dev/null 2>&1
xl destroy qb > /dev/null 2>&1
xentest_crashes
