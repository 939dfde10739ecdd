#!/usr/bin/python3
"""--watch: a script edited on disk is reloaded without a signal.  An
edit written in several steps makes one reload (after the file has
been quiet a while); a file replaced by a rename is followed too; a
connection held open keeps the code it opened on, a new one gets the
new code; a broken edit is reported at once and the last good code
keeps serving; fixing it reloads again.  Without --watch an edit
changes nothing."""

import os
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
tag = "%s"
def open(readonly, exportname, tls): return tag
def get_size(h): return 65536
def pread(h, buf, offset, flags):
    buf[:] = (h * len(buf))[:len(buf)].encode()
'''
FAILED = "python: reload failed: the code loaded before goes on serving"
RELOADED = "python: reloaded: new connections use the new code"


wait_log = nbdtest.wait_log


def start(name, *opts):
    script = t.path(name + ".py")
    with open(script, "w") as f:
        f.write(GOOD % "a1")
    log = t.path(name + ".err")
    err = open(log, "w")
    sock, pidf = t.path(name + ".sock"), t.path(name + ".pid")
    p = t.spawn([nbdtest.NBDKIT, "-U", sock, "-P", pidf, "-f", "-v"]
                + list(opts) + ["python", script], stderr=err)
    for _ in range(200):
        if os.path.exists(pidf) and os.path.getsize(pidf):
            break
        time.sleep(0.05)
    return p, script, log, "nbd+unix:///?socket=" + sock


p, script, log, uri = start("w", "--watch")
old = t.connect(uri)
assert old.pread(4, 0) == b"a1a1"

# Edited in place, in steps, as an editor may: one reload, at the end.
with open(script, "w") as f:
    text = GOOD % "b2"
    f.write(text[:40])
    f.flush()
    time.sleep(0.05)
    f.write(text[40:])
os.chmod(script, 0o644)
wait_log(log, RELOADED, 1)
time.sleep(0.6)
with open(log) as f:
    assert f.read().count(RELOADED) == 1, "one edit, several reloads"
new = t.connect(uri)
assert new.pread(4, 0) == b"b2b2", new.pread(4, 0)
assert old.pread(4, 0) == b"a1a1", old.pread(4, 0)

# Replaced by a rename (a new file, a new inode).
with open(script + ".tmp", "w") as f:
    f.write(GOOD % "c3")
os.rename(script + ".tmp", script)
wait_log(log, RELOADED, 2)
h = t.connect(uri)
assert h.pread(4, 0) == b"c3c3", h.pread(4, 0)

# Broken: reported at once, before any connection; nothing changes.
with open(script, "w") as f:
    f.write("def pread(h, buf\n")
text = wait_log(log, FAILED, 1)
assert 'w.py", line 1' in text, text
h = t.connect(uri)
assert h.pread(4, 0) == b"c3c3", h.pread(4, 0)

# Fixed: reloads.
with open(script, "w") as f:
    f.write(GOOD % "d4")
wait_log(log, RELOADED, 3)
h = t.connect(uri)
assert h.pread(4, 0) == b"d4d4", h.pread(4, 0)
assert old.pread(4, 0) == b"a1a1" and new.pread(4, 0) == b"b2b2"
assert p.poll() is None, "the server exited"

# Without --watch, an edit changes nothing.
p2, script2, log2, uri2 = start("n")
assert t.connect(uri2).pread(4, 0) == b"a1a1"
with open(script2, "w") as f:
    f.write(GOOD % "b2")
time.sleep(1)
assert t.connect(uri2).pread(4, 0) == b"a1a1"
with open(log2) as f:
    text = f.read()
assert "reload" not in text, text
print("PASS")
