#!/usr/bin/python3
"""full plugin: reads zeroes (holes), every write, zero and trim fails
with ENOSPC (as nbdkit's), flush succeeds."""
import errno
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
import nbd

t = nbdtest.Test()
uri = t.start("full", "full", "1M")
h = t.connect(uri)
assert h.get_size() == 1 << 20
assert h.pread(65536, 4096) == bytes(65536)
for f in (lambda: h.pwrite(b"x" * 512, 0),
          lambda: h.pwrite(b"\0" * 512, 4096, nbd.CMD_FLAG_FUA),
          lambda: h.zero(4096, 0),
          lambda: h.trim(4096, 0)):
    try:
        f()
        assert False, "should fail"
    except nbd.Error as e:
        assert e.errnum == errno.ENOSPC, e
assert h.can_trim()
h.flush()
ext = []
h.block_status(1 << 20, 0, lambda c, o, e, err: ext.extend(e) or 0)
assert ext == [1 << 20, 3], ext
print("full-plugin: OK")
