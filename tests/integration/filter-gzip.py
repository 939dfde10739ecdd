#!/usr/bin/python3
"""gzip: the uncompressed contents of files made by gzip -c, read at
random offsets (and in order, and across access points) and compared
byte for byte, with the default gzip-span= and a small one; two members
concatenated; trailing zeros ignored; corrupt, truncated and non-gzip
files refused with an error.  Several connections share the index.  The
export is read-only."""
import os
import random
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

if not shutil.which("gzip"):
    nbdtest.skip("gzip not installed")
t = nbdtest.Test()

# Random data with sparse (zero) stretches and compressible text: 9 MiB.
rnd = random.Random(5)
parts = []
while sum(map(len, parts)) < (9 << 20) + 777:
    parts.append(os.urandom(rnd.randrange(1, 100000)))
    parts.append(bytes(rnd.randrange(1, 400000)))
    parts.append(b"".join(b"line %d of the text\n" % i
                          for i in range(rnd.randrange(1, 5000))))
data = b"".join(parts)[:(9 << 20) + 777]


def gz(chunk):
    return subprocess.run(["gzip", "-c", "-6"], input=chunk,
                          stdout=subprocess.PIPE, check=True).stdout


one = gz(data)
third = len(data) // 3
two = gz(data[:third]) + gz(data[third:])
padded = one + bytes(512)

reads = [(0, 4096), (5 << 20, 12345), (12345, 100), ((4 << 20) - 10, 20),
         (len(data) - 1, 1), (3 << 20, 2 << 20), (100, 1 << 20),
         (third - 5, 10), ((8 << 20) + 7, 300000), (4 << 20, 4096)]
reads += [(o, rnd.randrange(1, 70000)) for o in
          (rnd.randrange(0, len(data) - 70000) for _ in range(40))]


def check(name, image, *opts):
    img = t.path(name + ".gz")
    open(img, "wb").write(image)
    uri = t.start(name, "--filter=gzip", "file", img, *opts)
    h = t.connect(uri)
    h2 = t.connect(uri)
    assert h.get_size() == len(data), (name, h.get_size())
    assert h2.get_size() == len(data), (name, h2.get_size())
    assert h.is_read_only()
    for i, (off, n) in enumerate(reads):
        hh = h if i % 2 else h2
        assert hh.pread(n, off) == data[off:off + n], (name, off, n)
    # In order, in small reads: the decoder goes on from where it is.
    for off in range(0, 1 << 20, 65536):
        assert h.pread(65536, off) == data[off:off + 65536], (name, off)
    nbdtest.expect_error(lambda: h.pwrite(b"x", 0), what="write")
    if shutil.which("nbdcopy"):
        out = t.path(name + ".out")
        subprocess.run(["nbdcopy", uri, out], check=True)
        assert open(out, "rb").read() == data, name


check("one", one)
check("span", one, "gzip-span=64K")
check("two", two, "gzip-span=128K")
check("padded", padded)

# A corrupt byte, a truncated file, not gzip at all: refused (the whole
# file is checked when the index is built), with a message.
bad = bytearray(one)
bad[len(bad) // 2] ^= 0x55
for name, image in (("corrupt", bytes(bad)), ("trunc", one[:-1000]),
                    ("notgz", data[:100000]), ("tiny", one[:10])):
    img = t.path(name + ".gz")
    open(img, "wb").write(image)
    log = t.path(name + ".log")
    with open(log, "w") as f:
        p = subprocess.run([nbdtest.NBDKIT, "-U", "-", "--filter=gzip",
                            "file", img, "--run", "nbdinfo --size $uri"],
                           stdout=subprocess.PIPE, stderr=f, timeout=30)
    assert p.returncode != 0, name
    msg = open(log).read()
    assert "gzip:" in msg, (name, msg)
print("filter-gzip: OK")
