"""truncate filter: size arithmetic, zeroes past the plugin's end,
non-zero writes there fail with EIO, zero writes succeed."""
import errno
import nbdtest
from nbdtest import expect_error

t = nbdtest.Test()
if not nbdtest.OURS:
    nbdtest.skip("filters are ours")
img = t.path("disk.img")
with open(img, "wb") as f:
    f.write(b"\x11" * 1000)

uri = t.start("tr", "--filter=truncate", "file", img, "truncate=2000",
              "round-up=512")
h = t.connect(uri)
assert h.get_size() == 2048, h.get_size()
assert h.pread(1100, 900) == b"\x11" * 100 + bytes(1000)
assert h.pread(48, 2000) == bytes(48)
expect_error(lambda: h.pwrite(b"\x01", 1500), errno.EIO, "non-zero past end")
h.pwrite(bytes(100), 1500)              # zeroes are fine
h.pwrite(b"\x22" * 10 + bytes(10), 990)  # straddling: data, then zeroes
with open(img, "rb") as f:
    assert f.read() == b"\x11" * 990 + b"\x22" * 10   # file not grown
h.zero(1000, 1000)                      # mostly past the end
h.trim(100, 1900)
ext = nbdtest.check_extents(h, 1000, 1048)
assert ext[-1][2] == 3 and ext[-1][0] + ext[-1][1] == 2048, ext

# Shrinking, and round-down.
for args, size in ((["truncate=100"], 100), (["round-down=512"], 512),
                   (["truncate=3000", "round-down=1K"], 2048)):
    uri = t.start("s%d" % size, "--filter=truncate", "file", img, *args)
    h = t.connect(uri)
    assert h.get_size() == size, (args, h.get_size())

# Stacked in front of memory.
uri = t.start("mem", "--filter=truncate", "memory", "1000", "round-up=4K")
h = t.connect(uri)
assert h.get_size() == 4096
h.pwrite(b"x" * 1000, 0)
assert h.pread(4096, 0) == b"x" * 1000 + bytes(3096)
print("PASS")
