# cache filter: when $TMPDIR fills up (a 2M tmpfs), writes to the cache
# file fail with ENOSPC; the filter reclaims blocks (writing dirty ones
# to the plugin) and retries, or bypasses the cache, and no data is lost.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdcopy
requires cmp
mkdir "$tmpdir/small"
mount -t tmpfs -o size=2M tmpfs "$tmpdir/small" 2>/dev/null ||
  skip "cannot mount a tmpfs (not root, or not permitted)"
# Lazily: the server may still hold the cache file when this runs.
trap 'rc=$?; umount -l "$tmpdir/small" 2>/dev/null; (exit $rc); _cleanup' EXIT

head -c 8M /dev/urandom > src.img
TMPDIR="$tmpdir/small" start_nbdkit c -v --filter=cache memory 8M \
  cache-on-read=true 2> server.log
t nbdcopy src.img "$uri" || fail "nbdcopy into the cache failed"
t nbdcopy "$uri" out.img || fail "nbdcopy out of the cache failed"
cmp src.img out.img || fail "data differs after the cache filled up"
grep -q "reclaimed" server.log || fail "the cache never reclaimed"
# The cache never grew past the filesystem.
used=$(df --output=used -k "$tmpdir/small" | tail -1)
[ "$used" -le 2048 ] || fail "tmpfs usage $used K"
t nbdcopy --flush src.img "$uri" || fail "second copy failed"
t nbdcopy "$uri" out2.img && cmp src.img out2.img ||
  fail "data differs after the second copy"
note "PASS"
