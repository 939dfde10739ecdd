# The S3 plugin: a read that radosgw does not answer within timeout=
# (radosgw stopped with SIGSTOP, its connections open) fails with EIO,
# as a broken transfer does: the NBD protocol has no code for ETIMEDOUT,
# and EINVAL would tell the client its request was wrong (nbd_errno).
# The server stays up and serves again once radosgw runs.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/functions-s3.sh"
requires_python_nbd
requires_ours

s3_setup
s3 mkbucket tdisks
head -c $((1 << 20)) /dev/urandom > one.img
s3 put tdisks obj one.img
start_nbdkit t S3 $S3ARGS bucket=tdisks key=obj timeout=2 2> t.log
rgw=$(cat "$CEPH_DIR/run/client.rgw.daemon")
t "$PYTHON" - "$uri" "$rgw" <<'PY' || { kill -CONT "$rgw"; cat t.log; fail "a read radosgw does not answer"; }
import errno, os, signal, sys, time
import nbd
want = open("one.img", "rb").read()
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.pread(4096, 0) == want[:4096]
os.kill(int(sys.argv[2]), signal.SIGSTOP)
t = time.monotonic()
try:
    h.pread(4096, 8192)
    sys.exit("the read succeeded")
except nbd.Error as e:
    took = time.monotonic() - t
    print("error after %.1f s: %s" % (took, e.string))
    assert e.errnum == errno.EIO, e
    assert took < 15, took  # 2 s, and more on a busy machine
PY
kill -CONT "$rgw"
grep -Eq "object 'obj' in bucket 'tdisks'.*(Timeout|timed out)" t.log ||
  { cat t.log; fail "no message naming the object and the timeout"; }
kill -0 "$pid" || fail "the server died after a timeout"
t nbdsh -u "$uri" -c 'assert h.pread(h.get_size(), 0) == open("one.img", "rb").read()'
stop_nbdkit "$pid"
echo "s3-timeout-errno: OK"
