#!/usr/bin/env bash
# random plugin: the same seed gives the same data, another seed other
# data; writes of the same data succeed, different data fails with EIO.
. "$(dirname "$0")/functions.sh"
requires nbdcopy

start_nbdkit r1 random size=1M seed=42
t nbdcopy "$uri" a.img
t nbdcopy "$uri" "$uri" || fail "copying the disk onto itself failed"
stop_nbdkit "$pid"
start_nbdkit r2 random 1M seed=42
t nbdcopy "$uri" b.img
cmp a.img b.img || fail "same seed, different data"
# Not all one value: random.
[ "$(od -An -tx1 -v a.img | tr ' ' '\n' | sort -u | wc -l)" -gt 200 ] \
  || fail "data does not look random"
nbdsh_u "$uri" -c '
import errno
d = h.pread(1000, 12345)
h.pwrite(d, 12345)
try:
    h.pwrite(bytes(x ^ 1 for x in d[:10]), 12345)
    assert False, "a different write succeeded"
except nbd.Error as e:
    assert e.errnum == errno.EIO, e
'
stop_nbdkit "$pid"
start_nbdkit r3 random 1M seed=43
t nbdcopy "$uri" c.img
if cmp -s a.img c.img; then fail "another seed, same data"; fi
echo "random-plugin: OK"
