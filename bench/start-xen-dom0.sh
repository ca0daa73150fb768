# start-xen-dom0.sh — run in dom0 (Xen under QEMU) by bench/start-xen: cold
# starts of a halted Xen AppVM by `qube run` until its `true` call through
# qrexec returns, beside `xl create` of the same domain — kernel, initramfs,
# kernel command line and the qube's three volumes, through Xen's own
# `block` script as a plain xl configuration has it — until the guest's
# /init prints its ready line on the console, and the same `xl create`
# without the volumes (a guest that mounts nothing: less work than a qube's
# start, shown beside).  The baseline guests run no qrexec agent
# (qube.agent=off).  The three kinds alternate, round by round, so that all
# meet the same disturbances.  Each figure is a XENTEST TIME line; the host
# side takes the medians.
[ -z "${BASH_VERSION:-}" ] && exec /bin/bash "$0" "$@"
. /xentest/lib.sh

runs=${XENTEST_BENCH_RUNS:-3}
log=/tmp/bench.log

# Milliseconds of wall-clock time in $ms, from bash's own clock: no process
# is started, so taking the time costs the guest nothing.
now () { local t=${EPOCHREALTIME/./}; ms=$(( t / 1000 )); }

# wait_ready DOMAIN SECONDS: until the ready line is on the domain's console
# log.  Bash built-ins only, no process per look (each would take the one
# CPU the guest shares with dom0 here): the log is read as it grows, and
# the pause between looks is a read with a timeout on a FIFO nobody writes.
[ -p /tmp/bench-tick ] || mkfifo /tmp/bench-tick
exec 8<> /tmp/bench-tick
wait_ready () {
  local path=/var/log/xen/console/guest-$1.log line rest= limit
  now; limit=$(( ms + $2 * 1000 ))
  while [ ! -e "$path" ]; do
    now; [ $ms -lt $limit ] || return 1
    read -r -t 0.05 -u 8 _
  done
  exec 7< "$path"
  while :; do
    while IFS= read -r -u 7 line; do
      line=$rest$line; rest=
      case $line in *'qube-guest: ready'*) exec 7<&-; return 0 ;; esac
    done
    # A last line without its end yet: completed by the next read.
    rest=$rest$line
    now; [ $ms -lt $limit ] || { exec 7<&-; return 1; }
    read -r -t 0.05 -u 8 _
  done
}

# The guest's own uptime when its /init said it was ready, from the last
# ready line on the console of domain $1.
guest_ready () {
  grep -a -o 'qube-guest: ready (up [0-9.]* s)' /var/log/xen/console/guest-$1.log 2>/dev/null |
    tail -n 1 | sed 's/qube-guest: //'
}

xentest_qube_state
if ! xentest_qube_setup bench > $log 2>&1; then
  xentest_fail bench-setup "$(tail -n 8 $log | tr '\n' ' ')"
  exit 0
fi
# The first start makes the private volume: not measured.
if ! qube start bench > $log 2>&1 || ! qube kill bench >> $log 2>&1; then
  xentest_fail bench-first-start "$(tail -n 8 $log | tr '\n' ' ')"
  exit 0
fi
# The qube's volumes as xl is given them: the template's root read-only, a
# copy of the qube's private volume as its last stop left it (exported,
# holes kept: a committed revision is never written), a fresh volatile one.
# Made before the clock starts.
volumes () {
  rm -f /tmp/xl-private.img /tmp/xl-volatile.img
  qube volume export bench:private /tmp/xl-private.img > $log 2>&1 ||
    echo "XENTEST INFO cannot export the private volume: $(tail -n 2 $log | tr '\n' ' ')" >&2
  truncate -s 10G /tmp/xl-volatile.img
  echo "'format=raw,vdev=xvda,access=ro,target=/xentest/template/root.img', \
'format=raw,vdev=xvdb,access=rw,target=/tmp/xl-private.img', \
'format=raw,vdev=xvdc,access=rw,target=/tmp/xl-volatile.img'"
}

# xl_boot NAME DISKS KEY: xl create of the template's kernel and initramfs
# as domain NAME with DISKS (an xl disk list, may be empty) until the ready
# line; reports bench-KEY-ms.
xl_boot () {
  xentest_pv_config $1 "$QUBE_STATE_DIR/kernels/debian-minimal/vmlinux" \
    "$QUBE_STATE_DIR/kernels/debian-minimal/initramfs.img" \
    "console=hvc0 quiet qube.name=$1 qube.agent=off" 160 "$2"
  local t0
  now; t0=$ms
  if xl create /tmp/$1.cfg > $log 2>&1 && wait_ready $1 120; then
    now; xentest_time bench-$3-ms $(( ms - t0 ))
    echo "XENTEST INFO $1: guest $(guest_ready $1)"
  else
    # A baseline boot that hangs (the nested guest kernel now and then
    # does) is left out of the figures, and said.
    echo "XENTEST INFO bench-$3: $1 did not reach its ready line in 120 s: $(tail -n 3 $log | tr '\n' ' ')"
    xentest_console_tail $1 5
  fi
  xl destroy $1 > /dev/null 2>&1
}

run=0
while [ $run -lt $runs ]; do
  run=$((run + 1))
  # One command, as a user starts a halted qube for a call: `qube run`
  # starts it first.
  now; t0=$ms
  if qube run --no-stdin bench -- true > $log 2>&1; then
    now; xentest_time bench-qube-ms $(( ms - t0 ))
    echo "XENTEST INFO start $run:" $(cat $QUBE_STATE_DIR/run/qubes/bench/start-times 2>/dev/null) \
      "guest $(guest_ready bench)"
  else
    xentest_fail bench-qube "run $run: $(tail -n 8 $log | tr '\n' ' ')"
  fi
  qube kill bench > /dev/null 2>&1

  xl_boot xlvol$run "$(volumes)" xl
  xl_boot xlbare$run "" xl-bare
done
xentest_crashes
xentest_pass bench
