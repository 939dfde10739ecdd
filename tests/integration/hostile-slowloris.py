"""Slow-loris clients against the handshake timeout (--timeout=2):

- a client that connects and sends nothing is dropped within ~3 s;
- one that reads the greeting, sends its flags, then nothing: dropped;
- one that trickles a valid handshake one byte per second: dropped too
  (the limit is on the whole handshake, not on each read);
- one that sends STARTTLS and then stalls in the TLS handshake, or
  completes the TLS handshake and then sends nothing: dropped;
- a client that finishes its handshake and then idles longer than the
  timeout is NOT dropped (the timeout is for the handshake only);
- while all that goes on, other clients are served.
Our server only (nbdkit 1.32 has no --timeout).
"""

import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

nbdtest.require_ours()
TIMEOUT = 2
GRACE = 1.5                     # how much later than TIMEOUT a drop may be

t = nbdtest.Test()
uri = t.start("mem", "--timeout=%d" % TIMEOUT, "memory", "1M")
sock = t.sock


def dropped_after(s, send=None, interval=1.0, limit=TIMEOUT + 6):
    """Seconds until the server closes s.  SEND, if given, is trickled
    one byte every INTERVAL seconds meanwhile."""
    start = time.time()
    s.settimeout(0.05)
    pos = 0
    next_send = start
    while time.time() - start < limit:
        if send is not None and pos < len(send) and time.time() >= next_send:
            try:
                s.sendall(send[pos:pos + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.time() - start
            pos += 1
            next_send += interval
        try:
            d = s.recv(4096)
            if d == b"":
                return time.time() - start
        except socket.timeout:
            pass
        except (ConnectionResetError, ssl.SSLError):
            return time.time() - start
    return None


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    return s


results = {}


def case(name, fn):
    try:
        results[name] = fn()
    except Exception as e:      # reported by the main thread
        results[name] = e


def silent():
    return dropped_after(connect())


def flags_then_nothing():
    s = connect()
    s.recv(18)
    s.sendall(struct.pack(">I", 3))
    return dropped_after(s)


def trickle():
    s = connect()
    s.settimeout(5)
    s.recv(18)
    # A valid, complete handshake: flags and OPT_GO, one byte a second
    # (it would take 30 s).
    go = struct.pack(">I", 3) + struct.pack(
        ">QII", raw.IHAVEOPT, raw.OPT_GO, 6) + struct.pack(">IH", 0, 0)
    return dropped_after(s, send=go, interval=1.0)


def trickle_fast():
    # One byte every 0.4 s.
    s = connect()
    s.settimeout(5)
    s.recv(18)
    junk = struct.pack(">I", 3) + struct.pack(">QII", raw.IHAVEOPT, 0x99,
                                              200) + b"x" * 200
    return dropped_after(s, send=junk, interval=0.4)


def option_stall():
    c = raw.Client(sock)
    c.send_option(5)            # STARTTLS: refused, TLS is off here
    c.option_reply()
    # Then nothing more.
    return dropped_after(c.s)


def tls_stall():
    """STARTTLS accepted, then no ClientHello."""
    c = raw.Client(tls_sock)
    c.send_option(5)
    _, rtype, _ = c.option_reply()
    assert rtype == raw.REP_ACK, "STARTTLS: 0x%x" % rtype
    return dropped_after(c.s)


def tls_idle():
    """A TLS session set up, then no option at all."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(t.path("pki/ca-cert.pem"))
    c = raw.Client(tls_sock)
    c.send_option(5)
    c.option_reply()
    c.s = ctx.wrap_socket(c.s, server_hostname="localhost")
    return dropped_after(c.s)


def tls_half():
    """STARTTLS accepted, then half a ClientHello."""
    c = raw.Client(tls_sock)
    c.send_option(5)
    c.option_reply()
    c.s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    return dropped_after(c.s)


threads = [threading.Thread(target=case, args=(n, f)) for n, f in (
    ("silent", silent), ("flags then nothing", flags_then_nothing),
    ("trickle 1 byte/s", trickle), ("trickle 1 byte/0.4s", trickle_fast),
    ("option then nothing", option_stall))]
tls_sock = None
if subprocess.call(["sh", "-c", "command -v certtool"],
                   stdout=subprocess.DEVNULL) == 0:
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.check_call(["bash", os.path.join(here, "tls-functions.sh"),
                           "make-pki", t.tmpdir])
    t.start("tls", "--timeout=%d" % TIMEOUT, "--tls=on",
            "--tls-certificates=" + t.path("pki"), "memory", "1M")
    tls_sock = t.sock
    threads += [threading.Thread(target=case, args=(n, f)) for n, f in (
        ("STARTTLS then nothing", tls_stall),
        ("half a ClientHello", tls_half),
        ("TLS up, then nothing", tls_idle))]
for th in threads:
    th.start()

# Meanwhile a client completes its handshake, then idles past the
# timeout, and is still served; fresh clients are served too.
c = raw.connect(sock)
time.sleep(TIMEOUT + 1.5)
c.send(raw.CMD_READ, 0, 512)
r = c.reply()
assert r.error == 0, "client idle after its handshake: %r" % r
c.close()
h = t.connect(uri, meta=False)
assert h.get_size() == 1 << 20
h.shutdown()

for th in threads:
    th.join(30)
failed = []
for name, v in results.items():
    print("%-22s dropped after %s" % (
        name, "%.1fs" % v if isinstance(v, float) else repr(v)))
    if not isinstance(v, float) or v > TIMEOUT + GRACE:
        failed.append(name)
assert not failed, "not dropped within %.1fs: %s" % (TIMEOUT + GRACE,
                                                     ", ".join(failed))
assert t.proc.poll() is None, "server died"
print("hostile-slowloris: OK")
