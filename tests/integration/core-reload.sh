#!/usr/bin/env bash
# SIGHUP reloads the layers that can reload: a connection held open
# across the reload keeps the code it was opened with, a new one gets
# the new code, and a reload that fails changes nothing and leaves the
# server serving.  Also several signals at once, and a server with
# nothing to reload.
. "$(dirname "$0")/functions.sh"
requires_ours
requires_python_nbd
plug="$BUILDDIR/tests/plugins/nbdkit-reloadable-plugin.so"
[ -f "$plug" ] || skip "no $plug"

start_nbdkit rl -v "$plug" fail="$tmpdir/fail" 2> "$tmpdir/log"

# A client that holds its connection and reads whenever asked: each
# line on its stdin is answered with the byte read at offset 0.
mkfifo in out
cat > holder.py <<'PY'
import sys, nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
for line in sys.stdin:
    print(chr(h.pread(1, 0)[0]), flush=True)
PY
"$PYTHON" -u holder.py "$sock" < in > out &
register_pid $!
exec 3> in 4< out
held () { echo >&3; read -r -t 10 b <&4; echo "$b"; }
fresh () { t nbdsh -u "$uri" -c 'print(chr(h.pread(1, 4096)[0]))'; }

assert_eq "held, before" "$(held)" A
assert_eq "new, before" "$(fresh)" A

kill -HUP "$pid"
for _ in $(seq 50); do [ "$(fresh)" = B ] && break; sleep 0.1; done
assert_eq "new, after one reload" "$(fresh)" B
assert_eq "held across the reload" "$(held)" A

# A reload that fails: the error is logged, nothing changes.
touch "$tmpdir/fail"
kill -HUP "$pid"
for _ in $(seq 50); do grep -q "reload failed" "$tmpdir/log" && break; sleep 0.1; done
grep -q "reloadable: reload failed" "$tmpdir/log" \
  || fail "no message for the failed reload: $(cat "$tmpdir/log")"
grep -q "fail exists: the new code does not load" "$tmpdir/log" \
  || fail "the plugin's own error is not shown"
assert_eq "new, after a failed reload" "$(fresh)" B
assert_eq "held, after a failed reload" "$(held)" A
rm "$tmpdir/fail"

# Signals arriving together make at least one reload, and the server
# goes on serving.
kill -HUP "$pid"; kill -HUP "$pid"; kill -HUP "$pid"
for _ in $(seq 50); do [ "$(fresh)" != B ] && break; sleep 0.1; done
case "$(fresh)" in C|D|E) ;; *) fail "after three signals: $(fresh)" ;; esac
server_alive
exec 3>&- 4<&-

# A server whose layers cannot reload ignores SIGHUP.
start_nbdkit mem memory 1M
kill -HUP "$pid"
sleep 0.3
server_alive
assert_eq "memory size after SIGHUP" "$(t nbdinfo --size "$uri")" 1048576
