# The S3 plugin against a real radosgw: data written through nbdcopy
# and nbdsh lands in the bucket as the objects KEY/%016x with exactly
# the bytes written; zero and trim delete whole objects; partial writes
# to one object from many requests at once all survive; reads of
# missing objects are zeroes; nbdcopy -C 4 round-trips; and wrong
# credentials, a missing bucket and an unreachable endpoint give errors
# that say so.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/functions-s3.sh"
requires nbdcopy --version
requires nbdsh --version
requires_ours

s3_setup
s3 mkbucket disks

osz=$((64 * 1024))
size=$((2 * 1024 * 1024)) # 32 objects
# The secret key through the password form +FILE.
printf %s "$RGW_SECRET_KEY" > secret
args="endpoint-url=$RGW_ENDPOINT access-key=$RGW_ACCESS_KEY secret-key=+$tmpdir/secret"
start_nbdkit s3 S3 $args bucket=disks key=vm/disk size=$size object-size=$osz

# 1. nbdcopy a sparse image: random data in objects 0-3, 10 (part of
# it) and 31; zeroes elsewhere, which become no object at all.
truncate -s $size want.img
head -c $((4 * osz)) /dev/urandom | dd of=want.img conv=notrunc status=none
head -c 1000 /dev/urandom | dd of=want.img bs=1 seek=$((10 * osz + 5000)) conv=notrunc status=none
head -c $osz /dev/urandom | dd of=want.img bs=$osz seek=31 conv=notrunc status=none
t nbdcopy want.img "$uri"
s3 image disks vm/disk $size $osz got.img
cmp want.img got.img || fail "objects in the bucket differ from the bytes written by nbdcopy"
keys="$(s3 keys disks vm/ | tr '\n' ' ')"
assert_eq "objects after nbdcopy" "$keys" \
  "vm/disk/0000000000000000 vm/disk/0000000000000001 vm/disk/0000000000000002 vm/disk/0000000000000003 vm/disk/000000000000000a vm/disk/000000000000001f "

