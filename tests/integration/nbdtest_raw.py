"""A raw NBD client in Python, for tests that must see the wire: chunk
types and offsets, error offsets, the order replies arrive in.  Unlike
nbd-raw it is driven from Python, so a test can send several requests
and look at the replies as data.

    import nbdtest_raw as rawnbd
    c = rawnbd.Client(sock_path)         # connect, greeting, client flags
    c.structured()                       # NBD_OPT_STRUCTURED_REPLY
    c.go()                               # NBD_OPT_GO: c.size, c.eflags, ...
    cookie = c.send(rawnbd.CMD_READ, 0, 4096)
    r = c.reply()                        # a Reply: cookie, error, chunks, data

c.extended() negotiates extended headers instead of c.structured().
For a socket already in transmission (--no-handshake), wrap it with
Client(sock=s, handshake=False).  Every read has a timeout (10 s).
"""

import socket
import struct

NBD_MAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x3e889045565a9
REQUEST_MAGIC = 0x25609513
EXTENDED_REQUEST_MAGIC = 0x21e41c71
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668e33ef
EXTENDED_REPLY_MAGIC = 0x6e8a278c

OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10
OPT_EXTENDED_HEADERS = 11
REP_ACK = 1
REP_INFO = 3
REP_META_CONTEXT = 4
REP_ERR_BIT = 0x80000000
INFO_EXPORT = 0
INFO_BLOCK_SIZE = 3

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

CMD_FLAG_FUA = 1 << 0
CMD_FLAG_NO_HOLE = 1 << 1
CMD_FLAG_DF = 1 << 2
CMD_FLAG_REQ_ONE = 1 << 3
CMD_FLAG_FAST_ZERO = 1 << 4
CMD_FLAG_PAYLOAD_LEN = 1 << 5

REPLY_FLAG_DONE = 1
TYPE_NONE = 0
TYPE_OFFSET_DATA = 1
TYPE_OFFSET_HOLE = 2
TYPE_BLOCK_STATUS = 5
TYPE_ERROR = (1 << 15) | 1
TYPE_ERROR_OFFSET = (1 << 15) | 2

# NBD errors on the wire
EPERM, EIO, ENOMEM, EINVAL, ENOSPC = 1, 5, 12, 22, 28
EOVERFLOW, ENOTSUP, ESHUTDOWN = 75, 95, 108


class Chunk:
    """One chunk of a structured reply (or a simple reply as one chunk)."""

    def __init__(self, flags, type, offset=None, length=None, data=b"",
                 error=None, msg=b"", error_offset=None):
        self.flags, self.type = flags, type
        self.offset, self.length, self.data = offset, length, data
        self.error, self.msg, self.error_offset = error, msg, error_offset

    def __repr__(self):
        names = {TYPE_NONE: "NONE", TYPE_OFFSET_DATA: "DATA",
                 TYPE_OFFSET_HOLE: "HOLE", TYPE_ERROR: "ERROR",
                 TYPE_ERROR_OFFSET: "ERROR_OFFSET",
                 TYPE_BLOCK_STATUS: "BLOCK_STATUS"}
        s = names.get(self.type, str(self.type))
        if self.offset is not None:
            s += " off=%d len=%d" % (self.offset, self.length)
        if self.error is not None:
            s += " error=%d" % self.error
        if self.error_offset is not None:
            s += " at=%d" % self.error_offset
        if self.flags & REPLY_FLAG_DONE:
            s += " DONE"
        return "<" + s + ">"


class Reply:
    def __init__(self, cookie, kind):
        self.cookie, self.kind = cookie, kind
        self.error = 0
        self.chunks = []
        self.data = None       # reassembled read data (holes as zeroes)

    def __repr__(self):
        return "<Reply %s cookie=%d error=%d chunks=%r>" % (
            self.kind, self.cookie, self.error, self.chunks)


