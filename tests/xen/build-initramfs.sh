#!/bin/sh
# build-initramfs.sh — builds what tests/xen boots under QEMU: the Xen
# hypervisor (decompressed, for QEMU's multiboot loader), Debian's kernel,
# and a dom0 initramfs holding Debian's Xen tools with their shared
# libraries, busybox-static, the Xen kernel modules, a tiny PV guest
# (kernel + initramfs) and the test script to run.
#
#   build-initramfs.sh [-d DESTDIR] [-p PROGRAM]... [-g PROGRAM]... [-t TEMPLATE]
#                      OUTDIR TEST_SCRIPT...
#
# DESTDIR is a `make install DESTDIR=` tree copied into dom0 as is, with the
# shared libraries of every ELF file in it; each PROGRAM is a host program
# copied into /usr/local/bin with its libraries.  TEMPLATE is the output of
# template/build-template.sh: its initramfs.img and root.img go to
# /xentest/template (its kernel is the test guest's, which dom0 has
# already).  A -g PROGRAM goes into a second guest initramfs,
# /xentest/guest/vchan-initrd.gz, with its libraries, the xen plugin from
# DESTDIR and the Xen device modules: its /init (vchan-domu-init) runs one
# end of the vchan conformance suite's split run.  The TEST_SCRIPTs run in
# dom0 in the order given.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
die () { echo "build-initramfs: $*" >&2; exit 1; }

usage="usage: build-initramfs.sh [-d DESTDIR] [-p PROGRAM]... [-g PROGRAM]... [-t TEMPLATE] OUTDIR TEST_SCRIPT..."
destdir=
programs=
guest_programs=
template=
while getopts d:g:p:t: opt; do
  case $opt in
    d) destdir=$(cd "$OPTARG" && pwd) || die "no directory $OPTARG" ;;
    p) [ -x "$OPTARG" ] || die "$OPTARG is not an executable"
       programs="$programs $(cd "$(dirname "$OPTARG")" && pwd)/$(basename "$OPTARG")" ;;
    g) [ -x "$OPTARG" ] || die "$OPTARG is not an executable"
       guest_programs="$guest_programs $(cd "$(dirname "$OPTARG")" && pwd)/$(basename "$OPTARG")" ;;
    t) template=$(cd "$OPTARG" && pwd) || die "no directory $OPTARG"
       for f in initramfs.img root.img manifest; do
         [ -r "$template/$f" ] || die "$template/$f missing (run template/build-template.sh)"
       done ;;
    *) die "$usage" ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || die "$usage"
outdir=$1
shift

xenbin=/usr/lib/xen-4.17/bin
xengz=/boot/xen-4.17-amd64.gz
[ -r "$xengz" ] || die "$xengz missing: install the Debian package xen-hypervisor-4.17-amd64"
[ -x "$xenbin/xl" ] || die "$xenbin/xl missing: install the Debian package xen-utils-4.17"
kver=
for v in $(ls /boot | sed -n 's/^vmlinuz-//p' | sort -V); do
  [ -f "/lib/modules/$v/modules.dep" ] && kver=$v
done
[ -n "$kver" ] || die "no kernel with modules in /boot: install linux-image-amd64"
moddir=/lib/modules/$kver
busybox=/bin/busybox
case $(LC_ALL=C ldd "$busybox" 2>&1 || true) in
  *"not a dynamic executable"*) ;;
  *) die "$busybox is not static: install the Debian package busybox-static" ;;
esac
for tool in cpio gzip xz; do
  command -v $tool >/dev/null || die "$tool not found: install cpio and gzip"
done

