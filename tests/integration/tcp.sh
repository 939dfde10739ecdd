#!/usr/bin/env bash
# -p PORT -i 127.0.0.1: TCP on a chosen port and address; --run sets $port.
. "$(dirname "$0")/functions.sh"
requires nbdinfo
requires nbdsh

port=$(free_port)
pidfile="$tmpdir/tcp.pid"
"$NBDKIT" -f -p "$port" -i 127.0.0.1 -P "$pidfile" memory 2M &
register_pid $!
wait_for_file "$pidfile" 100 || fail "no pidfile"
uri="nbd://127.0.0.1:$port"
assert_eq size "$(t nbdinfo --size "$uri")" $((2 << 20))
t nbdsh -u "$uri" -c '
h.pwrite(b"tcp!" * 256, 4096)
assert h.pread(1024, 4096) == b"tcp!" * 256
'
# A second client sees the first one's data.
t nbdsh -u "$uri" -c 'assert h.pread(4, 4096) == b"tcp!"'
# Only 127.0.0.1 listens: the port on another local address is closed
# (when the host has one).
if "$PYTHON" -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null; then
  if t nbdinfo --size "nbd://[::1]:$port" >/dev/null 2>&1; then
    fail "server listens on ::1 though -i 127.0.0.1"
  fi
fi

# Captive mode with TCP: $port and $uri.
port2=$(free_port)
t "$NBDKIT" -p "$port2" -i 127.0.0.1 memory 1M --run 'echo "port=$port"; echo "uri=$uri"; nbdinfo --size "$uri"' > run.out
cat run.out
grep -qx "port=$port2" run.out || fail "\$port"
grep -Eqx "uri=nbd://(localhost|127\.0\.0\.1):$port2/?" run.out || fail "\$uri"
grep -qx 1048576 run.out || fail "size via TCP \$uri"
echo "tcp: OK"
