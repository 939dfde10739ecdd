#!/usr/bin/python3
"""A client that stops reading its replies holds up no other client
(core/async.c).  The async test plugin completes every connection's
requests from ONE thread of its own (threads=1), as the rbd plugin's
completer or a library's callback thread would; that thread must never
wait on one client's socket.

  - client A sends 32 reads of 1 MiB (and zero-length reads between
    them, answered by the server's own threads) and does not read: its
    socket fills;
  - meanwhile client B, on another connection, writes and reads back,
    and must have every reply within 2 s, with the right bytes;
  - then A reads: every reply arrives whole, in one piece each, with
    the right data (a reply cut short when the socket filled was
    finished later from where it stopped);
  - a second stalled client closes without reading: its queued replies
    are dropped, the server goes on serving, and nothing is
    outstanding at the plugin's close;
  - SIGTERM while a third client is stalled ends the server cleanly.
Under parallel and serialize_retirement, with simple, structured and
extended replies, and the stalled client over TLS: there the completing
thread sends through GnuTLS with a push function that must not wait
(core/tls.c); were it to wait, the plugin's one thread would hang on
A's socket and B would not be served."""
import os
import socket
import struct
import subprocess
import time

import nbdtest_async as ta
import nbdtest_raw as rawnbd

t = ta.Test()

KiB = 1024
MiB = 1024 * KiB
NREADS = 32
SIZE = NREADS * MiB + 8 * MiB  # B works above A's reads
DEADLINE = 2.0


def pattern(off, n):
    """Each 4 KiB block holds its own offset, repeated."""
    assert off % 4096 == 0 and n % 4096 == 0
    return b"".join(struct.pack(">Q", o) * 512
                    for o in range(off, off + n, 4096))


OPT_STARTTLS = 5
tls_ctx = None


def client(mode, timeout=10):
    c = rawnbd.Client(t.sock, timeout=timeout)
    if mode == "tls":
        r = c.option(OPT_STARTTLS)
        assert r == [(rawnbd.REP_ACK, b"")], "STARTTLS: %r" % (r,)
        c.s = tls_ctx.wrap_socket(c.s, server_hostname="localhost")
        c.structured()
    elif mode == "extended":
        c.extended()
    elif mode == "structured":
        c.structured()
    c.go()
    return c


def fill():
    c = client("structured")
    for off in range(0, SIZE, MiB):
        c.send(rawnbd.CMD_WRITE, off, MiB, data=pattern(off, MiB))
    for _ in range(0, SIZE, MiB):
        r = c.reply()
        assert r.error == 0, r
    c.s.sendall(struct.pack(">IHHQQI", rawnbd.REQUEST_MAGIC, 0,
                            rawnbd.CMD_DISC, 0, 0, 0))
    c.close()


def stall(mode):
    """A client that sends its reads and leaves the replies unread."""
    a = client(mode)
    sent = []
    for i in range(NREADS):
        sent.append((a.send(rawnbd.CMD_READ, i * MiB, MiB), i * MiB, MiB))
        if i % 4 == 3:
            # Not asynchronous: served and replied by a server thread,
            # while a completion's reply may be cut short.
            sent.append((a.send(rawnbd.CMD_READ, i * MiB, 0), i * MiB, 0))
    return a, sent


def served_promptly(what):
    """Another client writes and reads back on its own connection; all
    of it within DEADLINE seconds."""
    base = NREADS * MiB
    t0 = time.monotonic()
    try:
        b = client("structured", timeout=DEADLINE + 3)
        data = [bytes([0x40 + i]) * (64 * KiB) for i in range(8)]
        for i, d in enumerate(data):
            b.send(rawnbd.CMD_WRITE, base + i * 64 * KiB, len(d), data=d)
        for _ in data:
            r = b.reply()
            assert r.error == 0, r
        for i in range(8):
            b.send(rawnbd.CMD_READ, base + i * 64 * KiB, 64 * KiB)
        got = {}
        for _ in range(8):
            r = b.reply()
            assert r.error == 0, r
            got[r.cookie] = r.data
        for i, cookie in enumerate(sorted(got)):
            assert got[cookie] == data[i], (what, i)
        b.send(rawnbd.CMD_READ, 4 * MiB, 64 * KiB)
        r = b.reply()
        assert r.error == 0 and r.data == pattern(4 * MiB, 64 * KiB), what
        b.close()
    except socket.timeout:
        raise AssertionError("%s: another client's replies did not come "
                             "while one client was not reading" % what)
    dt = time.monotonic() - t0
    print("%s: the other client was served in %.3f s" % (what, dt))
    assert dt < DEADLINE, "%s: the other client waited %.3f s" % (what, dt)


def run(model, mode, stop_stalled, extra=()):
    what = "%s, %s" % (model, mode)
    st = t.path("stats-" + model + mode)
    t.start(model + mode, *extra, ta.PLUGIN, "size=%d" % SIZE, "threads=1",
            "thread-model=" + model, "stats=" + st)
    fill()

    # A stalls; B is served meanwhile.
    a, sent = stall(mode)
    time.sleep(0.5)
    served_promptly(what)

    # A reads at last: every reply whole and right.
    for _ in sent:
        r = a.reply()
        assert r.error == 0, (what, r)
        cookie = r.cookie
        _, off, n = [x for x in sent if x[0] == cookie][0]
        assert r.data == pattern(off, n), (what, "read at", off, n)
    # And it is still served.
    a.send(rawnbd.CMD_READ, 3 * MiB, 8 * KiB)
    r = a.reply()
    assert r.error == 0 and r.data == pattern(3 * MiB, 8 * KiB), what
    a.close()

    # A second one stalls, then goes without reading.
    a, _ = stall(mode)
    time.sleep(0.5)
    served_promptly(what + ", second")
    a.s.shutdown(socket.SHUT_RDWR)
    a.close()
    served_promptly(what + ", after the stalled client left")

    # Every connection closed with nothing outstanding at its close;
    # the server stops cleanly.
    deadline = time.time() + 10
    while True:
        s = ta.stats(st) if os.path.exists(st) else {}
        if s.get("closes", 0) >= 6:
            break
        assert time.time() < deadline, (what, s)
        time.sleep(0.1)
    assert s["close_outstanding"] == 0, (what, s)

    if stop_stalled:
        # Asked to stop while a client is stalled, the server still
        # exits cleanly (its socket is shut down after a grace period).
        a, _ = stall(mode)
        time.sleep(0.5)
        assert ta.stop(t, timeout=20) == 0, what
        a.close()
    else:
        assert ta.stop(t) == 0, what
    s = ta.stats(st)
    assert s["close_outstanding"] == 0, (what, s)


run("parallel", "structured", True)
run("serialize_retirement", "simple", True)
run("parallel", "extended", False)

# The stalled client over TLS (the others in plaintext, --tls=on).
if subprocess.call(["sh", "-c", "command -v certtool"],
                   stdout=subprocess.DEVNULL) == 0:
    pki, tls_ctx = ta.make_pki(t)
    run("parallel", "tls", False,
        ("--tls=on", "--tls-certificates=" + pki["pki"]))
else:
    print("no certtool: the TLS case is left out")
print("async-stalled-client: OK")
