# The S3 plugin when radosgw goes away: killed while a client reads the
# disk in a loop, the client gets EIO in bounded time (never wrong
# bytes), our server stays up, a new client is refused with a message
# naming the endpoint while radosgw is down, and once radosgw runs again
# (same port) a new client reads the disk byte for byte.  The same for
# the single-object form (a key without size=).  (Wrong secret, missing
# bucket and key, unreachable endpoint: s3.sh.)
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/functions-s3.sh"
requires nbdcopy --version
requires_python_nbd
requires_ours

s3_setup
s3 mkbucket fdisks

osz=$((1 << 20))
size=$((16 << 20)) # 16 objects
head -c $size /dev/urandom > want.img
t "$PYTHON" - <<'PY' || fail "storing the objects"
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["RGW_ENDPOINT"],
                  aws_access_key_id=os.environ["RGW_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["RGW_SECRET_KEY"],
                  region_name="us-east-1")
data = open("want.img", "rb").read()
M = 1 << 20
for i in range(16):
    s3.put_object(Bucket="fdisks", Key="vm/disk/%016x" % i,
                  Body=data[i * M:(i + 1) * M])
s3.put_object(Bucket="fdisks", Key="single/obj", Body=data)
PY

# reader URI [KILL]: read the disk 1 MiB at a time, checking every byte;
# with KILL, kill radosgw before the fifth read.  Passes if a read fails
# with EIO within 8 s of radosgw going, never with wrong bytes.
reader ()
{
  t "$PYTHON" - "$@" <<'PY'
import errno, os, signal, sys, time
import nbd
want = open("want.img", "rb").read()
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.get_size() == len(want)
M = 1 << 20
killed = None
for i in range(16):
    if i == 4:
        os.kill(int(open(sys.argv[2]).read()), signal.SIGKILL)
        killed = time.monotonic()
    try:
        got = h.pread(M, i * M)
    except nbd.Error as e:
        assert killed is not None, "an error before radosgw was killed: %s" % e
        took = time.monotonic() - killed
        assert e.errnum == errno.EIO, e
        assert took < 8, "the error came %.1f s after the kill" % took
        print("EIO %.1f s after radosgw went: %s" % (took, e.string))
        sys.exit(0)
    assert got == want[i * M:(i + 1) * M], "wrong bytes at %d MiB" % i
sys.exit("no error: every read succeeded")
PY
}

# kill_case NAME PATTERN S3-ARGS...: the whole story for one server.
kill_case ()
{
  local name=$1 pattern=$2
  shift 2
  start_nbdkit "$name" S3 $S3ARGS bucket=fdisks timeout=5 "$@" 2> "$name.log"
  local spid=$pid
  reader "$uri" "$CEPH_DIR/run/client.rgw.daemon" ||
    { cat "$name.log"; fail "$name: the reader, radosgw killed"; }
  ceph_kill client.rgw || true
  kill -0 "$spid" || fail "$name: the server died with radosgw"
  grep -Eq "$pattern" "$name.log" ||
    { cat "$name.log"; fail "$name: no message matching /$pattern/"; }
  note "$name: $(grep -E "$pattern" "$name.log" | head -n 1)"
  : > "$name.log"
  if t nbdinfo --size "$uri" > /dev/null 2>&1; then
    fail "$name: a client got through while radosgw was down"
  fi
  # (The server writes on at its offset: NULs before it in the log.)
  grep -aq "${RGW_ENDPOINT#http://}" "$name.log" ||
    { cat "$name.log"; fail "$name: no message naming the endpoint while radosgw is down"; }
  note "$name, radosgw down: $(tr -d '\000' < "$name.log" | grep -m 1 error)"
  kill -0 "$spid" || fail "$name: the server died on a refused client"
  ceph_restart client.rgw || fail "$name: radosgw did not restart"
  t nbdcopy "$uri" "$name.img"
  cmp want.img "$name.img" || fail "$name: after radosgw came back: data differs"
  stop_nbdkit "$spid" || fail "$name: the server did not stop"
}

kill_case disk "vm/disk/0*[4-9a-f]" key=vm/disk size=$size object-size=$osz
kill_case single "single/obj" key=single/obj
echo "s3-failures: OK"
