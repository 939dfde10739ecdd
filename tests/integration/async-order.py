#!/usr/bin/python3
"""Asynchronous completion and the thread models (core/async.c): the
test plugin completes each request after a random delay of up to
20 ms, from its own threads, so completions come out of order.

  - serialize_retirement: 48 requests sent back to back (reads, writes,
    flushes, block status, and refused ones the server answers itself)
    are answered in request order, with the right data, although the
    plugin had many outstanding at once; also with -t 1;
  - parallel: the replies of 48 reads overtake each other;
  - serialize_requests, serialize_all_requests: the plugin sees one
    request at a time (the server waits for each completion), replies
    in order;
  - a plugin with both kinds of callbacks (sync=yes) gets the async ones
    under parallel and the synchronous ones under serialize_requests."""
import os

import nbdtest_async as ta
import nbdtest_raw as rawnbd

t = ta.Test()
BLK = 4096
N = 48


def run(model, *extra, sync=False):
    st = t.path("stats-" + model + "-".join(extra))
    args = [ta.PLUGIN, "size=1M", "delay=20", "threads=4",
            "thread-model=" + model, "stats=" + st]
    if sync:
        args.append("sync=yes")
    t.start(model, *args, extra=extra)
    c = rawnbd.Client(t.sock)
    c.structured()
    c.meta_context(rawnbd.OPT_SET_META_CONTEXT)
    c.go()
    # Fill blocks 0..N-1 with their own pattern first, one at a time.
    pattern = {i: os.urandom(BLK) for i in range(N)}
    for i in range(N):
        c.send(rawnbd.CMD_WRITE, i * BLK, BLK, data=pattern[i])
        assert c.reply().error == 0
    sent = []
    for i in range(N):
        k = i % 6
        if k == 0:
            sent.append((c.send(rawnbd.CMD_WRITE, i * BLK, BLK,
                                data=pattern[i][::-1]), "w", i))
            pattern[i] = pattern[i][::-1]
        elif k == 1:
            sent.append((c.send(rawnbd.CMD_FLUSH, 0, 0), "f", i))
        elif k == 2:
            sent.append((c.send(rawnbd.CMD_BLOCK_STATUS, i * BLK, BLK),
                         "b", i))
        elif k == 3:
            # Beyond the end: refused by the server, never reaches the plugin.
            sent.append((c.send(rawnbd.CMD_READ, 1 << 20, BLK), "x", i))
        else:
            sent.append((c.send(rawnbd.CMD_READ, i * BLK, BLK), "r", i))
    got = []
    for _ in sent:
        r = c.reply()
        got.append(r.cookie)
        kind, i = [(k, j) for (ck, k, j) in sent if ck == r.cookie][0]
        if kind == "x":
            assert r.error != 0, r
        else:
            assert r.error == 0, (kind, r)
        if kind == "r":
            assert r.data == pattern[i], "read %d: wrong data" % i
    c.close()
    assert ta.stop(t) == 0
    return [ck for ck, _, _ in sent], got, ta.stats(st)


for extra in ((), ("-t", "1")):
    want, got, s = run("serialize_retirement", *extra)
    assert got == want, ("replies out of order", extra, got)
    assert s["max_outstanding"] > 4, s
    assert s["sync_calls"] == 0 and s["close_outstanding"] == 0, s
    print("serialize_retirement %s: in order, %d outstanding at most" %
          (" ".join(extra), s["max_outstanding"]))

# parallel: reads only, so that nothing but the delays orders them.
t.start("par", ta.PLUGIN, "size=1M", "delay=20", "threads=4")
c = rawnbd.connect(t.sock)
cookies = [c.send(rawnbd.CMD_READ, i * BLK, BLK) for i in range(N)]
got = [c.reply().cookie for _ in cookies]
assert sorted(got) == cookies and got != cookies, got
c.close()
assert ta.stop(t) == 0
print("parallel: replies overtook each other")

for model in ("serialize_requests", "serialize_all_requests"):
    want, got, s = run(model)
    assert got == want, (model, got)
    assert s["max_outstanding"] == 1 and s["async_calls"] > N, s
    print("%s: one at a time, %d async calls waited for" %
          (model, s["async_calls"]))

_, _, s = run("parallel", sync=True)
assert s["async_calls"] > N and s["sync_calls"] == 0, s
_, _, s = run("serialize_requests", sync=True)
assert s["async_calls"] == 0 and s["sync_calls"] > N, s
print("async-order: OK")
