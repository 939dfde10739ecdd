#!/usr/bin/python3
"""quota: a connection reads or writes up to its budget; the request that
would cross it fails with ESHUTDOWN without running, and the connection
is closed; other connections keep their own budget."""
import errno
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

t = nbdtest.Test()
uri = t.start("mem", "--filter=quota", "memory", "1M", "quota-read=8K",
              "quota-write=4K")
h = t.connect(uri)
h.pwrite(b"a" * 4096, 0)                  # exactly the write budget
h.zero(65536, 65536)                      # zero and trim are free
h.trim(4096, 65536)
h.pread(4096, 0)
h.pread(4096, 0)                          # exactly the read budget
e = nbdtest.expect_error(lambda: h.pread(1, 0), what="read over quota")
assert e.errnum == errno.ESHUTDOWN, e
# The connection is being closed: later requests fail too.
nbdtest.expect_error(lambda: h.pread(1, 0), what="read after quota")

# A fresh connection has a fresh budget; a write over it never happens.
h2 = t.connect(uri)
assert h2.pread(4096, 0) == b"a" * 4096
h2.pwrite(b"b" * 4000, 0)
e = nbdtest.expect_error(lambda: h2.pwrite(b"c" * 200, 8192),
                         what="write over quota")
assert e.errnum == errno.ESHUTDOWN, e
h3 = t.connect(uri)
assert h3.pread(200, 8192) == bytes(200), "the refused write was done"
assert h3.pread(4, 0) == b"bbbb"

# In front of file: read-only budget, unlimited writes.
img = t.path("disk.img")
with open(img, "wb") as f:
    f.write(os.urandom(1 << 20))
uri = t.start("file", "--filter=quota", "file", img, "quota-read=64K")
h = t.connect(uri)
for i in range(16):
    h.pwrite(b"w" * 65536, i * 65536)
assert h.pread(65536, 0) == b"w" * 65536
nbdtest.expect_error(lambda: h.pread(512, 0), what="file read over quota")
print("filter-quota: OK")
