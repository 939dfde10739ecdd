#!/usr/bin/python3
"""Requests past the end of the export and zero-length requests.  With
libnbd's strict mode off the requests reach the server: reads past the end
fail with EINVAL, writes with ENOSPC (or EINVAL), and the connection stays
usable.  Zero-length requests may fail but must not close the connection;
our server's defined behaviour is to succeed."""
import errno
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

t = nbdtest.Test()
size = 1 << 20
uri = t.start("mem", "memory", str(size))
h = t.connect(uri)
h.pwrite(b"hello", 0)

# libnbd refuses these client side while strict mode is on.
nbdtest.expect_error(lambda: h.pread(512, size), what="strict read past end")
assert h.pread(5, 0) == b"hello"

h.set_strict_mode(0)

for off, n in ((size, 512), (size - 1, 2), (size + 4096, 1),
               ((1 << 63) - 512, 512)):
    e = nbdtest.expect_error(lambda: h.pread(n, off), errno.EINVAL,
                             "read %d+%d" % (off, n))
    # The connection is still usable.
    assert h.pread(5, 0) == b"hello"

e = nbdtest.expect_error(lambda: h.pwrite(b"x" * 512, size - 256),
                         what="write past end")
assert e.errnum in (errno.ENOSPC, errno.EINVAL), e.errnum
assert h.pread(5, 0) == b"hello"
# The part inside the disk was not written.
assert h.pread(256, size - 256) == bytes(256)

for fn, what in ((lambda: h.trim(8192, size - 4096), "trim"),
                 (lambda: h.zero(8192, size - 4096), "zero")):
    e = nbdtest.expect_error(fn, what=what + " past end")
    assert e.errnum in (errno.ENOSPC, errno.EINVAL), (what, e.errnum)
    assert h.pread(5, 0) == b"hello"

# Zero-length requests must not kill the connection.
for fn in (lambda: h.pread(0, 0), lambda: h.pwrite(b"", 0),
           lambda: h.trim(0, 0), lambda: h.zero(0, 0)):
    try:
        r = fn()
        if isinstance(r, bytes):
            assert r == b"", r
    except nbd.Error as e:
        assert e.errnum in (errno.EINVAL, errno.ENOSPC), e.errnum
    assert h.pread(5, 0) == b"hello"

# Our server's defined behaviour: zero-length requests succeed.
if nbdtest.OURS:
    assert h.pread(0, 0) == b""
    h.pwrite(b"", 0)
    h.trim(0, size)
    h.zero(0, 0)
    assert h.pread(5, 0) == b"hello"

print("past-end: OK")
