#!/usr/bin/python3
"""memory plugin through libnbd: writes at odd offsets read back, trim and
zero read back as zeroes, block status shows holes after trim and data
after write, FUA and flush are accepted, structured replies are on."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

t = nbdtest.Test()
uri = t.start("mem", "memory", "1G")
h = t.connect(uri)

assert h.get_size() == 1 << 30, h.get_size()
assert h.get_structured_replies_negotiated()
assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
assert h.can_fua() and h.can_flush() and h.can_trim() and h.can_zero()
assert not h.is_read_only()

# A fresh memory disk reads as zeroes and is one big hole.
assert h.pread(4096, 12345) == bytes(4096)
ext = nbdtest.check_extents(h, 0, 1 << 20)
assert ext[0][0] == 0 and ext[0][2] & 3 == 3, ext

# Random data at odd offsets and lengths, read back exactly.
writes = [(1, 1), (3, 511), (4093, 4099), (65537, 131071),
          ((1 << 30) - 7, 7), (12345677, 1 << 20)]
for off, n in writes:
    data = os.urandom(n)
    h.pwrite(data, off)
    got = h.pread(n, off)
    assert got == data, "mismatch at %d+%d" % (off, n)
# Surrounding bytes untouched.
assert h.pread(1, 0) == b"\0"
assert h.pread(1, 2) == b"\0"

# Block status: data where written.
ext = nbdtest.check_extents(h, 65536, 65536 * 3)
assert ext[0][0] <= 65537 and not (ext[0][2] & 1), ext

# FUA write, then flush.
data = os.urandom(8192)
h.pwrite(data, 8 << 20, nbd.CMD_FLAG_FUA)
h.flush()
assert h.pread(8192, 8 << 20) == data

# Trim a 1 MiB aligned region full of data: reads back as zeroes and
# block status reports a hole.
base = 32 << 20
h.pwrite(b"\xaa" * (1 << 20), base)
ext = nbdtest.check_extents(h, base, 1 << 20, nbd.CMD_FLAG_REQ_ONE)
assert len(ext) == 1 and ext[0][2] == 0, ext
h.trim(1 << 20, base)
assert h.pread(1 << 20, base) == bytes(1 << 20)
ext = nbdtest.check_extents(h, base, 1 << 20, nbd.CMD_FLAG_REQ_ONE)
assert len(ext) == 1 and ext[0][2] & 1 and ext[0][1] <= 1 << 20, ext

# Zero a region in the middle of data, also with FUA and NO_HOLE.
base = 48 << 20
h.pwrite(b"\x55" * 65536, base)
h.zero(1000, base + 100)
got = h.pread(65536, base)
assert got == b"\x55" * 100 + bytes(1000) + b"\x55" * (65536 - 1100)
h.zero(4096, base, nbd.CMD_FLAG_FUA | nbd.CMD_FLAG_NO_HOLE)
assert h.pread(4096, base) == bytes(4096)
h.trim(65536, base, nbd.CMD_FLAG_FUA)
assert h.pread(65536, base) == bytes(65536)

# Cache is advisory and must succeed.
if h.can_cache():
    h.cache(65536, 0)

# Write spanning the last byte of the disk.
h.pwrite(b"END!", (1 << 30) - 4)
assert h.pread(4, (1 << 30) - 4) == b"END!"

h.shutdown()
print("memory-rw: OK")
