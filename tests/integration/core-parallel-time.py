#!/usr/bin/python3
"""parallel really is parallel: four reads that each sleep 300 ms in the
plugin (delay-read=300), issued at once by libnbd (aio), all complete in
well under 4 x 300 ms (asserted: < 900 ms), and the plugin saw them
overlap.  A behaviour check, not a benchmark: the margin is generous
and one retry is allowed for a noisy machine."""
import time

import nbdtest_plug as tp

t = tp.Test()


def attempt(n):
    st = t.path("stats-%d" % n)
    uri = t.start("par-%d" % n, tp.PLUGIN, "size=1M", "delay-read=300",
                  "thread-model=parallel", "stats=" + st)
    h = t.connect(uri)
    start = time.monotonic()
    from nbdtest import nbd
    bufs = [nbd.Buffer(4096) for _ in range(4)]
    pending = {h.aio_pread(b, i * 65536) for i, b in enumerate(bufs)}
    while pending:
        # aio_command_completed raises if the read failed.
        pending = {c for c in pending if not h.aio_command_completed(c)}
        if pending:
            h.poll(1000)
    elapsed = time.monotonic() - start
    for b in bufs:
        assert bytes(b.to_bytearray()) == bytes(4096)
    h.shutdown()
    assert tp.stop(t) == 0
    s = tp.stats(st)
    print("attempt %d: 4 reads of 300 ms took %.0f ms, max_inflight %d" %
          (n, elapsed * 1000, s["max_inflight"]))
    assert elapsed >= 0.29, "reads did not sleep"
    return elapsed < 0.9 and s["max_inflight"] >= 2


assert attempt(1) or attempt(2), "four 300 ms reads did not run in parallel"
print("core-parallel-time: OK")
