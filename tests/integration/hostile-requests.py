"""Hostile clients in the transmission phase, with raw sockets.  Each
request gets the protocol's error, or the connection is closed; other
clients are unaffected and no data is lost (a well-behaved client's
pattern is read back at the end; refused writes change nothing).

- bad request magic: closed
- oversized lengths: READ of 4 GiB - 1 (EINVAL, connection goes on);
  WRITE declaring more payload than the server takes (closed, or
  refused with the payload consumed); extended-header lengths of 2^63
- requests past the end, offset + length overflowing 64 bits
- unknown commands and unknown or unnegotiated flags
- truncated requests: the client closes mid-header and mid-payload;
  a half-sent write is not applied
- requests after NBD_CMD_DISC are not executed
"""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

SIZE = 16 << 20
t = nbdtest.Test()
uri = t.start("mem", "memory", "16M")
sock = t.sock


def alive(what):
    assert t.proc.poll() is None, "server died after: " + what
    h = t.connect(uri, meta=False)
    assert h.get_size() == SIZE, what
    h.shutdown()


def ends(c, what, limit=15.0):
    """The server closes c within LIMIT seconds (replies before the close
    are allowed, and returned)."""
    c.s.settimeout(limit)
    buf = b""
    try:
        while True:
            d = c.s.recv(65536)
            if not d:
                break
            buf += d
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("%s: connection still open after %.0fs" %
                             (what, limit))
    c.close()
    return buf


def req(cmd, offset, length, flags=0, cookie=99):
    return struct.pack(">IHHQQI", raw.REQUEST_MAGIC, flags, cmd, cookie,
                       offset, length)


pattern = os.urandom(1 << 20)
h = t.connect(uri)
h.pwrite(pattern, 8 << 20)
h.shutdown()

# Bad magic, in simple and extended mode: closed.
for extended in (False, True):
    if extended and not nbdtest.OURS:
        continue
    c = raw.connect(sock, extended=extended)
    c.s.sendall(struct.pack(">I", 0x25609514) + b"\0" * 28)
    ends(c, "bad request magic")
c = raw.connect(sock)
c.s.sendall(struct.pack(">IHHQQQ", raw.EXTENDED_REQUEST_MAGIC, 0, 0, 1, 0,
                        512))   # extended magic, not negotiated
ends(c, "extended request without extended headers")

# Oversized READ: an error, and the connection goes on.
for structured in (False, True):
    c = raw.connect(sock, structured=structured)
    c.send(raw.CMD_READ, 0, 0xffffffff)
    r = c.reply()
    assert r.error == raw.EINVAL, "READ of 4 GiB - 1: %r" % r
    c.send(raw.CMD_READ, 8 << 20, 4096)
    r = c.reply()
    assert r.data == pattern[:4096], "read after an oversized read"
    c.close()

