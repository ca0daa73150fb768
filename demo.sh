#!/bin/sh
# libqube's main job on a fresh Debian 12 machine: installs the packages it
# needs, builds, builds the minimal template from the host's Debian
# packages, creates the AppVM `work`, starts it as a real virtual machine
# (QEMU, KVM when it works, else TCG), runs commands in it through qrexec,
# runs one in a disposable, shuts it down, and prints what happened with
# timings.  Run as root.
set -eu
cd "$(dirname "$0")"
top=$PWD
[ "$(id -u)" = 0 ] || { echo "demo.sh: run it as root (it boots qubes under QEMU)"; exit 1; }
echo "libqube demo: installing packages and building (log: /tmp/qube-demo-build.log)"
./.ci/deps >/tmp/qube-demo-deps.log 2>&1 || { tail -n 20 /tmp/qube-demo-deps.log; exit 1; }
{ { [ -x configure ] || ./autogen.sh; } && { [ -f Makefile ] || ./configure --enable-werror; } \
  && make -j"$(nproc)"; } >/tmp/qube-demo-build.log 2>&1 \
  || { tail -n 30 /tmp/qube-demo-build.log; echo "demo.sh: the build failed"; exit 1; }

state=$(mktemp -d /tmp/qube-demo.XXXXXX)
export QUBE_STATE_DIR="$state"
export QUBE_PLUGIN_PATH="$top/plugins/kvm/.libs:$top/plugins/storage-file/.libs"
export QUBE_QREXEC_DAEMON="$top/cli/qube-qrexec-daemon"
summary=$state/summary
: > "$summary"

# Runs `qube ARGS`, shows it and its output, and keeps its time; stops the
# demo (killing the qube) when it fails.
must() {
  shown=
  for a in "$@"; do
    case $a in *[\ \;\>]*) shown="$shown '$a'" ;; *) shown="$shown $a" ;; esac
  done
  printf '\n$ qube%s\n' "$shown"
  t0=$(date +%s%N)
  if ! "$top/cli/qube" "$@" 2> "$state/stderr"; then
    cat "$state/stderr"
    echo "demo.sh: 'qube $*' failed; qube state kept in $state"
    "$top/cli/qube" kill work >/dev/null 2>&1 || true
    exit 1
  fi
  cat "$state/stderr"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '  (%d ms)\n' "$ms"
  printf '%-66s %6d ms\n' "qube$shown" "$ms" >> "$summary"
}

echo "libqube demo: state in $state"
must template build
must create --class AppVM --template debian-minimal --label blue work
must start work
accel=$("$top/cli/qube" prefs work 2>/dev/null | awk '$1 == "accel" { print $3 }')
must list
must run work -- uname -a
must run work -- sh -c 'echo hello > /rw/hello; cat /rw/hello'
# A disposable: a fresh qube for one command, destroyed when it ends.
must create --class AppVM --template debian-minimal --label red work-dvm
must prefs work-dvm template_for_dispvms True
must run --dispvm=work-dvm -- sh -c 'echo "in $(hostname), a disposable"; ls /rw'
must list
must pause work
must list
must unpause work
must shutdown --wait work
must list
must volume list work

echo
echo "What happened:"
cat "$summary"
case $accel in
  tcg) echo "The qube ran under TCG (QEMU's emulation): this host has no usable hardware KVM." ;;
  kvm) echo "The qube ran under KVM (hardware virtualisation)." ;;
  *) echo "The acceleration in use was not reported." ;;
esac
echo "demo finished: state kept in $state (remove it with: rm -rf $state)"
