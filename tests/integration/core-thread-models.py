#!/usr/bin/python3
"""Thread models (core/connection.c, core/transmission.c), seen through
the order replies arrive in and the test plugin's count of callbacks
running at once (max_inflight).

One client sends four reads back to back; the first (offset 0) sleeps
300 ms in the plugin (delay-at=0:300), the others not at all.
  - serialize_retirement: the reads run in parallel (max_inflight > 1)
    but the replies leave in request order: cookies 1, 2, 3, 4; also
    with -t 2 (fewer threads than requests);
  - parallel: in parallel too, and the fast replies overtake the slow
    one: cookie 1 arrives last;
  - serialize_requests and serialize_all_requests: one at a time
    (max_inflight == 1), in order.
Two clients each sending a slow read: serialize_requests runs them at
once (max_inflight == 2), serialize_all_requests never.
serialize_connections: a second client gets no greeting until the
first has gone.
The plugin's get_ready sees the model the server chose."""
import socket
import threading
import time

import nbdtest_raw as rawnbd
import nbdtest_plug as tp

t = tp.Test()
MODELS = {"serialize_connections": 1000, "serialize_all_requests": 2000,
          "serialize_requests": 3000, "serialize_retirement": 3500,
          "parallel": 4000}


def start(model, *extra):
    st = t.path("stats-" + model)
    t.start(model, tp.PLUGIN, "size=1M", "thread-model=" + model,
            "stats=" + st, *extra)
    return st


def four_reads():
    c = rawnbd.connect(t.sock)
    start_time = time.monotonic()
    for i in range(4):
        c.send(rawnbd.CMD_READ, i * 4096, 4096)
    order = []
    for _ in range(4):
        r = c.reply()
        assert r.error == 0 and r.data == bytes(4096), r
        order.append(r.cookie)
    elapsed = time.monotonic() - start_time
    c.close()
    return order, elapsed


for model, want in (("serialize_retirement", "in-order"),
                    ("parallel", "slow-last"),
                    ("serialize_requests", "serial"),
                    ("serialize_all_requests", "serial")):
    st = start(model, "delay-at=0:300")
    order, elapsed = four_reads()
    assert tp.stop(t) == 0
    s = tp.stats(st)
    print("%s: order %s, %.0f ms, max_inflight %d" %
          (model, order, elapsed * 1000, s["max_inflight"]))
    assert s["thread_model"] == MODELS[model], s
    assert elapsed >= 0.29, "the slow read did not sleep"
    if want == "in-order":
        assert order == [1, 2, 3, 4], "%s: replies out of order: %s" % (
            model, order)
        assert s["max_inflight"] > 1, "%s: requests did not overlap" % model
    elif want == "slow-last":
        assert order[-1] == 1 and sorted(order) == [1, 2, 3, 4], \
            "%s: the slow reply was not overtaken: %s" % (model, order)
        assert s["max_inflight"] > 1, "%s: requests did not overlap" % model
    else:
        assert order == [1, 2, 3, 4], "%s: out of order: %s" % (model, order)
        assert s["max_inflight"] == 1, "%s: requests overlapped: %r" % (
            model, s)

# serialize_retirement with fewer threads than requests in flight: a
# finished reply waiting for its turn must not starve the slow one.
st = t.path("stats-t2")
t.start("retire-t2", tp.PLUGIN, "size=1M",
        "thread-model=serialize_retirement", "delay-at=0:300", "stats=" + st,
        extra=("-t", "2"))
order, elapsed = four_reads()
assert order == [1, 2, 3, 4], "serialize_retirement -t 2: %s" % order
assert elapsed < 5, elapsed
assert tp.stop(t) == 0

# Two clients, each with one slow read.
for model, inflight in (("serialize_requests", 2),
                        ("serialize_all_requests", 1)):
    st = start(model, "delay-read=300")
    cs = [rawnbd.connect(t.sock) for _ in range(2)]
    for c in cs:
        c.send(rawnbd.CMD_READ, 0, 512)
    for c in cs:
        assert c.reply().error == 0
        c.close()
    assert tp.stop(t) == 0
    s = tp.stats(st)
    assert s["max_inflight"] == inflight, "%s with two clients: %r" % (
        model, s)

# serialize_connections: no greeting for the second client meanwhile.
start("serialize_connections")
a = rawnbd.connect(t.sock)
b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
b.connect(t.sock)
b.settimeout(0.5)
try:
    got = b.recv(18)
    raise AssertionError("second client greeted while the first is on: %r"
                         % got)
except socket.timeout:
    pass
threading.Timer(0.2, a.close).start()
b.settimeout(5)
c = rawnbd.Client(sock=b)
c.go()
c.send(rawnbd.CMD_READ, 0, 512)
assert c.reply().error == 0
c.close()
assert tp.stop(t) == 0

print("core-thread-models: OK")
