#!/bin/sh
# build-template.sh — builds the default minimal qube template from Debian
# packages installed on the host, without mounting anything and without
# network access.
#
#   build-template.sh [-k KERNEL_VERSION] [-a PROGRAM]... [-x PROGRAM]... [OUTDIR]
#
# -a adds a statically linked guest program of libqube (qube-agent,
# qrexec-client-vm) to the initramfs's /bin, named without a "-static"
# suffix; /init starts /bin/qube-agent over the virtio vchan transport.
#
# -x adds a statically linked PROGRAM to the initramfs's /bin (a guest-side
# test peer, for instance; /init runs /bin/NAME when the kernel command line
# says qube.run=NAME).
#
# OUTDIR (default: $QUBE_STATE_DIR/templates/debian-minimal, with
# QUBE_STATE_DIR defaulting to /var/lib/qube) receives:
#   vmlinux        the uncompressed kernel, booted as PVH by the kvm plugin
#                  and as a PV domain by the xen plugin
#   initramfs.img  busybox-static, the kernel modules a qube needs (the
#                  virtio ones for kvm, the Xen frontends), /init
#   root.img       the template's root volume (ext4, made with mke2fs -d)
#   manifest       kernel version, package versions, module load order
#
# Packages: linux-image-amd64, busybox-static, e2fsprogs, cpio, xz-utils,
# gzip.  The output is reproducible: every timestamp is SOURCE_DATE_EPOCH
# (default: the kernel image's mtime), file systems get fixed UUIDs.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
kver=
extra=

die () { echo "build-template: $*" >&2; exit 1; }

agents=
while getopts k:a:x: opt; do
  case $opt in
    k) kver=$OPTARG ;;
    a) [ -x "$OPTARG" ] || die "-a $OPTARG: not an executable file"
       agents="$agents $OPTARG" ;;
    x) [ -x "$OPTARG" ] || die "-x $OPTARG: not an executable file"
       extra="$extra $OPTARG" ;;
    *) die "usage: build-template.sh [-k KERNEL_VERSION] [-a PROGRAM]... [-x PROGRAM]... [OUTDIR]" ;;
  esac
done
shift $((OPTIND - 1))
outdir=${1:-${QUBE_STATE_DIR:-/var/lib/qube}/templates/debian-minimal}

# The newest installed kernel that has its modules, unless one was named.
if [ -z "$kver" ]; then
  for v in $(ls /boot | sed -n 's/^vmlinuz-//p' | sort -V); do
    [ -f "/lib/modules/$v/modules.dep" ] && kver=$v
  done
fi
[ -n "$kver" ] || die "no kernel found in /boot: install the Debian package linux-image-amd64"
vmlinuz=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver
[ -r "$vmlinuz" ] || die "cannot read $vmlinuz: run as root or install linux-image-amd64"
[ -f "$moddir/modules.dep" ] || die "no modules for kernel $kver in $moddir"

busybox=/bin/busybox
[ -x "$busybox" ] && ldd "$busybox" >/dev/null 2>&1 && busybox=
[ -n "$busybox" ] || busybox=$(command -v busybox-static 2>/dev/null || true)
[ -n "$busybox" ] || busybox=/bin/busybox
file_out=$(LC_ALL=C ldd "$busybox" 2>&1 || true)
case $file_out in
  *"not a dynamic executable"*) ;;
  *) die "$busybox is not statically linked: install the Debian package busybox-static" ;;
esac
for tool in mke2fs debugfs cpio xz gzip; do
  command -v $tool >/dev/null || die "$tool not found: install e2fsprogs, cpio, xz-utils and gzip"
done

: "${SOURCE_DATE_EPOCH:=$(stat -c %Y "$vmlinuz")}"
export SOURCE_DATE_EPOCH
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH

mkdir -p "$outdir"
work=$(mktemp -d "$outdir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# 1. The kernel: the bzImage carries the kernel as one xz stream after the
# setup code.  PVH boot needs the ELF inside, and is twice as fast with it.
offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
[ -n "$offset" ] || die "$vmlinuz holds no xz stream (not a Debian xz-compressed kernel?)"
tail -c +$((offset + 1)) "$vmlinuz" | xz -dc --single-stream > "$work/vmlinux" \
  || die "cannot decompress the kernel in $vmlinuz"
[ "$(head -c 4 "$work/vmlinux" | od -An -c | tr -d ' ')" = "177ELF" ] \
  || die "the xz stream in $vmlinuz is not an ELF kernel"

# 2. Kernel modules, each after the modules it depends on (modules.dep lists
# a module's dependencies, most basic last).
# A kvm qube is a microvm without PCI: its virtio devices are virtio-mmio.
wanted="virtio_ring virtio virtio_mmio virtio_blk virtio_console crc32c_generic crc16
mbcache jbd2 ext4 button evdev xen-blkfront xen-evtchn xen-gntdev xen-gntalloc"
order=$work/load-order
: > "$order"
add_module () {
  # $1: path relative to $moddir
  grep -qxF "$1" "$order" && return 0
  deps=$(sed -n "s|^$1: *||p" "$moddir/modules.dep")
  for d in $(echo "$deps" | tr ' ' '\n' | sed '/^$/d' | tac); do
    add_module "$d"
  done
  echo "$1" >> "$order"
}
for m in $wanted; do
  path=$(grep -E "^(.*/)?$m\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | head -n 1 | cut -d: -f1)
  if [ -z "$path" ]; then
    grep -qE "/$m\.ko" "$moddir/modules.builtin" 2>/dev/null && continue
    die "kernel module $m not found in $moddir"
  fi
  add_module "$path"
done

# 3. The initramfs.
ird=$work/initramfs
mkdir -p "$ird/bin" "$ird/dev" "$ird/proc" "$ird/sys" "$ird/sysroot" \
         "$ird/run" "$ird/tmp" "$ird/lib/modules" "$ird/etc"
cp "$busybox" "$ird/bin/busybox"
for applet in $("$ird/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$ird/bin/$applet"
done
# A Xen PV shutdown request makes the kernel run /sbin/poweroff, which
# signals /init.
mkdir -p "$ird/sbin"
ln -s ../bin/busybox "$ird/sbin/poweroff"
# The ACPI power button (acpid's event PWRF/00000080) signals /init too.
mkdir -p "$ird/etc/acpi/PWRF"
printf '#!/bin/sh\nkill -USR2 1\n' > "$ird/etc/acpi/PWRF/00000080"
chmod 0755 "$ird/etc/acpi/PWRF/00000080"
n=0
while read -r path; do
  n=$((n + 1))
  name=$(printf '%02d-%s' $n "$(basename "$path" | sed 's/\.ko.*$//')")
  case $path in
    *.xz) xz -dc "$moddir/$path" > "$ird/lib/modules/$name.ko" ;;
    *.zst) zstd -qdc "$moddir/$path" > "$ird/lib/modules/$name.ko" ;;
    *.gz) gzip -dc "$moddir/$path" > "$ird/lib/modules/$name.ko" ;;
    *) cp "$moddir/$path" "$ird/lib/modules/$name.ko" ;;
  esac
