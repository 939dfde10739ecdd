# The S3 plugin's asynchronous writes, zeroes and trims against a real
# radosgw: the server takes them through the async callbacks (and not
# with async=false); rounds of concurrent unaligned writes, zeroes and
# trims from 4 clients, 64 in flight each, most of them into objects
# other requests in flight also change, leave the disk (read back
# through the server) and every object (read with boto3) as a model
# says, an object existing exactly when its model bytes are not all
# zero, and block status, many requests in flight, says the same; a
# client gone with writes in flight leaves the server serving;
# zeroes and trims of whole and partial objects, and big ones that
# list the bucket; the same workload with async=false gives the
# same objects; a radosgw killed during writes fails the writes in
# flight, and once it is back the server serves a new client.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/functions-s3.sh"
requires nbdsh --version
requires_ours

s3_setup
s3 mkbucket wdisks

osz=$((64 * 1024))
size=$((4 * 1024 * 1024)) # 64 objects
# Objects 0-9 and 20 hold random data to start with, the others do not
# exist.
head -c $((10 * osz)) /dev/urandom > start.img
truncate -s $size start.img
head -c $osz /dev/urandom | dd of=start.img bs=$osz seek=20 conv=notrunc status=none

# workload.py URI SIZE OSZ START_IMG SEED ROUNDS MODEL_OUT: each round
# cuts the disk into pieces of random (unaligned) lengths, shuffled and
# dealt to 4 clients (one thread and connection each) that keep 64
# requests in flight: 80% writes of random bytes, 12% zeroes, 8% trims
# (a trim zeroes the objects wholly inside it, nothing else).  The
# pieces of a round do not overlap, so the result does not depend on
# the order the server runs them in, but many share objects.  After
# each round the disk is read back and compared with the model.
cat > workload.py <<'PY'
import random, sys, threading
import nbd
uri, size, osz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = bytearray(open(sys.argv[4], "rb").read())
seed, rounds, out = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
assert len(model) == size
CLIENTS, DEPTH = 4, 64
rnd = random.Random(seed)
handles = []
for _ in range(CLIENTS):
    h = nbd.NBD()
    h.connect_uri(uri)
    handles.append(h)
errors = []

def run(h, reqs):
    def done(kind, off, n):
        def cb(err):
            if err:
                errors.append("%s at %d for %d: errno %d" % (kind, off, n, err))
            return 1
        return cb
    try:
        most = 0
        for kind, off, n, data in reqs:
            while h.aio_in_flight() >= DEPTH:
                h.poll(-1)
            cb = done(kind, off, n)
            if kind == "w":
                h.aio_pwrite(data, off, completion=cb)
            elif kind == "z":
                h.aio_zero(n, off, completion=cb)
            else:
                h.aio_trim(n, off, completion=cb)
            most = max(most, h.aio_in_flight())
        while h.aio_in_flight() > 0:
            h.poll(-1)
        if most < DEPTH // 2:
            errors.append("only %d requests in flight" % most)
    except Exception as e:
        errors.append(repr(e))

