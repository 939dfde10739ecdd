#!/usr/bin/env bash
# The rbd plugin against a real single-node Ceph cluster
# (tests/services/ceph.sh), one cluster for every case:
# - data written through our server by nbdcopy (with -C 4 and
#   multi-conn), nbdsh (FUA, odd offsets) and qemu-img is in the image,
#   byte for byte, as `rbd export` sees it, and reads back;
# - trim and zero leave holes that nbdinfo --map reports and that
#   `rbd export` reads as zeroes; zero without may-trim is refused to
#   fast-zero requests and still zeroes;
# - a snapshot is served read-only with the data of its time;
# - namespace= finds an image in a RADOS namespace; a user with
#   read-only caps gets the image read-only;
# - a missing image, pool or snapshot, a wrong or broken keyring and an
#   unreachable monitor each fail at start-up with a message naming
#   what is wrong, within the connect timeout;
# - the OSD killed while a client reads (io-timeout=): EIO in bounded
#   time, the server stays up and serves the image again once the OSD
#   is back; with the OSD stopped, the server stops in bounded time.
. "$(dirname "$0")/functions.sh"
requires ceph-mon --version
requires rbd --version
requires nbdcopy --version
requires nbdinfo --version
requires nbdsh --version
requires qemu-img --version
. "$SRCDIR/tests/services/ceph.sh"

ceph_start "$tmpdir/c" || fail "ceph_start failed"
C="conf=$CEPH_CONF keyring=$CEPH_KEYRING"
M=$((1 << 20))

t rbd create --size 64M rbd/disk
start_nbdkit disk rbd rbd/disk $C
info="$(t nbdinfo "$uri")"
for f in can_multi_conn can_trim can_zero can_fast_zero can_fua can_flush; do
  echo "$info" | grep -q "$f: true" || fail "nbdinfo: $f is not true"
done
echo "$info" | grep -q 'is_read_only: false' || fail "the image is read-only"
assert_eq size "$(t nbdinfo --size "$uri")" $((64 * M))

# nbdcopy with four connections; the rest of the image stays a hole.
head -c $((24 * M)) /dev/urandom > in.img
t nbdcopy -C 4 --flush in.img "$uri"
t rbd export --no-progress rbd/disk exp1.img
cmp -n $((24 * M)) in.img exp1.img || fail "rbd export differs from what nbdcopy -C 4 wrote"
cmp -n $((40 * M)) -i $((24 * M)):0 exp1.img /dev/zero || fail "unwritten part not zero"
t nbdcopy -C 4 "$uri" out1.img
cmp -n $((24 * M)) in.img out1.img || fail "nbdcopy read back differs"

# nbdsh: writes at odd offsets, one with FUA, then read back.
head -c 300000 /dev/urandom > piece
t nbdsh -u "$uri" -c "
data = open('piece', 'rb').read()
h.pwrite(data, 1000001)
h.pwrite(data[:4096], 30 * 2**20 + 7, nbd.CMD_FLAG_FUA)
assert h.pread(len(data), 1000001) == data
assert h.pread(4096, 30 * 2**20 + 7) == data[:4096]
h.flush()
"
t rbd export --no-progress rbd/disk exp2.img
cmp -n 300000 -i 0:1000001 piece exp2.img || fail "nbdsh write not in the image"
cmp -n 4096 -i 0:$((30 * M + 7)) piece exp2.img || fail "FUA write not in the image"
cmp -n 1000001 in.img exp2.img || fail "bytes before the nbdsh write changed"

# qemu-img writes through the NBD driver; rbd export agrees.
head -c $((8 * M)) /dev/urandom > q.img
t qemu-img convert -n -f raw -O raw q.img "$uri"
t rbd export --no-progress rbd/disk exp3.img
cmp -n $((8 * M)) q.img exp3.img || fail "rbd export differs from what qemu-img wrote"

# Trim whole objects (4 MiB) at 12M..20M, zero 20M..24M (may trim),
# 8M..8M+64K and 36M..40M without may-trim (allocated: data in the
# map); fast zero without may-trim is refused.
t nbdsh -u "$uri" -c "
import errno
h.trim(8 * 2**20, 12 * 2**20)
h.zero(4 * 2**20, 20 * 2**20)
h.zero(65536, 8 * 2**20, nbd.CMD_FLAG_NO_HOLE)
h.zero(4 * 2**20, 36 * 2**20, nbd.CMD_FLAG_NO_HOLE)
try:
    h.zero(65536, 9 * 2**20, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FAST_ZERO)
    raise SystemExit('fast zero without may-trim was accepted')
except nbd.Error as e:
    assert e.errnum == errno.ENOTSUP, e