class Client:
    def __init__(self, path=None, sock=None, handshake=True, timeout=10):
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(path)
        else:
            sock.settimeout(timeout)
        self.s = sock
        self.next_cookie = 1
        self.pending = {}       # cookie -> (type, offset, length)
        self.structured_replies = False
        self.extended_headers = False
        self.size = None
        self.eflags = None
        self.block_size = None
        if handshake:
            self._greeting()

    # ---- bytes ----

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            d = self.s.recv(n - len(buf))
            if not d:
                raise EOFError("server closed the connection")
            buf += d
        return buf

    def close(self):
        self.s.close()

    # ---- handshake ----

    def _greeting(self):
        magic, ihaveopt, gflags = struct.unpack(">QQH", self.recv(18))
        assert magic == NBD_MAGIC and ihaveopt == IHAVEOPT, "bad greeting"
        cflags = 1 | (2 if gflags & 2 else 0)
        self.no_zeroes = bool(cflags & 2)
        self.s.sendall(struct.pack(">I", cflags))

    def send_option(self, opt, data=b""):
        self.s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)

    def option_reply(self):
        magic, opt, rtype, length = struct.unpack(">QIII", self.recv(20))
        assert magic == REP_MAGIC, "bad option reply magic %x" % magic
        return opt, rtype, self.recv(length)

    def option(self, opt, data=b""):
        """Send an option; return its replies [(type, data)] up to and
        including the final ACK or error."""
        self.send_option(opt, data)
        out = []
        while True:
            _, rtype, d = self.option_reply()
            out.append((rtype, d))
            if rtype == REP_ACK or rtype & REP_ERR_BIT:
                return out

    def structured(self):
        r = self.option(OPT_STRUCTURED_REPLY)
        assert r[-1][0] == REP_ACK, r
        self.structured_replies = True

    def extended(self):
        r = self.option(OPT_EXTENDED_HEADERS)
        assert r[-1][0] == REP_ACK, r
        self.structured_replies = self.extended_headers = True

    def meta_context(self, opt, name="", queries=("base:allocation",)):
        data = struct.pack(">I", len(name)) + name.encode()
        data += struct.pack(">I", len(queries))
        for q in queries:
            data += struct.pack(">I", len(q)) + q.encode()
        return self.option(opt, data)

    def go(self, name="", info=(INFO_BLOCK_SIZE,)):
        data = struct.pack(">I", len(name)) + name.encode()
        data += struct.pack(">H", len(info))
        for i in info:
            data += struct.pack(">H", i)
        for rtype, d in self.option(OPT_GO, data):
            if rtype == REP_INFO:
                (itype,) = struct.unpack(">H", d[:2])
                if itype == INFO_EXPORT:
                    self.size, self.eflags = struct.unpack(">QH", d[2:12])
                elif itype == INFO_BLOCK_SIZE:
                    self.block_size = struct.unpack(">III", d[2:14])
            elif rtype != REP_ACK:
                raise AssertionError("OPT_GO failed: reply type 0x%x %r" %
                                     (rtype, d))

    # ---- transmission ----

    def send(self, type, offset, length, flags=0, data=b""):
        cookie = self.next_cookie
        self.next_cookie += 1
        if self.extended_headers:
            if data:
                flags |= CMD_FLAG_PAYLOAD_LEN
            hdr = struct.pack(">IHHQQQ", EXTENDED_REQUEST_MAGIC, flags, type,
                              cookie, offset, length)
        else:
            hdr = struct.pack(">IHHQQI", REQUEST_MAGIC, flags, type, cookie,
                              offset, length)
        self.s.sendall(hdr + data)
        if type != CMD_DISC:
            self.pending[cookie] = (type, offset, length)
        return cookie

    def reply(self):
        (magic,) = struct.unpack(">I", self.recv(4))
        if magic == SIMPLE_REPLY_MAGIC:
            error, cookie = struct.unpack(">IQ", self.recv(12))
            type, offset, length = self.pending.pop(cookie)
            r = Reply(cookie, "simple")
            r.error = error
            if type == CMD_READ and error == 0:
                r.data = self.recv(length)
            return r
        if magic not in (STRUCTURED_REPLY_MAGIC, EXTENDED_REPLY_MAGIC):
            raise AssertionError("bad reply magic 0x%08x" % magic)
        first_magic = magic
        r = None
        while True:
            if r is not None:
                (magic,) = struct.unpack(">I", self.recv(4))
                assert magic == first_magic, hex(magic)
            if magic == EXTENDED_REPLY_MAGIC:
                flags, ctype, cookie, hoff, clen = struct.unpack(
                    ">HHQQQ", self.recv(28))
            else:
                flags, ctype, cookie, clen = struct.unpack(">HHQI",
                                                           self.recv(16))
                hoff = None
            if r is None:
                type, offset, length = self.pending.pop(cookie)
                r = Reply(cookie, "extended" if hoff is not None
                          else "structured")
                buf = bytearray(length) if type == CMD_READ else None
            assert cookie == r.cookie, "chunks of two replies interleaved"
            assert hoff is None or hoff == offset, \
                "extended reply header offset %d, request at %d" % (hoff,
                                                                    offset)
            payload = self.recv(clen)
            if ctype == TYPE_OFFSET_DATA:
                (off,) = struct.unpack(">Q", payload[:8])
                c = Chunk(flags, ctype, off, clen - 8, payload[8:])
                buf[off - offset:off - offset + c.length] = c.data
            elif ctype == TYPE_OFFSET_HOLE:
                off, n = struct.unpack(">QI", payload)
                c = Chunk(flags, ctype, off, n)
            elif ctype in (TYPE_ERROR, TYPE_ERROR_OFFSET):
                err, mlen = struct.unpack(">IH", payload[:6])
                c = Chunk(flags, ctype, error=err, msg=payload[6:6 + mlen])
                if ctype == TYPE_ERROR_OFFSET:
                    (c.error_offset,) = struct.unpack(
                        ">Q", payload[6 + mlen:14 + mlen])
                if r.error == 0:
                    r.error = err
            else:
                c = Chunk(flags, ctype, data=payload)
            r.chunks.append(c)
            if flags & REPLY_FLAG_DONE:
                break
        if buf is not None and r.error == 0:
            r.data = bytes(buf)
        return r


def connect(path, structured=True, extended=False):
    """A client past OPT_GO, with structured replies unless told not, or
    with extended headers."""
    c = Client(path)
    if extended:
        c.extended()
    elif structured:
        c.structured()
    c.go()
    return c
