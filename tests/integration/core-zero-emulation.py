#!/usr/bin/python3
"""Zeroing emulated by writes (core/backend.c), seen from the plugin.

With zero=eopnotsupp (the plugin's zero always fails with EOPNOTSUPP)
and zero=none (can_zero answers EMULATE), a 5 MiB WRITE_ZEROES that is
not aligned to the 1 MiB emulation piece, over random data:
  - every byte of the range reads back as zero, the bytes around it
    are unchanged;
  - the plugin saw pwrite calls that cover exactly the range, in order
    and without gaps, none larger than 1 MiB, without flags;
  - with eopnotsupp the zero callback was tried first, with none never;
  - with FUA the writes are followed by one flush.
FAST_ZERO fails with ENOTSUP at once in both modes, writing nothing.
With zero=native the zero callback gets the request's flags."""
import errno
import os

import nbdtest_plug as tp
from nbdtest import nbd, expect_error

MiB = 1 << 20
t = tp.Test()

for mode in ("eopnotsupp", "none"):
    tr = t.path("trace-" + mode)
    uri = t.start("z-" + mode, tp.PLUGIN, "size=16M", "zero=" + mode,
                  "trace=" + tr)
    h = t.connect(uri)
    assert h.can_zero(), mode
    data = os.urandom(10 * MiB)
    h.pwrite(data, 0)

    off, count = MiB + 4096 + 7, 5 * MiB + 12345
    tp.truncate(tr)
    h.zero(count, off)
    got = h.pread(10 * MiB, 0)
    assert got[off:off + count] == bytes(count), \
        "%s: zeroed range does not read back as zeroes" % mode
    assert got[:off] == data[:off], "%s: bytes before the range changed" % mode
    assert got[off + count:] == data[off + count:], \
        "%s: bytes after the range changed" % mode

    lines = tp.trace(tr)
    zeros = [w for w in lines if w[0] == "zero"]
    if mode == "eopnotsupp":
        assert len(zeros) == 1 and zeros[0][1:3] == [str(off), str(count)], \
            "zero callback not tried first: %r" % zeros
        assert lines[0][0] == "zero", lines[:3]
    else:
        assert zeros == [], "zero callback called with zero=none: %r" % zeros
    ws = tp.writes(tr)
    assert ws, "%s: no pwrite emulated the zero" % mode
    pos = off
    for (o, n, flags) in ws:
        assert o == pos, "%s: pwrite at %d, expected %d: %r" % (mode, o, pos,
                                                                ws)
        assert 0 < n <= MiB, "%s: pwrite of %d bytes (> 1 MiB)" % (mode, n)
        assert flags == "-", "%s: emulated pwrite has flags %s" % (mode,
                                                                   flags)
        pos += n
    assert pos == off + count, "%s: pwrites end at %d, range ends at %d" % (
        mode, pos, off + count)
    assert len(ws) == (count + MiB - 1) // MiB, (mode, len(ws))

    # FUA: the emulating writes, then one flush.
    tp.truncate(tr)
    h.zero(2 * MiB, 0, nbd.CMD_FLAG_FUA)
    lines = [w for w in tp.trace(tr) if w[0] != "zero"]
    assert [w[0] for w in lines] == ["pwrite", "pwrite", "flush"], \
        "%s: zero with FUA: %r" % (mode, lines)

    # FAST_ZERO: refused at once, nothing written.
    assert h.can_fast_zero(), "%s: FAST_ZERO not advertised" % mode
    h.pwrite(data[:MiB], 0)
    tp.truncate(tr)
    expect_error(lambda: h.zero(MiB, 0, nbd.CMD_FLAG_FAST_ZERO),
                 errno.ENOTSUP, "%s: FAST_ZERO" % mode)
    assert tp.writes(tr) == [], "%s: FAST_ZERO wrote: %r" % (mode,
                                                             tp.trace(tr))
    assert h.pread(MiB, 0) == data[:MiB], "%s: FAST_ZERO changed data" % mode
    h.shutdown()
    assert tp.stop(t) == 0

# zero=native: the zero callback gets the request's flags as NBDKIT_FLAG_*
# (may_trim unless NO_HOLE, fast_zero), and no pwrite.
tr = t.path("trace-native")
uri = t.start("z-native", tp.PLUGIN, "size=1M", "trace=" + tr)
h = t.connect(uri)
h.pwrite(b"\xff" * 65536, 0)
for flags, want in ((0, "may_trim"), (nbd.CMD_FLAG_NO_HOLE, "-"),
                    (nbd.CMD_FLAG_FAST_ZERO, "may_trim,fast_zero"),
                    (nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FAST_ZERO,
                     "fast_zero")):
    tp.truncate(tr)
    h.zero(4096, 8192, flags)
    got = [w for w in tp.trace(tr) if w[0] != "pread"]
    assert got == [["zero", "8192", "4096", want]], (flags, got)
    assert h.pread(4096, 8192) == bytes(4096)
    h.pwrite(b"\xff" * 4096, 8192)
h.shutdown()
assert tp.stop(t) == 0

print("core-zero-emulation: OK")
