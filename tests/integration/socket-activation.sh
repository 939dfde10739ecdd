#!/usr/bin/env bash
# Socket activation (LISTEN_FDS/LISTEN_PID) with systemd-socket-activate.
. "$(dirname "$0")/functions.sh"
requires systemd-socket-activate
requires nbdinfo

sock="$tmpdir/sa.sock"
systemd-socket-activate -l "$sock" -- "$NBDKIT" -f memory 5M 2>sa.err &
register_pid $!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { cat sa.err; fail "no activation socket"; }
assert_eq size "$(t nbdinfo --size "nbd+unix:///?socket=$sock")" $((5 << 20))
t nbdsh -u "nbd+unix:///?socket=$sock" -c '
h.pwrite(b"activated", 100)
assert h.pread(9, 100) == b"activated"
'
# Same server (memory persists across connections).
t nbdsh -u "nbd+unix:///?socket=$sock" -c 'assert h.pread(9, 100) == b"activated"'
echo "socket-activation: OK"