# Oversized WRITE (payload declared, not all sent): the server must not
# wait for gigabytes nor apply anything.
for length in (0xffffffff, 1 << 31):
    c = raw.connect(sock)
    try:
        c.s.sendall(req(raw.CMD_WRITE, 8 << 20, length) + b"\xee" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass                    # closed before the payload was all sent
    got = ends(c, "WRITE declaring %d bytes" % length)
    assert got == b"" or struct.unpack(">I", got[:4])[0] in (
        raw.SIMPLE_REPLY_MAGIC, raw.STRUCTURED_REPLY_MAGIC), got[:16]
# A WRITE a little over the maximum, payload all sent: refused, in step.
c = raw.connect(sock)
big = 65 << 20
c.s.sendall(req(raw.CMD_WRITE, 0, big, cookie=5))
c.pending[5] = (raw.CMD_WRITE, 0, big)
try:
    c.s.sendall(b"\xee" * big)
    r = c.reply()
    assert r.error != 0, "WRITE of 65 MiB accepted (maximum is 64 MiB)"
    c.send(raw.CMD_READ, 8 << 20, 4096)
    assert c.reply().data == pattern[:4096]
except (BrokenPipeError, ConnectionResetError, EOFError):
    pass                        # closed instead: also fine
c.close()

# Extended headers: a 2^63 length, with and without a payload flag.
if nbdtest.OURS:
    c = raw.connect(sock, extended=True)
    for cmd in (raw.CMD_READ, raw.CMD_WRITE, raw.CMD_WRITE_ZEROES,
                raw.CMD_TRIM, raw.CMD_CACHE):
        c.s.sendall(struct.pack(">IHHQQQ", raw.EXTENDED_REQUEST_MAGIC, 0,
                                cmd, 7, 0, 1 << 63))
        c.pending[7] = (cmd, 0, 0)
        r = c.reply()
        assert r.error != 0, "extended cmd %d of 2^63 bytes: %r" % (cmd, r)
    c.s.sendall(struct.pack(">IHHQQQ", raw.EXTENDED_REQUEST_MAGIC,
                            raw.CMD_FLAG_PAYLOAD_LEN, raw.CMD_WRITE, 8, 0,
                            1 << 63))
    ends(c, "extended WRITE with a 2^63 payload")

# Past the end, and 64-bit overflow of offset + length.
c = raw.connect(sock)
cases = [
    (raw.CMD_READ, SIZE, 1, 0, (raw.EINVAL,)),
    (raw.CMD_READ, SIZE - 512, 1024, 0, (raw.EINVAL,)),
    (raw.CMD_READ, (1 << 64) - 512, 1024, 0, (raw.EINVAL,)),
    (raw.CMD_WRITE, SIZE - 512, 1024, 0, (raw.ENOSPC, raw.EINVAL)),
    (raw.CMD_WRITE, (1 << 64) - 1, 2, 0, (raw.ENOSPC, raw.EINVAL)),
    (raw.CMD_WRITE_ZEROES, SIZE, 4096, 0, (raw.ENOSPC, raw.EINVAL)),
    (raw.CMD_WRITE_ZEROES, (1 << 64) - 4096, 8192, 0,
     (raw.ENOSPC, raw.EINVAL)),
    (raw.CMD_TRIM, SIZE - 1, 2, 0, (raw.ENOSPC, raw.EINVAL)),
    (raw.CMD_TRIM, 1 << 63, 1 << 31, 0, (raw.ENOSPC, raw.EINVAL)),
    (raw.CMD_CACHE, SIZE, 1, 0, (raw.EINVAL,)),
    (raw.CMD_BLOCK_STATUS, SIZE, 1, 0, (raw.EINVAL,)),
    # unknown commands
    (8, 0, 512, 0, (raw.EINVAL,)),
    (100, 0, 0, 0, (raw.EINVAL,)),
    (0xffff, 0, 512, 0, (raw.EINVAL,)),
    # unknown or unnegotiated flags
    (raw.CMD_READ, 0, 512, 0x8000, (raw.EINVAL,)),
    (raw.CMD_READ, 0, 512, raw.CMD_FLAG_NO_HOLE | 0x40, (raw.EINVAL,)),
    (raw.CMD_READ, 0, 512, raw.CMD_FLAG_REQ_ONE, (raw.EINVAL,)),
    (raw.CMD_FLUSH, 0, 0, 0x100, (raw.EINVAL,)),
    (raw.CMD_FLUSH, 512, 512, 0, (raw.EINVAL,)),
    (raw.CMD_WRITE_ZEROES, 0, 512, raw.CMD_FLAG_DF, (raw.EINVAL,)),
]
for cmd, off, length, flags, errs in cases:
    data = b"\xee" * length if cmd == raw.CMD_WRITE else b""
    if cmd == raw.CMD_WRITE and not data:
        continue
    c.s.sendall(struct.pack(">IHHQQI", raw.REQUEST_MAGIC, flags, cmd, 11,
                            off % (1 << 64), length) + data)
    c.pending[11] = (cmd, off, length)
    r = c.reply()
    assert r.error in errs, \
        "cmd %d off %d len %d flags 0x%x: error %d, expected %r" % (
            cmd, off, length, flags, r.error, errs)
# A write of 2 bytes at 2^64 - 1 (the payload is sent; the server must
# stay in step and refuse it).
c.send(raw.CMD_READ, 8 << 20, 4096)
assert c.reply().data == pattern[:4096], "read after refused requests"
c.close()

# Truncated: close mid-header, mid-payload; a half-sent write changes
# nothing.
for data in (req(raw.CMD_READ, 0, 512)[:13],
             req(raw.CMD_WRITE, 8 << 20, 65536) + b"\x55" * 1000,
             req(raw.CMD_WRITE, 8 << 20, 65536) + b"\x55" * 65535):
    c = raw.connect(sock)
    c.s.sendall(data)
    c.s.shutdown(socket.SHUT_WR)
    got = ends(c, "truncated request")
    assert got == b"", "reply to a truncated request: %r" % got[:32]
# Reset mid-payload.
c = raw.connect(sock)
c.s.sendall(req(raw.CMD_WRITE, 8 << 20, 1 << 20) + b"\x66" * 300000)
c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
time.sleep(0.2)

# After DISC nothing more is executed.
c = raw.connect(sock)
c.s.sendall(req(raw.CMD_DISC, 0, 0) +
            req(raw.CMD_WRITE, 8 << 20, 4096) + b"\x77" * 4096)
got = ends(c, "requests after DISC")
assert got == b"", "reply after DISC: %r" % got[:32]

# No data lost, and the server still serves.
h = t.connect(uri)
assert h.pread(len(pattern), 8 << 20) == pattern, "pattern changed"
h.shutdown()
alive("the end")
print("hostile-requests: OK")
