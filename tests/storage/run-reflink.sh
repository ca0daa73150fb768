#!/bin/sh
# Runs the storage-file suite in reflink mode: on a loop-mounted XFS made
# with reflink=1, set up here and removed afterwards.
set -u
builddir=${QUBE_TEST_BUILDDIR:-$(pwd)}

skip () { echo "SKIP: reflink mode: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "loop-mounting XFS needs root"
command -v mkfs.xfs >/dev/null 2>&1 || skip "mkfs.xfs not found (install xfsprogs)"

work=$(mktemp -d "${TMPDIR:-/tmp}/qube-storage-xfs-XXXXXX") || exit 99
cleanup () {
  mountpoint -q "$work/mnt" && umount "$work/mnt"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

truncate -s 2G "$work/xfs.img" && mkfs.xfs -q -m reflink=1 "$work/xfs.img" || exit 99
mkdir "$work/mnt"
mount -o loop "$work/xfs.img" "$work/mnt" 2>"$work/mount.err" ||
  skip "cannot loop-mount XFS: $(cat "$work/mount.err")"

QUBE_TEST_POOL_DIR=$work/mnt QUBE_TEST_COW=reflink \
  "$builddir/tests/storage/test-storage-file"
