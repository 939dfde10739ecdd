"""Small replies to requests that arrive together leave together.

A client writes 16 READs of 4 KiB (and then 16 WRITEs of 512 bytes)
in one sendall, as a queue-depth-16 client does.  With -t 1 the server
serves them one by one on one thread; it must answer each correctly
(data, cookies, no chunk of one reply inside another), and with the
next request already in hand it holds small replies back so that
several leave in one sendmsg: strace must show fewer sendmsg calls
than replies, and one carrying at least two read replies.  With
default threads, simple, structured and extended replies, the same
requests must all be answered correctly.
"""

import os
import re
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

nbdtest.require_ours()
if shutil.which("strace") is None:
    nbdtest.skip("strace is needed")

N = 16
LEN = 4096
t = nbdtest.Test()
pattern = os.urandom(N * LEN)


def batch(c, requests):
    """Send REQUESTS [(type, offset, length, data)] in one sendall;
    return their replies by cookie."""
    out = b""
    cookies = []
    for type, offset, length, data in requests:
        cookie = c.next_cookie
        c.next_cookie += 1
        if c.extended_headers:
            flags = raw.CMD_FLAG_PAYLOAD_LEN if data else 0
            out += struct.pack(">IHHQQQ", raw.EXTENDED_REQUEST_MAGIC, flags,
                               type, cookie, offset, length) + data
        else:
            out += struct.pack(">IHHQQI", raw.REQUEST_MAGIC, 0, type, cookie,
                               offset, length) + data
        c.pending[cookie] = (type, offset, length)
        cookies.append(cookie)
    c.s.sendall(out)
    replies = {}
    for _ in requests:
        r = c.reply()
        assert r.error == 0, "request %d failed: %d" % (r.cookie, r.error)
        replies[r.cookie] = r
    assert sorted(replies) == sorted(cookies)
    return [replies[k] for k in cookies]


def exercise(c):
    # The pattern, written one request at a time.
    for i in range(N):
        c.send(raw.CMD_WRITE, i * LEN, LEN,
               data=pattern[i * LEN:(i + 1) * LEN])
        assert c.reply().error == 0
    reads = batch(c, [(raw.CMD_READ, i * LEN, LEN, b"") for i in range(N)])
    for i, r in enumerate(reads):
        assert r.data == pattern[i * LEN:(i + 1) * LEN], "read %d" % i
    small = [bytes([i]) * 512 for i in range(N)]
    batch(c, [(raw.CMD_WRITE, 65536 + i * 512, 512, small[i])
              for i in range(N)])
    reads = batch(c, [(raw.CMD_READ, 65536 + i * 512, 512, b"")
                      for i in range(N)])
    for i, r in enumerate(reads):
        assert r.data == small[i], "small read %d" % i


# -t 1 under strace: count the sendmsg calls of the transmission phase.
sock = t.path("s.sock")
trace = t.path("trace")
p = t.spawn(["strace", "-f", "-qq", "-e", "trace=sendmsg,writev", "-o", trace,
             nbdtest.NBDKIT, "-U", sock, "-P", t.path("pid"), "-f", "-t", "1",
             "memory", "1M"])
deadline = time.time() + 20
while not (os.path.exists(t.path("pid")) and os.path.getsize(t.path("pid"))):
    assert p.poll() is None, "server exited"
    assert time.time() < deadline, "server did not start"
    time.sleep(0.05)
c = raw.connect(sock, structured=False)
exercise(c)
c.send(raw.CMD_DISC, 0, 0)
c.close()
os.kill(int(open(t.path("pid")).read()), 15)
p.wait(timeout=20)
sizes = [int(m.group(1)) for m in
         re.finditer(r"(?:sendmsg|writev)\(.*= (\d+)$",
                     open(trace).read(), re.M)]
# Replies to the three batches: 3 * N of them, after the handshake and
# the N single writes.
big = [n for n in sizes if n >= 2 * (LEN + 16)]
print("sendmsg sizes:", sizes)
assert big, "no sendmsg carried two 4 KiB read replies: %r" % sizes
assert len(sizes) < N + 3 * N, \
    "%d sendmsg calls for %d replies: none held back" % (len(sizes), 4 * N)

# Default threads, every reply type.
uri = t.start("mem", "memory", "1M")
for kind in ("simple", "structured", "extended"):
    c = raw.connect(t.sock, structured=(kind != "simple"),
                    extended=(kind == "extended"))
    exercise(c)
    c.close()
print("PASS")
