#!/usr/bin/python3
"""Thread models hold for every context of the plugin, not only the
ones clients' requests reach: a filter (tests/plugins/sidethread.c)
opens a context of its own below it (nbdkit_next_context_open), reads
from it on a thread of its own, and serves the client's reads from it
too.  The plugin (tests/plugins/overlap.c) fails any read that overlaps
another its thread model forbids with EBUSY and counts it.

  - serialize_connections and serialize_all_requests: no two calls at
    once, whichever context or thread they come from;
  - serialize_requests: no two calls at once on one plugin handle, also
    when two connections share the filter's one side context
    (side-shared=true).

The plugin must serve more reads than the clients sent, so the test
cannot pass by the side thread never running."""
import os
import sys
import threading
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd  # noqa: E402
import nbdtest  # noqa: E402
import nbdtest_plug as tp  # noqa: E402

DIR = os.path.dirname(tp.PLUGIN)
PLUGIN = os.path.join(DIR, "nbdkit-overlap-plugin.so")
FILTER = os.path.join(DIR, "nbdkit-sidethread-filter.so")
t = tp.Test()
if not os.path.exists(PLUGIN) or not os.path.exists(FILTER):
    nbdtest.skip("overlap plugin or sidethread filter not built")

WANT = bytes(i % 251 for i in range(65536))


def reads(h, n, errors):
    for i in range(n):
        off = (i * 4096) % 65536
        try:
            got = h.pread(4096, off)
            if got != WANT[off:off + 4096]:
                errors.append("wrong data at %d" % off)
        except nbd.Error as e:
            errors.append("read at %d: %s" % (off, e))


def run(model, clients, *extra):
    st = t.path("stats-%s-%d" % (model, clients))
    uri = t.start(model + str(clients), "--filter=" + FILTER, PLUGIN,
                  "thread-model=" + model, "delay=1000", "stats=" + st,
                  *extra)
    errors = []
    if model == "serialize_connections":
        clients = 1  # a second one would wait for the first to go
    hs = [t.connect(uri) for _ in range(clients)]
    ths = [threading.Thread(target=reads, args=(h, 60, errors)) for h in hs]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    for h in hs:
        h.shutdown()
        t.handles.remove(h)
    assert tp.stop(t) == 0
    s = tp.stats(st)
    print("%s, %d client(s) %s: %s, %d errors" %
          (model, clients, extra, s, len(errors)))
    assert s["violations"] == 0, "%s: the plugin saw overlapping calls: %s" % (
        model, errors[:3])
    assert errors == [], errors[:3]
    # The side thread read while the clients did.
    assert s["calls"] > 60 * clients, s
    return s


for model in ("serialize_connections", "serialize_all_requests",
              "serialize_requests"):
    s = run(model, 1)
    # The client's reads go to the side context, the thread's too: on
    # one handle, so serialized per handle as well.
    assert s["handles"] >= 2, s

# Two connections on one side context (and one thread): one plugin
# handle called from three threads.
s = run("serialize_requests", 2, "side-shared=true")
s = run("serialize_all_requests", 2, "side-shared=true")
