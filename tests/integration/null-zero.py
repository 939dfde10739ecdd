#!/usr/bin/python3
"""null and zero plugins: sizes are right and reads return zeroes; null
accepts and discards writes."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest

t = nbdtest.Test()

uri = t.start("null", "null", "1G")
h = t.connect(uri)
assert h.get_size() == 1 << 30, h.get_size()
assert h.pread(65536, 0) == bytes(65536)
assert h.pread(4097, (1 << 30) - 4097) == bytes(4097)
if not h.is_read_only():
    h.pwrite(b"\xff" * 4096, 8192)
    assert h.pread(4096, 8192) == bytes(4096), "null stored data"

uri = t.start("null2", "null", "size=12345")
h = t.connect(uri)
assert h.get_size() == 12345, h.get_size()
assert h.pread(12345, 0) == bytes(12345)

uri = t.start("zero", "zero")
h = t.connect(uri)
assert h.get_size() == 0, h.get_size()

print("null-zero: OK")