assert h.pread(65536, 8 * 2**20) == bytes(65536)
assert h.pread(4096, 9 * 2**20) != bytes(4096)
h.flush()
" || fail "trim/zero through nbdsh"
t rbd export --no-progress rbd/disk exp4.img
cmp -n $((12 * M)) -i $((12 * M)):0 exp4.img /dev/zero || fail "trimmed/zeroed range 12M..24M not zero in rbd export"
cmp -n 65536 -i $((8 * M)):0 exp4.img /dev/zero || fail "zeroed 64K at 8M not zero in rbd export"
cmp -n $((4 * M)) -i $((36 * M)):0 exp4.img /dev/zero || fail "zeroed 36M..40M not zero in rbd export"
cmp -n $((M - 65536)) -i $((8 * M + 65536)):$((8 * M + 65536)) exp4.img in.img ||
  fail "zero touched bytes after its range"
t nbdinfo --map --json "$uri" > map.json
"$PYTHON" - <<'EOF' || fail "nbdinfo --map: $(cat map.json)"
import json
m = json.load(open("map.json"))
M = 1 << 20
def type_at(off):
    for e in m:
        if e["offset"] <= off < e["offset"] + e["length"]:
            return e["type"]
    raise SystemExit("no extent at %d" % off)
# Trimmed and zeroed whole objects are holes; written data is data; the
# never-written tail is a hole.
# Zeroes written without may-trim stay allocated.
for off in (12 * M, 16 * M, 20 * M, 23 * M, 40 * M, 63 * M):
    assert type_at(off) == 3, (off, type_at(off))
for off in (0, 5 * M, 9 * M, 30 * M, 37 * M):
    assert type_at(off) == 0, (off, type_at(off))
EOF

# A snapshot: served read-only, with the data it was taken with.
t rbd snap create --no-progress rbd/disk@s1
t rbd export --no-progress rbd/disk@s1 snap.img
head -c $((4 * M)) /dev/urandom > new.img
t nbdcopy new.img "$uri"
stop_nbdkit "$pid"
start_nbdkit snap rbd rbd/disk@s1 $C
t nbdinfo "$uri" | grep -q 'is_read_only: true' || fail "snapshot export not read-only"
t nbdcopy "$uri" snapread.img
cmp snap.img snapread.img || fail "snapshot reads differ from rbd export of the snapshot"
t nbdsh -u "$uri" -c "
import errno
try:
    h.pwrite(b'x' * 512, 0)
    raise SystemExit('write to a snapshot accepted')
except nbd.Error as e:
    assert e.errnum == errno.EPERM, e
"
stop_nbdkit "$pid"
# snapshot= is the same as @.
start_nbdkit snap2 rbd image=disk pool=rbd snapshot=s1 $C
t nbdcopy "$uri" snapread2.img
cmp snap.img snapread2.img || fail "snapshot= reads differ"
stop_nbdkit "$pid"
t rbd export --no-progress rbd/disk head.img
cmp -n $((4 * M)) new.img head.img || fail "write after the snapshot not in the image"

# namespace=: an image in a RADOS namespace of the pool.
t rbd namespace create rbd/ns1
t rbd create --size 4M rbd/ns1/inner
start_nbdkit ns rbd image=inner namespace=ns1 $C
head -c $((4 * M)) /dev/urandom > ns.img
t nbdcopy ns.img "$uri"
stop_nbdkit "$pid"
t rbd export --no-progress rbd/ns1/inner ns-exp.img
cmp ns.img ns-exp.img || fail "namespace image differs"

# A user with read-only caps gets the image read-only.
t ceph auth get-or-create client.ro mon 'profile rbd' osd 'profile rbd-read-only' > ro.keyring
start_nbdkit ro rbd rbd/disk conf="$CEPH_CONF" id=ro keyring="$tmpdir/ro.keyring"
t nbdinfo "$uri" | grep -q 'is_read_only: true' || fail "read-only user: export not read-only"
t nbdcopy "$uri" ro.img
cmp ro.img head.img || fail "read-only user reads differ from rbd export"
stop_nbdkit "$pid"

# Failures at start-up: exit status 1 and a message naming the problem.
# expect_fail PATTERN ARGS...: the server must fail with PATTERN in stderr.
expect_fail ()
{
  local pattern="$1"; shift
  if t "$NBDKIT" -U - rbd "$@" --run true 2>err; then
    fail "server started with: $*"
  fi
  grep -q -- "$pattern" err || { cat err; fail "no '$pattern' in the error for: $*"; }
  note "$(head -n 1 err)"
}
expect_fail "image 'nope' not found in pool 'rbd'" rbd/nope $C
expect_fail "pool 'nopool' does not exist" nopool/disk $C
expect_fail "image 'disk' has no snapshot 'nosnap'" rbd/disk@nosnap $C
ceph-authtool --create-keyring bad.keyring --gen-key -n client.admin >/dev/null
expect_fail "refused client.admin: unknown user or wrong key in keyring=.*bad.keyring" \
  rbd/disk conf="$CEPH_CONF" keyring="$tmpdir/bad.keyring"
