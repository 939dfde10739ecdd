#!/usr/bin/python3
"""Clean shutdown with a request in flight (core/server.c,
core/connection.c): SIGTERM while the plugin is inside a 500 ms pwrite
(delay-write=500).

  - the client still gets the write's successful reply;
  - the server exits with status 0, well within 5 s;
  - the plugin saw the write, then close, then unload, in that order
    (trace), and its stats were written at unload.
Done with the raw client and with libnbd (aio), and for parallel and
serialize_retirement; and for a read in flight that lends its data."""
import os
import time

import nbdtest_raw as rawnbd
import nbdtest_plug as tp

t = tp.Test()

for model in ("parallel", "serialize_retirement"):
    for client in ("raw", "libnbd"):
        tr, st = t.path("trace"), t.path("stats")
        tp.truncate(tr)
        uri = t.start("sd", tp.PLUGIN, "size=1M", "delay-write=500",
                      "thread-model=" + model, "trace=" + tr, "stats=" + st)
        data = os.urandom(4096)
        if client == "raw":
            c = rawnbd.connect(t.sock)
            c.send(rawnbd.CMD_WRITE, 8192, 4096, data=data)
        else:
            h = t.connect(uri)
            cookie = h.aio_pwrite(data, 8192)
        time.sleep(0.15)
        start = time.monotonic()
        t.proc.terminate()
        if client == "raw":
            r = c.reply()
            assert r.error == 0, "%s/%s: write in flight failed: %r" % (
                model, client, r)
            c.close()
        else:
            while not h.aio_command_completed(cookie):   # raises on error
                h.poll(1000)
        rc = t.proc.wait(timeout=10)
        elapsed = time.monotonic() - start
        assert rc == 0, "%s/%s: exit status %d after SIGTERM" % (model,
                                                                 client, rc)
        assert elapsed < 5, elapsed
        lines = [w[0] for w in tp.trace(tr)]
        assert "pwrite" in lines and "unload" in lines, lines
        i = lines.index("pwrite")
        assert lines[i:] == ["pwrite", "close", "unload"], \
            "%s/%s: trace after the write: %r" % (model, client, lines[i:])
        assert tp.stats(st)["unloaded"] == 1
        print("%s/%s: exited %.0f ms after SIGTERM" % (model, client,
                                                       elapsed * 1000))

# A read lending its data (lend=yes) in flight: the reply carries the
# right bytes, and the loan is returned before unload (the plugin aborts
# at unload otherwise, and the exit status would say so).
tr, st = t.path("trace-r"), t.path("stats-r")
t.start("sdr", tp.PLUGIN, "size=1M", "delay-read=500", "lend=yes",
        "trace=" + tr, "stats=" + st)
data = os.urandom(65536)
c = rawnbd.connect(t.sock)
c.send(rawnbd.CMD_WRITE, 0, len(data), data=data)
assert c.reply().error == 0
c.send(rawnbd.CMD_READ, 0, len(data))
time.sleep(0.15)
t.proc.terminate()
r = c.reply()
assert r.error == 0 and r.data == data, "read in flight: %r" % r
c.close()
assert t.proc.wait(timeout=10) == 0, "exit status %d" % t.proc.returncode
s = tp.stats(st)
assert s["unloaded"] == 1 and s["lends"] == s["releases"] > 0, s
lines = [w[0] for w in tp.trace(tr)]
assert lines[-3:] == ["pread", "close", "unload"], lines

print("core-shutdown: OK")
