"""Soak test: many clients doing mixed reads, writes, zeroes, trims and
flushes for a bounded time against the memory and file plugins, each
client on its own connection and in its own region of the disk, every
read checked against a model; at the end the whole image is compared
byte for byte with the model (for the file plugin, also the file on
disk after the server has exited).

    SOAK=1 python3 tests/soak/soak.py        # or bench/soak.sh

Skipped (77) unless SOAK=1.  Environment: NBDKIT (the server, default
build/nbdkit), SOAK_SECONDS (default 60, split between the plugins),
SOAK_CLIENTS (per plugin, default 16), SOAK_SIZE (default 64M... in
bytes: 67108864), SOAK_SEED.

Trims: the protocol leaves trimmed data unspecified, so after a trim the
client reads the range back, checks every byte is either what was
there or zero, and takes what it read into the model.
"""

import os
import random
import subprocess
import sys
import tempfile
import threading
import time

if os.environ.get("SOAK") != "1":
    print("SKIP: soak test; set SOAK=1 to run it")
    sys.exit(77)
try:
    import nbd
except ImportError:
    print("SKIP: python3 nbd module missing")
    sys.exit(77)

SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "16"))
SIZE = int(os.environ.get("SOAK_SIZE", str(64 << 20)))
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
MAXLEN = 256 * 1024
here = os.path.dirname(os.path.abspath(__file__))
NBDKIT = os.environ.get("NBDKIT") or os.path.join(
    os.environ.get("BUILDDIR", os.path.join(here, "..", "..", "build")),
    "nbdkit")
NBDKIT = os.path.abspath(NBDKIT)
print("soak: %s, %gs, %d clients per plugin, %d MiB, seed %d" % (
    NBDKIT, SECONDS, CLIENTS, SIZE >> 20, SEED))


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Client(threading.Thread):
    def __init__(self, uri, model, lo, hi, seed, deadline, stats):
        super().__init__()
        self.uri, self.model, self.lo, self.hi = uri, model, lo, hi
        self.rng = random.Random(seed)
        self.deadline = deadline
        self.stats = stats
        self.error = None

    def span(self):
        n = self.rng.choice((1, 512, 4096, 65536, MAXLEN,
                             self.rng.randrange(1, MAXLEN)))
        n = min(n, self.hi - self.lo)
        off = self.rng.randrange(self.lo, self.hi - n + 1)
        if self.rng.random() < 0.5:     # often aligned
            off -= off % 512
        return off, n

    def check(self, off, n, h):
        got = h.pread(n, off)
        want = bytes(self.model[off:off + n])
        if got != want:
            bad = next(i for i in range(n) if got[i] != want[i])
            raise AssertionError(
                "%s: read at %d+%d differs from the model at byte %d "
                "(got %d, expected %d)" % (self.uri, off, n, off + bad,
                                           got[bad], want[bad]))

    def run(self):
        try:
            self._run()
        except Exception as e:
            self.error = e

    def _run(self):
        h = nbd.NBD()
        h.connect_uri(self.uri)
        can_fua = h.can_fua()
        can_trim = h.can_trim()
        can_zero = h.can_zero()
        can_flush = h.can_flush()
        counts = dict.fromkeys(("read", "write", "zero", "trim", "flush"), 0)
        nbytes = 0
        while time.time() < self.deadline:
            op = self.rng.random()
            off, n = self.span()
            if op < 0.35:
                self.check(off, n, h)
                counts["read"] += 1
                nbytes += n
            elif op < 0.70:
                data = self.rng.randbytes(n) if self.rng.random() < 0.7 \
                    else bytes([self.rng.randrange(256)]) * n
                flags = nbd.CMD_FLAG_FUA if can_fua and \
                    self.rng.random() < 0.2 else 0
                h.pwrite(data, off, flags)
                self.model[off:off + n] = data
                counts["write"] += 1
                nbytes += n
            elif op < 0.82 and can_zero:
                flags = 0
                if self.rng.random() < 0.3:
                    flags |= nbd.CMD_FLAG_NO_HOLE
                if can_fua and self.rng.random() < 0.2:
                    flags |= nbd.CMD_FLAG_FUA
                h.zero(n, off, flags)
                self.model[off:off + n] = bytes(n)
                counts["zero"] += 1
            elif op < 0.92 and can_trim:
                old = bytes(self.model[off:off + n])
                h.trim(n, off)
                got = h.pread(n, off)
                for i in range(n):
                    if got[i] != old[i] and got[i] != 0:
                        raise AssertionError(
                            "%s: after trim at %d+%d byte %d is %d, neither"
                            " the old %d nor zero" % (self.uri, off, n,
                                                     off + i, got[i], old[i]))
                self.model[off:off + n] = got
                counts["trim"] += 1
            elif can_flush:
                h.flush()
                counts["flush"] += 1
        # The whole region, once more.
        for off in range(self.lo, self.hi, 1 << 20):
            self.check(off, min(1 << 20, self.hi - off), h)
        h.shutdown()
        with self.stats["lock"]:
            for k, v in counts.items():
                self.stats[k] += v
            self.stats["bytes"] += nbytes


