#!/usr/bin/python3
"""tar: members of tar files made by GNU tar (its default GNU format,
with a long path name stored in an 'L' entry; --format=posix, where
the long name is a pax path= record; --format=ustar, name split into
prefix and name), read and written through the filter, then extracted
with tar xf to check the written bytes landed in the member and nothing
else changed; tar.gz and tar.xz through the gzip and xz filters;
tar-limit=, a missing member, a corrupt header and a truncated file
give errors."""
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

if not shutil.which("tar") or b"GNU tar" not in subprocess.run(
        ["tar", "--version"], stdout=subprocess.PIPE).stdout:
    nbdtest.skip("GNU tar not installed")
t = nbdtest.Test()

src = t.path("src")
longdir = os.path.join("a" * 60, "b" * 60, "c" * 30)
os.makedirs(os.path.join(src, longdir))
files = {
    "before.txt": b"before\n" * 1000,
    "disk.img": os.urandom(300000) + bytes(200000) + os.urandom(12345),
    os.path.join(longdir, "long-name-disk.img"): os.urandom(70000),
    "after.bin": os.urandom(5000),
}
for name, content in files.items():
    open(os.path.join(src, name), "wb").write(content)
order = ["before.txt", "disk.img", longdir, "after.bin"]


def make_tar(name, *opts):
    tf = t.path(name)
    subprocess.run(["tar", "cf", tf, *opts, "-C", src, *order], check=True)
    return tf


def extract(tf, member):
    return subprocess.run(["tar", "xOf", tf, member], check=True,
                          stdout=subprocess.PIPE).stdout


longname = os.path.join(longdir, "long-name-disk.img")
for fmt in ("gnu", "posix", "ustar"):
    tf = make_tar("t-%s.tar" % fmt, "--format=" + fmt)
    cur = dict(files)
    for member in ("disk.img", longname):
        want = bytearray(cur[member])
        uri = t.start("s", "--filter=tar", "file", tf, "tar-entry=" + member)
        h = t.connect(uri)
        assert h.get_size() == len(want), (fmt, member, h.get_size())
        assert not h.is_read_only()
        assert h.pread(len(want), 0) == want, (fmt, member)
        assert h.pread(100, 1000) == want[1000:1100]
        # Write at the start, the middle and the very end of the member.
        for off, chunk in ((0, b"START"), (len(want) // 2, os.urandom(4096)),
                           (len(want) - 3, b"END")):
            h.pwrite(chunk, off)
            want[off:off + len(chunk)] = chunk
        h.zero(1000, 2000)
        want[2000:3000] = bytes(1000)
        h.flush()
        assert h.pread(len(want), 0) == want
        # Writing or reading past the member's end is refused.
        nbdtest.expect_error(lambda: h.pwrite(b"xx", len(want) - 1),
                             what="write past the end")
        h.shutdown()
        t.proc.terminate()
        t.proc.wait()
        # tar agrees, and the other members are untouched.
        assert extract(tf, member) == want, (fmt, member)
        cur[member] = bytes(want)
        for other in cur:
            assert extract(tf, other) == cur[other], (fmt, other)
        subprocess.run(["tar", "tf", tf], check=True, stdout=subprocess.PIPE)

# A compressed tar through the gzip and xz filters, read-only.
tf = make_tar("plain.tar")
for comp, flt in (("gzip", "gzip"), ("xz", "xz")):
    if not shutil.which(comp):
        continue
    subprocess.run("%s -c %s > %s.%s" % (comp, tf, tf, flt), shell=True,
                   check=True)
    uri = t.start(flt, "-r", "file", "%s.%s" % (tf, flt), "--filter=tar",
                  "tar-entry=disk.img", "--filter=" + flt)
    h = t.connect(uri)
    assert h.pread(h.get_size(), 0) == files["disk.img"], flt


def refused(name, tarfile, *opts, expect):
    log = t.path(name + ".log")
    with open(log, "w") as f:
        p = subprocess.run([nbdtest.NBDKIT, "-U", "-", "file", tarfile,
                            "--filter=tar", *opts,
                            "--run", "nbdinfo --size $uri"],
                           stdout=subprocess.PIPE, stderr=f, timeout=30)
    msg = open(log).read()
    assert p.returncode != 0, name
    assert expect in msg, (name, msg)


refused("missing", tf, "tar-entry=nosuch", expect="nosuch not found")
refused("limit", tf, "tar-entry=after.bin", "tar-limit=10k",
        expect="tar-limit")
# disk.img is found within a limit that covers its header.
uri = t.start("lim", "file", tf, "--filter=tar", "tar-entry=disk.img",
              "tar-limit=20k")
assert t.connect(uri).get_size() == len(files["disk.img"])
bad = bytearray(open(tf, "rb").read())
bad[7680 + 3] ^= 1  # in the header of disk.img (before.txt: 512 + 7168)
open(t.path("bad.tar"), "wb").write(bad)
refused("corrupt", t.path("bad.tar"), "tar-entry=disk.img",
        expect="checksum")
open(t.path("trunc.tar"), "wb").write(bad[:1024 + 1000])
refused("trunc", t.path("trunc.tar"), "tar-entry=after.bin",
        expect="tar:")
refused("notar", t.path("src/after.bin"), "tar-entry=x", expect="tar:")
print("filter-tar: OK")
