"""Helpers for the tests of asynchronous completion (the test plugin
tests/plugins/asyncplug.c, which completes requests from its own
threads, out of order).

    import nbdtest_async as ta
    t = ta.Test()
    uri = t.start("a", ta.PLUGIN, "size=4M", "delay=5", "stats=" + st)
    ta.run_all(h, [("w", off, data), ("r", off, 4096), ...])
"""

import os
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd  # noqa: E402
import nbdtest  # noqa: E402
import nbdtest_plug as tp  # noqa: E402

PLUGIN = tp.PLUGIN.replace("testplug", "asyncplug")
stats = tp.stats
stop = tp.stop


def Test():
    t = tp.Test()
    if not os.path.exists(PLUGIN):
        nbdtest.skip("async test plugin not built: %s" % PLUGIN)
    return t


def make_pki(t):
    """Certificates for a TLS server in T's directory (tls-functions.sh):
    the paths (pki.env's keys) and a client SSL context trusting them."""
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.check_call(["bash", os.path.join(here, "tls-functions.sh"),
                           "make-pki", t.tmpdir], stdout=subprocess.DEVNULL)
    pki = dict(line.strip().split("=", 1) for line in open(t.path("pki.env")))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(pki["pki"], "ca-cert.pem"))
    return pki, ctx


def threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def run_all(h, ops, watch_pid=None):
    """Issue every op at once (("w", offset, bytes), ("r", offset,
    length), ("z"|"t", offset, length), ("f",)), then wait for all.
    Returns (results, most server threads seen): results[i] is the data
    read, None, or the errno of a failed op."""
    res = [None] * len(ops)
    bufs = {}

    def cb(i):
        def done(err):
            err = getattr(err, "value", err)
            if err:
                res[i] = err
            elif i in bufs:
                res[i] = bytes(bufs[i].to_bytearray())
            return 1
        return done

    for i, op in enumerate(ops):
        kind = op[0]
        if kind == "w":
            h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(op[2])), op[1],
                         completion=cb(i))
        elif kind == "r":
            bufs[i] = nbd.Buffer(op[2])
            h.aio_pread(bufs[i], op[1], completion=cb(i))
        elif kind == "z":
            h.aio_zero(op[2], op[1], completion=cb(i))
        elif kind == "t":
            h.aio_trim(op[2], op[1], completion=cb(i))
        elif kind == "f":
            h.aio_flush(completion=cb(i))
    most = 0
    while h.aio_in_flight() > 0:
        h.poll(-1)
        if watch_pid:
            most = max(most, threads(watch_pid))
    return res, most
