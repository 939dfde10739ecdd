#!/usr/bin/python3
"""--timeout bounds the sends of the handshake too, not only its reads:
a client that asks for export lists (NBD_OPT_LIST, about 60 KiB each
here, from `file dir=` with many long names) and never reads them
leaves the server blocked in a send on a full socket.  With
--timeout=2 the server must give up on it within a few seconds, while
the client still has not read a byte: its socket shows the hang-up,
and reading then yields fewer lists than asked for before the end.
Other clients are served meanwhile.  Our server only (nbdkit 1.32 has
no --timeout)."""
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

nbdtest.require_ours()
TIMEOUT = 2
LISTS = 40
OPT_LIST = 3
REP_SERVER = 2

t = nbdtest.Test()
d = t.path("exports")
os.mkdir(d)
for i in range(300):
    with open(os.path.join(d, "%03d-%s" % (i, "x" * 200)), "wb") as f:
        f.write(b"\0" * 512)
uri = t.start("dir", "--timeout=%d" % TIMEOUT, "file", "dir=" + d)

c = raw.Client(t.sock, timeout=30)
for _ in range(LISTS):
    c.send_option(OPT_LIST)
start = time.monotonic()

# Another client is served while that one stalls the server's sends.
s = raw.Client(t.sock)
replies = s.option(OPT_LIST)
assert len(replies) == 301 and replies[-1][0] == raw.REP_ACK, len(replies)
s.close()

# The server hangs up while the client still reads nothing.
p = select.poll()
p.register(c.s, select.POLLHUP)
hup = None
while time.monotonic() - start < TIMEOUT + 4:
    if p.poll(100):
        hup = time.monotonic() - start
        break
assert hup is not None, \
    "server still connected %d s after a handshake timeout of %d s" % (
        TIMEOUT + 4, TIMEOUT)
print("hang-up %.1f s after the client stopped reading" % hup)

# What had been sent before then is still there, but not every list.
acks = 0
try:
    while True:
        _, rtype, _ = c.option_reply()
        if rtype == raw.REP_ACK:
            acks += 1
except (EOFError, ConnectionError, socket.timeout, AssertionError):
    pass
c.close()
print("%d of %d lists answered before the drop" % (acks, LISTS))
assert acks < LISTS, "the server answered every list: not dropped"
print("timeout-stalled-reader: OK")
