#!/usr/bin/env bash
# -P without -f: the server daemonizes, writes its pidfile (the daemon's
# pid, not the launcher's), serves, and on SIGTERM exits and stops
# serving its socket.
. "$(dirname "$0")/functions.sh"
requires nbdinfo

sock="$tmpdir/d.sock"
pidfile="$tmpdir/d.pid"
register_pidfile "$pidfile"
t "$NBDKIT" -U "$sock" -P "$pidfile" memory 1M
# The launcher has returned; the daemon must be ready once the pidfile
# exists.
wait_for_file "$pidfile" 100 || fail "no pidfile"
pid=$(cat "$pidfile")
[[ "$pid" =~ ^[0-9]+$ ]] || fail "pidfile content '$pid'"
kill -0 "$pid" || fail "daemon pid $pid not running"
[ -S "$sock" ] || fail "no socket"
assert_eq size "$(t nbdinfo --size "nbd+unix:///?socket=$sock")" 1048576
# The daemon is not a child of this shell (the launcher forked it off).
ppid=$(ps -o ppid= -p "$pid" | tr -d ' ')
[ "$ppid" != "$$" ] || fail "daemon is a child of the test shell"

kill "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$pid" 2>/dev/null || fail "daemon did not exit on SIGTERM"
# Nothing listens any more (nbdkit leaves the socket file; ours may
# remove it).
if t nbdinfo --size "nbd+unix:///?socket=$sock" >/dev/null 2>&1; then
  fail "socket still served after the daemon exited"
fi
echo "daemon: OK"
