#!/usr/bin/python3
"""Asynchronous completion (core/async.c) through libnbd with many
requests in flight: the test plugin (asyncplug) completes every
request from its own threads after a random delay, so out of order,
and some inside the callback (inline=yes).

  - 256 writes then 256 reads of 4 KiB in flight at once: every byte
    reads back; the plugin saw more requests outstanding at once than
    the server has threads per connection (16), while the server ran
    few threads; the synchronous callbacks were never used;
  - holes (never-written blocks) read as zeroes, as hole chunks on the
    wire, and block status reports them;
  - trim, zero, flush complete; zeroed ranges read as zeroes;
  - a read failing part-way (fail-read-at) returns EIO, and on the wire
    the data before the failing offset then ERROR_OFFSET at it; a
    failing write (ENOSPC) and a request refused at once (EPERM) get
    their errors; requests around them succeed;
  - when the connection closes no request is outstanding on the
    plugin's handle;
  - a read whose buffer the plugin leaves partly alone (holes=no) gets
    zeroes there, though the server's buffers held other data before;
  - lent memory (lend=yes) reaches the client, and every loan is
    released."""
import os

import nbd
import nbdtest_async as ta
import nbdtest_raw as rawnbd

t = ta.Test()
st = t.path("stats")
SIZE = 4 << 20
FAIL_READ = 3 << 20          # + 1000 inside a block
FAIL_WRITE = (3 << 20) + (256 << 10)
FAIL_START = (3 << 20) + (512 << 10)
uri = t.start("a", ta.PLUGIN, "size=4M", "delay=4", "threads=3",
              "inline=yes", "stats=" + st,
              "fail-read-at=%d" % (FAIL_READ + 1000),
              "fail-write-at=%d" % FAIL_WRITE,
              "fail-start-at=%d" % FAIL_START, extra=["-t", "4"])
pid = t.proc.pid
h = t.connect(uri)

data = os.urandom(1 << 20)
res, most_w = ta.run_all(
    h, [("w", i * 4096, data[i * 4096:(i + 1) * 4096]) for i in range(256)],
    watch_pid=pid)
assert all(r is None for r in res), res
res, most_r = ta.run_all(h, [("r", i * 4096, 4096) for i in range(256)],
                         watch_pid=pid)
for i, r in enumerate(res):
    assert r == data[i * 4096:(i + 1) * 4096], "block %d differs" % i
print("256 writes and 256 reads in flight; server threads at most %d, %d" %
      (most_w, most_r))
# One connection thread reads and starts requests; the others are the
# listener, the watchdog and the plugin's three.  The synchronous way
# needs one thread per request in flight, up to -t.
assert max(most_w, most_r) <= 12, (most_w, most_r)

# Holes: unwritten blocks.
assert h.pread(8192, 2 << 20) == bytes(8192)
ext = []
h.block_status(64 << 10, (1 << 20) - (32 << 10),
               lambda m, o, e, err: ext.extend(e))
assert ext[0] == 32 << 10 and ext[1] == 0, ext
assert ext[3] == nbd.STATE_HOLE | nbd.STATE_ZERO, ext

# Trim, zero, flush.
res, _ = ta.run_all(h, [("z", 0, 8192), ("t", 65536, 4096), ("f",),
                        ("r", 16384, 4096)])
assert res[:3] == [None] * 3, res
assert res[3] == data[16384:20480]
assert h.pread(8192, 0) == bytes(8192)
assert h.pread(4096, 65536) == bytes(4096)

# Errors, among good requests in flight.
res, _ = ta.run_all(h, [("r", 0, 4096), ("r", FAIL_READ, 4096),
                        ("w", FAIL_WRITE, b"x" * 4096),
                        ("r", FAIL_START, 4096), ("r", 8192, 4096),
                        ("w", 12288, b"y" * 4096)])
assert res[0] == bytes(4096), res[0][:16]
assert res[1] == 5, res[1]                       # EIO
assert res[2] == 28, res[2]                      # ENOSPC
assert res[3] == 1, res[3]                       # EPERM
assert res[4] == data[8192:12288]
assert res[5] is None
assert h.pread(4096, 12288) == b"y" * 4096

# The partial read on the wire: data up to the failing offset, then
# the error at that offset.
c = rawnbd.connect(t.sock)
c.send(rawnbd.CMD_WRITE, FAIL_READ, 4096, data=b"z" * 4096)
assert c.reply().error == 0
c.send(rawnbd.CMD_READ, FAIL_READ, 4096)
r = c.reply()
kinds = [(ch.type, getattr(ch, "offset", None)) for ch in r.chunks]
assert r.error == 5, r                          # NBD_EIO
data_chunks = [ch for ch in r.chunks if ch.type == rawnbd.TYPE_OFFSET_DATA]
assert b"".join(ch.data for ch in data_chunks) == b"z" * 1000, kinds
err = [ch for ch in r.chunks if ch.type == rawnbd.TYPE_ERROR_OFFSET]
assert err and err[0].error_offset == FAIL_READ + 1000, kinds
# A hole chunk for a never-written block.
c.send(rawnbd.CMD_READ, 2 << 20, 8192)
r = c.reply()
assert r.error == 0 and r.data == bytes(8192)
assert [ch.type for ch in r.chunks] == [rawnbd.TYPE_OFFSET_HOLE], r.chunks
c.close()

h.shutdown()
t.handles.remove(h)
assert ta.stop(t) == 0
s = ta.stats(st)
print(s)
assert s["max_outstanding"] > 8, s
assert s["sync_calls"] == 0, s
assert s["close_outstanding"] == 0, s

# Bytes the plugin leaves alone are zeroes.  Blocks 0..63 hold data;
# reading them first leaves the server's read buffers full of it.
st2 = t.path("stats2")
uri = t.start("b", ta.PLUGIN, "size=1M", "delay=2", "holes=no",
              "stats=" + st2)
h = t.connect(uri)
res, _ = ta.run_all(
    h, [("w", i * 4096, data[i * 4096:(i + 1) * 4096]) for i in range(64)])
for rnd in range(3):
    res, _ = ta.run_all(h, [("r", i * 8192, 8192) for i in range(64)])
    for i, r in enumerate(res):
        want = data[i * 8192:(i + 1) * 8192] if i < 32 else bytes(8192)
        assert r == want, "round %d, read %d" % (rnd, i)
h.shutdown()
t.handles.remove(h)
assert ta.stop(t) == 0

# Lent memory.
uri = t.start("c", ta.PLUGIN, "size=1M", "delay=2", "lend=yes",
              "stats=" + st2)
h = t.connect(uri)
ta.run_all(h, [("w", i * 4096, data[i * 4096:(i + 1) * 4096])
               for i in range(64)])
res, _ = ta.run_all(h, [("r", i * 16384, 16384) for i in range(32)])
for i, r in enumerate(res):
    want = data[i * 16384:(i + 1) * 16384] if i < 16 else bytes(16384)
    assert r == want, "lent read %d" % i
h.shutdown()
t.handles.remove(h)
assert ta.stop(t) == 0
s = ta.stats(st2)
assert s["lends"] >= 64 and s["releases"] == s["lends"], s
print("async-data: OK")