# Block status comes from the listing: those objects are data, the
# rest holes.
t nbdsh --base-allocation -u "$uri" -c '
OSZ, SIZE = '$osz', '$size'
data, off = set(), 0
def cb(meta, offset, entries, err):
    global off
    for i in range(0, len(entries), 2):
        n, flags = entries[i], entries[i + 1]
        assert off % OSZ == 0 and n % OSZ == 0, (off, n)
        if not flags & nbd.STATE_HOLE:
            data.update(range(off // OSZ, (off + n) // OSZ))
        else:
            assert flags & nbd.STATE_ZERO
        off += n
while off < SIZE:
    h.block_status(SIZE - off, off, cb)
assert data == {0, 1, 2, 3, 10, 31}, sorted(data)
'

# 2. Through nbdsh: unaligned writes across objects (read-modify-write),
# many concurrent small writes into one object, sparse reads, zero and
# trim; each time the bucket is checked directly.
cp want.img model.img
nbdsh_u "$uri" -c '
import os, subprocess
OSZ, SIZE = '$osz', '$size'
model = bytearray(open("model.img", "rb").read())
def check(what):
    assert h.pread(SIZE, 0) == model, what + ": read back differs"
    open("model.img", "wb").write(model)
    subprocess.run(["bash", "-c", "timeout 30 $PYTHON s3tool.py image disks vm/disk %d %d got.img" % (SIZE, OSZ)], check=True)
    assert open("got.img", "rb").read() == model, what + ": bucket differs"
def keys():
    out = subprocess.run(["timeout", "30", os.environ["PYTHON"], "s3tool.py", "keys", "disks", "vm/"],
                         check=True, capture_output=True, text=True).stdout
    return [int(k[-16:], 16) for k in out.split()]

# Sparse: objects 5-9 do not exist and read as zeroes.
assert h.pread(5 * OSZ, 5 * OSZ) == bytearray(5 * OSZ)

# Unaligned, across three objects (partial, whole, partial).
d = os.urandom(2 * OSZ + 777)
h.pwrite(d, 3 * OSZ + 100)
model[3 * OSZ + 100:3 * OSZ + 100 + len(d)] = d
check("unaligned write")

# 64 writes of 1000 bytes into object 20 at once: each one reads,
# merges and writes the object back; none may lose another.
cmds = []
for i in range(64):
    b = os.urandom(1000)
    off = 20 * OSZ + i * 1000
    model[off:off + 1000] = b
    cmds.append(h.aio_pwrite(b, off))
while h.aio_in_flight() > 0:
    h.poll(-1)
for c in cmds:
    assert h.aio_command_completed(c)
check("concurrent partial writes")

# Zero: the whole objects 1-2 are deleted, part of 0 and 3 is zeroed.
h.zero(2 * OSZ + 2000, OSZ - 1000)
model[OSZ - 1000:3 * OSZ + 1000] = bytearray(2 * OSZ + 2000)
check("zero")
k = keys()
assert 1 not in k and 2 not in k and 0 in k and 3 in k, "zero: objects %r" % k

# Trim: whole objects 4 and 5 go, the partial ends (3, 6) stay.
before = keys()
h.trim(2 * OSZ + 2 * 1000, 4 * OSZ - 1000)
after = keys()
assert set(before) - set(after) == {4, 5}, "trim: %r -> %r" % (before, after)
model[4 * OSZ:6 * OSZ] = bytearray(2 * OSZ)
check("trim")

# Writing zeroes over a whole object deletes it too.
h.pwrite(bytearray(OSZ), 31 * OSZ)
model[31 * OSZ:] = bytearray(OSZ)
assert 31 not in keys(), "a zero-filled object was kept"
check("zero write")
h.flush()
'

# 3. nbdcopy -C 4 (-R 8 requests in flight each) both ways; writes of
# half an object, so connections merge into the same objects at once.
head -c $size /dev/urandom > rand.img
t nbdcopy -C 4 -R 8 --request-size=32768 rand.img "$uri"
t nbdcopy -C 4 -R 8 "$uri" back.img
cmp rand.img back.img || fail "nbdcopy -C 4 round trip differs"
s3 image disks vm/disk $size $osz got.img
cmp rand.img got.img || fail "nbdcopy -C 4: objects differ"
stop_nbdkit "$pid"

# 4. A key without size= is one object, read-only; the size is its own.
head -c 300000 /dev/urandom > one.img
s3 put disks single/obj one.img
start_nbdkit single S3 $args bucket=disks key=single/obj
assert_eq "single object size" "$(t nbdinfo --size "$uri")" 300000
t nbdcopy "$uri" one-back.img
cmp one.img one-back.img || fail "single object read differs"
nbdsh_u "$uri" -c 'assert h.is_read_only()'
stop_nbdkit "$pid"

# 5. Credentials from a credentials file (profile=) and from the
# environment, without access-key=.
cat > creds <<CREDS
[default]
aws_access_key_id = nobody
aws_secret_access_key = wrong

[rgw]
aws_access_key_id = $RGW_ACCESS_KEY
aws_secret_access_key = $RGW_SECRET_KEY
CREDS
start_nbdkit creds S3 endpoint-url=$RGW_ENDPOINT credentials-file=$tmpdir/creds \
  profile=rgw bucket=disks key=single/obj
t nbdcopy "$uri" creds.img
cmp one.img creds.img || fail "read with credentials-file= profile= differs"
stop_nbdkit "$pid"
AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY \
  HOME=$tmpdir/nohome start_nbdkit env S3 endpoint-url=$RGW_ENDPOINT \
  bucket=disks key=single/obj
assert_eq "size with AWS_* credentials" "$(t nbdinfo --size "$uri")" 300000
stop_nbdkit "$pid"

# 6. Errors, each logged with the bucket and the reason.
expect_error ()
{
  local what="$1" pattern="$2"; shift 2
  start_nbdkit err S3 "$@" 2> err.log
  if t nbdinfo --size "$uri" > /dev/null 2>&1; then
    fail "$what: the client connected"
  fi
  stop_nbdkit "$pid"
  grep -Eq "$pattern" err.log || { cat err.log >&2; fail "$what: no /$pattern/ in the log"; }
  note "$what: $(grep -E "$pattern" err.log | head -1)"
}
expect_error "wrong secret" "bucket 'disks'.*HTTP 403 SignatureDoesNotMatch: wrong secret-key" \
  endpoint-url=$RGW_ENDPOINT access-key=$RGW_ACCESS_KEY secret-key=wrong \
  bucket=disks key=vm/disk size=$size object-size=$osz
expect_error "missing bucket" "bucket 'nosuch'.*HTTP 404 NoSuchBucket" \
  $args bucket=nosuch key=vm/disk size=$size object-size=$osz
expect_error "missing object" "object 'single/none' in bucket 'disks'.*HTTP 404" \
  $args bucket=disks key=single/none
expect_error "wrong profile" "bucket 'disks'.*HTTP 403 InvalidAccessKeyId" \
  endpoint-url=$RGW_ENDPOINT credentials-file=$tmpdir/creds \
  bucket=disks key=vm/disk size=$size object-size=$osz
port=$(free_port)
expect_error "unreachable endpoint" "127.0.0.1:$port.*(connect|refused)" \
  endpoint-url=http://127.0.0.1:$port access-key=a secret-key=b \
  bucket=disks key=vm/disk size=$size object-size=$osz

# size= without object-size= is refused at start.
if "$NBDKIT" -U "$tmpdir/x.sock" S3 $args bucket=disks key=k size=1M 2> cfg.log; then
  fail "size= alone accepted"
fi
grep -q "object-size" cfg.log || fail "size= alone: no message naming object-size="
