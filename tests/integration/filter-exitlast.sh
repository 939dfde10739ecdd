#!/usr/bin/env bash
# exitlast: the server stays up until a first client came and went,
# then exits; with timeout= a client arriving in the grace period
# cancels the exit, and the server exits once the grace period passes.
. "$(dirname "$0")/functions.sh"
requires nbdinfo --version

alive () { kill -0 "$pid" 2>/dev/null; }
gone_within () { # TENTHS
  for _ in $(seq "$1"); do alive || return 0; sleep 0.1; done
  return 1
}

start_nbdkit now --filter=exitlast memory 1M
sleep 0.5
alive || fail "exited before any client"
t nbdinfo --size "$uri" >/dev/null
gone_within 50 || fail "did not exit after the last client"

start_nbdkit grace --filter=exitlast memory 1M timeout=2
t nbdinfo --size "$uri" >/dev/null
sleep 1
alive || fail "exited inside the grace period"
# A new client inside the grace period cancels the exit.
t nbdinfo --size "$uri" >/dev/null
sleep 1.5
alive || fail "exit not cancelled by a client in the grace period"
gone_within 40 || fail "did not exit after the grace period"

# In front of file, with a client that stays a while.
echo hello > disk.img
start_nbdkit file --filter=exitlast file disk.img timeout=1
t nbdsh -u "$uri" -c 'import time; time.sleep(1.5); assert h.pread(5, 0) == b"hello"'
gone_within 40 || fail "file: did not exit"
echo "$testname: OK"
