#!/usr/bin/python3
"""iso plugin: directories as an ISO 9660 image made by xorriso (or
prog=genisoimage); isoinfo finds the files, with their contents, and
the volume id given in params; writes are refused."""
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest

for prog in ("xorriso", "genisoimage", "isoinfo", "nbdcopy"):
    if not shutil.which(prog):
        nbdtest.skip(prog + " not installed")

t = nbdtest.Test()
d1, d2 = t.path("d1"), t.path("d2")
os.makedirs(os.path.join(d1, "sub"))
os.makedirs(d2)
big = os.urandom(100000)
files = {
    "/hello.txt": (d1, b"hello\n"),
    "/A long name with spaces.text": (d1, b"long\n"),
    "/sub/big.bin": (d1, big),
    "/from-second-dir": (d2, b"second\n"),
}
for name, (d, data) in files.items():
    with open(d + name, "wb") as f:
        f.write(data)


def check(uri, name, volid):
    img = t.path(name)
    h = t.connect(uri)
    nbdtest.expect_error(lambda: h.pwrite(b"x", 0), what="write")
    assert h.pread(5, 0x8001) == b"CD001"
    subprocess.run(["nbdcopy", uri, img], check=True, timeout=60)
    info = subprocess.run(["isoinfo", "-d", "-i", img], check=True,
                          capture_output=True, timeout=30).stdout
    assert b"Volume id: " + volid.encode() in info, info
    listing = subprocess.run(["isoinfo", "-R", "-f", "-i", img], check=True,
                             capture_output=True, timeout=30).stdout.decode()
    for path, (_, data) in files.items():
        assert path in listing.splitlines(), (path, listing)
        got = subprocess.run(["isoinfo", "-R", "-i", img, "-x", path],
                             check=True, capture_output=True,
                             timeout=30).stdout
        assert got == data, (path, len(got))


uri = t.start("xorriso", "iso", d1, "dir=" + d2,
              "params=-JrT -V 'My Disk'")
check(uri, "x.iso", "My Disk")
uri = t.start("geniso", "iso", d1, d2, "prog=genisoimage", "params=-r -V gen")
check(uri, "g.iso", "gen")

r = subprocess.run([nbdtest.NBDKIT, "--dump-plugin", "iso"],
                   capture_output=True, timeout=30)
assert b"iso_prog=xorriso\n" in r.stdout, r.stdout
r = subprocess.run([nbdtest.NBDKIT, "--run", "true", "iso", d1,
                    "params=--no-such-option"], capture_output=True,
                   timeout=30)
assert r.returncode != 0 and b"failed" in r.stderr, r
print("iso-plugin: OK")
