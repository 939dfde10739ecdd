#!/usr/bin/env bash
# stats: counts, bytes and the breakdown written at exit; statsappend.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

start_nbdkit s1 --filter=stats memory 1M statsfile="$tmpdir/stats.txt"
t nbdsh -u "$uri" -c '
for i in range(3):
    h.pread(65536, i * 65536)
h.pwrite(b"x" * 4096, 4096)
h.zero(8192, 65536)
h.trim(4096, 0)
h.flush()
'
stop_nbdkit "$pid" || fail "server did not stop"
cat stats.txt
grep -q '^total: 7 ops, ' stats.txt || fail "total"
grep -q '^read: 3 ops, [0-9.]* s, 192.00 KiB, ' stats.txt || fail "read line"
grep -q '^write: 1 ops, [0-9.]* s, 4.00 KiB, ' stats.txt || fail "write line"
grep -q '^zero: 1 ops, [0-9.]* s, 8.00 KiB, ' stats.txt || fail "zero line"
grep -q '^trim: 1 ops, [0-9.]* s, 4.00 KiB, ' stats.txt || fail "trim line"
grep -q '^flush: 1 ops, ' stats.txt || fail "flush line"
# 3 reads of 2^16 bytes: "17 bits" (65536 needs 17 bits), all 16-bit aligned.
grep -q '17 bits: 100.0% (3 reqs)' stats.txt || fail "read size breakdown"

# statsappend: a second run adds to the file; without it, replaces.
echo hello > disk.img
start_nbdkit s2 --filter=stats file disk.img statsfile="$tmpdir/stats.txt" \
  statsappend=true statsthreshold=0
t nbdsh -u "$uri" -c 'assert h.pread(5, 0) == b"hello"'
stop_nbdkit "$pid"
assert_eq "appended totals" "$(grep -c '^total:' stats.txt)" 2
grep -q '^read: 1 ops, [0-9.]* s, 5 bytes' stats.txt || fail "file read line"
start_nbdkit s3 --filter=stats memory 1M statsfile="$tmpdir/stats.txt"
stop_nbdkit "$pid"
assert_eq "replaced" "$(cat stats.txt | head -1 | cut -d, -f1)" "total: 0 ops"

# A file that cannot be written is an error at start.
if "$NBDKIT" -U - --filter=stats memory 1M statsfile=/nonexistent/x \
     --run true 2>err.txt; then
  fail "unwritable statsfile accepted"
fi
grep -q 'statsfile' err.txt || fail "error does not name statsfile"
echo "$testname: OK"
