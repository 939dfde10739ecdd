#!/usr/bin/python3
"""Python host: thread models.  With THREAD_MODEL_PARALLEL, four reads
that each sleep 300 ms in time.sleep overlap (well under 1.2 s in all);
with the default (serialize_all_requests) they do not.  With
THREAD_MODEL_SERIALIZE_RETIREMENT, a slow first read does not hold the
others back from running, but the replies still leave in request order;
with PARALLEL the slow one is answered last."""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

nbdtest.require_ours()
t = nbdtest.Test()

PLUGIN = r'''
import time
import nbdkit
API_VERSION = 3
started = []
def thread_model():
    return %s
def get_size(h):
    return 1 << 20
def pread(h, buf, offset, flags):
    started.append(offset)
    time.sleep(%s if %s else 0)
    buf[:] = bytes(len(buf))
def export_description(h):
    return ",".join(map(str, started))
'''


def plugin(name, model, delay, cond):
    """A plugin script; model None: no thread_model (the default)."""
    path = t.path(name + ".py")
    src = PLUGIN % (model, delay, cond)
    if model is None:
        src = src.replace("def thread_model():\n    return None\n", "")
    with open(path, "w") as f:
        f.write(src)
    return path


def run(h, offsets):
    """Issue reads at offsets together; return (seconds, completion order)."""
    order = []
    start = time.monotonic()
    for off in offsets:
        h.aio_pread(nbd.Buffer(512), off,
                    completion=lambda err, off=off: order.append(off) or 1)
    while len(order) < len(offsets):
        h.poll(-1)
    return time.monotonic() - start, order


# Parallel: 4 x 300 ms overlap.
uri = t.start("par", plugin("par", "nbdkit.THREAD_MODEL_PARALLEL", 0.3,
                            "True"))
h = t.connect(uri)
secs, _ = run(h, [0, 4096, 8192, 12288])
print("parallel: 4 sleeping reads in %.2f s" % secs)
assert secs < 0.9, "parallel reads did not overlap: %.2f s" % secs

# Default model: one at a time.
uri = t.start("ser", plugin("ser", None, 0.3, "True"))
h = t.connect(uri)
secs, _ = run(h, [0, 4096, 8192, 12288])
print("serialize_all_requests: 4 sleeping reads in %.2f s" % secs)
assert secs >= 1.15, "serialized reads overlapped: %.2f s" % secs

# Serialize-retirement: the slow first read is answered first anyway,
# though the others ran meanwhile.
uri = t.start("ret", plugin("ret", "nbdkit.THREAD_MODEL_SERIALIZE_RETIREMENT",
                            0.5, "offset == 0"))
h = t.connect(uri, full_info=True)
secs, order = run(h, [0, 4096, 8192, 12288])
print("serialize_retirement: order %s in %.2f s" % (order, secs))
assert order == [0, 4096, 8192, 12288], order
assert secs < 1.0, secs
h2 = t.connect(uri.replace(":///?", ":///x?"), full_info=True)
started = h2.get_export_description().split(",")
assert sorted(started[:4]) == ["0", "12288", "4096", "8192"], started

# Parallel with the same slow read: it is answered last.
uri = t.start("par2", plugin("par2", "nbdkit.THREAD_MODEL_PARALLEL", 0.5,
                             "offset == 0"))
h = t.connect(uri)
secs, order = run(h, [0, 4096, 8192, 12288])
print("parallel: order %s in %.2f s" % (order, secs))
assert order[-1] == 0, order
print("python-threads: OK")
