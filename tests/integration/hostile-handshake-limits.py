#!/usr/bin/python3
"""Limits of the handshake, with raw sockets (issue: options before an
export is chosen).

- a client may send at most 32 options before choosing an export: the
  server closes after that, having answered no more than 32;
- refused INFO options with long names (file dir=: each one made the
  plugin intern a path for the life of the connection) do not make the
  server grow while the connection stays open;
- a NUL byte inside an export name (EXPORT_NAME: the client is dropped,
  SET_META_CONTEXT: NBD_REP_ERR_INVALID) or inside a context name
  (NBD_REP_ERR_INVALID) is refused, not cut off;
- a client that did not set NBD_FLAG_C_FIXED_NEWSTYLE may only send
  EXPORT_NAME: other options get NBD_REP_ERR_INVALID, EXPORT_NAME works.
"""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

REP_ERR_INVALID = 0x80000003
OPT_EXPORT_NAME = 1
OPT_INFO = 6

nbdtest.require_ours()
# Under AddressSanitizer freed memory waits in a quarantine, which
# would count here as growth: what is measured is memory kept.
if os.environ.get("ASAN_OPTIONS") is not None:
    os.environ["ASAN_OPTIONS"] += ":quarantine_size_mb=0"
t = nbdtest.Test()
d = t.path("dir")
os.mkdir(d)
with open(os.path.join(d, "disk"), "wb") as f:
    f.write(b"\x55" * 65536)
uri = t.start("dir", "file", "dir=" + d, extra=("--log=null",))
pid = t.proc.pid


def rss_kb():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def info_data(name):
    return struct.pack(">I", len(name)) + name + struct.pack(">H", 0)


def replies_until_close(c, limit=15.0):
    """Option replies read until the server closes; fails if it waits."""
    c.s.settimeout(limit)
    n = 0
    try:
        while True:
            _, rtype, _ = c.option_reply()
            assert rtype & raw.REP_ERR_BIT, "option acknowledged"
            n += 1
    except (EOFError, ConnectionResetError, BrokenPipeError):
        return n
    except socket.timeout:
        raise AssertionError("server still waiting after %.0fs" % limit)


# 1. Many options, pipelined, with 4000-byte names of missing exports.
before = rss_kb()
c = raw.Client(t.sock)
name = b"x" * 4000
try:
    for i in range(600):
        c.send_option(OPT_INFO, info_data(name))
except (BrokenPipeError, ConnectionResetError):
    pass
time.sleep(0.5)
grown = rss_kb() - before
n = replies_until_close(c)
assert n <= 32, "server answered %d options before choosing an export" % n
assert grown < 4096, "server grew by %d kB for one connection" % grown
c.close()

# 2. NUL inside an export name given with EXPORT_NAME: dropped.
c = raw.Client(t.sock)
c.send_option(OPT_EXPORT_NAME, b"disk\0junk")
c.s.settimeout(10)
try:
    got = c.s.recv(200)
except ConnectionResetError:
    got = b""
assert got == b"", "EXPORT_NAME with a NUL was served: %r" % got[:20]
c.close()

# 3. NUL inside the export name or a query of SET_META_CONTEXT.
c = raw.Client(t.sock)
c.structured()
for opt in (raw.OPT_SET_META_CONTEXT, raw.OPT_LIST_META_CONTEXT):
    r = c.meta_context(opt, name="disk\0junk")
    assert r[-1][0] == REP_ERR_INVALID, ("export name with NUL", opt, r)
    r = c.meta_context(opt, name="disk", queries=("base:allocation\0x",))
    assert r[-1][0] == REP_ERR_INVALID, ("query with NUL", opt, r)
    r = c.meta_context(opt, name="disk")
    assert r[-1][0] == raw.REP_ACK and len(r) == 2, (opt, r)
c.go("disk")
assert c.size == 65536, c.size
c.close()

# 4. A client without FIXED_NEWSTYLE.
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(t.sock)
c = raw.Client(sock=s, handshake=False)
magic, ihaveopt, gflags = struct.unpack(">QQH", c.recv(18))
c.s.sendall(struct.pack(">I", 0))
c.send_option(OPT_INFO, info_data(b"disk"))
_, rtype, _ = c.option_reply()
assert rtype == REP_ERR_INVALID, "INFO without fixed newstyle: 0x%x" % rtype
c.send_option(OPT_EXPORT_NAME, b"disk")
size, eflags = struct.unpack(">QH", c.recv(10))
assert size == 65536, size
c.recv(124)  # the zeroes: NO_ZEROES was not asked for
c.close()

h = t.connect(uri.replace(":///", ":///disk"), meta=False)
assert h.pread(4, 0) == b"\x55" * 4
h.shutdown()
assert t.proc.poll() is None, "server died"
print("hostile-handshake-limits: OK")
