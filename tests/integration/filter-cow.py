"""cow filter: writes land in the overlay, never in the plugin (a
read-only plugin, a read-only file), all connections share it, and
cow-on-read copies blocks read."""
import os
import random
import nbdtest

t = nbdtest.Test()
if not nbdtest.OURS:
    nbdtest.skip("filters are ours")
os.environ["TMPDIR"] = t.tmpdir
plug = os.path.join(os.environ.get("BUILDDIR", "."),
                    "tests/plugins/nbdkit-testplug-plugin.so")
trace = t.path("trace")
SIZE = 1024 * 1024 + 1000       # a partial last block
uri = t.start("c", "--filter=cow", plug, "size=%d" % SIZE,
              "readonly-plugin=yes", "trace=" + trace, "cow-block-size=4K")
h = t.connect(uri)
assert not h.is_read_only() and h.get_size() == SIZE
model = bytearray(SIZE)
rnd = random.Random(2)
for _ in range(300):
    off = rnd.randrange(SIZE - 1)
    n = rnd.randrange(1, min(50000, SIZE - off))
    k = rnd.randrange(4)
    if k == 0:
        buf = os.urandom(n)
        h.pwrite(buf, off)
        model[off:off + n] = buf
    elif k == 1:
        h.zero(n, off)
        model[off:off + n] = bytes(n)
    elif k == 2:
        h.trim(n, off)
        model[off:off + n] = bytes(n)
    else:
        assert h.pread(n, off) == model[off:off + n], (off, n)
h.flush()
assert h.pread(SIZE, 0) == model
h2 = t.connect(uri)             # a second connection sees the overlay
assert h2.pread(SIZE, 0) == model
ext = nbdtest.check_extents(h2, 0, SIZE)
assert sum(e[1] for e in ext) == SIZE
lines = open(trace).read().split("\n")
assert not any(l.startswith(("pwrite", "zero", "trim")) for l in lines)

# A read-only file: writes work, the file is unchanged.
img = t.path("ro.img")
data = os.urandom(256 * 1024)
open(img, "wb").write(data)
os.chmod(img, 0o444)
uri = t.start("f", "--filter=cow", "file", img)
h = t.connect(uri)
h.pwrite(b"new", 70000)
assert h.pread(6, 69999) == data[69999:70000] + b"new" + data[70003:70005]
assert open(img, "rb").read() == data

# cow-on-read: a block read once is not read from the plugin again.
trace2 = t.path("trace2")
uri = t.start("r", "--filter=cow", plug, "size=1M", "cow-on-read=true",
              "trace=" + trace2)
h = t.connect(uri)
h.pread(65536, 0)
n1 = open(trace2).read().count("pread")
h.pread(65536, 0)
assert open(trace2).read().count("pread") == n1
print("PASS")
