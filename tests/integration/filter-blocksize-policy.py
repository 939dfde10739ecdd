"""blocksize-policy filter: the sizes announced to clients, the error
policy, and write-disconnect dropping the connection."""
import errno
import nbd
import nbdtest
from nbdtest import expect_error

t = nbdtest.Test()
if not nbdtest.OURS:
    nbdtest.skip("filters are ours")

uri = t.start("p", "--filter=blocksize-policy", "memory", "1M",
              "blocksize-minimum=512", "blocksize-preferred=64K",
              "blocksize-maximum=1M", "blocksize-error-policy=error")
h = t.connect(uri)
assert h.get_block_size(nbd.SIZE_MINIMUM) == 512
assert h.get_block_size(nbd.SIZE_PREFERRED) == 65536
assert h.get_block_size(nbd.SIZE_MAXIMUM) == 1024 * 1024
h.pwrite(b"x" * 512, 512)
assert h.pread(512, 512) == b"x" * 512
h.set_strict_mode(0)            # let libnbd send what the server refuses
expect_error(lambda: h.pread(100, 0), errno.EINVAL, "short read")
expect_error(lambda: h.pwrite(b"y" * 512, 100), errno.EINVAL, "unaligned")
expect_error(lambda: h.zero(100, 0), errno.EINVAL, "unaligned zero")
assert h.pread(512, 512) == b"x" * 512

# Only the minimum given: the others follow the plugin's defaults.
uri = t.start("q", "--filter=blocksize-policy", "memory", "1M",
              "blocksize-minimum=4K")
h = t.connect(uri)
assert h.get_block_size(nbd.SIZE_MINIMUM) == 4096
assert h.get_block_size(nbd.SIZE_PREFERRED) >= 4096
assert h.get_block_size(nbd.SIZE_MAXIMUM) % 4096 == 0

# write-disconnect: a larger write drops the connection.
uri = t.start("d", "--filter=blocksize-policy", "memory", "1M",
              "blocksize-write-disconnect=64K")
h = t.connect(uri)
h.pwrite(b"a" * 65536, 0)
h.pread(128 * 1024, 0)          # reads are not limited
try:
    h.pwrite(b"b" * 65537, 0)
    raise AssertionError("large write succeeded")
except nbd.Error:
    pass
try:
    h.pread(1, 0)
    raise AssertionError("connection still usable after the disconnect")
except nbd.Error:
    pass
h2 = t.connect(uri)
assert h2.pread(2, 0) == b"aa"

# With the error policy too, a write above blocksize-write-disconnect
# (and above the maximum) drops the connection rather than failing
# with EINVAL: the disconnect size is independent of the maximum.
uri = t.start("e", "--filter=blocksize-policy", "memory", "1M",
              "blocksize-maximum=16K", "blocksize-error-policy=error",
              "blocksize-write-disconnect=32K")
h = t.connect(uri)
h.set_strict_mode(0)
expect_error(lambda: h.pwrite(b"c" * 20000, 0), errno.EINVAL, "above max")
try:
    h.pwrite(b"c" * 40000, 0)
    raise AssertionError("large write succeeded")
except nbd.Error as e:
    assert e.errnum != errno.EINVAL, e
assert not h.aio_is_ready(), "connection still up after the disconnect"
print("PASS")
