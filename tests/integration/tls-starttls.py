"""STARTTLS by the protocol's rules, seen on the wire with a raw client
(nbdtest_raw over Python's ssl module):

- --tls=require: before STARTTLS, OPT_GO, OPT_INFO, OPT_LIST,
  OPT_STRUCTURED_REPLY and unknown options get NBD_REP_ERR_TLS_REQD
  (2^31 + 5); EXPORT_NAME (which has no error reply) closes the
  connection; ABORT is answered.
- STARTTLS with data is NBD_REP_ERR_INVALID; STARTTLS once TLS is on is
  NBD_REP_ERR_INVALID; with --tls=off it is refused (POLICY or UNSUP).
- Nothing negotiated before STARTTLS survives it: structured replies,
  extended headers and meta contexts must be negotiated again (a READ
  after GO gets a simple reply, BLOCK_STATUS is refused, SET_META_CONTEXT
  without structured replies is refused).
- Bytes pipelined after STARTTLS, before the server's reply: the
  connection is closed (never read as plaintext, never a TLS session).
- A client that sends STARTTLS and then garbage, or nothing, does not
  hurt the server: other clients go on being served.
"""

import os
import socket
import ssl
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO = 1, 2, 3, 5, 6
REP_ERR_POLICY = 0x80000002
REP_ERR_INVALID = 0x80000003
REP_ERR_UNSUP = 0x80000001
REP_ERR_TLS_REQD = 0x80000005

t = nbdtest.Test()
here = os.path.dirname(os.path.abspath(__file__))
for tool in ("certtool", "psktool"):
    if subprocess.call(["sh", "-c", "command -v " + tool],
                       stdout=subprocess.DEVNULL) != 0:
        nbdtest.skip(tool + " not found")
subprocess.check_call(["bash", os.path.join(here, "tls-functions.sh"),
                       "make-pki", t.tmpdir])
pki = dict(line.strip().split("=", 1)
           for line in open(t.path("pki.env")))

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(os.path.join(pki["pki"], "ca-cert.pem"))


def starttls(c):
    """STARTTLS on raw client c, then the TLS handshake."""
    r = c.option(OPT_STARTTLS)
    assert r == [(raw.REP_ACK, b"")], "STARTTLS: %r" % (r,)
    c.s = ctx.wrap_socket(c.s, server_hostname="localhost")


def expect_closed(c, what):
    """The server closes c (EOF or reset) without answering further."""
    try:
        d = c.s.recv(1)
    except (ConnectionResetError, ssl.SSLError, OSError):
        return
    assert d == b"", "%s: expected the connection closed, got %r" % (what, d)


def err(replies):
    return replies[-1][0]


# ---- --tls=require ----
uri = t.start("req", "--tls=require", "--tls-certificates=" + pki["pki"],
              "memory", "1M")
sock = t.sock

# A TLS client puts a pattern on the disk, read back at the end.
c = raw.Client(sock)
starttls(c)
c.structured()
c.go()
pattern = bytes(range(256)) * 16
c.send(raw.CMD_WRITE, 8192, len(pattern), data=pattern)
assert c.reply().error == 0
c.send(raw.CMD_DISC, 0, 0)
c.close()

# Options before STARTTLS.
c = raw.Client(sock)
for opt, data in ((raw.OPT_GO, struct.pack(">IH", 0, 0)),
                  (OPT_INFO, struct.pack(">IH", 0, 0)),
                  (OPT_LIST, b""),
                  (raw.OPT_STRUCTURED_REPLY, b""),
                  (raw.OPT_EXTENDED_HEADERS, b""),
                  (raw.OPT_LIST_META_CONTEXT, b""),
                  (0x1234, b"unknown option data")):
    r = c.option(opt, data)
    assert err(r) == REP_ERR_TLS_REQD, \
        "option %d before STARTTLS: %r (expected TLS_REQD)" % (opt, r)
# STARTTLS with data is malformed.
r = c.option(OPT_STARTTLS, b"x")
assert err(r) == REP_ERR_INVALID, "STARTTLS with data: %r" % (r,)
# The connection can still be upgraded and used.
starttls(c)
r = c.option(OPT_STARTTLS)
assert err(r) == REP_ERR_INVALID, "STARTTLS twice: %r" % (r,)
c.structured()
c.go()
c.send(raw.CMD_READ, 8192, len(pattern))
rep = c.reply()
assert rep.error == 0 and rep.data == pattern, "READ over TLS: %r" % rep
c.send(raw.CMD_DISC, 0, 0)
c.close()

# ABORT before STARTTLS is answered (or the connection just closed).
c = raw.Client(sock)
c.send_option(OPT_ABORT)
try:
    _, rtype, _ = c.option_reply()
    assert rtype == raw.REP_ACK, "ABORT: reply 0x%x" % rtype
except EOFError:
    pass
c.close()

