#!/usr/bin/python3
"""Asynchronous completion under filters (core/async.c): a filter that
leaves a kind of request alone (nofilter) lets it go asynchronously; a
filter that handles it itself (offset, which knows nothing of
asynchronous completion) calls the plugin, which has only async
callbacks, and the server waits for each completion.  Data is right
both ways.  A native zero the plugin cannot do (zero=eopnotsupp) is
done by writes, from a server thread.

The plugin completes after random delays from its own threads.  With
nofilter, 64 reads in flight reach it together (more than the 4
threads a connection may have here, -t 4); under offset they are
bounded by those threads."""
import os

import nbdtest_async as ta

t = ta.Test()
data = os.urandom(256 * 1024)


def run(name, *filters, zero="native"):
    st = t.path("stats-" + name)
    extra = [f for x in filters for f in ("--filter=" + x,)]
    args = [ta.PLUGIN, "size=1M", "delay=10", "threads=3", "zero=" + zero,
            "stats=" + st]
    if "offset" in filters:
        args.append("offset=4096")
    uri = t.start(name, *args, extra=["-t", "4"] + extra)
    h = t.connect(uri)
    res, _ = ta.run_all(h, [("w", i * 4096, data[i * 4096:(i + 1) * 4096])
                            for i in range(64)])
    assert all(r is None for r in res), res
    res, _ = ta.run_all(h, [("r", i * 4096, 4096) for i in range(64)])
    for i, r in enumerate(res):
        assert r == data[i * 4096:(i + 1) * 4096], (name, i)
    h.zero(8192, 4096)
    assert h.pread(16384, 0) == data[:4096] + bytes(8192) + data[12288:16384]
    h.shutdown()
    t.handles.remove(h)
    assert ta.stop(t) == 0
    return ta.stats(st)


s = run("nofilter", "nofilter")
assert s["max_outstanding"] > 8 and s["sync_calls"] == 0, s
print("nofilter: %d outstanding at once" % s["max_outstanding"])
s = run("offset", "offset")
assert 1 <= s["max_outstanding"] <= 4, s
assert s["async_calls"] >= 129 and s["sync_calls"] == 0, s
print("offset: %d outstanding at once" % s["max_outstanding"])
s = run("eopnotsupp", "nofilter", zero="eopnotsupp")
assert s["close_outstanding"] == 0, s
print("async-filters: OK")
