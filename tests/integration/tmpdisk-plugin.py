#!/usr/bin/python3
"""tmpdisk: each connection gets its own fresh disk (a write on one is
not seen by another, nor by a later connection); the default is ext4
with label= (checked with blkid and dumpe2fs on a copy), type= picks
another mkfs; command= runs a script with $disk, $size and extra
variables; the disk files are gone after the connections close; a
failing command refuses the connection with its exit status."""
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd  # noqa: F401
import nbdtest

os.environ["PATH"] += ":/usr/sbin:/sbin"
for tool in ("mke2fs", "dumpe2fs", "blkid"):
    if not shutil.which(tool):
        nbdtest.skip(tool + " not installed")
t = nbdtest.Test()
tmp = t.path("tmp")
os.mkdir(tmp)
os.environ["TMPDIR"] = tmp


def copy_out(h, name):
    out = t.path(name)
    with open(out, "wb") as f:
        size = h.get_size()
        for off in range(0, size, 1 << 20):
            f.write(h.pread(min(1 << 20, size - off), off))
    return out


uri = t.start("d", "tmpdisk", "64M", "label=scratch")
h1 = t.connect(uri)
h2 = t.connect(uri)
assert h1.get_size() == 64 << 20
img = copy_out(h1, "c1.img")
out = subprocess.run(["blkid", "-o", "export", img], check=True,
                     stdout=subprocess.PIPE).stdout.decode()
assert "TYPE=ext4" in out and "LABEL=scratch" in out, out
out = subprocess.run(["dumpe2fs", "-h", img], check=True,
                     stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL).stdout.decode()
assert "Filesystem volume name:   scratch" in out, out
# Independent disks: overwrite the superblock area on one only.
junk = os.urandom(8192)
h1.pwrite(junk, 0)
h1.flush()
assert h1.pread(8192, 0) == junk
assert h2.pread(8192, 0) != junk
img2 = copy_out(h2, "c2.img")
subprocess.run(["e2fsck", "-fn", img2], check=True, stdout=subprocess.PIPE)
h3 = t.connect(uri)
assert h3.pread(8192, 0) != junk
# Different UUIDs: different filesystems, not copies.
u1 = subprocess.run(["blkid", "-s", "UUID", "-o", "value", img], check=True,
                    stdout=subprocess.PIPE).stdout
u2 = subprocess.run(["blkid", "-s", "UUID", "-o", "value", img2], check=True,
                    stdout=subprocess.PIPE).stdout
assert u1 and u1 != u2
# While connected the disks are already unlinked from TMPDIR.
assert os.listdir(tmp) == [], os.listdir(tmp)
for h in (h1, h2, h3):
    h.shutdown()
t.proc.terminate()
t.proc.wait()

# type=ext2 (no journal).
uri = t.start("e2", "tmpdisk", "size=16M", "type=ext2")
img = copy_out(t.connect(uri), "e2.img")
out = subprocess.run(["blkid", "-o", "export", img], check=True,
                     stdout=subprocess.PIPE).stdout.decode()
assert "TYPE=ext2" in out, out
t.proc.terminate()
t.proc.wait()

# command= with extra variables; the final size is what it made.
script = ('truncate -s $((size / 2)) "$disk"\n'
          'printf "%s:%s" "$greeting" "$size" | dd of="$disk" conv=notrunc'
          ' 2>/dev/null\n')
uri = t.start("c", "tmpdisk", "1M", "command=" + script, "greeting=hello")
h = t.connect(uri)
assert h.get_size() == 512 * 1024, h.get_size()
want = b"hello:1048576"
assert h.pread(len(want), 0) == want
assert h.pread(100, len(want)) == bytes(100)
h.pwrite(b"changed", 0)
h.shutdown()
h = t.connect(uri)
assert h.pread(len(want), 0) == want
h.shutdown()
t.proc.terminate()
t.proc.wait()
assert os.listdir(tmp) == [], os.listdir(tmp)


def refused(name, *args, expect):
    log = t.path(name + ".log")
    with open(log, "w") as f:
        p = subprocess.run([nbdtest.NBDKIT, "-U", "-", "tmpdisk", *args,
                            "--run", "nbdinfo --size \"$uri\""],
                           stdout=subprocess.PIPE, stderr=f, timeout=30)
    msg = open(log).read()
    assert p.returncode != 0, name
    assert expect in msg, (name, msg)


refused("fails", "1M", "command=exit 3", expect="exit status 3")
refused("nodisk", "1M", "command=true", expect="did not make the disk")
refused("badtype", "1M", "type=nosuchfs", expect="exit status")
refused("nosize", "label=x", expect="size")
refused("badvar", "1M", "a-b=1", expect="a-b")
assert os.listdir(tmp) == [], os.listdir(tmp)
print("tmpdisk-plugin: OK")