# EXPORT_NAME before STARTTLS: no error reply exists, so the server
# closes the connection.
c = raw.Client(sock)
c.send_option(OPT_EXPORT_NAME, b"")
expect_closed(c, "EXPORT_NAME before STARTTLS")
c.close()

# Data pipelined after STARTTLS: closed, never a TLS session.
c = raw.Client(sock)
c.s.sendall(struct.pack(">QII", raw.IHAVEOPT, OPT_STARTTLS, 0) +
            struct.pack(">QII", raw.IHAVEOPT, raw.OPT_GO, 6) +
            struct.pack(">IH", 0, 0))
got = b""
try:
    while True:
        d = c.s.recv(4096)
        if not d:
            break
        got += d
except (ConnectionResetError, socket.timeout):
    pass
if nbdtest.OURS:
    assert got == b"", "pipelined STARTTLS: server answered %r" % got
else:
    # Another server may ACK first, but must then fail the TLS
    # handshake (the GO bytes are not a ClientHello), never serve GO.
    assert len(got) in (0, 20), "pipelined STARTTLS: %r" % got
c.close()

# STARTTLS, then garbage instead of a ClientHello; then STARTTLS and
# nothing at all (client goes away).
c = raw.Client(sock)
r = c.option(OPT_STARTTLS)
assert r[-1][0] == raw.REP_ACK
c.s.sendall(b"\x16\x03\x01\xff\xff" + b"garbage" * 100)
expect_closed(c, "garbage ClientHello")
c.close()
c = raw.Client(sock)
r = c.option(OPT_STARTTLS)
assert r[-1][0] == raw.REP_ACK
c.close()

# The pattern is intact and the server serves a new TLS client.
c = raw.Client(sock)
starttls(c)
c.go()
c.send(raw.CMD_READ, 8192, len(pattern))
rep = c.reply()
assert rep.kind == "simple" and rep.data == pattern, rep
c.close()

# ---- --tls=on: nothing negotiated before STARTTLS survives ----
t.start("on", "--tls=on", "--tls-certificates=" + pki["pki"],
        "memory", "1M")
sock = t.sock

# Structured replies before STARTTLS; none after: READ gets a simple reply.
c = raw.Client(sock)
c.structured()
r = c.meta_context(raw.OPT_SET_META_CONTEXT)
assert r[-1][0] == raw.REP_ACK and r[0][0] == raw.REP_META_CONTEXT, r
starttls(c)
c.structured_replies = False
# Meta contexts need structured replies, which are gone.
r = c.meta_context(raw.OPT_SET_META_CONTEXT)
assert err(r) == REP_ERR_INVALID, \
    "SET_META_CONTEXT after STARTTLS without structured replies: %r" % (r,)
c.go()
assert not c.eflags & (1 << 7), "DF offered without structured replies"
c.send(raw.CMD_READ, 0, 512)
rep = c.reply()
assert rep.kind == "simple", \
    "structured replies survived STARTTLS: %r" % rep
c.send(raw.CMD_DISC, 0, 0)
c.close()

# Meta context selected before STARTTLS is gone after it, even with
# structured replies negotiated again.
c = raw.Client(sock)
c.structured()
r = c.meta_context(raw.OPT_SET_META_CONTEXT)
assert r[0][0] == raw.REP_META_CONTEXT, r
starttls(c)
c.structured()
c.go()
c.send(raw.CMD_BLOCK_STATUS, 0, 4096)
rep = c.reply()
assert rep.error == raw.EINVAL, \
    "BLOCK_STATUS with a meta context from before STARTTLS: %r" % rep
c.send(raw.CMD_DISC, 0, 0)
c.close()

# Extended headers before STARTTLS are gone after it.
if nbdtest.OURS:
    c = raw.Client(sock)
    c.extended()
    starttls(c)
    c.structured_replies = c.extended_headers = False
    c.go()
    c.send(raw.CMD_READ, 0, 512)    # a compact request header
    rep = c.reply()
    assert rep.kind == "simple" and rep.error == 0, \
        "extended headers survived STARTTLS: %r" % rep
    c.close()

# Plaintext still fine with --tls=on, and it may not use
# EXPORT_NAME-less GO only: the ordinary path works.
c = raw.connect(sock)
c.send(raw.CMD_READ, 0, 512)
assert c.reply().error == 0
c.close()

# ---- --tls=off: STARTTLS refused, plaintext goes on ----
t.start("off", "--tls=off", "memory", "1M")
c = raw.Client(t.sock)
r = c.option(OPT_STARTTLS)
assert err(r) in (REP_ERR_POLICY, REP_ERR_UNSUP), \
    "STARTTLS with --tls=off: %r" % (r,)
c.structured()
c.go()
c.send(raw.CMD_READ, 0, 512)
assert c.reply().error == 0
c.close()

print("tls-starttls: OK")
