#!/usr/bin/python3
"""luks: disks formatted by cryptsetup (on a regular file): LUKS1 and
LUKS2, key slots by PBKDF2, Argon2i and Argon2id, AES-XTS (256- and
512-bit keys) and AES-CBC-ESSIV, 512- and 4096-byte sectors.  The
volume key comes from `cryptsetup luksDump --dump-volume-key`; an
independent AES implementation (python3-cryptography) encrypts data
into the payload that the filter must read, and decrypts what the
filter wrote.  A second key slot opens too; a wrong passphrase is
refused with the key slots tried named; the key file is used whole.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

# LUKS2 and passphrase-file= are ours (nbdkit's filter reads LUKS1 only).
nbdtest.require_ours()
if not shutil.which("cryptsetup") and not os.path.exists("/usr/sbin/cryptsetup"):
    nbdtest.skip("cryptsetup not installed")
try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:
    nbdtest.skip("python3-cryptography not installed")
CRYPTSETUP = shutil.which("cryptsetup") or "/usr/sbin/cryptsetup"
t = nbdtest.Test()

key = t.path("key")
key2 = t.path("key2")
# The key file ends with a newline: it is part of the passphrase.
open(key, "wb").write(b"correct horse\n")
open(key2, "wb").write(b"second slot")

FAST_PBKDF2 = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]


def argon(kind):
    return ["--pbkdf", kind, "--pbkdf-force-iterations", "4",
            "--pbkdf-memory", "32768", "--pbkdf-parallel", "1"]


def aes_sectors(vkey, spec, data, first, ss, encrypt):
    """The reference: encrypt or decrypt DATA, sector FIRST onwards."""
    out = []
    for i in range(0, len(data), ss):
        n = first + i // ss
        if spec == "aes-xts-plain64":
            mode = modes.XTS(struct.pack("<Q", n) + bytes(8))
        elif spec == "aes-cbc-essiv:sha256":
            from cryptography.hazmat.primitives import hashes
            hh = hashes.Hash(hashes.SHA256())
            hh.update(vkey)
            salt = hh.finalize()
            ecb = Cipher(algorithms.AES(salt), modes.ECB()).encryptor()
            mode = modes.CBC(ecb.update(struct.pack("<Q", n) + bytes(8)))
        else:
            raise AssertionError(spec)
        c = Cipher(algorithms.AES(vkey), mode)
        op = c.encryptor() if encrypt else c.decryptor()
        out.append(op.update(data[i:i + ss]) + op.finalize())
    return b"".join(out)


def volume(img):
    """(volume key, payload offset, sector size, cipher spec)."""
    dump = subprocess.run([CRYPTSETUP, "luksDump", "--dump-volume-key",
                           "--batch-mode", "--key-file", key, img],
                          stdout=subprocess.PIPE, check=True,
                          universal_newlines=True).stdout
    m = re.search(r"MK dump:\s*((?:[0-9a-f]{2}\s+)+)", dump)
    vkey = bytes.fromhex("".join(m.group(1).split()))
    info = subprocess.run([CRYPTSETUP, "luksDump", img],
                          stdout=subprocess.PIPE, check=True,
                          universal_newlines=True).stdout
    if "Version:       \t1" in info or "Version:\t1" in info \
       or re.search(r"Version:\s+1\n", info):
        off = int(re.search(r"Payload offset:\s+(\d+)", info).group(1)) * 512
        name = re.search(r"Cipher name:\s+(\S+)", info).group(1)
        mode = re.search(r"Cipher mode:\s+(\S+)", info).group(1)
        return vkey, off, 512, name + "-" + mode
    off = int(re.search(r"offset: (\d+) \[bytes\]", info).group(1))
    ss = int(re.search(r"sector: (\d+) \[bytes\]", info).group(1))
    spec = re.search(r"cipher: (\S+)", info).group(1)
    return vkey, off, ss, spec


cases = [
    ("luks1-xts512", ["--type", "luks1"] + FAST_PBKDF2),
    ("luks1-cbc-essiv", ["--type", "luks1", "--cipher", "aes-cbc-essiv:sha256",
                         "--key-size", "256"] + FAST_PBKDF2),
    ("luks2-pbkdf2", ["--type", "luks2", "--sector-size", "512"] + FAST_PBKDF2),
    ("luks2-argon2id", ["--type", "luks2", "--key-size", "256"]
     + argon("argon2id")),
    ("luks2-argon2i-4k", ["--type", "luks2", "--sector-size", "4096"]
     + argon("argon2i")),
    ("luks2-cbc-essiv", ["--type", "luks2", "--cipher", "aes-cbc-essiv:sha256",
                         "--key-size", "256", "--sector-size", "512"]
     + FAST_PBKDF2),
]

DISK = 20 << 20
for name, opts in cases:
    img = t.path(name + ".img")
    with open(img, "wb") as f:
        f.truncate(DISK)
    subprocess.run([CRYPTSETUP, "luksFormat", "--batch-mode"] + opts
                   + [img, key], check=True)
    vkey, off, ss, spec = volume(img)
    size = DISK - off
    print(name, spec, "key bits", len(vkey) * 8, "offset", off, "sector", ss,
          flush=True)

    # Data encrypted by the reference at sectors 2-5 reads back.
    plain = os.urandom(4 * ss)
    with open(img, "r+b") as f:
        f.seek(off + 2 * ss)
        f.write(aes_sectors(vkey, spec, plain, 2, ss, True))

    uri = t.start(name, "file", img, "--filter=luks", "passphrase-file=" + key)
    h = t.connect(uri)
    assert h.get_size() == size, (name, h.get_size(), size)
    assert h.pread(4 * ss, 2 * ss) == plain, name
    assert h.pread(100, 2 * ss + 7) == plain[7:107], name
    assert h.pread(ss, 0) == aes_sectors(vkey, spec, bytes(ss), 0, ss, False)
    assert not h.can_trim(), name

    # Writes, aligned and not, decrypt with the reference.
    model = bytearray(h.pread(16 * ss, 0))
    w1 = os.urandom(3 * ss)
    h.pwrite(w1, 8 * ss)
    model[8 * ss:11 * ss] = w1
    w2 = os.urandom(ss + 123)
    h.pwrite(w2, 3 * ss + 200)
    model[3 * ss + 200:3 * ss + 200 + len(w2)] = w2
    h.zero(2 * ss + 10, 12 * ss)
    model[12 * ss:14 * ss + 10] = bytes(2 * ss + 10)
    h.flush()
    assert h.pread(16 * ss, 0) == bytes(model), name
    tail = os.urandom(1000)
    h.pwrite(tail, size - 1000)
    assert h.pread(1000, size - 1000) == tail, name
    h.flush()
    with open(img, "rb") as f:
        f.seek(off)
        cipher = f.read(16 * ss)
        f.seek(off + size - max(ss, 1024))
        last = f.read(max(ss, 1024))
    assert aes_sectors(vkey, spec, cipher, 0, ss, False) == bytes(model), name
    dec = aes_sectors(vkey, spec, last, (size - len(last)) // ss, ss, False)
    assert dec[-1000:] == tail, name
    # The header is intact: cryptsetup still opens the key slot.
    subprocess.run([CRYPTSETUP, "luksDump", "--dump-volume-key",
                    "--batch-mode", "--key-file", key, img],
                   stdout=subprocess.DEVNULL, check=True)

# LUKS1 from cryptsetup reads in qemu too (qemu has no LUKS2).
if shutil.which("qemu-img"):
    img = t.path("luks1-xts512.img")
    raw = t.path("out.raw")
    subprocess.run(["qemu-img", "convert", "--object",
                    "secret,id=s0,file=" + key, "--image-opts",
                    "driver=luks,key-secret=s0,file.filename=" + img,
                    "-O", "raw", raw], check=True)
    h = t.connect("nbd+unix:///?socket=" + t.path("luks1-xts512.sock"))
    data = open(raw, "rb").read()
    assert len(data) == h.get_size()
    assert data[:16 * 512] == h.pread(16 * 512, 0)
    assert data[-1000:] == h.pread(1000, h.get_size() - 1000)

# A second key slot opens; a wrong passphrase names the slots tried.
img = t.path("luks2-argon2id.img")
subprocess.run([CRYPTSETUP, "luksAddKey", "--batch-mode", "--key-file", key]
               + argon("argon2id") + [img, key2], check=True)
first = t.connect("nbd+unix:///?socket=" + t.path("luks2-argon2id.sock"))
uri = t.start("second", "file", img, "--filter=luks", "passphrase-file=" + key2)
assert t.connect(uri).pread(65536, 4096) == first.pread(65536, 4096)


def refused(img, *params):
    p = subprocess.run([nbdtest.NBDKIT, "-U", "-", "file", img,
                        "--filter=luks", *params,
                        "--run", "nbdinfo --size $uri"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    assert p.returncode != 0, (params, p.stdout)
    return p.stderr


err = refused(img, "passphrase=wrong")
assert "passphrase opens none of the LUKS2 key slots (tried 0, 1)" in err, err
err = refused(t.path("luks1-xts512.img"), "passphrase=wrong")
assert "LUKS1 key slots (tried 0)" in err, err
# +FILE drops the newline that passphrase-file= keeps: refused.
err = refused(t.path("luks1-xts512.img"), "passphrase=+" + key)
assert "tried 0" in err, err
uri = t.start("plus", "file", t.path("luks2-pbkdf2.img"), "--filter=luks",
              "passphrase=+" + key2)
nbdtest.expect_error(lambda: t.connect(uri), what="passphrase=+FILE, wrong")
uri = t.start("plus2", "file", img, "--filter=luks", "passphrase=+" + key2)
assert t.connect(uri).pread(4096, 0) == first.pread(4096, 0)


def rewrite_luks2(img, edit, copies=(0, 1)):
    """Applies EDIT to the JSON of the LUKS2 header copies given (0:
    primary, 1: secondary) and fixes their checksums."""
    import hashlib
    import json
    with open(img, "r+b") as f:
        hdr_size = struct.unpack(">Q", f.read(16)[8:16])[0]
        for c in copies:
            off = c * hdr_size
            f.seek(off)
            area = bytearray(f.read(hdr_size))
            text = bytes(area[4096:]).rstrip(b"\0")
            new = json.dumps(edit(json.loads(text))).encode()
            assert len(new) < hdr_size - 4096
            area[4096:] = new + bytes(hdr_size - 4096 - len(new))
            area[448:512] = bytes(64)
            area[448:480] = hashlib.sha256(area).digest()
            f.seek(off)
            f.write(area)


def allow_discards(j):
    j["config"]["flags"] = ["allow-discards"]
    return j


# A LUKS2 header with the allow-discards flag: trims reach the disk
# (whole sectors only); without it trim is not offered (checked above).
img = t.path("luks2-pbkdf2.img")
rewrite_luks2(img, allow_discards)
info = subprocess.run([CRYPTSETUP, "luksDump", img], stdout=subprocess.PIPE,
                      check=True, universal_newlines=True).stdout
assert re.search(r"Flags:\s+allow-discards", info), info
vkey, off, ss, spec = volume(img)
uri = t.start("discards", "file", img, "--filter=luks",
              "passphrase-file=" + key)
h = t.connect(uri)
assert h.can_trim()
h.pwrite(os.urandom(8 * ss), 0)
h.trim(6 * ss - 100, 100)      # sectors 1-5 whole, bits of 0 and 6
h.flush()
with open(img, "rb") as f:
    f.seek(off)
    cipher = f.read(8 * ss)
assert cipher[ss:6 * ss] == bytes(5 * ss)
assert cipher[:ss] != bytes(ss) and cipher[6 * ss:7 * ss] != bytes(ss)

# A damaged primary header: the secondary copy is used.
with open(img, "r+b") as f:
    f.seek(4096 + 3000)
    f.write(b"x")
uri = t.start("secondary", "file", img, "--filter=luks",
              "passphrase-file=" + key)
assert t.connect(uri).pread(ss, 7 * ss) == h.pread(ss, 7 * ss)
# Both damaged: refused.
with open(img, "r+b") as f:
    f.seek(16384 + 4096 + 3000)
    f.write(b"x")
err = refused(img, "passphrase-file=" + key)
assert "no valid LUKS2 header" in err, err



def integrity(j):
    j["segments"]["0"]["integrity"] = {"type": "hmac(sha256)",
                                       "journal_encryption": "none",
                                       "journal_integrity": "none"}
    return j


# Authenticated encryption (dm-integrity) is refused, not misread.
img = t.path("luks2-cbc-essiv.img")
rewrite_luks2(img, integrity)
err = refused(img, "passphrase-file=" + key)
assert "integrity protection" in err, err

# Not LUKS at all.
plain = t.path("plain.img")
with open(plain, "wb") as f:
    f.truncate(1 << 20)
err = refused(plain, "passphrase=x")
assert "not LUKS" in err, err
print("filter-luks-cryptsetup: OK")
