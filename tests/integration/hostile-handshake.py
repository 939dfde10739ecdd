"""Hostile clients in the handshake, with raw sockets.  Each one must end
in the protocol's error or a closed connection within a few seconds;
the server must not grow without bound, must go on serving other
clients, and must lose no data (a well-behaved client writes a pattern
first and reads it back at the end).

- bad client flags, bad option magic
- option lengths far beyond any option (64 KiB + 1 up to 4 GiB - 1),
  declared but never sent
- truncated messages: the client closes mid-greeting-reply, mid option
  header, mid option payload
- malformed option payloads (GO, INFO, SET/LIST_META_CONTEXT lengths
  that lie; NUL in names; over-long names)
- thousands of options in one handshake, pipelined: the server answers
  each or closes, in bounded time
- many maximum-size options in a row
"""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

REP_ERR_INVALID = 0x80000003
REP_ERR_UNSUP = 0x80000001
REP_ERR_BIT = 0x80000000

t = nbdtest.Test()
uri = t.start("mem", "memory", "16M")
sock = t.sock
pid = t.proc.pid


def rss_kb():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def alive(what):
    assert t.proc.poll() is None, "server died after: " + what
    h = t.connect(uri, meta=False)
    assert h.get_size() == 16 << 20, what
    h.shutdown()


def ends(c, what, limit=15.0):
    """c's server side ends (EOF or reset) within LIMIT seconds, perhaps
    after some option replies, which must all be errors.  Returns the
    replies' types."""
    c.s.settimeout(limit)
    deadline = time.time() + limit
    types = []
    buf = b""
    try:
        while time.time() < deadline:
            d = c.s.recv(65536)
            if not d:
                break
            buf += d
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("%s: server still waiting after %.0fs" %
                             (what, limit))
    while len(buf) >= 20:
        magic, opt, rtype, length = struct.unpack(">QIII", buf[:20])
        assert magic == raw.REP_MAGIC, "%s: bad reply %r" % (what, buf[:20])
        types.append(rtype)
        buf = buf[20 + length:]
    for rt in types:
        assert rt & REP_ERR_BIT, "%s: option acknowledged (0x%x)" % (what,
                                                                     rt)
    c.close()
    return types


def hdr(opt, length):
    return struct.pack(">QII", raw.IHAVEOPT, opt, length)


# A pattern written by a well-behaved client, checked at the end.
pattern = os.urandom(1 << 20)
h = t.connect(uri)
h.pwrite(pattern, 4 << 20)
h.shutdown()
rss0 = rss_kb()

# Bad client flags (unknown bits): closed.
c = raw.Client(sock, handshake=False)
c.recv(18)
c.s.sendall(struct.pack(">I", 0xfffffffc | 1))
ends(c, "unknown client flags")

# Bad option magic: closed.
c = raw.Client(sock)
c.s.sendall(struct.pack(">QII", 0x1122334455667788, raw.OPT_GO, 0))
ends(c, "bad option magic")

# Oversized option lengths, data never sent: closed or an error, at once.
# (Our limit is 64 KiB; nbdkit 1.32's is 64 MiB.)
lengths = (1 << 31, 0xffffffff)
if nbdtest.OURS:
    lengths = (64 * 1024 + 1, 1 << 24) + lengths
for opt in (raw.OPT_GO, 3, raw.OPT_STRUCTURED_REPLY, 1, 6,
            raw.OPT_SET_META_CONTEXT, 0xdead):
    for length in lengths:
        c = raw.Client(sock)
        c.s.sendall(hdr(opt, length) + b"\0" * 16)
        ends(c, "option %d declaring %d bytes" % (opt, length))
alive("oversized options")

# Truncated messages: the client goes away mid-way.
for data in (b"", b"\0\0",                                 # client flags
             struct.pack(">I", 3) + hdr(raw.OPT_GO, 10)[:9],  # opt header
             struct.pack(">I", 3) + hdr(raw.OPT_GO, 100) + b"x" * 50,
             struct.pack(">I", 3) + hdr(1, 4096) + b"y" * 4095):
    c = raw.Client(sock, handshake=False)
    c.recv(18)
    c.s.sendall(data)
    c.s.shutdown(socket.SHUT_WR)
    ends(c, "truncated after %d bytes" % len(data))
# ... and one that resets the connection instead.
c = raw.Client(sock)
c.s.sendall(hdr(raw.OPT_GO, 1000) + b"z" * 10)
c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
alive("truncated options")

