#!/usr/bin/env bash
# noextents: base:allocation stays offered but the whole disk is data,
# in front of memory (sparse) and file (a sparse file).
. "$(dirname "$0")/functions.sh"
requires nbdinfo --version

start_nbdkit plain memory 1M
assert_eq "memory without the filter" "$(t nbdinfo --map "$uri" | awk '{print $4}')" "hole,zero"

start_nbdkit mem --filter=noextents memory 1M
map="$(t nbdinfo --map "$uri")"
assert_eq "memory map" "$(echo "$map" | awk '{print $1, $2, $3, $4}')" "0 1048576 0 data"
t nbdsh -c 'h.add_meta_context("base:allocation")' -u "$uri" \
  -c 'assert h.can_meta_context("base:allocation")' \
  || fail "base:allocation no longer offered"

truncate -s 4M sparse.img
printf 'hello' | dd of=sparse.img bs=1 seek=2097152 conv=notrunc 2>/dev/null
start_nbdkit file --filter=noextents file sparse.img
map="$(t nbdinfo --map "$uri")"
assert_eq "file map" "$(echo "$map" | awk '{print $1, $2, $3}')" "0 4194304 0"
assert_eq "data still read" "$(nbdsh_u "$uri" -c 'print(h.pread(5, 2097152).decode())')" "hello"
echo "$testname: OK"
