#!/usr/bin/env bash
# SIGTERM while clients are busy: the server exits promptly with status 0.
. "$(dirname "$0")/functions.sh"
requires nbdsh

start_nbdkit mem memory 256M
# Two clients hammering the server.
for i in 1 2; do
  timeout 30 nbdsh -u "$uri" -c '
import os
buf = os.urandom(1 << 20)
try:
    while True:
        for o in range(0, 64 << 20, 1 << 20):
            h.pwrite(buf, o)
            h.pread(1 << 20, o)
except nbd.Error:
    pass
' >/dev/null 2>&1 &
  register_pid $!
done
sleep 1
kill -0 "$pid" || fail "server died under load"
start=$(date +%s%N)
kill -TERM "$pid"
set +e
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "server still running 10 s after SIGTERM"
wait "$pid"
rc=$?
set -e
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
note "exited with $rc after ${elapsed} ms"
assert_eq "exit status after SIGTERM" "$rc" 0
[ "$elapsed" -lt 5000 ] || fail "took ${elapsed} ms to exit"
echo "sigterm: OK"
