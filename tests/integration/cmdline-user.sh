#!/usr/bin/env bash
# -u USER / -g GROUP: the server drops to that identity after binding
# (checked in /proc), still serves, and a bad name is refused clearly.
. "$(dirname "$0")/functions.sh"
[ "$OURS" = 1 ] || skip "our server only"
[ "$(id -u)" = 0 ] || skip "needs root to change identity"
requires nbdinfo --version
getent passwd nobody >/dev/null || skip "no user nobody"
group=$(id -gn nobody)

chmod 755 "$tmpdir"
start_nbdkit u -u nobody -g "$group" memory 1M
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
gid=$(awk '/^Gid:/ { print $2 }' "/proc/$pid/status")
assert_eq uid "$uid" "$(id -u nobody)"
assert_eq gid "$gid" "$(getent group "$group" | cut -d: -f3)"
assert_eq size "$(t nbdinfo --size "$uri")" 1048576
stop_nbdkit "$pid"

if "$NBDKIT" -u no-such-user-here -U "$tmpdir/x.sock" memory 1M \
     --run true 2>"$tmpdir/err"; then
  fail "an unknown user was accepted"
fi
grep -q "no-such-user-here" "$tmpdir/err" || fail "message: $(cat "$tmpdir/err")"
echo "cmdline-user: OK"
