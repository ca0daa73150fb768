# plugin.sh — run in dom0 by tests/xen: the installed xen plugin, called
# through the plugin registry by xen-driver, creates (paused), starts,
# pauses, unpauses and shuts down a PV domain with a raw volume, writes the
# qube's xenstore keys, and refuses a qcow2 volume.
. /xentest/lib.sh

drv=xen-driver
guest=/xentest/guest
qube=work

# expect_state STATE [QUBE]
expect_state () {
  out=$($drv info "${2:-$qube}" 2>&1)
  case $out in
    "state=$1 "*) return 0 ;;
  esac
  echo "  info: $out"
  return 1
}

if qube --state-dir /tmp/qube-state plugins > /tmp/plugins 2>&1 && grep -q '^xen  *loaded' /tmp/plugins; then
  xentest_pass plugin-listed-loaded
else
  xentest_fail plugin-listed-loaded "$(cat /tmp/plugins)"
fi

# A qcow2 volume is refused with a clear error, and leaves no domain.
qemu_img=/tmp/private.qcow2
: > $qemu_img
if $drv create bad --kernel $guest/vmlinux --initrd $guest/initrd.gz \
     --disk $qemu_img:qcow2 > /tmp/bad 2>&1; then
  xentest_fail plugin-qcow2-refused "create succeeded"
  $drv kill bad
elif grep -q "volume 'private.qcow2' of qube 'bad'.*not a raw image" /tmp/bad &&
     ! xl domid bad > /dev/null 2>&1; then
  xentest_pass plugin-qcow2-refused
else
  xentest_fail plugin-qcow2-refused "$(cat /tmp/bad)"
fi

# A raw volume on a loop device, as a pool on a block device would give it.
dd if=/dev/zero of=/tmp/private.img bs=1M count=8 2>/dev/null
loopdev=$(losetup -f)
losetup "$loopdev" /tmp/private.img

t0=$(xentest_now_ms)
if ! $drv create $qube --kernel $guest/vmlinux --initrd $guest/initrd.gz \
       --cmdline quiet --memory 128 --disk "$loopdev:raw" \
       --set xenstore.netvm=sys-net > /tmp/create 2>&1; then
  xentest_fail plugin-create "$(tail -n 1 /tmp/create)"
  tail -n 12 /tmp/create | sed 's/^/  create| /'
  tail -n 15 /var/log/xen/xen-hotplug.log 2>/dev/null | sed 's/^/  hotplug| /'
  exit 0
fi
domid=$(cat /tmp/create)
xentest_time plugin-create-ms $(( $(xentest_now_ms) - t0 ))
if [ "$(xl domid $qube 2>/dev/null)" = "$domid" ] && expect_state created; then
  xentest_pass plugin-create-paused
else
  xentest_fail plugin-create-paused "domain id '$domid', xl: $(xl list 2>&1 | tr '\n' ' ')"
fi

name=$(xenstore-read /local/domain/$domid/qube/name 2>&1)
type=$(xenstore-read /local/domain/$domid/qube/type 2>&1)
netvm=$(xenstore-read /local/domain/$domid/qube/netvm 2>&1)
perms=$(xenstore-ls -p /local/domain/$domid/qube 2>&1 | grep '^name')
case "$name|$type|$netvm|$perms" in
  "$qube|AppVM|sys-net|"*"(n0,r$domid)"*) xentest_pass plugin-xenstore-keys ;;
  *) xentest_fail plugin-xenstore-keys "name=$name type=$type netvm=$netvm perms=$perms" ;;
esac

t1=$(xentest_now_ms)
if ! $drv start $qube > /tmp/start 2>&1; then
  xentest_fail plugin-start "$(cat /tmp/start)"
elif xentest_wait_console $qube 120 XENTEST-DOMU-UP; then
  xentest_time plugin-start-to-marker-ms $(( $(xentest_now_ms) - t1 ))
  xentest_time plugin-create-to-marker-ms $(( $(xentest_now_ms) - t0 ))
  if expect_state running; then xentest_pass plugin-start; else xentest_fail plugin-start "not running"; fi
  if xentest_wait_console $qube 20 'XENTEST-DOMU-DISK xvda 16384'; then
    xentest_pass plugin-raw-volume-xvda
  else
    xentest_fail plugin-raw-volume-xvda "the guest did not see xvda of 8 MiB"
    xentest_console_tail $qube
  fi
else
  xentest_fail plugin-start "no marker on the guest console after 120 s"
  xentest_console_tail $qube
fi

if $drv pause $qube 2>/tmp/pause && expect_state paused; then
  xentest_pass plugin-pause
else
  xentest_fail plugin-pause "$(cat /tmp/pause)"
fi
if $drv unpause $qube 2>/tmp/unpause && expect_state running; then
  xentest_pass plugin-unpause
else
  xentest_fail plugin-unpause "$(cat /tmp/unpause)"
fi
info=$($drv info $qube)
case $info in
  *"memory_kib=0 "*) xentest_fail plugin-info "$info" ;;
  *" vcpus=1 accel=xen") xentest_pass plugin-info ;;
  *) xentest_fail plugin-info "$info" ;;
