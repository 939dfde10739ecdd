"""offset filter: reads, writes, extents and errors land at OFFSET in
the plugin (file plugin), and a window beyond the end fails to open."""
import os
import nbd
import nbdtest
from nbdtest import expect_error

t = nbdtest.Test()
if not nbdtest.OURS:
    nbdtest.skip("filters are ours")
img = t.path("disk.img")
data = bytes((i * 7) & 0xff for i in range(1 << 20))
with open(img, "wb") as f:
    f.write(data)

uri = t.start("off", "--filter=offset", "file", img, "offset=64K",
              "range=128K")
h = t.connect(uri)
assert h.get_size() == 128 * 1024
assert h.pread(4096, 0) == data[65536:65536 + 4096]
assert h.pread(100, 128 * 1024 - 100) == data[196608 - 100:196608]
h.pwrite(b"hello", 10)
with open(img, "rb") as f:
    f.seek(65536 + 10)
    assert f.read(5) == b"hello"
# Beyond the window: refused by the server, not passed to the plugin.
expect_error(lambda: h.pread(2, 128 * 1024 - 1), what="read past end")
ext = nbdtest.check_extents(h, 0, 128 * 1024)
assert ext[0][0] == 0 and sum(e[1] for e in ext) == 128 * 1024, ext

# Without range: up to the plugin's end.
uri = t.start("off2", "--filter=offset", "file", img, "offset=1000")
h = t.connect(uri)
assert h.get_size() == (1 << 20) - 1000
assert h.pread(10, h.get_size() - 10) == data[-10:]

# Stacked with memory: the window is shifted, the rest untouched.
uri = t.start("mem", "--filter=offset", "memory", "1M", "offset=512K",
              "range=4K")
h = t.connect(uri)
h.pwrite(b"\xaa" * 4096, 0)
assert h.pread(4096, 0) == b"\xaa" * 4096
ext = nbdtest.check_extents(h, 0, 4096)
assert ext == [(0, 4096, 0)], ext

# A window past the end: the export cannot be opened.
uri = t.start("bad", "--filter=offset", "file", img, "offset=1M",
              "range=1")
try:
    t.connect(uri)
    raise AssertionError("connecting to a window past the end succeeded")
except nbd.Error:
    pass
print("PASS")