for r in range(rounds):
    pieces, off = [], 0
    while off < size:
        if rnd.random() < 0.05:
            n = rnd.choice([osz - 1, osz, osz + 3, 2 * osz + 100])
        else:
            n = rnd.choice([1, 7, 100, 511, 1000, 2000, 3000, 4095, 4097,
                            6000, 9000])
        n = min(n, size - off)
        pieces.append((off, n))
        off += n
    rnd.shuffle(pieces)
    reqs = [[] for _ in range(CLIENTS)]
    for k, (off, n) in enumerate(pieces):
        x = rnd.random()
        if x < 0.80:
            data = rnd.randbytes(n)
            reqs[k % CLIENTS].append(("w", off, n, data))
            model[off:off + n] = data
        elif x < 0.92:
            reqs[k % CLIENTS].append(("z", off, n, None))
            model[off:off + n] = bytes(n)
        else:
            reqs[k % CLIENTS].append(("t", off, n, None))
            a, b = -(-off // osz), (off + n) // osz
            if b > a:
                model[a * osz:b * osz] = bytes((b - a) * osz)
    threads = [threading.Thread(target=run, args=(handles[c], reqs[c]))
               for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    got = handles[r % CLIENTS].pread(size, 0)
    if got != model:
        bad = next(i for i in range(size) if got[i] != model[i])
        sys.exit("round %d (%d pieces): the disk differs from the model "
                 "first at byte %d (object %d)" % (r, len(pieces), bad, bad // osz))
for h in handles:
    h.shutdown()
open(out, "wb").write(model)
PY

# check_objects KEY MODEL: the objects of KEY are the model's bytes, and
# exist exactly where the model is not all zero.
check_objects ()
{
  s3 image wdisks "$1" $size $osz "$1.img" ||
    fail "$1: an object has the wrong size"
  cmp "$2" "$1.img" || fail "$1: the objects differ from the model"
  s3 keys wdisks "$1/" | sed "s|^$1/||" > "$1.keys"
  "$PYTHON" - "$2" $osz > "$1.want-keys" <<'PY'
import sys
data, osz = open(sys.argv[1], "rb").read(), int(sys.argv[2])
for i in range(len(data) // osz):
    if any(data[i * osz:(i + 1) * osz]):
        print("%016x" % i)
PY
  diff "$1.want-keys" "$1.keys" >&2 ||
    fail "$1: the objects that exist are not those with data"
}

# check_extents MODEL: block status, 64 requests in flight (one per
# object), says the objects with data in MODEL are data, the others
# holes.
check_extents ()
{
  t nbdsh --base-allocation -u "$uri" -c '
OSZ, SIZE = '$osz', '$size'
model = open("'$1'", "rb").read()
got = {}
def cb(i):
    def f(meta, offset, entries, err):
        assert offset == i * OSZ and entries[0] >= OSZ, (i, offset, entries)
        got[i] = entries[1]
        return 0
    return f
for i in range(SIZE // OSZ):
    h.aio_block_status(OSZ, i * OSZ, cb(i))
assert h.aio_in_flight() > 16, h.aio_in_flight()
while h.aio_in_flight() > 0:
    h.poll(-1)
for i in range(SIZE // OSZ):
    hole = not any(model[i * OSZ:(i + 1) * OSZ])
    want = nbd.STATE_HOLE | nbd.STATE_ZERO if hole else 0
    assert got[i] == want, (i, got[i], want)
'
}

s3 split wdisks a $osz start.img
s3 split wdisks s $osz start.img

# 1. Writes, zeroes, trims and block status go asynchronously (the
# server says so with -v: bits 1 << NBD_CMD_WRITE, TRIM, WRITE_ZEROES,
# BLOCK_STATUS), and async=false turns that off.
args="$S3ARGS bucket=wdisks size=$size object-size=$osz"
start_nbdkit a -v S3 $args key=a 2> a.log
t nbdinfo --map "$uri" > /dev/null
mask=$(grep -Eo "asynchronous requests: 0x[0-9a-f]+" a.log | head -1 | sed 's/.*: //')
[ -n "$mask" ] && [ $((mask & 0xd2)) = $((0xd2)) ] ||
  { grep -i async a.log >&2; fail "writes, zeroes, trims, block status are not asynchronous ($mask)"; }

# 2. Three rounds of concurrent requests, against the model.
timeout 120 "$PYTHON" workload.py "$uri" $size $osz start.img 11 3 a.model ||
  { grep -E "error" a.log | tail -5 >&2; fail "concurrent writes (async)"; }
check_objects a a.model

check_extents a.model

# A client that disconnects with 128 writes in flight: the server
# finishes them and serves the next client.
nbdsh_u "$uri" -c '
import os
for i in range(128):
    h.aio_pwrite(os.urandom(3000), i * 30011)
h.shutdown()
' || true
nbdsh_u "$uri" -c '
h.pwrite(b"x" * 7000, 99999)
assert h.pread(7000, 99999) == b"x" * 7000
' || fail "the server did not serve the next client after a disconnect with writes in flight"


# 3. Zeroes and trims of whole and partial objects, one at a time.
nbdsh_u "$uri" -c '
OSZ = '$osz'
# Object 1 holds data after the rounds? Make sure of it, then zero it whole.
h.pwrite(b"\x01" * OSZ, 1 * OSZ)
h.pwrite(b"\x02" * OSZ, 2 * OSZ)
h.pwrite(b"\x03" * (3 * OSZ), 3 * OSZ)
h.zero(OSZ, 1 * OSZ)
# Part of object 2.
h.zero(1000, 2 * OSZ + 5)
# A trim over the end of 3, all of 4 and the start of 5: only 4 goes.
h.trim(2 * OSZ, 3 * OSZ + 100)
want = b"\x00" * OSZ + b"\x02" * 5 + b"\x00" * 1000 + b"\x02" * (OSZ - 1005) + \
       b"\x03" * OSZ + b"\x00" * OSZ + b"\x03" * OSZ
assert h.pread(5 * OSZ, OSZ) == want
'
s3 keys wdisks a/ > keys
grep -q "^a/0000000000000001$" keys && fail "the zeroed object 1 still exists"
grep -q "^a/0000000000000004$" keys && fail "the trimmed object 4 still exists"
grep -q "^a/0000000000000002$" keys || fail "the partly zeroed object 2 is gone"
grep -q "^a/0000000000000005$" keys || fail "object 5, trimmed in part, is gone"
stop_nbdkit "$pid"

# 4. Zeroes and trims of more than 64 objects list the bucket and
# delete what exists between their partial ends: a disk of 256 objects
# of 4 KiB.
bsize=$((1024 * 1024))
start_nbdkit b S3 $S3ARGS bucket=wdisks key=big size=$bsize object-size=4096
nbdsh_u "$uri" -c '
import os
SIZE = '$bsize'
data = bytearray(os.urandom(SIZE))
for i in range(0, SIZE, 65536):
    h.pwrite(data[i:i + 65536], i)
# Zero from inside object 3 to inside object 100: 4-99 deleted.
h.zero(97 * 4096, 3 * 4096 + 10)
data[3 * 4096 + 10:100 * 4096 + 10] = bytes(97 * 4096)
# Trim from inside object 150 to the end: 151-255 deleted.
h.trim(SIZE - 150 * 4096 - 7, 150 * 4096 + 7)
data[151 * 4096:] = bytes(SIZE - 151 * 4096)
assert h.pread(SIZE, 0) == data
open("big.model", "wb").write(data)
'
s3 keys wdisks big/ > big.keys
n=$(wc -l < big.keys)
# Objects 0-3 and 100-150 remain.
[ "$n" = 55 ] || { cat big.keys >&2; fail "big zero/trim: $n objects left, not 55"; }
grep -q "^big/0000000000000003$" big.keys && grep -q "^big/0000000000000096$" big.keys ||
  fail "big zero/trim: the partial ends were deleted"
stop_nbdkit "$pid"

# 5. async=false: the same workload leaves the same objects.
start_nbdkit s -v S3 $args key=s async=false 2> s.log
mask=$(grep -Eo "asynchronous requests: 0x[0-9a-f]+" s.log | head -1 | sed 's/.*: //' || true)
[ -z "$mask" ] || [ $((mask & 0xd2)) = 0 ] ||
  fail "async=false: writes are still asynchronous ($mask)"
timeout 120 "$PYTHON" workload.py "$uri" $size $osz start.img 11 3 s.model ||
  fail "concurrent writes (async=false)"
cmp a.model s.model || fail "the two runs' models differ (the workload is not seeded?)"
check_objects s s.model
check_extents s.model
# (a.img and a.keys: the objects of key a right after its workload.)
cmp a.img s.img || fail "async and async=false left different objects"
diff a.keys s.keys >&2 || fail "async and async=false left different object names"
stop_nbdkit "$pid"

# 6. radosgw killed during writes: the writes in flight fail, the
# server keeps running, and once radosgw is back a new client writes
# and reads.
start_nbdkit k S3 $args key=k timeout=10 2> k.log
rgw_pid=""
for p in $(ceph_pids); do
  [ "$(cat /proc/$p/comm 2>/dev/null)" = radosgw ] && rgw_pid=$p
done
[ -n "$rgw_pid" ] || fail "radosgw's pid not found"
nbdsh_u "$uri" -c '
import os, signal, time
cmds = []
for i in range(256):
    cmds.append(h.aio_pwrite(os.urandom(5000), (i * 7919) % ('$size' - 5000)))
# Let some go out, then kill radosgw with the rest in flight.
while h.aio_in_flight() > 200:
    h.poll(-1)
os.kill('$rgw_pid', signal.SIGKILL)
end = time.monotonic() + 60
while h.aio_in_flight() > 0:
    assert time.monotonic() < end, "writes still in flight 60 s after radosgw died"
    h.poll(1000)
failed = 0
for c in cmds:
    try:
        h.aio_command_completed(c)
    except nbd.Error as e:
        failed += 1
assert failed > 0, "no write failed with radosgw killed"
print("failed writes:", failed)
'
kill -0 "$pid" || fail "the server died with radosgw"
grep -qE "S3: (PUT|GET) .*(Couldn.t connect|Connection|Failure|Send failure|Recv failure|Empty reply)" k.log ||
  { tail -5 k.log >&2; fail "no transfer error in the log"; }
ceph_restart client.rgw || fail "radosgw did not restart"
nbdsh_u "$uri" -c '
h.pwrite(b"after" * 1000, 12345)
assert h.pread(5000, 12345) == b"after" * 1000
' || fail "the server did not serve writes once radosgw was back"
stop_nbdkit "$pid"
