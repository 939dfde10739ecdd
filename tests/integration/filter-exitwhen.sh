#!/usr/bin/env bash
# exitwhen: each kind of event makes an idle server exit; with a client
# connected the server waits for it, refusing new clients meanwhile.
. "$(dirname "$0")/functions.sh"
requires nbdinfo --version

alive () { kill -0 "$pid" 2>/dev/null; }
gone_within () { # TENTHS
  for _ in $(seq "$1"); do alive || return 0; sleep 0.1; done
  return 1
}

start_nbdkit created --filter=exitwhen memory 1M \
  exit-when-file-created="$tmpdir/flag" exit-when-poll=1
t nbdinfo --size "$uri" >/dev/null
sleep 1.2
alive || fail "exited before the file was created"
touch flag
gone_within 40 || fail "file-created: did not exit"

touch keep
start_nbdkit deleted --filter=exitwhen memory 1M \
  exit-when-file-deleted="$tmpdir/keep" exit-when-poll=1
rm keep
gone_within 40 || fail "file-deleted: did not exit"

sleep 60 & sleeper=$!
register_pid $sleeper
start_nbdkit proc --filter=exitwhen memory 1M \
  exit-when-process-exits=$sleeper exit-when-poll=1
sleep 1.2
alive || fail "exited while the process runs"
kill $sleeper
gone_within 40 || fail "process-exits: did not exit"

echo 0 > status
start_nbdkit script --filter=exitwhen memory 1M \
  exit-when-script="exit \$(cat $tmpdir/status)" exit-when-poll=1
sleep 1.2
alive || fail "exited on script status 0"
echo 88 > status
gone_within 40 || fail "script: did not exit on status 88"

# pipe: the server reads fd 5; closing the write end is the event.
mkfifo fifo
exec 6<>fifo
"$NBDKIT" -U "$tmpdir/pipe.sock" -P "$tmpdir/pipe.pid" -f \
  --filter=exitwhen memory 1M exit-when-pipe-closed=5 exit-when-poll=1 5<fifo 6>&- &
pid=$!
register_pid $pid
wait_for_file pipe.pid || fail "pipe server did not start"
exec 6>&-
gone_within 40 || fail "pipe-closed: did not exit"

# A connected client keeps the server up after the event; a new client
# is refused; the server exits when the first leaves.
start_nbdkit busy --filter=exitwhen file "$tmpdir/status" \
  exit-when-file-created="$tmpdir/flag2" exit-when-poll=1
t nbdsh -u "$uri" -c '
import os, time, subprocess
open("flag2", "w").close()
time.sleep(1.5)
r = subprocess.run(["nbdinfo", "--size", h.get_uri()], capture_output=True)
assert r.returncode != 0, "a new client was served after the event"
assert h.pread(2, 0) == b"88"
' || fail "busy: client failed"
gone_within 40 || fail "busy: did not exit after the last client"
echo "$testname: OK"
