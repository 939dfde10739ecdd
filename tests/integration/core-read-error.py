#!/usr/bin/python3
"""A read that fails part-way: nbdkit_read_error_at (core/read.c,
core/transmission.c).

The test plugin with fail-read-at=OFFSET fills a read up to OFFSET,
calls nbdkit_read_error_at(OFFSET) and fails with EIO.
  - structured replies: data chunk(s) covering exactly [start, OFFSET)
    with the right bytes, then one ERROR_OFFSET chunk carrying OFFSET
    and NBD_EIO, with DONE; holes before OFFSET stay holes;
  - a read starting at OFFSET has no data chunk, only the error;
  - with DF, one data chunk [start, OFFSET) (holes filled), then the
    error;
  - reads not covering OFFSET succeed;
  - libnbd's pread_structured sees the data chunk, then the error chunk,
    and the read fails with EIO;
  - simple replies: an error reply with no data, and the connection
    keeps working.
The structured checks run with extended headers too."""
import errno
import os

import nbdtest_raw as rawnbd
import nbdtest_plug as tp
from nbdtest import nbd, expect_error

K = 1024
FAIL = 100000
t = tp.Test()
uri = t.start("rderr", tp.PLUGIN, "size=1M", "holes=yes",
              "fail-read-at=%d" % FAIL)
data = os.urandom(256 * K)
h = t.connect(uri)
h.pwrite(data[64 * K:192 * K], 64 * K)      # blocks 1 and 2 written
expect = bytes(64 * K) + data[64 * K:192 * K] + bytes(64 * K)

for ext in (False, True):
    c = rawnbd.connect(t.sock, extended=ext)

    # Data from 64K to FAIL, then the error at FAIL.
    c.send(rawnbd.CMD_READ, 64 * K, 128 * K)
    r = c.reply()
    assert r.error == rawnbd.EIO, r
    kinds = [ch.type for ch in r.chunks]
    assert kinds[-1] == rawnbd.TYPE_ERROR_OFFSET, r
    assert all(k == rawnbd.TYPE_OFFSET_DATA for k in kinds[:-1]) and \
        len(kinds) >= 2, r
    err = r.chunks[-1]
    assert err.error_offset == FAIL and err.error == rawnbd.EIO, err
    assert err.flags & rawnbd.REPLY_FLAG_DONE, err
    pos = 64 * K
    for ch in r.chunks[:-1]:
        assert ch.offset == pos, (ch, pos)
        assert ch.data == expect[pos:pos + ch.length], "wrong data"
        assert not ch.flags & rawnbd.REPLY_FLAG_DONE
        pos += ch.length
    assert pos == FAIL, "data chunks end at %d, error at %d" % (pos, FAIL)

    # A hole before the error stays a hole.
    c.send(rawnbd.CMD_READ, 0, 128 * K)
    r = c.reply()
    assert [(ch.type, ch.offset, ch.length) for ch in r.chunks[:1]] == \
        [(rawnbd.TYPE_OFFSET_HOLE, 0, 64 * K)], r
    assert r.chunks[-1].type == rawnbd.TYPE_ERROR_OFFSET, r
    assert r.chunks[-1].error_offset == FAIL, r
    assert sum(ch.length for ch in r.chunks[:-1]) == FAIL, r

    # Starting at the failing offset: no data at all.
    c.send(rawnbd.CMD_READ, FAIL, 4096)
    r = c.reply()
    assert len(r.chunks) == 1 and r.error == rawnbd.EIO, r
    assert r.chunks[0].type in (rawnbd.TYPE_ERROR,
                                rawnbd.TYPE_ERROR_OFFSET), r
    if r.chunks[0].type == rawnbd.TYPE_ERROR_OFFSET:
        assert r.chunks[0].error_offset == FAIL, r

    # DF: the data (holes flattened) in one chunk, then the error.
    c.send(rawnbd.CMD_READ, 0, 128 * K, rawnbd.CMD_FLAG_DF)
    r = c.reply()
    assert [(ch.type, ch.offset, ch.length) for ch in r.chunks[:-1]] == \
        [(rawnbd.TYPE_OFFSET_DATA, 0, FAIL)], r
    assert r.chunks[0].data == expect[:FAIL]
    assert r.chunks[-1].type == rawnbd.TYPE_ERROR_OFFSET, r
    assert r.chunks[-1].error_offset == FAIL, r

    # Not covering it: fine.
    c.send(rawnbd.CMD_READ, FAIL + 1, 4096)
    r = c.reply()
    assert r.error == 0 and r.data == expect[FAIL + 1:FAIL + 1 + 4096], r
    c.send(rawnbd.CMD_READ, 0, FAIL)
    r = c.reply()
    assert r.error == 0 and r.data == expect[:FAIL], r
    c.close()

# libnbd: the chunk callback sees the data, then the error.
seen = []


def chunk(subbuf, offset, status, error):
    seen.append((status, offset, len(subbuf), bytes(subbuf)))
    return 0


expect_error(lambda: h.pread_structured(64 * K, 80 * K, chunk), errno.EIO,
             "pread_structured across the error")
assert [s[0] for s in seen] == [nbd.READ_DATA] * (len(seen) - 1) + \
    [nbd.READ_ERROR], seen
data_seen = [s for s in seen if s[0] == nbd.READ_DATA]
assert data_seen[0][1] == 80 * K, seen
assert sum(s[2] for s in data_seen) == FAIL - 80 * K, seen
assert b"".join(s[3] for s in data_seen) == expect[80 * K:FAIL]
h.shutdown()

# Simple replies: an error, no data, and the connection goes on.
c = rawnbd.connect(t.sock, structured=False)
c.send(rawnbd.CMD_READ, 64 * K, 128 * K)
r = c.reply()
assert r.kind == "simple" and r.error == rawnbd.EIO and r.data is None, r
c.send(rawnbd.CMD_READ, 0, 64 * K)
c.send(rawnbd.CMD_READ, FAIL - 10, 20)
c.send(rawnbd.CMD_READ, 128 * K, 64 * K)
r1, r2, r3 = c.reply(), c.reply(), c.reply()
by_cookie = {r.cookie: r for r in (r1, r2, r3)}
assert by_cookie[2].error == 0 and by_cookie[2].data == expect[:64 * K]
assert by_cookie[3].error == rawnbd.EIO and by_cookie[3].data is None
assert by_cookie[4].error == 0 and by_cookie[4].data == \
    expect[128 * K:192 * K]
c.close()

assert tp.stop(t) == 0
print("core-read-error: OK")
