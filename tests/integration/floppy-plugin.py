#!/usr/bin/python3
"""floppy plugin: a directory as a FAT32 disk.  mtools lists and copies
the files back (long names, a file over several clusters, a
subdirectory), fsck.fat finds no error, and writes are refused."""
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest

for prog in ("mdir", "mcopy", "fsck.fat", "nbdcopy", "sfdisk"):
    if not shutil.which(prog):
        nbdtest.skip(prog + " not installed")

t = nbdtest.Test()
src = t.path("src")
os.makedirs(os.path.join(src, "Sub Dir", "deeper"))
files = {
    "HELLO.TXT": b"hello\n",
    "big.bin": os.urandom(3 * 4096 + 123),
    "A rather long file name, with spaces.text": b"long name\n",
    "empty": b"",
    # Made-up 8.3 names must not take an existing one: "A b.txt" would
    # be AB~1.TXT, which is the exact name of the next file.
    "A b.txt": b"space\n",
    "AB~1.TXT": b"exact\n",
    "Sub Dir/inner.txt": b"inner\n",
    "Sub Dir/deeper/x.y": b"deep\n" * 2000,
}
for name, data in files.items():
    with open(os.path.join(src, name), "wb") as f:
        f.write(data)
os.symlink("HELLO.TXT", os.path.join(src, "link"))   # left out

env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
uri = t.start("floppy", "floppy", src, "label=MyDisk")
h = t.connect(uri)
nbdtest.expect_error(lambda: h.pwrite(b"x", 0), what="write")
disk = t.path("disk.img")
subprocess.run(["nbdcopy", uri, disk], check=True, timeout=120)
out = subprocess.run(["sfdisk", "--json", disk], check=True,
                     capture_output=True, timeout=30).stdout
assert b'"start": 2048' in out and b'"type": "c"' in out, out

img = disk + "@@1M"
listing = subprocess.run(["mdir", "-i", img, "::"], check=True, env=env,
                         capture_output=True, timeout=30).stdout.decode()
assert "MYDISK" in listing, listing
for name in ("HELLO", "big.bin", "A rather long file name, with spaces.text",
             "Sub Dir"):
    assert name in listing, (name, listing)
assert "link" not in listing, listing
for name, data in files.items():
    got = subprocess.run(["mcopy", "-n", "-i", img, "::" + name, "-"],
                         check=True, env=env, capture_output=True,
                         timeout=30).stdout
    assert got == data, (name, len(got), len(data))

# fsck.fat on the partition alone (through the partition filter).
part = t.path("part.img")
os.unlink(disk)
r = subprocess.run([nbdtest.NBDKIT, "--filter=partition", "floppy", src,
                    "label=MyDisk", "partition=1", "--run",
                    "nbdcopy \"$uri\" " + part], timeout=120)
assert r.returncode == 0
r = subprocess.run(["fsck.fat", "-n", "-v", part], capture_output=True,
                   timeout=60)
assert r.returncode == 0, r.stdout + r.stderr
# 3 directory clusters, 12 for the files.
assert b" 15/65536 clusters" in r.stdout, r.stdout
os.unlink(part)

# size= makes a larger disk with the free space counted; too small fails.
uri = t.start("sized", "floppy", src, "size=600M")
h2 = t.connect(uri)
assert h2.get_size() == 600 << 20, h2.get_size()
r = subprocess.run([nbdtest.NBDKIT, "--run", "true", "floppy", src,
                    "size=1M"], capture_output=True, timeout=30)
assert r.returncode != 0 and b"size=" in r.stderr, r
r = subprocess.run([nbdtest.NBDKIT, "--run", "true", "floppy", src,
                    "label=much too long"], capture_output=True, timeout=30)
assert r.returncode != 0 and b"label=" in r.stderr, r
print("floppy-plugin: OK")