echo "not a keyring" > garbage.keyring
expect_fail "keyring=.*garbage.keyring: not a Ceph keyring" \
  rbd/disk conf="$CEPH_CONF" keyring="$tmpdir/garbage.keyring"
expect_fail "keyring=.*missing.keyring" \
  rbd/disk conf="$CEPH_CONF" keyring="$tmpdir/missing.keyring"
# A monitor address where nothing listens: bounded by timeout=.
dead=$(free_port)
sed "s/^mon host = .*/mon host = [v2:127.0.0.1:$dead]/" "$CEPH_CONF" > dead.conf
start=$(date +%s)
expect_fail "no answer from the cluster's monitors within 2 s" \
  rbd/disk conf="$tmpdir/dead.conf" keyring="$CEPH_KEYRING" timeout=2
[ $(( $(date +%s) - start )) -le 8 ] || fail "unreachable monitor: not bounded by timeout=2"
expect_fail "expected IMAGE, POOL/IMAGE" rbd/

expect_fail "io-timeout=-1: expected 0 to 86400 seconds" rbd/disk $C io-timeout=-1

# The OSD killed while a client reads, with io-timeout=2: the reads
# fail with EIO within the bound (never wrong bytes, never a hang), the
# server stays up, a new client's read fails the same way while the
# OSD is down, and once it runs again a new client reads the image
# byte for byte.  A clean stop first writes the OSD's memory store to
# disk, so that the OSD killed below comes back with the image.
head -c $((16 * M)) /dev/urandom > kill.img
t rbd import --no-progress kill.img rbd/kill
ceph_persist_osd || fail "ceph tell osd.0 config set failed"
ceph_kill osd.0 TERM || fail "the OSD did not stop"
ceph_restart osd.0 || fail "the OSD did not restart"
start_nbdkit kill rbd rbd/kill $C io-timeout=2 2> kill.err
kill_pid=$pid
reader ()
{
  t "$PYTHON" - "$uri" "$@" <<'PY'
import errno, os, signal, sys, time
import nbd
want = open("kill.img", "rb").read()
h = nbd.NBD()
h.connect_uri(sys.argv[1])
M = 1 << 20
killed = None
if len(sys.argv) < 3:
    killed = time.monotonic()  # the OSD is down already
for i in range(16):
    if i == 4 and len(sys.argv) > 2:
        os.kill(int(open(sys.argv[2]).read()), signal.SIGKILL)
        killed = time.monotonic()
    try:
        got = h.pread(M, i * M)
    except nbd.Error as e:
        took = time.monotonic() - killed
        assert killed is not None, "an error before the OSD was killed: %s" % e
        assert e.errnum == errno.EIO, e
        assert took < 8, "the error came %.1f s after the kill" % took
        print("EIO %.1f s after the OSD went: %s" % (took, e.string))
        sys.exit(0)
    assert got == want[i * M:(i + 1) * M], "wrong bytes at %d MiB" % i
sys.exit("no error: every read succeeded")
PY
}
reader "$CEPH_DIR/run/osd.0.daemon" || { cat kill.err; fail "the reader, OSD killed"; }
ceph_kill osd.0 || true
kill -0 "$kill_pid" || fail "the server died with the OSD"
grep -q "image rbd/kill .*: read of 1048576 bytes at offset [0-9]*: .*no answer from the OSDs within io-timeout=2 s" kill.err ||
  { cat kill.err; fail "no message naming the image, the offset and io-timeout"; }
reader || { cat kill.err; fail "a new client while the OSD is down"; }
kill -0 "$kill_pid" || fail "the server died"
ceph_restart osd.0 || fail "the OSD did not come back"
t nbdcopy "$uri" kill-after.img
cmp kill.img kill-after.img || fail "after the OSD came back: data differs"
# The OSD stopped (SIGSTOP) with a copy's requests in flight: the server
# still stops on SIGTERM, once io-timeout has failed them (the server
# waits for requests in the plugin; without io-timeout, for ever).
osd=$(cat "$CEPH_DIR/run/osd.0.daemon")
kill -STOP "$osd"
t nbdcopy "$uri" stopped.img 2>/dev/null &
copy=$!
sleep 0.5
start=$(date +%s)
stop_nbdkit "$kill_pid" || { kill -CONT "$osd"; fail "the server did not stop in 10 s with the OSD stopped"; }
kill -CONT "$osd"
note "stopped in $(( $(date +%s) - start )) s with requests to a stopped OSD"
wait "$copy" && fail "the copy succeeded though the OSD was stopped"

ceph_stop
echo "rbd: OK"
