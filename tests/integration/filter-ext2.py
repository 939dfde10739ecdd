#!/usr/bin/python3
"""ext2: a file inside ext2 and ext4 images made by mke2fs -d, served
through the filter over the file plugin (and over a partition of an
MBR disk through the partition filter); read, written, then debugfs
cat shows the written bytes and e2fsck finds the filesystem clean; ext2file=exportname picks the
file from the export name; a missing file, a directory, a relative path
and a non-filesystem are refused with clear errors."""
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd  # noqa: F401
import nbdtest

for tool in ("mke2fs", "debugfs"):
    if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
        nbdtest.skip(tool + " not installed")
os.environ["PATH"] += ":/usr/sbin:/sbin"
t = nbdtest.Test()

src = t.path("src")
os.makedirs(os.path.join(src, "disks"))
disk = os.urandom(200000) + bytes(100000) + os.urandom(7777)
other = b"other file\n" * 500
open(os.path.join(src, "disks", "disk.img"), "wb").write(disk)
open(os.path.join(src, "other.txt"), "wb").write(other)


def debugfs_cat(img, path):
    return subprocess.run(["debugfs", "-R", "cat " + path, img], check=True,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL).stdout


def fsck(img):
    p = subprocess.run(["e2fsck", "-fn", img], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    assert p.returncode == 0, p.stdout.decode()


for fstype in ("ext2", "ext4"):
    img = t.path("fs-%s.img" % fstype)
    subprocess.run(["mke2fs", "-q", "-F", "-t", fstype, "-d", src, img,
                    "4M"], check=True)
    uri = t.start("s", "--filter=ext2", "file", img,
                  "ext2file=/disks/disk.img")
    h = t.connect(uri)
    want = bytearray(disk)
    assert h.get_size() == len(want), (fstype, h.get_size())
    assert h.pread(len(want), 0) == want, fstype
    assert h.pread(100, 250000) == bytes(100)
    for off, chunk in ((0, b"START"), (150000, os.urandom(9000)),
                       (len(want) - 3, b"END")):
        h.pwrite(chunk, off)
        want[off:off + len(chunk)] = chunk
    h.zero(500, 1000)
    want[1000:1500] = bytes(500)
    h.flush()
    assert h.pread(len(want), 0) == want
    nbdtest.expect_error(lambda: h.pwrite(b"xx", len(want) - 1),
                         what="write past the end of the file")
    h.shutdown()
    t.proc.terminate()
    t.proc.wait()
    assert debugfs_cat(img, "/disks/disk.img") == want, fstype
    assert debugfs_cat(img, "/other.txt") == other, fstype
    fsck(img)

    # exportname mode: the export name is the path.
    uri = t.start("e", "--filter=ext2", "file", img, "ext2file=exportname")
    for name in ("other.txt", "/other.txt", "/disks/../other.txt"):
        h = t.connect(uri.replace("///", "///" + name), full_info=True)
        assert h.pread(h.get_size(), 0) == other, name
        # The description names the file the client asked for.
        assert name in h.get_export_description(), \
            h.get_export_description()
        h.shutdown()
    h = t.connect(uri.replace("///", "///disks/disk.img"))
    assert h.pread(h.get_size(), 0) == want
    h.shutdown()
    t.proc.terminate()
    t.proc.wait()

# A filesystem on partition 1 of an MBR disk: the partition filter
# below the ext2 filter, as in the man page.
img = t.path("fs-ext4.img")
part = t.path("part.img")
with open(part, "wb") as f:
    f.write(bytes(1024 * 1024))
    f.write(open(img, "rb").read())
if shutil.which("sfdisk"):
    subprocess.run(["sfdisk", "-q", part], input=b"2048,8192,83\n",
                   check=True, stdout=subprocess.DEVNULL)
    uri = t.start("p", "--filter=ext2", "--filter=partition", "file", part,
                  "partition=1", "ext2file=/other.txt")
    h = t.connect(uri)
    assert h.pread(h.get_size(), 0) == other
    h.shutdown()
    t.proc.terminate()
    t.proc.wait()


def refused(name, *args, export="", expect):
    log = t.path(name + ".log")
    uri_cmd = "nbdinfo --size \"$uri\"" if not export else \
        "nbdinfo --size \"nbd+unix:///%s?socket=$unixsocket\"" % export
    with open(log, "w") as f:
        p = subprocess.run([nbdtest.NBDKIT, "-U", "-", "--filter=ext2",
                            "file", *args, "--run", uri_cmd],
                           stdout=subprocess.PIPE, stderr=f, timeout=30)
    msg = open(log).read()
    assert p.returncode != 0, name
    assert expect in msg, (name, msg)


refused("missing", img, "ext2file=/nosuch", expect="/nosuch")
refused("dir", img, "ext2file=/disks", expect="not a regular file")
refused("relative", img, "ext2file=disks/disk.img", expect="absolute")
refused("notfs", os.path.join(src, "other.txt"), "ext2file=/x",
        expect="not an ext2/3/4 filesystem")
refused("badexport", img, "ext2file=exportname", export="nosuch",
        expect="nosuch")
refused("noexport", img, "ext2file=exportname", expect="export name")
print("filter-ext2: OK")
