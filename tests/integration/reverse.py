#!/usr/bin/python3
"""--reverse: the client listens and the server connects out to it.  A
listening Unix socket (and a TCP one on 127.0.0.1) accept the server's
call; libnbd then speaks as the client over the accepted socket, writes
and reads back; when the client leaves the server exits 0."""
import os
import socket
import subprocess
import sys
import tempfile

import nbd

nbdkit = os.environ.get("NBDKIT", "nbdkit")
if os.environ.get("OURS") != "1" or nbdkit == "/usr/bin/nbdkit":
    print("reverse: SKIP: our server only")
    sys.exit(77)

def serve_once(listener, args):
    p = subprocess.Popen([nbdkit, "--reverse"] + args + ["memory", "1M"])
    listener.settimeout(10)
    conn, _ = listener.accept()
    h = nbd.NBD()
    h.connect_socket(conn.detach())   # libnbd owns the fd now
    assert h.get_size() == 1048576
    h.pwrite(b"swapped", 4096)
    assert h.pread(7, 4096) == b"swapped"
    h.shutdown()
    del h
    assert p.wait(timeout=10) == 0, "server exit status"

with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "client.sock")
    l = socket.socket(socket.AF_UNIX)
    l.bind(path)
    l.listen(1)
    serve_once(l, ["-U", path])
    l.close()

l = socket.socket(socket.AF_INET)
l.bind(("127.0.0.1", 0))
l.listen(1)
serve_once(l, ["-p", str(l.getsockname()[1]), "-i", "127.0.0.1"])
l.close()

# Nobody listening: a clear error, non-zero exit.
r = subprocess.run([nbdkit, "--reverse", "-U", "/nonexistent/sock", "memory",
                    "1M"], capture_output=True, text=True, timeout=10)
assert r.returncode != 0 and "--reverse" in r.stderr, r

# --swap is nbdkit's: lock the server in memory (mlockall), then serve
# as usual, in the background too (the daemon holds the lock: a child
# does not inherit it).  Where the memory lock limit forbids it, a
# clear error.
import re
import time
with tempfile.TemporaryDirectory() as d:
    sock = os.path.join(d, "s")
    pidfile = os.path.join(d, "pid")
    r = subprocess.run([nbdkit, "--swap", "-U", sock, "-P", pidfile,
                        "memory", "1M"], capture_output=True, text=True,
                       timeout=10)
    if r.returncode != 0:
        assert "--swap: mlockall" in r.stderr, r
    else:
        for _ in range(100):
            if os.path.exists(pidfile) and os.path.getsize(pidfile):
                break
            time.sleep(0.1)
        pid = int(open(pidfile).read())
        try:
            h = nbd.NBD()
            h.connect_unix(sock)
            assert h.get_size() == 1048576
            h.shutdown()
            with open("/proc/%d/status" % pid) as f:
                locked = [l for l in f if l.startswith("VmLck:")][0]
            # The sanitizers' runtimes make mlockall a no-op.
            sanitized = subprocess.run(["ldd", nbdkit], capture_output=True,
                                       text=True).stdout
            if not re.search(r"lib(a|ub|t)san", sanitized):
                assert int(locked.split()[1]) > 0, locked
        finally:
            os.kill(pid, 15)
print("reverse: OK")
