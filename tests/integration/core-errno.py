#!/usr/bin/python3
"""The errno a plugin fails with reaches the client as the matching NBD
error (core/request.c nbd_errno): an errno the protocol lacks becomes
EINVAL, as in nbdkit, except the failures of a backend (a timeout, a
connection reset, a missing remote object), which are EIO, and
EACCES, which is EPERM.

The test plugin with errno-write=NAME fails every pwrite with NAME.
Checked on the wire (raw client, simple and structured replies) and,
for the common ones, through libnbd's errno.  Also: a plugin whose
can_write is false makes the export read-only, and writes, trims and
zeroes are refused with EPERM without reaching it."""
import errno

import nbdtest_raw as rawnbd
import nbdtest_plug as tp
from nbdtest import expect_error

# errno name -> NBD error on the wire
WIRE = {
    "ENOSPC": rawnbd.ENOSPC, "EDQUOT": rawnbd.ENOSPC, "EFBIG": rawnbd.ENOSPC,
    "EPERM": rawnbd.EPERM, "EROFS": rawnbd.EPERM, "EIO": rawnbd.EIO,
    "ENOMEM": rawnbd.ENOMEM, "EOVERFLOW": rawnbd.EOVERFLOW,
    "ENOTSUP": rawnbd.ENOTSUP, "EOPNOTSUPP": rawnbd.ENOTSUP,
    "ESHUTDOWN": rawnbd.ESHUTDOWN, "EINVAL": rawnbd.EINVAL,
    "ENOENT": rawnbd.EIO, "EBADF": rawnbd.EINVAL, "EACCES": rawnbd.EPERM,
    "ETIMEDOUT": rawnbd.EIO, "ECONNRESET": rawnbd.EIO, "EPIPE": rawnbd.EIO,
    "EAGAIN": rawnbd.EINVAL,
}
# errno name -> errno libnbd reports
LIBNBD = {"ENOSPC": errno.ENOSPC, "EPERM": errno.EPERM, "EIO": errno.EIO,
          "ENOENT": errno.EIO, "EBADF": errno.EINVAL}

t = tp.Test()
for name, wire in WIRE.items():
    tr = t.path("trace-" + name)
    uri = t.start("e-" + name, tp.PLUGIN, "size=1M", "errno-write=" + name,
                  "trace=" + tr)
    for structured in (False, True):
        c = rawnbd.connect(t.sock, structured=structured)
        c.send(rawnbd.CMD_WRITE, 4096, 512, data=b"x" * 512)
        r = c.reply()
        assert r.error == wire, "%s: NBD error %d, expected %d (%r)" % (
            name, r.error, wire, r)
        # The connection still works.
        c.send(rawnbd.CMD_READ, 4096, 512)
        r = c.reply()
        assert r.error == 0 and r.data == bytes(512), (name, r)
        c.close()
    if name in LIBNBD:
        h = t.connect(uri)
        expect_error(lambda: h.pwrite(b"y" * 4096, 0), LIBNBD[name],
                     "libnbd pwrite with errno-write=%s" % name)
        h.shutdown()
    assert sum(w[0] == "pwrite" for w in tp.trace(tr)) >= 2, name
    assert tp.stop(t) == 0

# A plugin that cannot write: the export is read-only, and the server
# answers write requests itself.
tr = t.path("trace-ro")
uri = t.start("ro", tp.PLUGIN, "size=1M", "readonly-plugin=yes",
              "trace=" + tr)
h = t.connect(uri)
assert h.is_read_only(), "can_write=0 but the export is writable"
h.shutdown()
c = rawnbd.connect(t.sock)
assert c.eflags & 2, "NBD_FLAG_READ_ONLY not set: 0x%x" % c.eflags
c.send(rawnbd.CMD_WRITE, 0, 512, data=b"z" * 512)
c.send(rawnbd.CMD_TRIM, 0, 512)
c.send(rawnbd.CMD_WRITE_ZEROES, 0, 512)
c.send(rawnbd.CMD_READ, 0, 512)
rs = {r.cookie: r for r in (c.reply(), c.reply(), c.reply(), c.reply())}
for cookie, what in ((1, "write"), (2, "trim"), (3, "write-zeroes")):
    assert rs[cookie].error == rawnbd.EPERM, (what, rs[cookie])
assert rs[4].error == 0 and rs[4].data == bytes(512), rs[4]
c.close()
assert tp.stop(t) == 0
calls = {w[0] for w in tp.trace(tr)}
assert not calls & {"pwrite", "trim", "zero"}, calls

print("core-errno: OK")