def soak(name, args, seconds, after=None):
    tmp = tempfile.mkdtemp(prefix="soak.")
    sock = os.path.join(tmp, "sock")
    pidfile = os.path.join(tmp, "pid")
    p = subprocess.Popen([NBDKIT, "-U", sock, "-P", pidfile, "-f"] +
                         args(tmp))
    try:
        deadline = time.time() + 10
        while not os.path.exists(pidfile) or not os.path.getsize(pidfile):
            if p.poll() is not None or time.time() > deadline:
                raise AssertionError("%s: server did not start" % name)
            time.sleep(0.05)
        uri = "nbd+unix:///?socket=" + sock
        model = bytearray(SIZE)
        # Start from random contents (so trims and zeroes show).
        h = nbd.NBD()
        h.connect_uri(uri)
        rng = random.Random(SEED)
        for off in range(0, SIZE, 4 << 20):
            chunk = rng.randbytes(min(4 << 20, SIZE - off))
            h.pwrite(chunk, off)
            model[off:off + len(chunk)] = chunk
        h.shutdown()

        rss0 = rss_kb(p.pid)
        stats = {"lock": threading.Lock(), "read": 0, "write": 0, "zero": 0,
                 "trim": 0, "flush": 0, "bytes": 0}
        region = SIZE // CLIENTS
        region -= region % 4096
        end = time.time() + seconds
        clients = [Client(uri, model, i * region, (i + 1) * region,
                          SEED * 1000 + i, end, stats)
                   for i in range(CLIENTS)]
        start = time.time()
        for c in clients:
            c.start()
        peak = rss0
        while any(c.is_alive() for c in clients):
            time.sleep(0.2)
            peak = max(peak, rss_kb(p.pid))
            assert p.poll() is None, "%s: server died (%d)" % (name,
                                                              p.returncode)
        took = time.time() - start
        errors = [c.error for c in clients if c.error]
        if errors:
            raise errors[0]
        nops = sum(stats[k] for k in ("read", "write", "zero", "trim",
                                      "flush"))
        print("%s: %d ops in %.1fs (%.0f ops/s, %.1f MiB/s of data): "
              "%d reads, %d writes, %d zeroes, %d trims, %d flushes; "
              "RSS %d -> peak %d kB" % (
                  name, nops, took, nops / took,
                  stats["bytes"] / took / 1048576, stats["read"],
                  stats["write"], stats["zero"], stats["trim"],
                  stats["flush"], rss0, peak))

        # The whole image, byte for byte, through a fresh connection.
        h = nbd.NBD()
        h.connect_uri(uri)
        for off in range(0, SIZE, 4 << 20):
            n = min(4 << 20, SIZE - off)
            if h.pread(n, off) != bytes(model[off:off + n]):
                raise AssertionError("%s: final image differs from the "
                                     "model in [%d, %d)" % (name, off,
                                                            off + n))
        h.flush()
        h.shutdown()
        p.terminate()
        p.wait(timeout=30)
        if after:
            after(tmp, model)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        subprocess.call(["rm", "-rf", tmp])


def check_file(tmp, model):
    with open(os.path.join(tmp, "disk.img"), "rb") as f:
        data = f.read()
    assert data == bytes(model), "file on disk differs from the model"
    print("file: disk.img matches the model after the server exited")


def file_args(tmp):
    path = os.path.join(tmp, "disk.img")
    with open(path, "wb") as f:
        f.truncate(SIZE)
    return ["file", path]


soak("memory", lambda tmp: ["memory", str(SIZE)], SECONDS / 2)
soak("file", file_args, SECONDS / 2, after=check_file)
print("soak: OK")
