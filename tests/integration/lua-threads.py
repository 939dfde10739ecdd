"""Lua host, threads: one Lua state serves every thread under a lock,
each server thread on a Lua thread of its own.  A script that asks for
the parallel model gets it (get_ready is told), and requests waiting
in nbdkit.sleep do not hold up the others; a script that does not ask
is serialized (serialize_all_requests).  Many clients writing and
reading at once through plugins/lua/ramdisk.lua get their own data
back."""

import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
SRCDIR = os.environ.get("SRCDIR", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
if not os.path.exists(os.path.join(BUILDDIR, "plugins",
                                   "nbdkit-lua-plugin.so")):
    nbdtest.skip("the Lua host is not built")

t = nbdtest.Test()


def script(name, model):
    p = t.path(name)
    with open(p, "w") as f:
        f.write('''
local model
%s
function get_ready(m) model = m end
function get_size(h) return 1048576 end
function export_description(h) return model end
function pread(h, count, offset, flags)
  nbdkit.sleep(0.5)
  collectgarbage()     -- the collector walks the other threads' stacks
  return string.rep("s", count)
end
''' % (('function thread_model() return "%s" end' % model) if model else ""))
    return p


def four_reads(uri):
    h = t.connect(uri, full_info=True)
    bufs = [h.aio_pread(nbdtest.nbd.Buffer(512), i * 512) for i in range(4)]
    start = time.monotonic()
    while h.aio_in_flight() > 0:
        h.poll(-1)
    return h, time.monotonic() - start


uri = t.start("par", script("par.lua", "parallel"))
h, el = four_reads(uri)
assert h.get_export_description() == "parallel"
assert el < 1.4, el

uri = t.start("ser", script("ser.lua", None))
h, el = four_reads(uri)
assert h.get_export_description() == "serialize_all_requests"
assert el >= 1.9, el

# Many clients at once on the parallel ramdisk.
uri = t.start("rd", os.path.join(SRCDIR, "plugins", "lua", "ramdisk.lua"),
              "size=8M")
errors = []


def worker(n):
    try:
        h = t.connect(uri)
        rnd = random.Random(n)
        for i in range(40):
            off = (n * 1048576) + rnd.randrange(0, 1048576 - 70000)
            data = bytes([rnd.randrange(256)]) * rnd.randrange(1, 70000)
            h.pwrite(data, off)
            if h.pread(len(data), off) != data:
                errors.append("client %d op %d: data differs" % (n, i))
    except Exception as e:  # noqa: BLE001
        errors.append("client %d: %r" % (n, e))


ths = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
for th in ths:
    th.start()
for th in ths:
    th.join()
assert not errors, errors
print("PASS")
