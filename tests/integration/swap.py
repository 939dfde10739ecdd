#!/usr/bin/python3
"""--swap: the client listens and the server connects out to it.  A
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
    print("swap: SKIP: our server only")
    sys.exit(77)

def serve_once(listener, args):
    p = subprocess.Popen([nbdkit, "--swap"] + args + ["memory", "1M"])
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
r = subprocess.run([nbdkit, "--swap", "-U", "/nonexistent/sock", "memory",
                    "1M"], capture_output=True, text=True, timeout=10)
assert r.returncode != 0 and "--swap" in r.stderr, r
print("swap: OK")
