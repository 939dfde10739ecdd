#!/usr/bin/python3
"""Asynchronous completion and the end of connections (core/async.c,
core/connection.c): requests outstanding in the plugin when the client
goes, or when the server is asked to quit, are waited for before the
plugin's close; nothing is freed under them, and other clients go on
being served.  A completion called twice is refused the second time.

  - a client sends 64 slow requests (up to 300 ms each) and drops the
    connection at once: a new client is served meanwhile, and the
    plugin's close finds no request of that handle outstanding;
  - a client with 64 slow requests outstanding, then SIGTERM: the
    server exits cleanly (status 0), still with nothing outstanding at
    close;
  - double=yes: every request's second completion was refused, none
    accepted, and every reply was right.
Under parallel and serialize_retirement."""
import os
import socket
import time

import nbdtest_async as ta
import nbdtest_raw as rawnbd

t = ta.Test()


def run(model):
    st = t.path("stats-" + model)
    t.start(model, ta.PLUGIN, "size=1M", "delay=300", "threads=2",
            "double=yes", "thread-model=" + model, "stats=" + st)

    c = rawnbd.connect(t.sock)
    for i in range(64):
        if i % 8 == 7:
            # Refused by the server itself, the synchronous way.
            c.send(rawnbd.CMD_READ, 1 << 20, 4096)
        elif i % 2:
            c.send(rawnbd.CMD_WRITE, i * 4096, 4096, data=b"w" * 4096)
        else:
            c.send(rawnbd.CMD_READ, i * 4096, 4096)
    c.s.shutdown(socket.SHUT_RDWR)
    c.close()

    # Another client is served while those complete.
    h = t.connect("nbd+unix:///?socket=" + t.sock)
    h.pwrite(b"n" * 4096, 512 * 1024)
    assert h.pread(4096, 512 * 1024) == b"n" * 4096
    h.shutdown()
    t.handles.remove(h)

    # Wait for the first connection's close (the stats are rewritten
    # at each close).
    deadline = time.time() + 10
    while True:
        s = ta.stats(st) if os.path.exists(st) else {}
        if s.get("closes", 0) >= 2:
            break
        assert time.time() < deadline, (model, s)
        time.sleep(0.1)
    assert s["close_outstanding"] == 0, s
    # Some of the 64 were started before the server saw the client gone.
    assert s["async_calls"] > 2, s

    # Outstanding requests at SIGTERM.
    c = rawnbd.connect(t.sock)
    for i in range(64):
        c.send(rawnbd.CMD_READ, i * 4096, 4096)
    time.sleep(0.05)
    assert ta.stop(t) == 0
    c.close()
    s = ta.stats(st)
    print(model, s)
    assert s["close_outstanding"] == 0, s
    assert s["double_accepted"] == 0, s
    assert s["double_refused"] == s["async_calls"], s


run("parallel")
# Replies wait for their turn there: a dropped client must not leave
# completions waiting for a turn that never comes.
run("serialize_retirement")
print("async-disconnect: OK")
