#!/usr/bin/env bash
# The rbd plugin's asynchronous completion (plugins/rbd/rbd.c: requests
# complete from librbd's callbacks through one completion thread),
# against a real single-node Ceph cluster (tests/services/ceph.sh):
# - --dump-plugin lists the async callbacks;
# - nbdcopy -C 4 -R 16 in and out, with async=true and async=false:
#   `rbd export` has the bytes, and they read back;
# - 64 requests in flight on one connection (reads, writes, some with
#   FUA, trims, zeroes, flushes, through the libnbd Python module's aio
#   calls): `rbd export` has the result, and with async=true the server
#   adds few threads for them (async=false: a thread per request, up
#   to the 16 workers);
# - a fast zero without may-trim still fails at once with ENOTSUP;
# - a client that disconnects with 64 requests in flight: the server
#   serves the next client and stops cleanly;
# - the server blocklisted by the cluster: reads and writes in flight
#   fail with EIO and a message saying so, the client gets the errors
#   (no hang), the server stays up.
. "$(dirname "$0")/functions.sh"
requires ceph-mon --version
requires rbd --version
requires nbdcopy --version
requires nbdinfo --version
requires_python_nbd
cd "$tmpdir"

dump=$("$NBDKIT" rbd --dump-plugin) || fail "rbd --dump-plugin"
for f in pread pwrite flush trim zero; do
  grep -qx "has_async_$f=1" <<< "$dump" || fail "--dump-plugin lacks has_async_$f"
done

. "$SRCDIR/tests/services/ceph.sh"
ceph_start "$tmpdir/c" || fail "ceph_start failed"
C="conf=$CEPH_CONF keyring=$CEPH_KEYRING"
M=$((1 << 20))

head -c $((32 * M)) /dev/urandom > in.img
for a in true false; do
  t rbd create --size 32M rbd/d-$a
  start_nbdkit d-$a rbd rbd/d-$a $C async=$a
  t nbdinfo --size "$uri" >/dev/null
  idle=$(ls /proc/$pid/task | wc -l) # librados' threads, before any data
  t nbdcopy -C 4 -R 16 --flush in.img "$uri"
  t rbd export --no-progress rbd/d-$a exp-$a.img
  cmp in.img exp-$a.img || fail "async=$a: rbd export differs from what nbdcopy wrote"
  t nbdcopy -C 4 -R 16 "$uri" out-$a.img
  cmp in.img out-$a.img || fail "async=$a: nbdcopy read back differs"

  # 64 requests in flight, several rounds; the model of the image is
  # kept in Python and compared with rbd export.
  t "$PYTHON" - "$uri" "$pid" "$a" "$idle" <<'PY' || fail "async=$a: requests in flight"
import errno, os, random, sys
import nbd
uri, pid, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
M = 1 << 20
img = bytearray(open("in.img", "rb").read())
h = nbd.NBD()
h.connect_uri(uri)
ntask = lambda: len(os.listdir("/proc/%d/task" % pid))
base = int(sys.argv[4])
most = ntask()
rnd = random.Random(13)
errs = []
def done(err):
    e = getattr(err, "value", err)
    if e:
        errs.append(e)
    return 1
for r in range(6):
    # Disjoint 256 KiB slots: 64 requests at once, none overlapping.
    slots = rnd.sample(range(128), 64)
    reads = []
    for i, s in enumerate(slots):
        off = s * 256 * 1024 + rnd.randrange(0, 4096)
        n = rnd.randrange(1, 128 * 1024)
        k = i % 8
        if k < 4:
            b = nbd.Buffer(n)
            h.aio_pread(b, off, completion=done)
            reads.append((b, off, n))
        elif k < 6:
            data = os.urandom(n)
            h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(data)), off,
                         completion=done,
                         flags=nbd.CMD_FLAG_FUA if k == 5 else 0)
            img[off:off + n] = data
        elif k == 6:
            h.aio_zero(n, off, completion=done,
                       flags=0 if i % 16 == 6 else nbd.CMD_FLAG_NO_HOLE)
            img[off:off + n] = bytes(n)
        else:
            h.aio_flush(completion=done)
    while h.aio_in_flight() > 0:
        h.poll(-1)
        most = max(most, ntask())
    assert not errs, errs
    for b, off, n in reads:
        assert b.to_bytearray() == img[off:off + n], (off, n)
