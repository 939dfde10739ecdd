#!/usr/bin/python3
"""The nbdkit module's helpers nbdkit.error, parse_int, realpath and
stdio_safe; a plugin's block_size returning None (no constraints, in
both its forms); and a failing callback's traceback logged exactly
once."""
import os
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

nbdtest.require_ours()
t = nbdtest.Test()
real = os.path.realpath(t.tmpdir)
os.symlink(real, t.path("link"))

script = t.path("helpers.py")
with open(script, "w") as f:
    f.write('''
import errno
import nbdkit
API_VERSION = 3
results = {}
def config_complete():
    results["int"] = nbdkit.parse_int("n", "0x10") + nbdkit.parse_int("n", "-3")
    try:
        nbdkit.parse_int("count", "12abc")
        results["bad_int"] = "accepted"
    except ValueError as e:
        results["bad_int"] = "ValueError" if "count" in str(e) else str(e)
    results["real"] = nbdkit.realpath(%r)
    try:
        nbdkit.realpath("/nonexistent/x")
        results["bad_real"] = "accepted"
    except OSError as e:
        results["bad_real"] = e.errno
    results["stdio"] = nbdkit.stdio_safe()
    nbdkit.error("a message from the script")
def get_size(h): return 1 << 20
def block_size(h, client_requested): return None
def pread(h, buf, offset, flags):
    if offset == 0:
        data = results_text().encode()
        buf[:len(data)] = data
        return
    raise RuntimeError("the one traceback")
def results_text():
    return repr(sorted(results.items()))
''' % t.path("link/helpers.py"))

log = t.path("stderr")
with open(log, "w") as err:
    sys.stderr.flush()
    uri = None
    sock = t.path("h.sock")
    p = subprocess.Popen([nbdtest.NBDKIT, "-U", sock, "-P", t.path("h.pid"),
                          "-f", "python", script], stderr=err)
    t.procs.append(p)
    import time
    for _ in range(200):
        if os.path.exists(t.path("h.pid")) and os.path.getsize(t.path("h.pid")):
            break
        time.sleep(0.05)
    uri = "nbd+unix:///?socket=" + sock

h = nbd.NBD()
h.set_request_block_size(True)
h.connect_uri(uri)
t.handles.append(h)
got = h.pread(512, 0).rstrip(b"\0").decode()
want = repr(sorted({
    "int": 13, "bad_int": "ValueError",
    "real": os.path.join(real, "helpers.py"),
    "bad_real": 2, "stdio": True}.items()))
assert got == want, (got, want)
# block_size None: no constraints, so the server's defaults.
assert h.get_block_size(nbd.SIZE_MINIMUM) == 1, h.get_block_size(nbd.SIZE_MINIMUM)
nbdtest.expect_error(lambda: h.pread(512, 4096), None, "pread raising")
h.shutdown()
t.handles.remove(h)

# The old form, block_size(h), returning None works too.
script2 = t.path("bs1.py")
with open(script2, "w") as f:
    f.write('''
API_VERSION = 3
def get_size(h): return 1 << 20
def block_size(h): return None
def pread(h, buf, offset, flags): buf[:] = b"z" * len(buf)
''')
uri2 = t.start("bs1", "python", script2)
h2 = t.connect(uri2)
assert h2.pread(4, 1) == b"zzzz"
assert h2.get_block_size(nbd.SIZE_MINIMUM) == 1

p.terminate()
p.wait()
text = open(log).read()
assert text.count("a message from the script") == 1, text
assert text.count("RuntimeError: the one traceback") == 1, text
assert text.count("Traceback (most recent call last)") == 1, text
print("ok")