mkdir -p "$outdir"
work=$(mktemp -d "$outdir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# Busybox with every applet as a link, into the tree $1.
add_busybox () {
  mkdir -p "$1/bin" "$1/sbin" "$1/usr/bin" "$1/usr/sbin"
  cp "$busybox" "$1/bin/busybox"
  for applet in $("$busybox" --list-full); do
    [ -e "$1/$applet" ] || ln -s /bin/busybox "$1/$applet"
  done
}

# Copies ELF file $2 (host path) into tree $1 at the same path, with every
# shared library ldd finds for it.
add_elf () {
  mkdir -p "$1$(dirname "$2")"
  [ -e "$1$2" ] || cp -L "$2" "$1$2"
  for lib in $(LC_ALL=C LD_LIBRARY_PATH=${destdir:+$destdir/usr/local/lib} ldd "$2" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'); do
    [ -e "$1$lib" ] && continue
    mkdir -p "$1$(dirname "$lib")"
    cp -L "$lib" "$1$lib"
  done
}

# Kernel modules $3... from $moddir into tree $1 directory $2, each after
# its dependencies, with a load-order file.
add_modules () {
  tree=$1 dir=$2
  shift 2
  mkdir -p "$tree$dir"
  order=$tree$dir/load-order
  : > "$order"
  for m in "$@"; do
    path=$(grep -E "^(.*/)?$m\.ko:" "$moddir/modules.dep" | head -n 1 | cut -d: -f1)
    if [ -z "$path" ]; then
      grep -qE "/$m\.ko" "$moddir/modules.builtin" && continue
      die "kernel module $m not found in $moddir"
    fi
    for p in $(sed -n "s|^$path: *||p" "$moddir/modules.dep" | tr ' ' '\n' | tac) "$path"; do
      [ -n "$p" ] || continue
      name=$(basename "$p")
      grep -qxF "$name" "$order" && continue
      cp "$moddir/$p" "$tree$dir/$name"
      echo "$name" >> "$order"
    done
  done
}

pack () {
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -n -4 > "$2"
}

# glibc dlopen()s libgcc_s for pthread_cancel, which xl and libxenstore's
# watch thread use; ldd cannot see it.
libgcc=$(LC_ALL=C ldconfig -p | sed -n 's/^[[:space:]]*libgcc_s.so.1 (libc6,x86-64) => //p' | head -n 1)
[ -n "$libgcc" ] || die "libgcc_s.so.1 not found: install the Debian package libgcc-s1"

# The tiny PV guest.
domu=$work/domu
mkdir -p "$domu/proc" "$domu/sys" "$domu/dev" "$domu/tmp"
add_busybox "$domu"
add_modules "$domu" /lib/modules/xentest xen-blkfront
cp "$here/domu-init" "$domu/init"

# The vchan guest: busybox, the Xen device modules libxenvchan uses, the
# -g programs and the xen plugin with their libraries, xenstore-read.
if [ -n "$guest_programs" ]; then
  [ -n "$destdir" ] || die "-g needs -d DESTDIR (the xen plugin comes from there)"
  plugin=$(find "$destdir" -path '*/qube/plugins/xen.so' | head -n 1)
  [ -n "$plugin" ] || die "no qube/plugins/xen.so in $destdir: configure with --enable-xen"
  vguest=$work/vchan-guest
  mkdir -p "$vguest/proc" "$vguest/sys" "$vguest/dev" "$vguest/tmp" "$vguest/usr/local/bin"
  add_busybox "$vguest"
  add_modules "$vguest" /lib/modules/xentest xen-evtchn xen-gntdev xen-gntalloc xenfs
  for prog in $guest_programs; do
    cp "$prog" "$vguest/usr/local/bin/"
    add_elf "$vguest" "$prog"
  done
  rel=${plugin#"$destdir"}
  mkdir -p "$vguest$(dirname "$rel")"
  cp "$plugin" "$vguest$rel"
  add_elf "$vguest" "$plugin"
  mkdir -p "$vguest$(dirname "$libgcc")"
  cp -L "$libgcc" "$vguest$libgcc"
  if [ -e "$xenbin/xenstore-read" ]; then
    add_elf "$vguest" "$xenbin/xenstore-read"
  else
    add_elf "$vguest" "$(command -v xenstore-read)"
  fi
  for p in $destdir $guest_programs; do
    rm -rf "$vguest$p"
    rmdir -p "$(dirname "$vguest$p")" 2>/dev/null || true
  done
  mkdir -p "$vguest/proc" "$vguest/sys" "$vguest/dev" "$vguest/tmp"
  cp "$here/vchan-domu-init" "$vguest/init"
fi

# dom0.
root=$work/dom0
mkdir -p "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp" \
         "$root/var/run" "$root/var/lib" "$root/var/log" "$root/etc/xen" \
         "$root/xentest/guest" "$root/lib64"
add_busybox "$root"
add_modules "$root" /lib/modules/xentest xen-evtchn xen-privcmd xen-gntdev \
  xen-gntalloc xenfs xen-blkback loop
for prog in xl oxenstored xen-init-dom0 xenconsoled xenstore xenstore-read \
            xenstore-write xenstore-exists xenstore-ls xenstore-rm xenstore-chmod; do
  if [ -e "$xenbin/$prog" ]; then
    add_elf "$root" "$xenbin/$prog"
  elif [ -e "/usr/bin/$prog" ]; then
    add_elf "$root" "/usr/bin/$prog"
  fi
done
# Xen's hotplug scripts (the block script attaches volumes) are bash.
add_elf "$root" /bin/bash
add_elf "$root" "$(command -v flock)"   # busybox-static has no flock
mkdir -p "$root$(dirname "$libgcc")"
cp -L "$libgcc" "$root$libgcc"
cp /etc/xen/oxenstored.conf /etc/xen/xl.conf "$root/etc/xen/"
[ -d /etc/xen/scripts ] && cp -a /etc/xen/scripts "$root/etc/xen/"
# Programs (and the DESTDIR tree) may link libraries installed in DESTDIR:
# ldd finds those under $destdir, and they reach dom0 by the copy of the tree.
mkdir -p "$root/usr/local/bin"
for prog in $programs; do
  cp "$prog" "$root/usr/local/bin/"
  add_elf "$root" "$prog"
done
if [ -n "$destdir" ]; then
  cp -a "$destdir/." "$root/"
  for f in $(find "$destdir" -type f); do
    case $(head -c 4 "$f" | od -An -c | tr -d ' ') in
      177ELF) add_elf "$root" "$f" ;;
    esac
  done
fi
# Drop the copies add_elf made at their build-tree paths, and the then empty
# directories above them.
for p in $destdir $programs; do
  rm -rf "$root$p"
  rmdir -p "$(dirname "$root$p")" 2>/dev/null || true
done
# That may have emptied and removed a directory dom0 needs (a build tree
# under /tmp takes /tmp with it): make them again.
mkdir -p "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp"
echo "$kver" > "$root/etc/kernel-version"
if [ -n "$template" ]; then
  mkdir -p "$root/xentest/template"
  cp "$template/initramfs.img" "$template/root.img" "$root/xentest/template/"
  sed -n 's/^kernel=//p' "$template/manifest" > "$root/xentest/template/kernel-version"
fi
cp /boot/vmlinuz-$kver "$root/xentest/guest/vmlinuz"
# The uncompressed ELF kernel too (for PVH, and to spare libxenguest the
# decompression): the bzImage carries it as one xz stream.
offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "/boot/vmlinuz-$kver" | head -n 1 | cut -d: -f1)
[ -n "$offset" ] || die "/boot/vmlinuz-$kver holds no xz stream"
tail -c +$((offset + 1)) "/boot/vmlinuz-$kver" | xz -dc --single-stream > "$root/xentest/guest/vmlinux" \
  || die "cannot decompress the kernel in /boot/vmlinuz-$kver"
pack "$domu" "$root/xentest/guest/initrd.gz"
if [ -n "$guest_programs" ]; then
  pack "$vguest" "$root/xentest/guest/vchan-initrd.gz"
fi
cp "$here/dom0-init" "$root/init"
mkdir -p "$root/xentest"
cp "$here/xentest-lib.sh" "$root/xentest/lib.sh"
mkdir -p "$root/xentest/tests"
n=0
for script in "$@"; do
  n=$((n + 1))
  cp "$script" "$root/xentest/tests/$(printf %02d $n)-$(basename "$script")"
done
pack "$root" "$work/dom0-initrd.gz"

zcat "$xengz" > "$work/xen"
cp /boot/vmlinuz-$kver "$work/vmlinuz"
mv "$work/xen" "$work/vmlinuz" "$work/dom0-initrd.gz" "$outdir/"
