#!/usr/bin/python3
"""-s: the server talks NBD on stdin/stdout (libnbd connect_command) and
exits when the client disconnects."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

t = nbdtest.Test()
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_command([nbdtest.NBDKIT, "-s", "--exit-with-parent",
                   "memory", "1M"])
assert h.get_size() == 1 << 20, h.get_size()
assert h.get_structured_replies_negotiated()
data = os.urandom(5000)
h.pwrite(data, 1001)
assert h.pread(5000, 1001) == data
assert h.pread(1001, 0) == bytes(1001)
h.flush()
h.shutdown()

# Same with the pattern plugin: read-only data served over the pipe.
h = nbd.NBD()
h.connect_command([nbdtest.NBDKIT, "-s", "--exit-with-parent",
                   "pattern", "size=1M"])
assert h.get_size() == 1 << 20
assert h.pread(8, 65536) == (65536).to_bytes(8, "big")
h.shutdown()
print("single: OK")
