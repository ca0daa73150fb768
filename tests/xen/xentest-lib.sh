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
# (written by xenconsoled --log=guest).
xentest_wait_console () {
  log=/var/log/xen/console/guest-$1.log
  i=0
  while [ $i -lt $(($2 * 10)) ]; do
    grep -q "$3" "$log" 2>/dev/null && return 0
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

xentest_console_tail () {
  tail -n "${2:-15}" "/var/log/xen/console/guest-$1.log" 2>/dev/null | sed 's/^/  | /'
}
