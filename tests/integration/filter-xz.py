#!/usr/bin/python3
"""xz: the uncompressed contents of files made by the xz CLI, read at
random offsets and compared byte for byte: 1 MiB blocks
(--block-size), one block for the whole file (refused under a smaller
xz-max-block=, served otherwise), two streams concatenated with stream
padding between them, a small xz-max-depth=; corrupt and truncated
files give errors, not crashes.  The export is read-only."""
import os
import random
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

if not shutil.which("xz"):
    nbdtest.skip("xz not installed")
t = nbdtest.Test()

# Random data with sparse (zero) stretches: 5 MiB + a bit.
rnd = random.Random(11)
parts = []
while sum(map(len, parts)) < (5 << 20) + 12345:
    parts.append(os.urandom(rnd.randrange(1, 200000)))
    parts.append(bytes(rnd.randrange(1, 400000)))
data = b"".join(parts)[:(5 << 20) + 12345]
raw = t.path("disk.raw")
open(raw, "wb").write(data)


def xz(chunk, *opts):
    return subprocess.run(["xz", "-c", "-T1", "-1", *opts], input=chunk,
                          stdout=subprocess.PIPE, check=True).stdout


blocks = xz(data, "--block-size=1MiB")
one = xz(data)
half = len(data) // 2
two = xz(data[:half], "--block-size=512KiB") + bytes(8) + xz(data[half:])

reads = [(0, 4096), (5 << 20, 12345), (12345, 100), ((1 << 20) - 10, 20),
         (len(data) - 1, 1), (3 << 20, 2 << 20), (100, 1 << 20),
         (half - 5, 10), ((2 << 20) + 7, 300000)]
reads += [(o, rnd.randrange(1, 70000)) for o in
          (rnd.randrange(0, len(data) - 70000) for _ in range(40))]


def check(name, image, *opts):
    img = t.path(name + ".xz")
    open(img, "wb").write(image)
    subprocess.run(["xz", "-t", img], check=True)
    uri = t.start(name, "--filter=xz", "file", img, *opts)
    h = t.connect(uri)
    assert h.get_size() == len(data), (name, h.get_size())
    assert h.is_read_only()
    for off, n in reads:
        assert h.pread(n, off) == data[off:off + n], (name, off, n)
    nbdtest.expect_error(lambda: h.pwrite(b"x", 0), what="write")
    if shutil.which("nbdcopy"):
        out = t.path(name + ".out")
        subprocess.run(["nbdcopy", uri, out], check=True)
        assert open(out, "rb").read() == data, name
    return img, uri


check("blocks", blocks)
check("depth1", blocks, "xz-max-depth=1")
check("two", two)
one_img, _ = check("one", one)

# One block of 5 MiB is over xz-max-block=1M: refused with a clear error.
log = t.path("big.log")
with open(log, "w") as f:
    p = subprocess.run([nbdtest.NBDKIT, "-U", "-", "--filter=xz", "file",
                        one_img, "xz-max-block=1M", "--run", "nbdinfo --size $uri"],
                       stdout=subprocess.PIPE, stderr=f, timeout=30)
assert p.returncode != 0
msg = open(log).read()
assert "xz-max-block" in msg, msg

# A corrupt byte inside the second block: reading that block fails,
# the others still read.
bad = bytearray(blocks)
bad[len(bad) // 3] ^= 0x55
img = t.path("corrupt.xz")
open(img, "wb").write(bad)
uri = t.start("corrupt", "--filter=xz", "file", img)
h = t.connect(uri)
nbdtest.expect_error(lambda: [h.pread(1 << 20, o)
                              for o in range(0, len(data) - (1 << 20), 1 << 20)],
                     what="corrupt block")
assert h.pread(4096, 0) == data[:4096]
assert h.pread(100, len(data) - 100) == data[-100:]

# Truncated, or not xz at all: the connection is refused.
for name, image in (("trunc", blocks[:-7]), ("notxz", data[:100000]),
                    ("tiny", b"\xfd7zXZ\0"), ("badidx", blocks[:-40] +
                                              bytes(28) + blocks[-12:])):
    img = t.path(name + ".xz")
    open(img, "wb").write(image)
    uri = t.start(name, "--filter=xz", "file", img)
    nbdtest.expect_error(lambda: t.connect(uri), what=name)
print("filter-xz: OK")
