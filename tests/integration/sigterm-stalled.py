#!/usr/bin/python3
"""SIGTERM while a client has stopped reading mid-reply: the server
waits a bounded grace time for replies in flight (3 s), then shuts the
client's socket down, so the blocked send fails, and exits with status
0 well within 10 s; an idle client does not delay the exit either.
Our server only (nbdkit 1.32 waits for ever)."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

nbdtest.require_ours()
MiB = 1 << 20

t = nbdtest.Test()
uri = t.start("mem", "memory", str(64 * MiB))

# Data, not holes: the replies are then as large as the reads.
w = raw.connect(t.sock)
for i in range(8):
    w.send(raw.CMD_WRITE, i * 4 * MiB, 4 * MiB, data=os.urandom(4 * MiB))
    assert w.reply().error == 0
w.close()

idle = raw.connect(t.sock)
stalled = raw.connect(t.sock)
for i in range(8):
    stalled.send(raw.CMD_READ, i * 4 * MiB, 4 * MiB)
time.sleep(0.5)

start = time.monotonic()
t.proc.terminate()
try:
    rc = t.proc.wait(timeout=15)
except Exception:
    raise AssertionError("server still running 15 s after SIGTERM with a "
                         "stalled client")
elapsed = time.monotonic() - start
print("exited with %d, %.1f s after SIGTERM" % (rc, elapsed))
assert rc == 0, "exit status %d" % rc
assert elapsed < 10, elapsed
stalled.close()
idle.close()
print("sigterm-stalled: OK")