done < "$order"
cp "$here/init" "$ird/init"
for prog in $extra; do
  cp "$prog" "$ird/bin/$(basename "$prog")"
done
for prog in $agents; do
  cp "$prog" "$ird/bin/$(basename "$prog" -static)"
done
chmod 0755 "$ird/init"
echo "$kver" > "$ird/etc/kernel-version"
find "$ird" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$ird" && find . -mindepth 1 | LC_ALL=C sort | \
   cpio --quiet --reproducible -o -H newc -R 0:0) | gzip -n -6 > "$work/initramfs.img"

# 4. The template's root volume: a small busybox userland and the qrexec
# services, written into ext4 without mounting it.
rootd=$work/root
mkdir -p "$rootd/bin" "$rootd/sbin" "$rootd/etc/qubes-rpc" "$rootd/home/user" \
         "$rootd/rw" "$rootd/proc" "$rootd/sys" "$rootd/dev" "$rootd/tmp" \
         "$rootd/run" "$rootd/var/tmp" "$rootd/root" "$rootd/usr/bin" \
         "$rootd/usr/local/etc/qubes-rpc"
cp "$busybox" "$rootd/bin/busybox"
# As on Debian, /var/run is /run (a tmpfs in the guest, where the agent's
# socket lives); the guest programs of libqube are copied to /run/qube-bin
# at boot.
ln -s ../run "$rootd/var/run"
ln -s /run/qube-bin/qrexec-client-vm "$rootd/usr/bin/qrexec-client-vm"
for applet in $("$rootd/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$rootd/bin/$applet"
done
cat > "$rootd/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$rootd/etc/group" <<'GROUP'
root:x:0:
qubes:x:98:user
user:x:1000:
nogroup:x:65534:
GROUP
echo qube > "$rootd/etc/hostname"
echo "$kver" > "$rootd/etc/kernel-version"
for svc in "$here"/qubes-rpc/*; do
  install -m 0755 "$svc" "$rootd/etc/qubes-rpc/$(basename "$svc")"
done
chmod 1777 "$rootd/tmp" "$rootd/var/tmp"
chown 1000:1000 "$rootd/home/user"
find "$rootd" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
rm -f "$work/root.img"
mke2fs -q -F -t ext4 -L root -U 5c3d6f1e-8a0b-4c2d-9e7f-0a1b2c3d4e5f \
  -E hash_seed=5c3d6f1e-8a0b-4c2d-9e7f-0a1b2c3d4e5f,root_owner=0:0 \
  -d "$rootd" "$work/root.img" 64M >/dev/null \
  || die "mke2fs could not build the root volume"
# mke2fs copies each file's change time, which no tool can set on the host:
# set it in the image to the same fixed time (debugfs, still no mounting).
(cd "$rootd" && find . | LC_ALL=C sort | sed 's|^\.||; s|^$|/|') | while read -r p; do
  echo "set_inode_field $p ctime @$SOURCE_DATE_EPOCH"
  echo "set_inode_field $p ctime_extra 0"
done > "$work/ctimes"
debugfs -w -f "$work/ctimes" "$work/root.img" >/dev/null 2>&1 \
  || die "debugfs could not set the change times in the root volume"

# 5. The manifest says what went in.
{
  echo "kernel=$kver"
  echo "kernel-package=$(dpkg-query -W -f '${Version}' "linux-image-$kver" 2>/dev/null || echo unknown)"
  echo "busybox=$("$busybox" 2>&1 | head -n 1 | sed 's/^BusyBox \(v[^ ]*\).*/\1/')"
  echo "source-date-epoch=$SOURCE_DATE_EPOCH"
  echo "modules=$(sed 's|.*/||; s|\.ko.*||' "$order" | tr '\n' ' ' | sed 's/ $//')"
} > "$work/manifest"

for f in vmlinux initramfs.img root.img manifest; do
  mv -f "$work/$f" "$outdir/$f"
done
echo "build-template: kernel $kver -> $outdir"
