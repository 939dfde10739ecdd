"""blocksize filter: any client request reaches a plugin with strict
block sizes only aligned and split (testplug checks every request against
its block-size= and counts violations), data stays right, and parallel
unaligned writes into one block lose nothing (read-modify-write lock)."""
import os
import random
import threading
import nbdtest

t = nbdtest.Test()
if not nbdtest.OURS:
    nbdtest.skip("filters are ours")
plug = os.path.join(os.environ.get("BUILDDIR", "."),
                    "tests/plugins/nbdkit-testplug-plugin.so")
trace, stats = t.path("trace"), t.path("stats")
SIZE = 1024 * 1024 + 100        # the unaligned tail is cut off
uri = t.start("bs", "--filter=blocksize", plug, "size=%d" % SIZE,
              "block-size=4096:4096:65536", "trace=" + trace,
              "stats=" + stats, "cache=native", "maxdata=32K",
              "maxlen=128K")
h = t.connect(uri)
size = h.get_size()
assert size == 1024 * 1024, size
assert h.get_block_size(nbdtest.nbd.SIZE_MINIMUM) == 1

model = bytearray(size)
rnd = random.Random(1)
for _ in range(200):
    off = rnd.randrange(size - 1)
    n = rnd.randrange(1, min(200000, size - off))
    what = rnd.randrange(4)
    if what == 0:
        buf = bytes(rnd.getrandbits(8) for _ in range(min(n, 3000)))
        n = len(buf)
        h.pwrite(buf, off)
        model[off:off + n] = buf
    elif what == 1:
        h.zero(n, off)
        model[off:off + n] = bytes(n)
    elif what == 2:
        assert h.pread(n, off) == model[off:off + n], (off, n)
    else:
        h.cache(n, off)
assert h.pread(size, 0) == model

# Eight threads write single bytes into the same two blocks.
def writer(k):
    c = t.connect(uri)
    for i in range(k, 8192, 8):
        c.pwrite(bytes([i & 0xff]), 100 + i)
ths = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
for x in ths:
    x.start()
for x in ths:
    x.join()
assert h.pread(8192, 100) == bytes(i & 0xff for i in range(8192))
for c in t.handles:
    c.shutdown()
t.handles.clear()
t.proc.terminate()
t.proc.wait()
st = dict(l.split("=") for l in open(stats).read().split())
assert st["limit_violations"] == "0", st
for line in open(trace):
    w = line.split()
    if w[0] in ("pread", "pwrite", "zero", "trim", "cache"):
        off, n = int(w[1]), int(w[2])
        assert off % 4096 == 0 and n % 4096 == 0, line
        limit = 32768 if w[0] in ("pread", "pwrite") else 131072
        assert n <= limit, line

# What the filter announces, as nbdkit: minimum 1, the plugin's
# preferred size, a maximum of 4G-1 (requests still up to the server's
# 64M); and maxlen= smaller than maxdata caps data requests too.
trace2 = t.path("trace2")
uri = t.start("bs2", "--filter=blocksize", plug, "size=4M",
              "block-size=4096:65536:1048576", "trace=" + trace2,
              "maxlen=16K")
h = t.connect(uri)
assert h.get_block_size(nbdtest.nbd.SIZE_MINIMUM) == 1
assert h.get_block_size(nbdtest.nbd.SIZE_PREFERRED) == 65536
assert h.get_block_size(nbdtest.nbd.SIZE_MAXIMUM) == 0xffffffff
h.pwrite(b"m" * (3 << 20), 1)
assert h.pread(3 << 20, 1) == b"m" * (3 << 20)
h.shutdown()
t.handles.clear()
t.proc.terminate()
t.proc.wait()
sizes = [int(line.split()[2]) for line in open(trace2)
         if line.split()[0] in ("pread", "pwrite")]
assert sizes and max(sizes) == 16384, max(sizes)

# In front of memory and file, with nbdcopy.
t2 = nbdtest.Test()
img = t2.path("disk.img")
with open(img, "wb") as f:
    f.write(os.urandom(3 * 1024 * 1024))
uri = t2.start("m", "--filter=blocksize", "memory", "3M", "minblock=512",
               "maxdata=64K")
assert os.system("nbdcopy %s '%s'" % (img, uri)) == 0
out = t2.path("out.img")
assert os.system("nbdcopy '%s' %s" % (uri, out)) == 0
assert open(out, "rb").read() == open(img, "rb").read()
uri = t2.start("f", "--filter=blocksize", "file", img, "minblock=4K")
h = t2.connect(uri)
h.pwrite(b"abc", 4095)
assert open(img, "rb").read()[4095:4098] == b"abc"
print("PASS")
