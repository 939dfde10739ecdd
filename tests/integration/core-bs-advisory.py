#!/usr/bin/python3
"""Advisory block sizes (struct nbdkit_block_size.advisory): the
blocksize-policy filter with blocksize-error-policy=allow announces
its sizes, and the server lets requests that break them through to
the plugin; with =error it is the filter that refuses them."""
import nbdtest_raw as rawnbd
import nbdtest_plug as tp

t = tp.Test()
uri = t.start("adv", "--filter=blocksize-policy", "memory", "size=1M",
              "blocksize-minimum=4096", "blocksize-error-policy=allow")
c = rawnbd.connect(t.sock)
assert c.block_size[0] == 4096, c.block_size
# Misaligned write then read: allowed, and the bytes are right.
c.send(rawnbd.CMD_WRITE, 1, 3, data=b"abc")
r = c.reply()
assert r.error == 0, r
c.send(rawnbd.CMD_READ, 0, 5)
r = c.reply()
assert r.error == 0 and r.data == b"\0abc\0", r

t = tp.Test()
uri = t.start("adv2", "--filter=blocksize-policy", "memory", "size=1M",
              "blocksize-minimum=4096", "blocksize-error-policy=error")
c = rawnbd.connect(t.sock)
c.send(rawnbd.CMD_READ, 1, 3)
r = c.reply()
assert r.error == 22, r        # EINVAL
c.send(rawnbd.CMD_READ, 0, 4096)
r = c.reply()
assert r.error == 0, r
print("core-bs-advisory: OK")
