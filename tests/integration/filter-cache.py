"""cache filter: writeback, writethrough and unsafe reach the plugin
when they should (testplug trace), cache-on-read serves the second read
from the cache, and cache-max-size reclaims (writing dirty blocks back)
with the data intact."""
import os
import random
import nbdtest

t = nbdtest.Test()
if not nbdtest.OURS:
    nbdtest.skip("filters are ours")
os.environ["TMPDIR"] = t.tmpdir
plug = os.path.join(os.environ.get("BUILDDIR", "."),
                    "tests/plugins/nbdkit-testplug-plugin.so")


def writes(trace):
    return sum(1 for l in open(trace) if l.startswith("pwrite"))


def reads(trace):
    return sum(1 for l in open(trace) if l.startswith("pread"))


for mode in ("writeback", "writethrough", "unsafe"):
    tr = t.path("trace-" + mode)
    uri = t.start(mode, "--filter=cache", plug, "size=1M", "trace=" + tr,
                  "cache=" + mode)
    h = t.connect(uri)
    h.pwrite(b"a" * 100000, 1000)
    assert h.pread(100002, 999) == b"\0" + b"a" * 100000 + b"\0"
    before = writes(tr)
    assert (before > 0) == (mode == "writethrough"), (mode, before)
    h.flush()
    after = writes(tr)
    assert (after > 0) == (mode != "unsafe"), (mode, after)
    # FUA goes through in writeback.
    if mode == "writeback":
        h.pwrite(b"f" * 10, 500000, nbdtest.nbd.CMD_FLAG_FUA)
        assert writes(tr) > after

# cache-on-read: the second read does not reach the plugin.
tr = t.path("trace-cor")
uri = t.start("cor", "--filter=cache", plug, "size=1M", "trace=" + tr,
              "cache-on-read=true")
h = t.connect(uri)
h.pread(200000, 3)
n = reads(tr)
h.pread(200000, 3)
assert reads(tr) == n
h2 = t.connect(uri)
h2.cache(65536, 700000)
n = reads(tr)
h2.pread(65536, 700000)
assert reads(tr) == n

# cache-max-size: 256K of cache over a 4M disk, random writes and reads.
tr = t.path("trace-max")
uri = t.start("max", "--filter=cache", plug, "size=4M", "trace=" + tr,
              "cache-max-size=256K", "cache-min-block-size=4K",
              "cache-on-read=true")
h = t.connect(uri)
model = bytearray(4 * 1024 * 1024)
rnd = random.Random(3)
for _ in range(300):
    off = rnd.randrange(len(model) - 1)
    n = rnd.randrange(1, min(100000, len(model) - off))
    if rnd.randrange(2):
        buf = os.urandom(n)
        h.pwrite(buf, off)
        model[off:off + n] = buf
    else:
        assert h.pread(n, off) == model[off:off + n], (off, n)
assert writes(tr) > 0           # dirty blocks were written back
assert h.pread(len(model), 0) == model
h.flush()

# In front of memory and file, with nbdcopy.
img = t.path("src.img")
open(img, "wb").write(os.urandom(2 * 1024 * 1024))
uri = t.start("m", "--filter=cache", "memory", "2M")
assert os.system("nbdcopy %s '%s'" % (img, uri)) == 0
out = t.path("out.img")
assert os.system("nbdcopy '%s' %s" % (uri, out)) == 0
assert open(out, "rb").read() == open(img, "rb").read()
dst = t.path("dst.img")
open(dst, "wb").write(bytes(2 * 1024 * 1024))
uri = t.start("fl", "--filter=cache", "file", dst)
assert os.system("nbdcopy --flush %s '%s'" % (img, uri)) == 0
assert open(dst, "rb").read() == open(img, "rb").read()
print("PASS")