esac
echo "XENTEST INFO $info"

t2=$(xentest_now_ms)
if $drv shutdown $qube 2>/tmp/shutdown; then
  i=0
  until expect_state halted > /dev/null || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
  if expect_state halted; then
    xentest_time plugin-shutdown-ms $(( $(xentest_now_ms) - t2 ))
    xentest_pass plugin-shutdown
  else
    xentest_fail plugin-shutdown "still there 30 s after shutdown"
  fi
else
  xentest_fail plugin-shutdown "$(cat /tmp/shutdown)"
fi
# Killing a halted qube is not an error; killing a live one destroys it.
if $drv kill $qube 2>/tmp/kill && ! xl domid $qube > /dev/null 2>&1; then
  xentest_pass plugin-kill-halted
else
  xentest_fail plugin-kill-halted "$(cat /tmp/kill)"
fi
if $drv create victim --kernel $guest/vmlinux --initrd $guest/initrd.gz > /tmp/victim 2>&1 &&
   $drv start victim 2>>/tmp/victim && $drv kill victim 2>>/tmp/victim &&
   ! xl domid victim > /dev/null 2>&1 && expect_state halted victim; then
  xentest_pass plugin-kill-running
else
  xentest_fail plugin-kill-running "$(tail -n 3 /tmp/victim; xl list 2>&1 | tail -n +2 | tr '\n' ' ')"
fi

# A raw file becomes a loop device of the plugin's own (read-only for a
# read-only volume) that goes away with the domain; a create that fails,
# early (a bad xenstore key) or in libxl (no such kernel), leaves no loop
# device, domain or backend entry behind.
loops_of () { grep -lx "$1" /sys/block/loop*/loop/backing_file 2>/dev/null; }
# Both are released after the domain is gone, asynchronously in dom0 and
# slowly under emulation: waited for by the clock (60 s at most).
no_loops_of () {
  _until=$(( $(xentest_now_ms) + 60000 ))
  while [ -n "$(loops_of "$1")" ] && [ "$(xentest_now_ms)" -lt $_until ]; do sleep 0.1; done
  [ -z "$(loops_of "$1")" ]
}
vbd_list () { xenstore-list /local/domain/0/backend/vbd 2>/dev/null | tr '\n' ' '; }
vbds_back_to () {
  _until=$(( $(xentest_now_ms) + 60000 ))
  while [ "$(vbd_list)" != "$1" ] && [ "$(xentest_now_ms)" -lt $_until ]; do sleep 0.1; done
  [ "$(vbd_list)" = "$1" ]
}
vbds=$(vbd_list)
dd if=/dev/zero of=/tmp/file.img bs=1M count=8 2>/dev/null
if $drv create filevm --kernel $guest/vmlinux --initrd $guest/initrd.gz \
     --disk /tmp/file.img:raw:ro > /tmp/filevm 2>&1 && $drv start filevm 2>>/tmp/filevm &&
   xentest_wait_console filevm 120 'XENTEST-DOMU-DISK xvda 16384'; then
  ro=$(cat "/sys/block/$(loops_of /tmp/file.img | cut -d/ -f4)/ro" 2>&1)
  if $drv kill filevm 2>>/tmp/filevm && [ "$ro" = 1 ] && no_loops_of /tmp/file.img; then
    xentest_pass plugin-file-volume
  else
    xentest_fail plugin-file-volume "read-only: $ro; after kill: $(loops_of /tmp/file.img) $(tail -n 2 /tmp/filevm)"
  fi
else
  xentest_fail plugin-file-volume "$(tail -n 3 /tmp/filevm | tr '\n' ' ')"
  xentest_console_tail filevm
  $drv kill filevm 2>/dev/null
fi
if ! $drv create bad --kernel $guest/vmlinux --initrd $guest/initrd.gz \
       --disk /tmp/file.img:raw --set xenstore.a/b=1 > /tmp/bad 2>&1 &&
   grep -q "'xenstore.a/b' of qube 'bad' is not a valid xenstore key" /tmp/bad &&
   ! xl domid bad > /dev/null 2>&1 && no_loops_of /tmp/file.img; then
  xentest_pass plugin-bad-key-makes-nothing
else
  xentest_fail plugin-bad-key-makes-nothing "$(cat /tmp/bad) $(loops_of /tmp/file.img)"
fi
if ! $drv create bad --kernel /nonexistent/vmlinux --disk /tmp/file.img:raw > /tmp/bad 2>&1 &&
   ! xl domid bad > /dev/null 2>&1 && no_loops_of /tmp/file.img && vbds_back_to "$vbds"; then
  xentest_pass plugin-failed-create-clean
else
  xentest_fail plugin-failed-create-clean "$(tail -n 2 /tmp/bad | tr '\n' ' ') loops: $(loops_of /tmp/file.img)"
fi
# The plugin never tears down a block device it was given.
if losetup "$loopdev" > /dev/null 2>&1; then
  xentest_pass plugin-block-device-kept
else
  xentest_fail plugin-block-device-kept "$loopdev was detached"
fi
losetup -d "$loopdev" 2>/dev/null
