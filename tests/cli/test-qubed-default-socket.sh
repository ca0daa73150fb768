#!/bin/sh
# qubed started without --socket and `qube` run without QUBED_SOCKET must
# meet at the same default socket: a qube created through that qubed is
# listed by a plain `qube list`.  Run as an unprivileged user (root's
# default is /run/qubed.sock, which a test must not take), in a runtime
# directory of its own.
set -eu
builddir=$(cd "${QUBE_TEST_BUILDDIR:-.}" && pwd)
tmp=$(mktemp -d)
pid=
cleanup () {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

as_user=
if [ "$(id -u)" = 0 ]; then
  command -v setpriv >/dev/null || { echo "setpriv is missing: cannot drop root"; exit 77; }
  as_user="setpriv --reuid=nobody --regid=nogroup --clear-groups --"
  chmod 755 "$tmp"
  mkdir "$tmp/run" "$tmp/state" "$tmp/data"
  chown nobody:nogroup "$tmp/run" "$tmp/state" "$tmp/data"
else
  mkdir "$tmp/run" "$tmp/state" "$tmp/data"
fi
chmod 700 "$tmp/run"

# ${exec_run} is `exec` where qubed is started, so that $! is qubed itself
# (through env, setpriv and libtool's wrapper, which all exec) and the
# clean-up's kill reaches it rather than a subshell.
run () {
  ${exec_run:-} env -u QUBED_SOCKET -u QUBE_STATE_DIR -u QUBE_RUNTIME_DIR XDG_RUNTIME_DIR="$tmp/run" \
    XDG_DATA_HOME="$tmp/data" HOME="$tmp" $as_user "$@"
}

(exec_run=exec; run "$builddir/daemon/qubed" --state-dir "$tmp/state" --policy-dir "$tmp" 2>"$tmp/qubed.log") &
pid=$!
i=0
while [ ! -S "$tmp/run/qubed.sock" ]; do
  i=$((i + 1))
  if [ $i -gt 300 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "qubed did not listen on $tmp/run/qubed.sock:"; cat "$tmp/qubed.log"; exit 1
  fi
  sleep 0.1
done

run "$builddir/cli/qube" create --class StandaloneVM --label red shared-socket-probe
out=$(run "$builddir/cli/qube" list)
echo "$out"
echo "$out" | grep -q '^shared-socket-probe ' || { echo "qube list did not reach qubed"; exit 1; }
# The store qubed serves has it; the CLI's own default store does not.
test -n "$(ls -A "$tmp/state")"
test -z "$(ls -A "$tmp/data")"
