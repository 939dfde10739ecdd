#!/usr/bin/python3
"""The largest "virtual" request a plugin announces (block_size's
maximum_virtual) bounds trim, zero and cache, never reads and writes,
which have their own maximum.  Block status asked about more is
answered about less, not refused.

block-size=512:4096:65536:16384: a 64 KiB read or write works, a 64 KiB
trim, zero or cache gets NBD_EINVAL, 16 KiB of them work; block status
of 64 KiB works.  The test plugin checks every request it gets against
these sizes (limit_violations stays 0)."""
import nbdtest_raw as rawnbd
import nbdtest_plug as tp

K = 1024
t = tp.Test()
st = t.path("stats")
t.start("bsv", tp.PLUGIN, "size=1M", "block-size=512:4096:65536:16384",
        "cache=native", "stats=" + st)
c = rawnbd.connect(t.sock)
c.send(rawnbd.CMD_WRITE, 0, 64 * K, data=b"w" * (64 * K))
r = c.reply()
assert r.error == 0, ("64 KiB write refused", r)
c.send(rawnbd.CMD_READ, 0, 64 * K)
r = c.reply()
assert r.error == 0 and r.data == b"w" * (64 * K), ("64 KiB read", r)
for cmd in (rawnbd.CMD_TRIM, rawnbd.CMD_WRITE_ZEROES, rawnbd.CMD_CACHE):
    c.send(cmd, 0, 64 * K)
    assert c.reply().error == rawnbd.EINVAL, cmd
    c.send(cmd, 0, 16 * K)
    r = c.reply()
    assert r.error == 0, (cmd, r)
c.close()

c = rawnbd.Client(t.sock)
c.structured()
r = c.meta_context(rawnbd.OPT_SET_META_CONTEXT)
assert r[-1][0] == rawnbd.REP_ACK, r
c.go()
c.send(rawnbd.CMD_BLOCK_STATUS, 0, 64 * K)
r = c.reply()
assert r.error == 0, ("64 KiB block status", r)
c.close()
assert tp.stop(t) == 0
assert tp.stats(st)["limit_violations"] == 0, tp.stats(st)
print("core-block-size-virtual: OK")
