#!/usr/bin/python3
"""luks: LUKS1 disks made by `qemu-img create -f luks` (AES-256 in
XTS-plain64 and CBC-ESSIV) and by cryptsetup (AES-128 XTS-plain64,
AES-128 CBC-plain64 with SHA-1), all read and written by qemu too.
What qemu-io writes through qemu's luks driver reads back through the
filter, and what the filter writes (whole sectors, unaligned pieces,
zeroes) reads back through qemu-img convert.
The passphrase comes as text, +FILE, -FD and from the terminal; a wrong one is refused.
"""
import os
import pty
import shutil
import signal
import subprocess
import sys
import termios
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

for prog in ("qemu-img", "qemu-io"):
    if not shutil.which(prog):
        nbdtest.skip("%s not installed" % prog)
t = nbdtest.Test()
# qemu-img create measures PBKDF2 speed for seconds of CPU time: slow
# on a busy machine (tests/CMakeLists.txt allows 180 s).
signal.alarm(170)
SECRET = "123456"
secret_file = t.path("secret")
open(secret_file, "w").write(SECRET + "\n")
secret_file_raw = t.path("secret.raw")
open(secret_file_raw, "w").write(SECRET)
OBJ = ["--object", "secret,id=sec0,data=" + SECRET]
SIZE = 4 << 20

CRYPTSETUP = shutil.which("cryptsetup") or "/usr/sbin/cryptsetup"
if not os.path.exists(CRYPTSETUP):
    CRYPTSETUP = None


def qemu_create(opts):
    return lambda img: ["qemu-img", "create", "-q", "-f", "luks"] + OBJ + [
        "-o", "key-secret=sec0,iter-time=10" + opts, img, str(SIZE)]


def cryptsetup(*opts):
    # LUKS1 with a 4 MB payload after cryptsetup's 2 MB header.
    def make(img):
        with open(img, "wb") as f:
            f.truncate(SIZE + (2 << 20))
        return [CRYPTSETUP, "luksFormat", "--batch-mode", "--type", "luks1",
                "--pbkdf-force-iterations", "1000", "--align-payload", "4096",
                *opts, img,
                secret_file_raw]
    return make


# qemu-img create spends seconds measuring PBKDF2: only two of those.
cases = [
    ("default", qemu_create("")),
    ("cbc-essiv", qemu_create(",cipher-alg=aes-256,cipher-mode=cbc,"
                              "ivgen-alg=essiv,ivgen-hash-alg=sha256")),
]
if CRYPTSETUP:
    cases += [
        ("xts128", cryptsetup("--cipher", "aes-xts-plain64", "--key-size",
                              "256")),
        ("cbc128-plain64-sha1", cryptsetup("--cipher", "aes-cbc-plain64",
                                           "--key-size", "128", "--hash",
                                           "sha1")),
    ]


def qemu_opts(img):
    return "driver=luks,key-secret=sec0,file.filename=" + img


def qemu_read(img):
    raw = img + ".raw"
    subprocess.run(["qemu-img", "convert"] + OBJ + ["--image-opts",
                    qemu_opts(img), "-O", "raw", raw], check=True)
    data = open(raw, "rb").read()
    os.unlink(raw)
    return data


# qemu-img create sometimes fails to measure PBKDF2 ("Unable to get
# accurate CPU usage") on a busy machine: tried three times.
for name, make in cases:
    for attempt in range(3):
        if subprocess.run(make(t.path(name + ".img"))).returncode == 0:
            break
    else:
        raise AssertionError("could not create %s" % name)

