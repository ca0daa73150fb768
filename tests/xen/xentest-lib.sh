# xentest-lib.sh — helpers for test scripts run in dom0 by tests/xen: results
# go to the serial console as XENTEST lines the host side reads.

xentest_pass () { echo "XENTEST PASS $1"; }
xentest_fail () { name=$1; shift; echo "XENTEST FAIL $name: $*"; }
xentest_time () { echo "XENTEST TIME $1 $2"; }

# Milliseconds since boot, from /proc/uptime.
xentest_now_ms () {
  awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime
}

# Waits up to $2 seconds for the text $3 in the console log of domain $1
# (written by xenconsoled --log=guest).  The clock, not a count of polls:
# each poll itself is slow under emulation.
xentest_wait_console () {
  _log=/var/log/xen/console/guest-$1.log
  _until=$(( $(xentest_now_ms) + $2 * 1000 ))
  while [ "$(xentest_now_ms)" -lt $_until ]; do
    grep -q "$3" "$_log" 2>/dev/null && return 0
    sleep 0.1
  done
  grep -q "$3" "$_log" 2>/dev/null
}

xentest_console_tail () {
  tail -n "${2:-15}" "/var/log/xen/console/guest-$1.log" 2>/dev/null | sed 's/^/  | /'
}

# xentest_pv_config NAME KERNEL RAMDISK EXTRA MEMORY [DISKS]: writes
# /tmp/NAME.cfg, xl's configuration of a one-vCPU PV guest with MEMORY MiB,
# destroyed when it powers off or crashes; DISKS is an xl disk list.
xentest_pv_config () {
  cat > /tmp/$1.cfg <<CFG
name = "$1"
type = "pv"
kernel = "$2"
ramdisk = "$3"
extra = "$4"
memory = $5
maxmem = $5
vcpus = 1
disk = [ ${6:-} ]
on_poweroff = "destroy"
on_crash = "destroy"
CFG
}

# The state of `qube` in dom0 (exported: QUBE_STATE_DIR, QUBE_POLICY_DIR).
# The pool refuses volumes it could never hold (the template's root is
# 20 GiB): the state lives on a tmpfs whose limit is larger than dom0's
# memory; the images are sparse.
xentest_qube_state () {
  export QUBE_STATE_DIR=/var/lib/qube-xentest
  export QUBE_POLICY_DIR=$QUBE_STATE_DIR/policy.d
  if ! grep -q " $QUBE_STATE_DIR " /proc/mounts; then
    mkdir -p $QUBE_STATE_DIR
    mount -t tmpfs -o size=100g,mode=0700 tmpfs $QUBE_STATE_DIR
  fi
}

# xentest_qube_setup APPVM...: the TemplateVM debian-minimal from the
# template in /xentest/template (its kernel is the test guest's: same
# version checked) in a raw ("copy") file pool, as `qube template build`
# would make it, and PV AppVMs on the xen backend.  Prints what failed.
xentest_qube_setup () {
  tpl=debian-minimal
  [ "$(cat /xentest/template/kernel-version)" = "$(cat /etc/kernel-version)" ] || {
    echo "the template's kernel is not dom0's guest kernel"; return 1; }
  mkdir -p $QUBE_STATE_DIR/kernels/$tpl
  ln -sf /xentest/guest/vmlinux $QUBE_STATE_DIR/kernels/$tpl/vmlinux
  cp /xentest/template/initramfs.img $QUBE_STATE_DIR/kernels/$tpl/
  qube pool add default file dir_path=$QUBE_STATE_DIR/pools/default cow=copy &&
  qube create --class TemplateVM --label black --property kernel=$tpl $tpl &&
  qube volume import $tpl:root /xentest/template/root.img || return 1
  for vm in "$@"; do
    qube create --template $tpl --label red --property backend=xen \
      --property virt_mode=pv --property memory=160 --property maxmem=160 \
      --property vcpus=1 --property kernel=$tpl $vm &&
    # Xen nested in QEMU's emulation on a shared machine can take minutes.
    qube features $vm qrexec-timeout 240 || return 1
  done
}

# What dom0's kernel said of programs that crashed (process, address and
# the file it was in), as INFO lines.
xentest_crashes () {
  dmesg | grep -a -E 'segfault|general protection|trap ' | tail -n 10 | sed 's/^/XENTEST INFO crash: /'
}
