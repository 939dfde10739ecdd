# Helpers for the S3 plugin's tests: a Ceph cluster with radosgw
# (tests/services/ceph.sh) and a Python/boto3 tool to look at the
# bucket directly.  Source after functions.sh:
#
#   . "$(dirname "$0")/functions-s3.sh"
#   s3_setup                     # cluster up; skips without radosgw
#   s3 mkbucket NAME             # see s3tool.py below for the commands
#   S3ARGS="endpoint-url=... access-key=... secret-key=..."

requires radosgw --version
requires ceph-mon --version
"$PYTHON" -c 'import boto3' 2>/dev/null || fail "python3-boto3 is missing"
[ -f "$BUILDDIR/plugins/nbdkit-S3-plugin.so" ] || [ "$OURS" != 1 ] ||
  fail "the S3 plugin was not built (libcurl missing?)"

# s3 COMMAND ARGS...: look at the bucket with boto3, not through us.
#   mkbucket B            create bucket B
#   keys B PREFIX         the keys under PREFIX, one a line
#   image B KEY SIZE OSZ FILE   rebuild the disk KEY/%016x from its
#                         objects into FILE (missing objects: zeroes),
#                         failing if an object has the wrong size
#   put B KEY FILE        store FILE as the object KEY
#   split B KEY OSZ FILE  store FILE as the disk KEY/%016x, one object
#                         of OSZ bytes for each part not all zero
s3 ()
{
  timeout 30 "$PYTHON" "$tmpdir/s3tool.py" "$@"
}

cat > "$tmpdir/s3tool.py" <<'PY'
import os, sys, boto3, botocore
s3 = boto3.client("s3", endpoint_url=os.environ["RGW_ENDPOINT"],
                  aws_access_key_id=os.environ["RGW_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["RGW_SECRET_KEY"],
                  region_name="us-east-1")
cmd, b = sys.argv[1], sys.argv[2]
def keys(prefix):
    out, kw = [], {"Bucket": b, "Prefix": prefix}
    while True:
        r = s3.list_objects_v2(**kw)
        out += [o["Key"] for o in r.get("Contents", [])]
        if not r.get("IsTruncated"):
            return out
        kw["ContinuationToken"] = r["NextContinuationToken"]
if cmd == "mkbucket":
    s3.create_bucket(Bucket=b)
elif cmd == "keys":
    for k in keys(sys.argv[3]):
        print(k)
elif cmd == "image":
    key, size, osz, path = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    img = bytearray(size)
    for k in keys(key + "/"):
        i = int(k[len(key) + 1:], 16)
        body = s3.get_object(Bucket=b, Key=k)["Body"].read()
        if len(body) != osz:
            sys.exit("object %s has %d bytes, not %d" % (k, len(body), osz))
        img[i * osz:(i + 1) * osz] = body
    open(path, "wb").write(img)
elif cmd == "put":
    s3.put_object(Bucket=b, Key=sys.argv[3], Body=open(sys.argv[4], "rb").read())
elif cmd == "split":
    key, osz = sys.argv[3], int(sys.argv[4])
    data = open(sys.argv[5], "rb").read()
    for i in range(len(data) // osz):
        obj = data[i * osz:(i + 1) * osz]
        if any(obj):
            s3.put_object(Bucket=b, Key="%s/%016x" % (key, i), Body=obj)
else:
    sys.exit("s3tool: unknown command " + cmd)
PY

s3_setup ()
{
  . "$SRCDIR/tests/services/ceph.sh"
  ceph_start "$tmpdir/c" --rgw --no-pool || fail "the Ceph cluster did not start"
  # ceph_start's EXIT trap runs "(exit $rc)" before the previous trap
  # (functions.sh's _cleanup); under set -e a failing test's status
  # ends the trap there and the servers the test started are never
  # killed.  The same order, without set -e:
  trap '_s3_rc=$?; set +e; ceph_stop; (exit $_s3_rc); _cleanup' EXIT
  S3ARGS="endpoint-url=$RGW_ENDPOINT access-key=$RGW_ACCESS_KEY secret-key=$RGW_SECRET_KEY"
}