for name, make in cases:
    img = t.path(name + ".img")
    if name == "cbc-essiv" and not nbdtest.OURS:
        continue                # nbdkit's filter has no ESSIV
    # qemu writes zeroes (a new image's sectors decrypt to noise), then
    # a pattern; the filter must read them.
    subprocess.run(["qemu-io"] + OBJ + ["--image-opts", qemu_opts(img),
                    "-c", "write -P 0 0 %d" % SIZE,
                    "-c", "write -P 0x5a 4096 8192",
                    "-c", "write -P 0xa5 1000000 777"],
                   stdout=subprocess.DEVNULL, check=True)
    model = bytearray(SIZE)
    model[4096:4096 + 8192] = b"\x5a" * 8192
    model[1000000:1000000 + 777] = b"\xa5" * 777

    uri = t.start(name, "file", img, "--filter=luks",
                  "passphrase=+" + secret_file)
    h = t.connect(uri)
    assert h.get_size() == SIZE, (name, h.get_size())
    assert h.pread(SIZE, 0) == bytes(model), name
    # Requests that are not whole sectors: ours only (nbdkit's filter
    # asks clients for 512-byte blocks).
    if nbdtest.OURS:
        assert h.pread(10, 4090) == bytes(model[4090:4100]), name

    # The filter writes; qemu reads.
    w = os.urandom(65536)
    h.pwrite(w, 131072)
    model[131072:131072 + 65536] = w
    if nbdtest.OURS:
        w = os.urandom(3000)
        h.pwrite(w, 4095)           # unaligned over a qemu-written pattern
        model[4095:4095 + 3000] = w
        w = os.urandom(10)
        h.pwrite(w, SIZE - 10)      # the very end
        model[SIZE - 10:] = w
        h.zero(5000, 1000001)       # part of the qemu pattern
        model[1000001:1000001 + 5000] = bytes(5000)
    w = os.urandom(1024)
    h.pwrite(w, SIZE - 2048)
    model[SIZE - 2048:SIZE - 1024] = w
    h.zero(4096, 200192, nbd.CMD_FLAG_NO_HOLE)
    model[200192:200192 + 4096] = bytes(4096)
    h.flush()
    assert h.pread(SIZE, 0) == bytes(model), name
    # Every extent is data.
    ext = nbdtest.check_extents(h, 0, SIZE)
    assert all(e[2] == 0 for e in ext), (name, ext)
    assert qemu_read(img) == bytes(model), name

    # A second client (and nbdcopy) sees the same.
    if shutil.which("nbdcopy"):
        out = t.path(name + ".copy")
        subprocess.run(["nbdcopy", uri, out], check=True)
        assert open(out, "rb").read() == bytes(model), name

# The default cipher again, passphrase as text and from a descriptor.
img = t.path("default.img")
want = qemu_read(img)
uri = t.start("text", "file", img, "--filter=luks", "passphrase=" + SECRET)
assert t.connect(uri).pread(SIZE, 0) == want
r, w = os.pipe()
os.write(w, SECRET.encode())
os.close(w)
uri = t.start("fd", "file", img, "--filter=luks", "passphrase=-%d" % r,
              pass_fds=(r,))
os.close(r)
assert t.connect(uri).pread(SIZE, 0) == want

# passphrase=- asks on the terminal.
pid, master = pty.fork()
if pid == 0:
    sock = t.path("tty.sock")
    os.execv(nbdtest.NBDKIT, [nbdtest.NBDKIT, "-U", sock, "-f", "file", img,
                              "--filter=luks", "passphrase=-"])
prompt = b""
while b"password" not in prompt:
    prompt += os.read(master, 100)
# Typing before echo is off would be flushed away: wait for it.
for _ in range(100):
    if not termios.tcgetattr(master)[3] & termios.ECHO:
        break
    time.sleep(0.05)
os.write(master, (SECRET + "\n").encode())
for _ in range(200):
    if os.path.exists(t.path("tty.sock")):
        break
    time.sleep(0.05)
try:
    try:
        h = t.connect("nbd+unix:///?socket=" + t.path("tty.sock"))
    except nbd.Error:
        # Say what the server printed on its terminal, and whether it
        # still runs.
        os.set_blocking(master, False)
        try:
            said = os.read(master, 65536)
        except OSError:
            said = b""
        state = open("/proc/%d/stat" % pid).read().split(") ")[1][0]
        print("server state %s; its terminal said: %r" %
              (state, prompt + said), file=sys.stderr)
        raise
    assert h.pread(SIZE, 0) == want
    h.shutdown()
finally:
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    os.close(master)

# nbdcopy writes the whole disk through the filter.
if shutil.which("nbdcopy"):
    src = t.path("src.raw")
    data = os.urandom(SIZE)
    open(src, "wb").write(data)
    subprocess.run([nbdtest.NBDKIT, "-U", "-", "file", img, "--filter=luks",
                    "passphrase=" + SECRET, "--run", "nbdcopy %s $uri" % src],
                   check=True, timeout=30)
    assert qemu_read(img) == data

# Wrong passphrase: no export, and the key slot tried is named.
p = subprocess.run([nbdtest.NBDKIT, "-U", "-", "file", img, "--filter=luks",
                    "passphrase=1234567", "--run", "nbdinfo --size $uri"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   universal_newlines=True, timeout=30)
assert p.returncode != 0 and p.stdout == "", p.stdout
if nbdtest.OURS:
    assert "passphrase opens none of the LUKS1 key slots (tried 0)" \
        in p.stderr, p.stderr
uri = t.start("wrong", "file", img, "--filter=luks", "passphrase=12345")
nbdtest.expect_error(lambda: t.connect(uri), what="wrong passphrase")
print("filter-luks-qemu: OK")
