#!/usr/bin/python3
"""zstd: the uncompressed contents of zstd images made with the zstd CLI,
read at random and compared byte for byte: one frame, many frames
(pieces compressed separately and concatenated), a frame of unknown
size (compressed from a pipe), and the seekable format (frames plus a
seek table in a skippable frame).  The export is read-only."""
import os
import random
import shutil
import struct
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

if not shutil.which("zstd"):
    nbdtest.skip("zstd not installed")
t = nbdtest.Test()

# Compressible but not trivial data: 6 MB.
rnd = random.Random(7)
data = b"".join(bytes([rnd.randrange(8)]) * rnd.randrange(1, 300) +
                os.urandom(rnd.randrange(0, 64)) for _ in range(60000))
data = (data * 2)[:6 << 20]
raw = t.path("disk.raw")
open(raw, "wb").write(data)


def zstd(chunk):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=chunk,
                          stdout=subprocess.PIPE, check=True).stdout


one = zstd(data)
pieces = [zstd(data[i:i + (1 << 20)]) for i in range(0, len(data), 1 << 20)]
many = b"".join(pieces)
# Seekable format: the same frames, then the seek table.
table = b"".join(struct.pack("<II", len(p), min(1 << 20, len(data) - i * (1 << 20)))
                 for i, p in enumerate(pieces))
footer = struct.pack("<IBI", len(pieces), 0, 0x8F92EAB1)
seekable = many + struct.pack("<II", 0x184D2A5E, len(table) + 9) + table + footer
# Unknown content size: zstd reading a pipe does not know it.
unknown = subprocess.run("cat %s | zstd -q -c" % raw, shell=True,
                         stdout=subprocess.PIPE, check=True).stdout
# A skippable frame in the middle is ignored.
skippy = pieces[0] + struct.pack("<II", 0x184D2A50, 5) + b"12345" + \
    b"".join(pieces[1:])

reads = [(0, 4096), (5 << 20, 65536), (12345, 100), ((1 << 20) - 10, 20),
         (len(data) - 1, 1), (3 << 20, 2 << 20), (100, 1 << 20),
         ((2 << 20) + 7, 300000)]
reads += [(o, rnd.randrange(1, 70000)) for o in
          (rnd.randrange(0, len(data) - 70000) for _ in range(30))]

for name, image in (("one", one), ("many", many), ("seekable", seekable),
                    ("unknown", unknown), ("skippy", skippy)):
    img = t.path(name + ".zst")
    open(img, "wb").write(image)
    subprocess.run(["zstd", "-q", "-t", img], check=True)
    uri = t.start(name, "--filter=zstd", "file", img)
    h = t.connect(uri)
    assert h.get_size() == len(data), (name, h.get_size())
    assert h.is_read_only()
    for off, n in reads:
        assert h.pread(n, off) == data[off:off + n], (name, off, n)
    nbdtest.expect_error(lambda: h.pwrite(b"x", 0), what="write")
    # The whole image through nbdcopy as well.
    if shutil.which("nbdcopy"):
        out = t.path(name + ".out")
        subprocess.run(["nbdcopy", uri, out], check=True)
        assert open(out, "rb").read() == data, name

# Served from memory through another filter stack: not zstd is an error.
uri = t.start("bad", "--filter=zstd", "file", raw)
nbdtest.expect_error(lambda: t.connect(uri), what="not a zstd image")
print("filter-zstd: OK")
