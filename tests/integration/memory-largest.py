#!/usr/bin/python3
"""memory and pattern serve disks of 2^63-1 bytes, the largest NBD
allows: data written at the very end reads back, unwritten data reads
as zeroes, pattern's last words hold their offsets; a 48 MiB read (up
to nbdkit's 64 MiB request limit) is accepted."""
import os
import struct
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest

LARGEST = (1 << 63) - 1
t = nbdtest.Test()

h = t.connect(t.start("mem", "memory", str(LARGEST)))
assert h.get_size() == LARGEST
h.pwrite(b"1" * 512, 0)
h.pwrite(b"2" * 65536, 1000000001)
h.pwrite(b"3" * 511, LARGEST - 511)
assert h.pread(512, 0) == b"1" * 512
assert h.pread(65536, 1000000001) == b"2" * 65536
assert h.pread(511, LARGEST - 511) == b"3" * 511
assert h.pread(4096, 1 << 62) == bytes(4096)
h.zero(511, LARGEST - 511)
assert h.pread(511, LARGEST - 511) == bytes(511)

big = t.connect(t.start("big", "memory", "64M"))
big.pwrite(b"\xa5" * (48 << 20), 0)
assert big.pread(48 << 20, 0) == b"\xa5" * (48 << 20)
assert big.pread(64 << 20, 0)[-1] == 0

p = t.connect(t.start("pat", "pattern", str(LARGEST)))
assert p.get_size() == LARGEST
last = LARGEST - LARGEST % 8
want = struct.pack(">QQ", last - 8, last)[:8 + LARGEST % 8]
assert p.pread(len(want), last - 8) == want
print("memory-largest: OK")
