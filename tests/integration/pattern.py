#!/usr/bin/python3
"""pattern plugin: every 8-byte big-endian word at offset N holds N,
including reads that start and end mid-word."""
import os
import struct
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest

t = nbdtest.Test()
uri = t.start("pat", "pattern", "1G")
h = t.connect(uri)
assert h.get_size() == 1 << 30


def expected(off, n):
    start = off - off % 8
    end = off + n
    words = b"".join(struct.pack(">Q", w) for w in range(start, end + 8, 8))
    return words[off - start: off - start + n]


assert h.pread(8, 0) == bytes(8)
assert h.pread(8, 8) == struct.pack(">Q", 8)
assert h.pread(16, 1 << 20) == struct.pack(">QQ", 1 << 20, (1 << 20) + 8)
for off, n in ((0, 4096), (8, 8), ((1 << 20) - 3, 11), (12345, 1000),
               ((1 << 30) - 8, 8), ((1 << 30) - 13, 13), (7, 1),
               (513 << 20, 65536 + 5)):
    got = h.pread(n, off)
    assert got == expected(off, n), "pattern mismatch at %d+%d" % (off, n)

# Check every word of a 1 MiB read.
buf = h.pread(1 << 20, 100 << 20)
for i in range(0, len(buf), 8):
    (w,) = struct.unpack_from(">Q", buf, i)
    assert w == (100 << 20) + i, (i, w)

# The pattern plugin is read-only.
assert h.is_read_only()
print("pattern: OK")
