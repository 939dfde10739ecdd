#!/usr/bin/env bash
# --print-uri prints the nbd+unix URI of the listening socket.
# (Debian's nbdkit 1.32 has no --print-uri.)
. "$(dirname "$0")/functions.sh"
requires nbdinfo
if ! "$NBDKIT" --print-uri -U - memory 1M --run true >/dev/null 2>&1; then
  requires_ours
  fail "--print-uri not supported"
fi

sock="$tmpdir/p.sock"
pidfile="$tmpdir/p.pid"
"$NBDKIT" --print-uri -f -U "$sock" -P "$pidfile" memory 1M > uri.out &
register_pid $!
wait_for_file "$pidfile" 100 || fail "no pidfile"
wait_for_file uri.out 50 || fail "no URI printed"
printed=$(head -1 uri.out)
case "$printed" in
  "nbd+unix:///?socket=$sock"|"nbd+unix://?socket=$sock") ;;
  *) fail "printed URI '$printed'" ;;
esac
assert_eq size "$(t nbdinfo --size "$printed")" 1048576
echo "print-uri: OK"
