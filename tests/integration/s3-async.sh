# The S3 plugin's asynchronous reads against a real radosgw: the server
# takes reads through async_pread (and not with async=false); many
# reads in flight at once (libnbd aio, nbdcopy -C 4 -R 16) return the
# bytes of the objects, holes included; an object of the wrong size
# and a bucket deleted after start fail only the reads they touch; a
# client that disconnects with reads in flight leaves the server
# serving the next one; and async=false reads the same bytes.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/functions-s3.sh"
requires nbdcopy --version
requires nbdsh --version
requires_ours

s3_setup
s3 mkbucket adisks

osz=$((64 * 1024))
size=$((4 * 1024 * 1024)) # 64 objects
# Objects 0-39 and 50 hold random data, the rest do not exist (holes).
head -c $((40 * osz)) /dev/urandom > want.img
truncate -s $size want.img
head -c $osz /dev/urandom | dd of=want.img bs=$osz seek=50 conv=notrunc status=none
s3 split adisks vm/disk $osz want.img
args="$S3ARGS bucket=adisks key=vm/disk size=$size object-size=$osz"

# 1. Reads go asynchronously (the server says so with -v), and
# async=false turns that off.
start_nbdkit a -v S3 $args 2> a.log
t nbdinfo --size "$uri" > /dev/null
grep -Eq "asynchronous requests: 0x[0-9a-f]*[13579bdf]\b" a.log ||
  { grep -i async a.log >&2; fail "reads are not asynchronous"; }

# 2. 256 reads in flight at once from one connection, of random
# offsets and lengths (within an object, across objects, in holes),
# checked against the image the objects were made from.
nbdsh_u "$uri" -c '
import random
SIZE = '$size'
want = open("want.img", "rb").read()
rnd = random.Random(7)
cmds = []
for i in range(256):
    n = rnd.choice([4096, 1000, 65536, 3 * 65536 + 17, 512 * 1024])
    off = rnd.randrange(0, SIZE - n)
    buf = nbd.Buffer(n)
    cmds.append((h.aio_pread(buf, off), buf, off, n))
assert h.aio_in_flight() > 16, h.aio_in_flight()
while h.aio_in_flight() > 0:
    h.poll(-1)
for c, buf, off, n in cmds:
    assert h.aio_command_completed(c)
    assert buf.to_bytearray() == want[off:off + n], "read at %d for %d differs" % (off, n)
# The holes read as zeroes.
assert h.pread(9 * 65536, 41 * 65536) == bytearray(9 * 65536)
assert h.pread(65536, 50 * 65536) == want[50 * 65536:51 * 65536]
'

# 3. nbdcopy -C 4 -R 16: 64 reads in flight, all bytes checked.
t nbdcopy -C 4 -R 16 --request-size=65536 "$uri" back.img
cmp want.img back.img || fail "nbdcopy -C 4 -R 16 read differs from the objects"

# 4. A disconnect with 128 reads in flight: the server stays up and
# serves the next client.
nbdsh_u "$uri" -c '
for i in range(128):
    h.aio_pread(nbd.Buffer(65536), (i % 64) * 65536)
h.shutdown()
' || true
nbdsh_u "$uri" -c '
want = open("want.img", "rb").read()
assert h.pread(65536, 0) == want[:65536]
' || fail "the server did not serve the next client after a disconnect"
kill -0 "$pid" || fail "the server died after a client disconnected with reads in flight"

# 5. An object of the wrong size fails the reads that touch it (EIO,
# logged with the object) and no other read in flight.
head -c 1000 /dev/urandom > short.obj
s3 put adisks vm/disk/0000000000000003 short.obj
nbdsh_u "$uri" -c '
import errno
want = open("want.img", "rb").read()
cmds = []
for i in range(32):
    buf = nbd.Buffer(65536)
    cmds.append((h.aio_pread(buf, i * 65536), buf, i))
while h.aio_in_flight() > 0:
    h.poll(-1)
for c, buf, i in cmds:
    if i == 3:
        try:
            h.aio_command_completed(c)
            raise AssertionError("the read of the short object succeeded")
        except nbd.Error as e:
            assert e.errno == "EIO", e.errno
    else:
        assert h.aio_command_completed(c)
        assert buf.to_bytearray() == want[i * 65536:(i + 1) * 65536], i
' || { grep -iE "error|failed|HTTP" a.log | grep -v "debug: S3: async read" | tail -8 >&2; fail "reads beside the short object failed"; }
grep -q "vm/disk/0000000000000003.*is object-size right" a.log ||
  fail "the short object was not named in the log"

# 6. async=false reads the same bytes (the short object aside).
stop_nbdkit "$pid"
start_nbdkit s -v S3 $args async=false 2> s.log
t nbdcopy -C 4 -R 16 "$uri" back2.img 2> /dev/null && fail "the short object read without an error"
nbdsh_u "$uri" -c '
want = open("want.img", "rb").read()
assert h.pread(3 * 65536, 0) == want[:3 * 65536]
assert h.pread(20 * 65536, 4 * 65536) == want[4 * 65536:24 * 65536]
'
if grep -Eq "asynchronous requests: 0x[0-9a-f]*[13579bdf]\b" s.log; then
  fail "async=false: reads are still asynchronous"
fi
stop_nbdkit "$pid"

# 7. The bucket deleted after start: reads fail (not zeroes), with the
# reason in the log.
start_nbdkit d S3 $args 2> d.log
cat > rmbucket.py <<'PY'
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["RGW_ENDPOINT"],
                  aws_access_key_id=os.environ["RGW_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["RGW_SECRET_KEY"],
                  region_name="us-east-1")
for o in s3.list_objects_v2(Bucket="adisks").get("Contents", []):
    s3.delete_object(Bucket="adisks", Key=o["Key"])
s3.delete_bucket(Bucket="adisks")
PY
nbdsh_u "$uri" -c '
import errno, subprocess, os
assert h.pread(4096, 0) != bytearray(4096)
subprocess.run(["timeout", "30", os.environ["PYTHON"], "rmbucket.py"], check=True)
cmds = [h.aio_pread(nbd.Buffer(65536), i * 65536) for i in range(16)]
while h.aio_in_flight() > 0:
    h.poll(-1)
for c in cmds:
    try:
        h.aio_command_completed(c)
        raise AssertionError("a read of a deleted bucket succeeded")
    except nbd.Error as e:
        assert e.errno in ("EIO", "EINVAL"), e.errno
'
grep -q "NoSuchBucket" d.log || { cat d.log >&2; fail "no NoSuchBucket in the log"; }
stop_nbdkit "$pid"
