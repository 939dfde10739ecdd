#!/usr/bin/python3
"""split plugin: files concatenated; reads and writes across the
boundaries land in the right file; extents per file."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest

t = nbdtest.Test()
a, b, c = t.path("a"), t.path("b"), t.path("c")
with open(a, "wb") as f:
    f.write(b"A" * 5000)
with open(b, "wb") as f:           # sparse: 1M hole, then data
    f.truncate(1 << 20)
    f.seek(1 << 20)
    f.write(b"B" * 4096)
with open(c, "wb") as f:
    f.write(b"C" * 100)

uri = t.start("split", "split", a, "file=" + b, c)
h = t.connect(uri)
size = 5000 + (1 << 20) + 4096 + 100
assert h.get_size() == size, h.get_size()
assert h.pread(10, 4995) == b"A" * 5 + bytes(5)
assert h.pread(10, size - 105) == b"B" * 5 + b"C" * 5
# A write across all three files.
data = b"x" * (size - 2000)
h.pwrite(data, 2000)
h.flush()
with open(a, "rb") as f:
    assert f.read() == b"A" * 2000 + b"x" * 3000
with open(c, "rb") as f:
    assert f.read() == b"x" * 100
# Extents: b's hole shows (rewrite b sparse first, the server keeps fds).
with open(b, "r+b") as f:
    f.truncate(0)
    f.truncate(1 << 20)
    f.seek(1 << 20)
    f.write(b"B" * 4096)
ext = []
h.block_status(size, 0, lambda ctx, o, e, err: ext.extend(e) or 0)
pairs = list(zip(ext[0::2], ext[1::2]))
offs, o = [], 0
for ln, ty in pairs:
    offs.append((o, ln, ty))
    o += ln
holes = [x for x in offs if x[2] & 1]
assert any(h_off >= 5000 and h_off < 5000 + (1 << 20) for h_off, _, _ in holes), offs
assert offs[0][2] == 0, offs
print("split-plugin: OK")