# Malformed option payloads: NBD_REP_ERR_INVALID, and the handshake goes
# on (a good GO afterwards works).
bad = [
    (raw.OPT_GO, b""),                                     # too short
    (raw.OPT_GO, struct.pack(">I", 100) + b"ab" + b"\0\0"),  # name past end
    (raw.OPT_GO, struct.pack(">I", 0xffffffff) + b"\0\0"),
    (raw.OPT_GO, struct.pack(">I", 3) + b"a\0b" + b"\0\0"),  # NUL in name
    (raw.OPT_GO, struct.pack(">I", 0) + struct.pack(">H", 5) + b"\0\0"),
    (raw.OPT_GO, struct.pack(">I", 0) + struct.pack(">H", 0) + b"extra"),
    (6, struct.pack(">I", 5000) + b"n" * 5000 + b"\0\0"),   # name > 4096
    (3, b"data"),                                           # LIST takes none
    (raw.OPT_STRUCTURED_REPLY, b"x"),
    (raw.OPT_EXTENDED_HEADERS, b"x"),
]
c = raw.Client(sock)
for opt, data in bad:
    r = c.option(opt, data)
    if opt == raw.OPT_EXTENDED_HEADERS and not nbdtest.OURS:
        continue        # nbdkit 1.32 knows no extended headers
    assert r[-1][0] == REP_ERR_INVALID, \
        "malformed option %d %r: %r" % (opt, data[:16], r[-1])
c.structured()
for data in (
        struct.pack(">I", 0) + struct.pack(">I", 1),          # query missing
        struct.pack(">I", 0) + struct.pack(">I", 2) +
        struct.pack(">I", 15) + b"base:allocation",          # 1 of 2
        struct.pack(">I", 0) + struct.pack(">I", 1) +
        struct.pack(">I", 0xfffffff0) + b"base",             # query too long
        struct.pack(">I", 0) + struct.pack(">I", 0xffffffff),
        struct.pack(">I", 0x7fffffff),                        # name too long
        # trailing bytes (nbdkit 1.32 ignores them)
        struct.pack(">I", 0) + struct.pack(">I", 0) + b"trailing"
        if nbdtest.OURS else b""):
    for opt in (raw.OPT_LIST_META_CONTEXT, raw.OPT_SET_META_CONTEXT):
        r = c.option(opt, data)
        assert r[-1][0] == REP_ERR_INVALID, \
            "malformed meta option %d %r: %r" % (opt, data[:16], r[-1])
c.go()
c.send(raw.CMD_READ, 4 << 20, 4096)
assert c.reply().data == pattern[:4096], "read after malformed options"
c.close()

# Thousands of options in one handshake, pipelined, the replies read as
# they come: every one answered, or the connection closed, in bounded
# time (the server may stop listening to an endless negotiation).
for opt, n in ((0x4242, 20000), (raw.OPT_STRUCTURED_REPLY, 20000),
               (3, 5000)):
    c = raw.Client(sock)
    blob = hdr(opt, 0) * n
    err = []

    def sender():
        try:
            c.s.sendall(blob)
        except OSError as e:
            err.append(e)       # the server closed first: fine
    th = threading.Thread(target=sender)
    start = time.time()
    th.start()
    answered = 0
    closed = False
    c.s.settimeout(15)
    try:
        while answered < n:
            c.option_reply()
            answered += 1
    except EOFError:
        closed = True
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        raise AssertionError("%d options %d: stuck after %d replies" %
                             (n, opt, answered))
    th.join(15)
    assert not th.is_alive(), "sender stuck"
    took = time.time() - start
    print("%d options of type %d: %d replies, %s, %.2fs" %
          (n, opt, answered, "closed" if closed else "all answered", took))
    assert took < 15
    c.close()
alive("thousands of options")

# Many maximum-size (64 KiB) options: each refused, memory stays flat.
c = raw.Client(sock)
payload = b"q" * 65536
err = []


def sender2():
    try:
        for _ in range(200):
            c.s.sendall(hdr(0x4243, len(payload)) + payload)
    except OSError as e:
        err.append(e)


th = threading.Thread(target=sender2)
th.start()
n = 0
try:
    while n < 200:
        c.option_reply()
        n += 1
except (EOFError, ConnectionResetError):
    pass
th.join(15)
c.close()
print("200 options of 64 KiB: %d answered" % n)

rss1 = rss_kb()
print("server RSS %d kB -> %d kB" % (rss0, rss1))
assert rss1 - rss0 < 100 * 1024, "server RSS grew by %d kB" % (rss1 - rss0)

# No data lost; the server still serves.
h = t.connect(uri)
assert h.pread(len(pattern), 4 << 20) == pattern, "pattern changed"
h.shutdown()
alive("the end")
print("hostile-handshake: OK")
