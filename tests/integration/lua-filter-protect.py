"""filters/lua/protect.lua: writes, zeroes and trims that would change
bytes of a protected range fail with EPERM; ones that leave those
bytes as they are succeed; the rest of the disk is writable."""

import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
SRCDIR = os.environ.get("SRCDIR", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
if not os.path.exists(os.path.join(BUILDDIR, "filters",
                                   "nbdkit-lua-filter.so")):
    nbdtest.skip("the Lua host is not built")
PROTECT = os.path.join(SRCDIR, "filters", "lua", "protect.lua")

t = nbdtest.Test()
# Write the data to protect first, through an unprotected server that
# shares the file.
disk = t.path("disk.img")
with open(disk, "wb") as f:
    f.write(b"B" * 1024 + bytes(1024 * 1024 - 1024))
uri = t.start("p", "--filter=" + PROTECT, "file", disk, "protect=0-1023",
              "protect=512K-")
h = t.connect(uri)

# Outside the ranges: anything goes.
h.pwrite(b"free", 4096)
assert h.pread(4, 4096) == b"free"
h.zero(4096, 4096)

# Changing protected bytes: EPERM, and the data stays.
nbdtest.expect_error(lambda: h.pwrite(b"x", 10), errno.EPERM, "write")
nbdtest.expect_error(lambda: h.pwrite(b"y" * 2048, 0), errno.EPERM, "span")
nbdtest.expect_error(lambda: h.zero(4096, 0), errno.EPERM, "zero")
nbdtest.expect_error(lambda: h.trim(512, 512), errno.EPERM, "trim")
nbdtest.expect_error(lambda: h.pwrite(b"z", 1024 * 1024 - 1), errno.EPERM,
                     "open-ended range")
assert h.pread(1024, 0) == b"B" * 1024

# Writing what is already there succeeds, also across the edge.
h.pwrite(b"B" * 1024 + b"new!", 0)
assert h.pread(1028, 0) == b"B" * 1024 + b"new!"
# Zeroing bytes that are zero in a protected range succeeds.
h.zero(4096, 512 * 1024)

# nbdkit's forms: hex and octal offsets, and ~ for the complement.
h2 = t.connect(t.start("hex", "--filter=" + PROTECT, "memory", "1M",
                       "protect=0-0x1bd", "protect=01000-01777"))
h2.pwrite(b"mbr", 0x1be)
h2.pwrite(b"x", 0o2000)
for off in (0, 0x1bd, 0o1000, 0o1777):
    nbdtest.expect_error(lambda: h2.pwrite(b"x", off), errno.EPERM,
                         "protected at %#x" % off)
h3 = t.connect(t.start("inv", "--filter=" + PROTECT, "memory", "1M",
                       "protect=~0x1000-0x1fff"))
h3.pwrite(b"x" * 4096, 0x1000)
for off in (0, 0xfff, 0x2000, 1024 * 1024 - 1):
    nbdtest.expect_error(lambda: h3.pwrite(b"x", off), errno.EPERM,
                         "outside the complement at %#x" % off)
assert h3.pread(4096, 0x1000) == b"x" * 4096

# No range, or empty complements, protect nothing.
for args in ([], ["protect=~-"], ["protect=~-", "protect=~-"]):
    h4 = t.connect(t.start("none%d" % len(args), "--filter=" + PROTECT,
                           "memory", "1M", *args))
    h4.pwrite(b"x", 0)
    h4.pwrite(b"y", 1024 * 1024 - 1)

# A bad range is refused.
import subprocess  # noqa: E402
r = subprocess.run([nbdtest.NBDKIT, "-U", "-", "--filter=" + PROTECT,
                    "memory", "1M", "protect=10-5", "--run", "true"],
                   capture_output=True, text=True, timeout=30)
assert r.returncode != 0 and "END < START" in r.stderr, r.stderr
r = subprocess.run([nbdtest.NBDKIT, "-U", "-", "--filter=" + PROTECT,
                    "memory", "1M", "protect=0x10-0x8", "--run", "true"],
                   capture_output=True, text=True, timeout=30)
assert r.returncode != 0 and "END < START" in r.stderr, r.stderr
print("PASS")
