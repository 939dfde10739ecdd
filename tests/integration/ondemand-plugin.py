#!/usr/bin/python3
"""ondemand (the C plugin): two exports get separate ext4 filesystems
(blkid on a copy: type and label), kept in dir= across connections and
a server restart; NAME:64M makes a 64 MiB disk and a later plain NAME
finds it; NAME:SIZE over max-size= is refused with a message naming
the limit; unsafe names (., /, :) are refused; a second client of the
same export is refused, or waits with wait=true; the exports are
listed; command= runs a script with $disk, $size and extra variables;
"" is the export "default"."""
import os
import shutil
import subprocess
import sys
import threading
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

os.environ["PATH"] += ":/usr/sbin:/sbin"
for tool in ("mke2fs", "blkid", "nbdinfo"):
    if not shutil.which(tool):
        nbdtest.skip(tool + " not installed")
t = nbdtest.Test()
exports = t.path("exports")
os.mkdir(exports)


def conn(uri, name, **opts):
    h = nbd.NBD()
    for k, v in opts.items():
        getattr(h, "set_" + k)(v)
    h.set_export_name(name)
    h.connect_unix(t.sock)
    t.handles.append(h)
    return h


def blkid(path):
    return subprocess.run(["blkid", "-o", "export", path], check=True,
                          stdout=subprocess.PIPE).stdout.decode()


uri = t.start("od", "ondemand", "dir=" + exports, "32M", "label=OD",
              "max-size=1G")
h1 = conn(uri, "one")
h2 = conn(uri, "two")
assert h1.get_size() == 32 << 20 and h2.get_size() == 32 << 20
b1 = blkid(os.path.join(exports, "one"))
assert "TYPE=ext4" in b1 and "LABEL=OD" in b1, b1
mark = os.urandom(4096)
h1.pwrite(mark, 20 << 20)
h1.flush()
assert h2.pread(4096, 20 << 20) != mark
# A second client of "one" is refused while the first holds it.
nbdtest.expect_error(lambda: conn(uri, "one"), what="locked export")
for h in (h1, h2):
    h.shutdown()
# Reconnect: the data is kept.
h = conn(uri, "one")
assert h.pread(4096, 20 << 20) == mark
h.shutdown()
# NAME:SIZE picks the size of a new export; NAME finds it again.
h = conn(uri, "big:64M")
assert h.get_size() == 64 << 20, h.get_size()
h.pwrite(b"big data", 0)
h.shutdown()
h = conn(uri, "big")
assert h.get_size() == 64 << 20
assert h.pread(8, 0) == b"big data"
h.shutdown()
assert os.path.getsize(os.path.join(exports, "big")) == 64 << 20
# "" is "default".
h = conn(uri, "")
assert h.get_size() == 32 << 20
h.shutdown()
assert os.path.exists(os.path.join(exports, "default"))
# Listed.
out = subprocess.run(["nbdinfo", "--list", "--json", uri], check=True,
                     stdout=subprocess.PIPE).stdout.decode()
for name in ("one", "two", "big", ""):
    assert '"export-name": "%s"' % name in out, (name, out)
assert '"default"' not in out, out
assert sorted(os.listdir(exports)) == ["big", "default", "one", "two"], \
    os.listdir(exports)
t.proc.terminate()
t.proc.wait()


def refused(name, export, *args, expect):
    log = t.path(name + ".log")
    with open(log, "w") as f:
        p = subprocess.run([nbdtest.NBDKIT, "-U", "-", "ondemand",
                            "dir=" + exports, "32M", *args, "--run",
                            "nbdinfo --size \"nbd+unix:///%s?socket="
                            "$unixsocket\"" % export],
                           stdout=subprocess.PIPE, stderr=f, timeout=30)
    msg = open(log).read()
    assert p.returncode != 0, name
    assert expect in msg, (name, msg)


refused("over", "huge:2G", "max-size=1G",
        expect="2G is more than the largest size allowed, max-size=1G")
refused("overdefault", "huge:17G", expect="max-size=16G")
refused("dot", "..", expect="refused")
refused("dots", "a.b", expect="refused")
refused("dash", "-rf", expect="starts with '-'")
refused("badsize", "x:lots", expect="'lots' is not a size")
refused("cmdfails", "new", "command=exit 4", expect="exit status 4")
assert sorted(os.listdir(exports)) == ["big", "default", "one", "two"], \
    os.listdir(exports)

# After a restart the exports are still there; wait=true makes a
# second client wait for the first.
uri = t.start("od2", "ondemand", "dir=" + exports, "32M", "wait=true")
h = conn(uri, "one")
assert h.pread(4096, 20 << 20) == mark
got = []


def second():
    h2 = conn(uri, "one")
    got.append(h2.pread(4096, 20 << 20))
    h2.shutdown()


th = threading.Thread(target=second)
th.start()
time.sleep(0.5)
assert got == [] and th.is_alive()
h.shutdown()
th.join(10)
assert got == [mark]
t.proc.terminate()
t.proc.wait()

# command= and extra variables.
script = 'truncate -s "$size" "$disk"; printf "%s" "$greet" > "$disk.x";' \
         ' printf "%s" "$greet" | dd of="$disk" conv=notrunc 2>/dev/null'
uri = t.start("cmd", "ondemand", "dir=" + exports, "1M",
              "command=" + script, "greet=hi there")
h = conn(uri, "scripted:2M")
assert h.get_size() == 2 << 20
assert h.pread(8, 0) == b"hi there"
h.shutdown()
# The script's other file went with its temporary directory.
assert sorted(os.listdir(exports)) == ["big", "default", "one", "scripted",
                                       "two"], os.listdir(exports)
print("ondemand-plugin: OK")
