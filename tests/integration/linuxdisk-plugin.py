#!/usr/bin/python3
"""linuxdisk: a GPT disk with one ext2/3/4 partition made from two
directories merged (the later wins; subdirectories merge), copied out
with nbdcopy: sfdisk sees the partition, debugfs lists and reads the
merged files, e2fsck -fn finds it clean, blkid the label and type;
the partition filter serves the bare filesystem (the man page's
example); size= and size=+ set the size and the free space; the disk
is read-only; a too small size= and a missing directory are refused;
nothing is left in TMPDIR."""
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd  # noqa: F401
import nbdtest

os.environ["PATH"] += ":/usr/sbin:/sbin"
for tool in ("mke2fs", "debugfs", "e2fsck", "sfdisk", "blkid", "nbdcopy"):
    if not shutil.which(tool):
        nbdtest.skip(tool + " not installed")
t = nbdtest.Test()
tmp = t.path("tmp")
os.mkdir(tmp)
os.environ["TMPDIR"] = tmp

a, b = t.path("a"), t.path("b")
for d in (a, b):
    os.makedirs(os.path.join(d, "sub"))
big = os.urandom(3 * 1024 * 1024)
open(os.path.join(a, "both.txt"), "w").write("from a\n")
open(os.path.join(a, "only-a"), "wb").write(big)
open(os.path.join(a, "sub", "in-a"), "w").write("sub a\n")
open(os.path.join(b, "both.txt"), "w").write("from b\n")
open(os.path.join(b, "sub", "in-b"), "w").write("sub b\n")
os.symlink("only-a", os.path.join(b, "link"))


def run(*cmd):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL).stdout.decode(
                              errors="replace")


def serve_copy(name, *args, filters=()):
    out = t.path(name + ".img")
    subprocess.run([nbdtest.NBDKIT, "-U", "-", *filters, "linuxdisk", *args,
                    "--run", 'nbdcopy "$uri" ' + out], check=True, timeout=60)
    return out


disk = serve_copy("merged", a, "dir=" + b, "label=MERGED", "type=ext4")
parts = run("sfdisk", "-J", disk)
assert '"type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"' in parts, parts
assert '"label": "gpt"' in parts, parts
fs = serve_copy("fs", a, "dir=" + b, "label=MERGED", "type=ext4",
                "partition=1", filters=("--filter=partition",))
out = run("debugfs", "-R", "ls -l /", fs)
for name in ("both.txt", "only-a", "sub", "link", "lost+found"):
    assert name in out, (name, out)
assert run("debugfs", "-R", "cat /both.txt", fs) == "from b\n"
assert run("debugfs", "-R", "cat /sub/in-a", fs) == "sub a\n"
assert run("debugfs", "-R", "cat /sub/in-b", fs) == "sub b\n"
assert subprocess.run(["debugfs", "-R", "cat /only-a", fs], check=True,
                      stdout=subprocess.PIPE,
                      stderr=subprocess.DEVNULL).stdout == big
assert "only-a" in run("debugfs", "-R", "stat /link", fs)
subprocess.run(["e2fsck", "-fn", fs], check=True, stdout=subprocess.PIPE)
blk = run("blkid", "-o", "export", fs)
assert "LABEL=MERGED" in blk and "TYPE=ext4" in blk, blk

# One directory, the default type ext2, and size=+ free space.
fs = serve_copy("plus", a, "size=+20M", "partition=1",
                filters=("--filter=partition",))
blk = run("blkid", "-o", "export", fs)
assert "TYPE=ext2" in blk, blk
out = run("dumpe2fs", "-h", fs)
bs = int(out.split("Block size:")[1].split()[0])
free = int(out.split("Free blocks:")[1].split()[0]) * bs
assert free >= 20 * 1024 * 1024, free
assert run("debugfs", "-R", "cat /both.txt", fs) == "from a\n"

# size= is the filesystem's size.
fs = serve_copy("exact", a, "size=32M", "partition=1",
                filters=("--filter=partition",))
out = run("dumpe2fs", "-h", fs)
bs = int(out.split("Block size:")[1].split()[0])
assert int(out.split("Block count:")[1].split()[0]) * bs == 32 << 20, out

# Read-only for clients.
uri = t.start("ro", "linuxdisk", b)
h = t.connect(uri)
assert h.is_read_only()
nbdtest.expect_error(lambda: h.pwrite(b"x", 0), what="write")
h.shutdown()
t.proc.terminate()
t.proc.wait()


def refused(name, *args, expect):
    log = t.path(name + ".log")
    with open(log, "w") as f:
        p = subprocess.run([nbdtest.NBDKIT, "-U", "-", "linuxdisk", *args,
                            "--run", "nbdinfo --size \"$uri\""],
                           stdout=subprocess.PIPE, stderr=f, timeout=30)
    msg = open(log).read()
    assert p.returncode != 0, name
    assert expect in msg, (name, msg)


refused("small", a, "size=2M", expect="size=2M big enough")
refused("nodir", t.path("nosuch"), expect="not a directory")
refused("badtype", a, "type=xfs", expect="ext2, ext3 or ext4")
assert os.listdir(tmp) == [], os.listdir(tmp)
print("linuxdisk-plugin: OK")