# Trim whole objects, in flight together.
for o in (24, 28):
    h.aio_trim(4 * M, o * M, completion=done)
while h.aio_in_flight() > 0:
    h.poll(-1)
assert not errs, errs
img[24 * M:32 * M] = bytes(8 * M)
try:
    h.zero(65536, 0, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FAST_ZERO)
    raise SystemExit("fast zero without may-trim accepted")
except nbd.Error as e:
    assert e.errnum == errno.ENOTSUP, e
h.flush()
h.shutdown()
open("model.img", "wb").write(img)
print("async=%s: 64 in flight, threads %d idle, at most %d" % (mode, base, most))
if mode == "true":
    assert most - base <= 4, (base, most)
else:
    assert most - base >= 8, (base, most)
PY
  t rbd export --no-progress rbd/d-$a exp2-$a.img
  cmp model.img exp2-$a.img || fail "async=$a: rbd export differs from the requests in flight"
  stop_nbdkit "$pid" || fail "async=$a: the server did not stop"
done

# A client gone with 64 requests in flight.
start_nbdkit gone rbd rbd/d-true $C
gone_pid=$pid
t "$PYTHON" - "$uri" <<'PY' || fail "client with requests in flight"
import os, sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
for i in range(64):
    if i % 2:
        h.aio_pread(nbd.Buffer(262144), i * 262144)
    else:
        h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b"z" * 262144)),
                     i * 262144)
os._exit(0)
PY
t nbdcopy "$uri" after.img || fail "the server does not serve after a client left"
kill "$gone_pid"
st=0
wait "$gone_pid" || st=$?
[ "$st" = 0 ] || fail "the server exited with status $st after a client left mid-request"

# The server's client blocklisted by the cluster: requests in flight
# fail, the client is told (not a hang), and the server stays up.
start_nbdkit bl rbd rbd/d-false $C 2> bl.err
bl_pid=$pid
t nbdinfo --size "$uri" >/dev/null
watcher=$(t rbd status rbd/d-false | sed -n 's/.*watcher=\([^ ]*\) .*/\1/p' | head -n 1)
[ -n "$watcher" ] || fail "rbd status shows no watcher for the server"
t "$PYTHON" - "$uri" "$watcher" <<'PY' || fail "requests of a blocklisted client"
import subprocess, sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
# Connected (the size is known): now the cluster shuts the server out.
subprocess.run(["ceph", "osd", "blocklist", "add", sys.argv[2]], check=True,
               timeout=30, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
res = []
cb = lambda err: (res.append(getattr(err, "value", err)), 1)[1]
for i in range(16):
    h.aio_pread(nbd.Buffer(65536), 8 * 2**20 + i * 65536, completion=cb)
    h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b"b" * 65536)),
                 16 * 2**20 + i * 65536, completion=cb)
while h.aio_in_flight() > 0:
    h.poll(-1)
print("requests of a blocklisted client:", sorted(set(res)))
# EIO, not ESHUTDOWN (librados' errno here), which would tell the
# client the server is shutting down.
assert len(res) == 32 and all(e == 5 for e in res), res
PY
kill -0 "$bl_pid" || fail "the server died when blocklisted"
grep -q "image rbd/d-false .*: read of 65536 bytes at offset .*(the cluster has blocklisted this client)" bl.err ||
  { cat bl.err; fail "no message saying the client is blocklisted"; }
stop_nbdkit "$bl_pid" || true

ceph_stop
echo "rbd-async: OK"
