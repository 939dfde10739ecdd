#!/usr/bin/python3
"""log: nbdkit's log format, each request entering ("... ") and leaving
("...Act id=N return=R"), ids per connection; Ready, Preconnect,
Connect and Disconnect lines; failures with error=ENAME; extents listed;
logappend; logscript= run for every event with the fields as shell
variables; no logfile= and no logscript= is no logging, not an error."""
import os
import re
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

t = nbdtest.Test()
log = t.path("log.txt")
uri = t.start("mem", "--filter=log", "memory", "1M", "logfile=" + log)
h1 = t.connect(uri)
h2 = t.connect(uri)
h1.pwrite(b"a" * 512, 1024, nbd.CMD_FLAG_FUA)
h1.pread(512, 1024)
h2.zero(4096, 8192)
h2.flush()
h1.shutdown()
h2.shutdown()
t.handles.clear()
t.proc.terminate()
t.proc.wait()

lines = open(log).read().splitlines()
print("\n".join(lines))
TS = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} "
assert re.match(TS + "Ready thread_model=3$", lines[0]), lines[0]
body = [re.sub(TS, "", l) for l in lines]
for want in ("connection=1 Write id=1 offset=0x400 count=0x200 fua=1 ...",
             "connection=1 ...Write id=1 return=0",
             "connection=1 Read id=2 offset=0x400 count=0x200 ...",
             "connection=1 ...Read id=2 return=0",
             "connection=2 Zero id=1 offset=0x2000 count=0x1000 trim=1 "
             "fua=0 fast=0 ...",
             "connection=2 ...Zero id=1 return=0",
             "connection=2 Flush id=2 ...",
             "connection=1 Disconnect transactions=2"):
    assert want in body, want
assert sum(1 for l in body if re.match(r"Preconnect id=\d readonly=0 \.\.\.$",
                                        l)) == 2
assert sum(1 for l in body if re.match(
    r'connection=\d Connect export="" tls=0 size=0x100000 .*write=1', l)) == 2
# Each request enters before it leaves.
assert body.index("connection=1 ...Read id=2 return=0") > \
    body.index("connection=1 Read id=2 offset=0x400 count=0x200 ...")

# A failing request logs return=-1 and the error's name.
TESTPLUG = os.path.join(os.environ.get("BUILDDIR", "."),
                        "tests/plugins/nbdkit-testplug-plugin.so")
if os.path.exists(TESTPLUG) and nbdtest.OURS:
    uri = t.start("err", "--filter=log", TESTPLUG, "errno-write=ENOSPC",
                  "logfile=" + log, "logappend=true")
    h = t.connect(uri)
    nbdtest.expect_error(lambda: h.pwrite(b"x", 0), what="ENOSPC write")
    text = open(log).read()
    assert re.search(r"connection=1 \.\.\.Write id=1 return=-1 error=ENOSPC",
                     text), text
    assert text.startswith(lines[0]), "logappend=true replaced the file"

# Extents are listed; logscript sees the fields as variables.
log2 = t.path("log2.txt")
out = t.path("script.out")
script = ('echo "$type $act ${connection:-} ${id:-} ${offset:-} '
          '${extents[*]:-}" >> ' + out)
uri = t.start("data", "--filter=log", "data", "@32768 1", "size=64K",
              "logfile=" + log2, "logscript=" + script)
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(uri)
h.pread(512, 0)
h.block_status(65536, 0, lambda *a: 0)
h.shutdown()
text = open(log2).read()
print(text)
assert re.search(r'connection=1 \.\.\.Extents id=2 extents=\(0x0 0x8000 '
                 r'"hole,zero" 0x8000 0x8000 ""\) return=0', text), text
got = open(out).read().splitlines()
print("\n".join(got))
for want in ("PRINT Ready    ",
             "ENTER Read 1 1 0x0 ",
             "LEAVE Read 1 1  ",
             "ENTER Extents 1 2 0x0 ",
             "LEAVE Extents 1 2  0x0 0x8000 hole,zero 0x8000 0x8000 "):
    assert want in got, (want, got)

# Without logfile= and logscript= the filter is inactive.
r = subprocess.run([nbdtest.NBDKIT, "-U", "-", "--filter=log", "memory",
                    "1M", "--run", "nbdinfo --size $uri"],
                   capture_output=True, text=True, timeout=30,
                   cwd=t.path(""))
assert r.returncode == 0 and r.stdout.strip() == "1048576", r
print("filter-log: OK")
