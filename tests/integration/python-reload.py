#!/usr/bin/python3
"""Python host, plugins: SIGHUP reloads the script.  A connection open
across the reload keeps working on the code it opened on (its
functions, their module globals, its handle); a connection opened
afterwards gets the new code, with the same parameters; a script that
no longer loads (a syntax error, an exception in config_complete) is
reported and the last good one keeps serving."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
if not os.path.exists(os.path.join(BUILDDIR, "plugins",
                                   "nbdkit-python-plugin.so")):
    nbdtest.skip("the Python host is not built")

t = nbdtest.Test()
GOOD = '''
import nbdkit
API_VERSION = 3
size = nbdkit.Param("size", nbdkit.SIZE, required=True)
params = [size]
tag = "%s"
%s
def thread_model(): return nbdkit.THREAD_MODEL_PARALLEL
def open(readonly, exportname, tls): return {"v": "%s"}
def get_size(h): return size.value
def pread(h, buf, offset, flags):
    buf[:] = ((h["v"] + tag) * len(buf))[:len(buf)].encode()
'''
BROKEN_SYNTAX = "def pread(h, buf\n"
BROKEN_CONFIG = ("def config_complete():\n"
                 "    raise RuntimeError('refusing to load')\n")


write = nbdtest.write_atomic
FAILED = nbdtest.RELOAD_FAILED
RELOADED = nbdtest.RELOADED
wait_log = nbdtest.wait_log


script = t.path("r.py")
write(script, GOOD % ("1", "", "a"))
log = t.path("r.err")
err = open(log, "w")
sock, pidf = t.path("r.sock"), t.path("r.pid")
p = t.spawn([nbdtest.NBDKIT, "-U", sock, "-P", pidf, "-f", "-v", "python", script,
             "size=64K"], stderr=err)
for _ in range(200):
    if os.path.exists(pidf) and os.path.getsize(pidf):
        break
    time.sleep(0.05)
uri = "nbd+unix:///?socket=" + sock

old = t.connect(uri)
assert old.pread(4, 0) == b"a1a1"

write(script, GOOD % ("2", "", "b"))
p.send_signal(signal.SIGHUP)
wait_log(log, RELOADED, 1)
# The old connection: its functions, and the globals they see (tag).
assert old.pread(4, 0) == b"a1a1", old.pread(4, 0)
new = t.connect(uri)
assert new.pread(4, 0) == b"b2b2", new.pread(4, 0)
assert new.get_size() == 65536

# Broken scripts change nothing, and are reported at once, before any
# connection: the server's message and the script's error (its file
# and line).
for i, (broken, why) in enumerate(
        ((BROKEN_SYNTAX, 'r.py", line 1'),
         (GOOD % ("3", BROKEN_CONFIG, "c"), "refusing to load"))):
    write(script, broken)
    p.send_signal(signal.SIGHUP)
    text = wait_log(log, "python: " + FAILED, i + 1)
    assert why in text, text
    h = t.connect(uri)
    assert h.pread(4, 0) == b"b2b2", h.pread(4, 0)
    assert old.pread(4, 0) == b"a1a1" and new.pread(4, 0) == b"b2b2"

write(script, GOOD % ("4", "", "d"))
p.send_signal(signal.SIGHUP)
wait_log(log, RELOADED, 2)
h = t.connect(uri)
assert h.pread(4, 0) == b"d4d4"
assert old.pread(4, 0) == b"a1a1" and new.pread(4, 0) == b"b2b2"
assert p.poll() is None, "the server exited"
err.close()
text = open(log).read()
assert text.count(FAILED) == 2, text
assert "SyntaxError" in text, text
print("PASS")
