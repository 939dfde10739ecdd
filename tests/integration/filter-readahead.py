"""readahead filter: a sequential reader gets its data from prefetches
made by the background context before it asks (trace order and time
with a slow plugin), writes invalidate the buffer, and a serializing
plugin never sees two requests at once."""
import os
import time
import nbdtest

t = nbdtest.Test()
if not nbdtest.OURS:
    nbdtest.skip("filters are ours")
plug = os.path.join(os.environ.get("BUILDDIR", "."),
                    "tests/plugins/nbdkit-testplug-plugin.so")
SIZE = 4 * 1024 * 1024
tr = t.path("trace")
uri = t.start("ra", "--filter=readahead", plug, "size=4M", "trace=" + tr,
              "delay-read=20")
h = t.connect(uri)
data = os.urandom(SIZE)
for off in range(0, SIZE, 1 << 20):
    h.pwrite(data[off:off + (1 << 20)], off)
start = time.monotonic()
for off in range(0, SIZE, 32768):
    assert h.pread(32768, off) == data[off:off + 32768], off
elapsed = time.monotonic() - start
# 128 reads at 20 ms each would take 2.5 s without read-ahead.
assert elapsed < 1.5, elapsed
preads = [l.split() for l in open(tr) if l.startswith("pread")]
assert len(preads) < 40, len(preads)
# Some plugin read covered offsets beyond what the client had asked.
assert any(int(p[2]) > 32768 for p in preads), preads

# A write through another connection invalidates what was read ahead.
h.pread(32768, 0)
h.pread(32768, 32768)           # sequential: 64K.. is being fetched
h2 = t.connect(uri)
h2.pwrite(b"X" * 100, 70000)
assert h.pread(32768, 65536)[70000 - 65536:70100 - 65536] == b"X" * 100

# Serializing plugin: the background context waits its turn.
stats = t.path("stats")
uri = t.start("ser", "--filter=readahead", plug, "size=4M",
              "thread-model=serialize_all_requests", "delay-read=5",
              "stats=" + stats)
hs = [t.connect(uri) for _ in range(3)]
for off in range(0, SIZE, 65536):
    for c in hs:
        c.aio_pread(nbdtest.nbd.Buffer(65536), off)
for c in hs:
    while c.aio_in_flight() > 0:
        c.poll(-1)
for c in hs:
    c.shutdown()
t.handles.clear()
t.proc.terminate()
t.proc.wait()
st = dict(l.split("=") for l in open(stats).read().split())
assert st["max_inflight"] == "1", st
print("PASS")
