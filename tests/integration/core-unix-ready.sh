#!/usr/bin/env bash
# -U PATH appears only once the server listens on it: a client that
# waits for the path and connects at once is never refused, even when
# listen() is slow (plugins/slowlisten.c widens that moment to 500 ms).
# A stale socket at PATH is replaced; any other file there is refused
# and left as it was; no temporary name is left behind.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo
shim="$BUILDDIR/tests/plugins/slowlisten.so"
[ -f "$shim" ] || skip "no $shim"

# A sanitizer runtime wants to come first in the library list; the shim
# only wraps listen(), so let it come before.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0"

for round in 1 2; do
  sock="$tmpdir/ready.sock"
  pidfile="$tmpdir/ready$round.pid"
  register_pidfile "$pidfile"
  # Round 2 replaces the socket round 1 left behind (killed with -9).
  LD_PRELOAD="$shim" "$NBDKIT" -U "$sock" -P "$pidfile" -f memory 1M &
  pid=$!
  register_pid $pid
  for _ in $(seq 2000); do
    if [ -S "$sock" ] && [ -s "$pidfile" ]; then break; fi
    if [ "$round" = 1 ] && [ -e "$sock" ]; then break; fi
    sleep 0.005
  done
  [ -S "$sock" ] || fail "round $round: no socket"
  size=$(t nbdinfo --size "nbd+unix:///?socket=$sock") ||
    fail "round $round: the socket appeared before the server listened"
  assert_eq size "$size" 1048576
  left=$(cd "$tmpdir" && ls -A | grep -v -x -e 'ready.sock' -e 'ready[12].pid' || true)
  [ -z "$left" ] || fail "round $round: left in the socket's directory: $left"
  kill -9 $pid
  wait $pid 2>/dev/null || true
done

# A regular file at PATH is not replaced.
file="$tmpdir/notasocket"
echo precious > "$file"
if t "$NBDKIT" -U "$file" -f memory 1M 2>"$tmpdir/err"; then
  fail "the server served over a regular file"
fi
grep -q "notasocket" "$tmpdir/err" || fail "error does not name the path: $(cat "$tmpdir/err")"
assert_eq content "$(cat "$file")" precious
echo "core-unix-ready: OK"
