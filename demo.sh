#!/bin/sh
# libqube's main job on a fresh Debian 12 machine: installs the packages it
# needs, builds, then defines a template and qubes in a fresh state
# directory and shows what happened, step by step.
set -eu
cd "$(dirname "$0")"
top=$PWD
./.ci/deps >/tmp/qube-demo-deps.log 2>&1 || { tail -n 20 /tmp/qube-demo-deps.log; exit 1; }
[ -x configure ] || ./autogen.sh >/dev/null 2>&1
[ -f Makefile ] || ./configure --enable-werror >/dev/null
make -j"$(nproc)" >/dev/null

state=$(mktemp -d /tmp/qube-demo.XXXXXX)
export QUBE_STATE_DIR="$state" QUBE_PLUGIN_PATH="$top/plugins:$top/plugins/storage-file/.libs"
qube() {
  printf '\n$ qube %s\n' "$*"
  start=$(date +%s%N)
  "$top/cli/qube" "$@"
  printf '  (%d ms)\n' $(( ($(date +%s%N) - start) / 1000000 ))
}

echo "libqube demo: state in $state"
qube plugins
qube create --class TemplateVM --label black debian-12
qube create --class AppVM --template debian-12 --label blue work
qube volume list work
qube pool info default
qube create --class AppVM --template debian-12 --label red \
     --property provides_network=True sys-net
qube prefs work netvm sys-net
qube prefs debian-12 memory 800
qube prefs work
qube features work service.cups 1
qube tags work add project-x
qube clone work work-copy
qube list
qube remove work-copy
printf '\n$ qube remove debian-12   (refused: the template is in use)\n'
if "$top/cli/qube" remove debian-12; then echo "unexpected: removed"; exit 1; fi
qube list --json
echo
echo "demo finished: state kept in $state (remove it with: rm -rf $state)"
