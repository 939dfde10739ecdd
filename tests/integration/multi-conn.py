#!/usr/bin/python3
"""multi-conn on memory: two handles to one server each write, flush, and
see the other's data."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest

t = nbdtest.Test()
uri = t.start("mem", "memory", "64M")
h1 = t.connect(uri)
h2 = t.connect(uri)
assert h1.can_multi_conn() and h2.can_multi_conn()

a = os.urandom(65536)
b = os.urandom(65536)
h1.pwrite(a, 0)
h1.flush()
h2.pwrite(b, 1 << 20)
h2.flush()
assert h2.pread(65536, 0) == a, "h2 does not see h1's write"
assert h1.pread(65536, 1 << 20) == b, "h1 does not see h2's write"

# Overwrite from the other side; the first handle sees the change.
c = os.urandom(100)
h2.pwrite(c, 50)
h2.flush()
assert h1.pread(200, 0) == a[:50] + c + a[150:200]
print("multi-conn: OK")
