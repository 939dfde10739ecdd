#!/usr/bin/python3
"""forward-only: random reads from the client reach the plugin as one
forward stream (checked with the log filter placed below it), the data
is right, reads behind come from the cache, and writes are refused."""
import os
import re
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

t = nbdtest.Test()
SIZE = 4 << 20
img = t.path("disk.img")
data = os.urandom(SIZE)
with open(img, "wb") as f:
    f.write(data)
log = t.path("below.log")
uri = t.start("file", "--filter=forward-only", "--filter=log", "file", img,
              "logfile=" + log)
h = t.connect(uri)
assert h.is_read_only()

reads = [(4096, 1 << 20), (512, 0), (65536, 3 << 20), (100, 12345),
         (4096, (1 << 20) + 100), (1 << 20, (3 << 20) - 4096), (1, SIZE - 1),
         (65536, 2 << 20)]
for n, off in reads:
    assert h.pread(n, off) == data[off:off + n], (n, off)
nbdtest.expect_error(lambda: h.pwrite(b"x", 0), what="write")

# What the plugin saw: contiguous reads from 0, never going back.
pos = 0
for l in open(log):
    m = re.search(r"Read id=\d+ offset=(0x[0-9a-f]+) count=(0x[0-9a-f]+)", l)
    if m:
        off, cnt = int(m.group(1), 16), int(m.group(2), 16)
        assert off == pos, "plugin read at %d, expected %d" % (off, pos)
        pos += cnt
assert pos == SIZE, pos

# Parallel clients' requests from one connection stay in order too.
cookies = []
for n, off in reversed(reads):
    buf = nbd.Buffer(n)
    cookies.append((h.aio_pread(buf, off), buf, n, off))
h2 = t.connect(uri)
for c, buf, n, off in cookies:
    while not h.aio_command_completed(c):
        h.poll(-1)
    assert buf.to_bytearray() == data[off:off + n]

# In front of memory: everything reads as zeroes, block status is data.
uri = t.start("mem", "--filter=forward-only", "memory", "1M")
h = t.connect(uri)
assert h.pread(4096, 65536) == bytes(4096)
assert h.pread(4096, 0) == bytes(4096)
assert nbdtest.check_extents(h, 0, 1 << 20) == [(0, 1 << 20, 0)]
h.cache(65536, 0) if h.can_cache() else None
print("filter-forward-only: OK")
