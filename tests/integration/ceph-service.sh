#!/usr/bin/env bash
# The single-node Ceph starter (tests/services/ceph.sh): the cluster
# comes up with cephx on, takes a pool and an RBD image, refuses a wrong
# key; radosgw answers S3 requests signed with the user's keys and
# refuses others; ceph_stop leaves no daemon behind.
. "$(dirname "$0")/functions.sh"
requires ceph-mon --version
requires rbd --version
. "$SRCDIR/tests/services/ceph.sh"

start=$(date +%s%N)
ceph_start "$tmpdir/c" --rgw --pool extra || fail "ceph_start failed"
note "cluster and radosgw up in $(( ($(date +%s%N) - start) / 1000000 )) ms"
pids="$(ceph_pids)"
[ "$(echo $pids | wc -w)" = 3 ] || fail "expected 3 daemons, got: $pids"

# A pool and an image, with data written and read back.
t ceph osd pool create more 8 >/dev/null
t rbd create --size 16M more/img
t rbd create --size 8M extra/img2
head -c 1M /dev/urandom > data
t rbd import --no-progress data extra/data
t rbd export --no-progress extra/data back
cmp data back || fail "rbd export differs from what rbd import wrote"
assert_eq "images in pool more" "$(t rbd ls more)" img
assert_eq "size of more/img" "$(t rbd info more/img --format json | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["size"])')" $((16 << 20))

# cephx is on: a keyring with a wrong key for client.admin is refused.
ceph-authtool --create-keyring bad.keyring --gen-key -n client.admin >/dev/null
if t rbd --keyring bad.keyring ls more 2>err; then
  fail "a wrong key was accepted"
fi
note "wrong key: $(tail -n 1 err)"

# radosgw: signed requests work, a wrong secret is refused.
[ -n "$RGW_ENDPOINT" ] && [ -n "$RGW_ACCESS_KEY" ] && [ -n "$RGW_SECRET_KEY" ] ||
  fail "RGW_* not exported"
if "$PYTHON" -c 'import boto3' 2>/dev/null; then
  t "$PYTHON" - <<'PY' || fail "the S3 checks on radosgw failed (exit status $?)"
import os, boto3, botocore
def client(secret):
    return boto3.client("s3", endpoint_url=os.environ["RGW_ENDPOINT"],
                        aws_access_key_id=os.environ["RGW_ACCESS_KEY"],
                        aws_secret_access_key=secret, region_name="us-east-1")
s3 = client(os.environ["RGW_SECRET_KEY"])
s3.create_bucket(Bucket="bkt")
s3.put_object(Bucket="bkt", Key="k", Body=b"x" * 5000)
assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b"x" * 5000
try:
    client("wrong" + os.environ["RGW_SECRET_KEY"][5:]).list_objects_v2(Bucket="bkt")
    raise SystemExit("a wrong secret key was accepted")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "SignatureDoesNotMatch", e.response
PY
else
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$RGW_ENDPOINT/anon-bucket")
  assert_eq "anonymous bucket creation" "$code" 403
fi

ceph_stop
for p in $pids; do
  if [ -r /proc/$p/stat ] && [ "$(cut -d' ' -f3 /proc/$p/stat)" != Z ]; then
    fail "daemon $p still running after ceph_stop"
  fi
done
[ -z "$(ceph_pids)" ] || fail "ceph_pids not empty after ceph_stop"

# alive PID: PID runs and is not a zombie.
alive () { [ -r /proc/$1/stat ] && [ "$(cut -d' ' -f3 /proc/$1/stat)" != Z ]; }

# A script that fails under set -e: its own EXIT trap still runs, with
# its exit status, after the cluster and its registered process stop.
cat > inner.sh <<EOF
set -e
trap 'echo "own trap rc=\$?"' EXIT
. "$SRCDIR/tests/services/ceph.sh"
ceph_start "$tmpdir/c2"
sleep 300 &
_pids=\$!
echo "\$_pids \$(ceph_pids)" > inner.pids
false
EOF
t bash inner.sh > inner.out 2>&1 && fail "inner.sh succeeded"
grep -q "own trap rc=1" inner.out || { cat inner.out; fail "the script's own EXIT trap did not run with its status"; }
for p in $(cat inner.pids); do
  alive "$p" && fail "process $p left behind by a failing script"
done

# A script killed with SIGKILL: the watchdog kills the daemons.
cat > killed.sh <<EOF
. "$SRCDIR/tests/services/ceph.sh"
ceph_start "$tmpdir/c3" || exit 1
ceph_pids > killed.pids
exec sleep 300
EOF
bash killed.sh > killed.out 2>&1 &
kpid=$!
for _ in $(seq 300); do [ -s killed.pids ] && break; sleep 0.1; done
[ -s killed.pids ] || { cat killed.out; fail "killed.sh: no cluster"; }
kill -9 $kpid
wait $kpid 2>/dev/null || true
for _ in $(seq 30); do
  left=""
  for p in $(cat killed.pids); do alive "$p" && left="$left $p"; done
  [ -z "$left" ] && break
  sleep 0.1
done
[ -z "$left" ] || fail "daemons$left outlived a killed script"
