#!/usr/bin/python3
"""Block sizes a plugin announces (block_size) are advertised and
enforced at the edge (core/handshake.c, core/transmission.c validate).

block-size=512:4096:65536:
  - nbdinfo --json and NBD_INFO_BLOCK_SIZE show 512 / 4096 / 65536;
  - a read or write misaligned by one byte (offset or length) gets
    NBD_EINVAL, a 128 KiB read or write gets NBD_EINVAL, and none of
    them reaches the plugin; the connection stays in step (a refused
    write's payload is skipped) and a 64 KiB read still works;
  - with block-size=512:4096:65536:262144 a 512 KiB trim or zero is
    refused with NBD_EINVAL (the virtual maximum), 256 KiB works.
The test plugin also checks every request it gets against these sizes
(limit_violations in its stats must stay 0)."""
import json
import subprocess

import nbdtest_raw as rawnbd
import nbdtest_plug as tp

K = 1024
t = tp.Test()
st, tr = t.path("stats"), t.path("trace")
uri = t.start("bs", tp.PLUGIN, "size=1M", "block-size=512:4096:65536",
              "stats=" + st, "trace=" + tr)

j = json.loads(subprocess.run(["timeout", "30", "nbdinfo", "--json", uri],
                              check=True, capture_output=True).stdout)
e = j["exports"][0]
assert (e["block_size_minimum"], e["block_size_preferred"],
        e["block_size_maximum"]) == (512, 4096, 65536), e

c = rawnbd.connect(t.sock)
assert c.block_size == (512, 4096, 65536), c.block_size
tp.truncate(tr)
bad = [
    (rawnbd.CMD_READ, 1, 512, b""),
    (rawnbd.CMD_READ, 0, 513, b""),
    (rawnbd.CMD_READ, 4095, 1, b""),
    (rawnbd.CMD_READ, 0, 128 * K, b""),
    (rawnbd.CMD_WRITE, 1, 512, b"a" * 512),
    (rawnbd.CMD_WRITE, 0, 511, b"b" * 511),
    (rawnbd.CMD_WRITE, 0, 128 * K, b"c" * (128 * K)),
]
for (cmd, off, n, payload) in bad:
    c.send(cmd, off, n, data=payload)
    r = c.reply()
    assert r.error == rawnbd.EINVAL, "cmd %d at %d for %d: %r" % (cmd, off,
                                                                   n, r)
assert [w for w in tp.trace(tr) if w[0] in ("pread", "pwrite")] == [], \
    "refused requests reached the plugin: %r" % tp.trace(tr)
c.send(rawnbd.CMD_WRITE, 512, 64 * K, data=b"d" * (64 * K))
r = c.reply()
assert r.error == 0, r
c.send(rawnbd.CMD_READ, 0, 64 * K)
r = c.reply()
assert r.error == 0 and r.data == bytes(512) + b"d" * (64 * K - 512), r
c.close()
assert tp.stop(t) == 0
assert tp.stats(st)["limit_violations"] == 0, tp.stats(st)

# The largest virtual request (trim, zero).
st = t.path("stats-v")
t.start("bsv", tp.PLUGIN, "size=1M", "block-size=512:4096:65536:262144",
        "stats=" + st)
c = rawnbd.connect(t.sock)
for cmd in (rawnbd.CMD_TRIM, rawnbd.CMD_WRITE_ZEROES):
    c.send(cmd, 0, 512 * K)
    assert c.reply().error == rawnbd.EINVAL, cmd
    c.send(cmd, 0, 256 * K)
    r = c.reply()
    assert r.error == 0, (cmd, r)
c.close()
assert tp.stop(t) == 0
assert tp.stats(st)["limit_violations"] == 0, tp.stats(st)

print("core-block-size: OK")
