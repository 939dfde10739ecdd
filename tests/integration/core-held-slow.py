"""A reply is not held back behind a slow request.

With -t 1 the server holds a small reply back while the next request is
already in hand, to send it with the next reply.  Where requests are
slow that would make the reply wait for the slow one: here reads take
3 s (the delay filter), writes none.  After one slow read, a WRITE and
a READ sent together must see the WRITE's reply long before the READ
is done (within 1.5 s), then the READ's, with its data.
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
SRCDIR = os.environ.get("SRCDIR", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
if not os.path.exists(os.path.join(BUILDDIR, "filters",
                                   "nbdkit-lua-filter.so")):
    nbdtest.skip("the Lua host is not built")
DELAY = os.path.join(SRCDIR, "filters", "lua", "delay.lua")

t = nbdtest.Test()
t.start("d", "-t", "1", "--filter=" + DELAY, "memory", "1M", "delay-read=3")
c = raw.connect(t.sock, structured=False)
data = os.urandom(512)

# One slow read first.
c.send(raw.CMD_READ, 0, 512)
r = c.reply()
assert r.error == 0 and r.data == bytes(512)

# A write and a read in one sendall.
out = b""
for cookie, type, payload in ((100, raw.CMD_WRITE, data),
                              (101, raw.CMD_READ, b"")):
    out += struct.pack(">IHHQQI", raw.REQUEST_MAGIC, 0, type, cookie, 4096,
                       512) + payload
    c.pending[cookie] = (type, 4096, 512)
c.s.sendall(out)
c.s.settimeout(1.5)
try:
    r = c.reply()
except OSError as e:
    raise AssertionError("the write's reply waited for the slow read: %r" % e)
assert r.cookie == 100 and r.error == 0, (r.cookie, r.error)
c.s.settimeout(10)
r = c.reply()
assert r.cookie == 101 and r.error == 0 and r.data == data
c.close()
print("PASS")
