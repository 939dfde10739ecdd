#!/usr/bin/env bash
# nofilter filter: every request passes through unchanged (data, zeroes,
# trims, extents and errors), stacked once or twice.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

printf 'hello, world' > disk.img
truncate -s 1M disk.img
t "$NBDKIT" -U - --filter=nofilter --filter=nofilter file disk.img \
  --run "nbdsh -u \"\$uri\" -c '
assert h.get_size() == 1048576
assert h.pread(12, 0) == b\"hello, world\"
h.pwrite(b\"abc\", 4096)
h.zero(4096, 8192)
assert h.pread(8, 4096) == b\"abc\" + bytes(5)
assert h.pread(4, 12288) == bytes(4)
try:
    h.pread(1, 1048576)
    assert False, \"read past the end succeeded\"
except nbd.Error as e:
    assert e.errno == \"EINVAL\", e.errno
'" || fail "data through nofilter"
assert_eq "file contents" "$(head -c 12 disk.img)" "hello, world"
assert_eq "written at 4096" "$(dd if=disk.img bs=1 skip=4096 count=3 2>/dev/null)" "abc"
echo "filter-nofilter: OK"
