#!/usr/bin/env bash
# Captive mode when the server stops before the --run command has
# finished (exitlast, exitwhen): the server still waits for the command,
# whose exit status becomes its own; the command never outlives it.
# A signal to the server still stops it at once.
. "$(dirname "$0")/functions.sh"
requires nbdinfo

# exitlast: the server stops when the command's only client leaves;
# the command then goes on for a second and exits with 4.
set +e
t "$NBDKIT" -U - --filter=exitlast memory 1M \
  --run 'nbdinfo --size "$uri" >/dev/null || exit 9
         sleep 1; echo finished > '"$tmpdir"'/done; exit 4'
rc=$?
set -e
assert_eq "status after exitlast" "$rc" 4
[ -f "$tmpdir/done" ] || fail "the server returned before its --run command finished"

# exitwhen: the condition is already met when the server starts (the
# file exists); it refuses the command's client and stops, but waits
# for the command's status (0 here, as the command expects the refusal).
touch "$tmpdir/stop"
rm -f "$tmpdir/done"
t "$NBDKIT" -U - --filter=exitwhen memory 1M exit-when-file-created="$tmpdir/stop" \
  --run 'sleep 2; if nbdinfo --size "$uri" >/dev/null 2>&1; then exit 5; fi
         echo finished > '"$tmpdir"'/done' ||
  fail "exitwhen: the --run command's status 0 was not the server's"
[ -f "$tmpdir/done" ] || fail "exitwhen: the server returned before its --run command finished"

# SIGTERM to the server stops it without waiting for the command.
rm -f "$tmpdir/done"
start=$SECONDS
"$NBDKIT" -U - -P "$tmpdir/pid" memory 1M \
  --run 'echo $$ > '"$tmpdir"'/cmdpid; exec sleep 20' &
srv=$!
for _ in $(seq 50); do [ -s "$tmpdir/pid" ] && [ -s "$tmpdir/cmdpid" ] && break; sleep 0.1; done
kill -TERM "$(cat "$tmpdir/pid")"
wait "$srv" || :
[ $((SECONDS - start)) -lt 15 ] || fail "SIGTERM waited for the --run command"
kill "$(cat "$tmpdir/cmdpid")" 2>/dev/null || :
