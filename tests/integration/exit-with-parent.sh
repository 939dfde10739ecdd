#!/usr/bin/env bash
# --exit-with-parent: the server exits when the process that started it
# dies.
. "$(dirname "$0")/functions.sh"
requires nbdinfo

sock="$tmpdir/ewp.sock"
pidfile="$tmpdir/ewp.pid"
register_pidfile "$pidfile"
# A parent shell starts the server in the background and then sleeps.
bash -c '"$0" --exit-with-parent -f -U "$1" -P "$2" memory 1M & exec sleep 60' \
  "$NBDKIT" "$sock" "$pidfile" &
parent=$!
register_pid "$parent"
wait_for_file "$pidfile" 100 || fail "no pidfile"
pid=$(cat "$pidfile")
assert_eq size "$(t nbdinfo --size "nbd+unix:///?socket=$sock")" 1048576
kill -0 "$pid" || fail "server not running"

kill -9 "$parent"
wait "$parent" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$pid" 2>/dev/null || fail "server survived its parent"
echo "exit-with-parent: OK"
