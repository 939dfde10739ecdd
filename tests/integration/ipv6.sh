#!/usr/bin/env bash
# -i ::1: IPv6 loopback.
. "$(dirname "$0")/functions.sh"
requires nbdinfo
"$PYTHON" -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null \
  || skip "no IPv6 loopback"

port=$(free_port)
pidfile="$tmpdir/v6.pid"
"$NBDKIT" -f -p "$port" -i ::1 -P "$pidfile" memory 3M &
register_pid $!
wait_for_file "$pidfile" 100 || fail "no pidfile"
assert_eq size "$(t nbdinfo --size "nbd://[::1]:$port")" $((3 << 20))
t nbdsh -u "nbd://[::1]:$port" -c '
h.pwrite(b"v6" * 100, 10)
assert h.pread(200, 10) == b"v6" * 100
'
if t nbdinfo --size "nbd://127.0.0.1:$port" >/dev/null 2>&1; then
  fail "server listens on 127.0.0.1 though -i ::1"
fi
echo "ipv6: OK"
