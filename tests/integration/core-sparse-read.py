#!/usr/bin/python3
"""Sparse reads: a plugin's nbdkit_read_hole becomes OFFSET_HOLE chunks
(core/read.c, core/transmission.c).

The test plugin with holes=yes reports every never written 64 KiB
block as a hole.  With blocks 1 and 3 written:
  - a structured 256 KiB read from 0 is HOLE, DATA, HOLE, DATA at the
    block offsets, the last chunk with DONE, and the data is right;
  - an unaligned one (from 32 KiB) clips the first and last holes;
  - a read of only unwritten blocks is one HOLE chunk with DONE;
  - with DF it is one OFFSET_DATA chunk with zeroes in the holes;
  - with simple replies the bytes are the same;
  - libnbd's pread returns the same bytes.
The structured checks run with extended headers too."""
import os

import nbdtest_raw as rawnbd
import nbdtest_plug as tp

K = 1024
B = 64 * K
t = tp.Test()
uri = t.start("sparse", tp.PLUGIN, "size=1M", "holes=yes")

h = t.connect(uri)
b1, b3 = os.urandom(B), os.urandom(B)
h.pwrite(b1, B)
h.pwrite(b3, 3 * B)
expect = bytes(B) + b1 + bytes(B) + b3 + bytes(B)   # 0 .. 320K

# libnbd
assert h.pread(4 * B, 0) == expect[:4 * B], "libnbd pread: wrong bytes"
assert h.pread(4 * B, 32 * K) == expect[32 * K:32 * K + 4 * B]
assert h.pread(100, B - 50) == expect[B - 50:B + 50]
h.shutdown()


def shape(r):
    return [(c.type, c.offset, c.length, c.flags) for c in r.chunks]


HOLE, DATA, DONE = rawnbd.TYPE_OFFSET_HOLE, rawnbd.TYPE_OFFSET_DATA, 1

for ext in (False, True):
    c = rawnbd.connect(t.sock, extended=ext)
    c.send(rawnbd.CMD_READ, 0, 4 * B)
    r = c.reply()
    assert r.error == 0, r
    assert r.kind == ("extended" if ext else "structured"), r
    assert shape(r) == [(HOLE, 0, B, 0), (DATA, B, B, 0), (HOLE, 2 * B, B, 0),
                        (DATA, 3 * B, B, DONE)], r
    assert r.data == expect[:4 * B], "structured read: wrong bytes"

    c.send(rawnbd.CMD_READ, 32 * K, 4 * B)
    r = c.reply()
    assert shape(r) == [(HOLE, 32 * K, 32 * K, 0), (DATA, B, B, 0),
                        (HOLE, 2 * B, B, 0), (DATA, 3 * B, B, 0),
                        (HOLE, 4 * B, 32 * K, DONE)], r
    assert r.data == expect[32 * K:32 * K + 4 * B]

    c.send(rawnbd.CMD_READ, 5 * B + 100, 2 * B)
    r = c.reply()
    assert shape(r) == [(HOLE, 5 * B + 100, 2 * B, DONE)], r
    assert r.data == bytes(2 * B)

    # DF: one chunk, holes filled with zeroes.
    c.send(rawnbd.CMD_READ, 0, 4 * B, rawnbd.CMD_FLAG_DF)
    r = c.reply()
    assert shape(r) == [(DATA, 0, 4 * B, DONE)], r
    assert r.data == expect[:4 * B], "DF read: wrong bytes"
    c.close()

# Simple replies: the same bytes.
c = rawnbd.connect(t.sock, structured=False)
c.send(rawnbd.CMD_READ, 32 * K, 4 * B)
r = c.reply()
assert r.kind == "simple" and r.error == 0, r
assert r.data == expect[32 * K:32 * K + 4 * B], "simple read: wrong bytes"
c.send(rawnbd.CMD_READ, 5 * B, 3 * B)
r = c.reply()
assert r.data == bytes(3 * B)
c.close()

assert tp.stop(t) == 0
print("core-sparse-read: OK")
