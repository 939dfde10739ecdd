#!/usr/bin/env bash
# retry filter: a failed request is retried after reopening the plugin
# (open is called again), with the delays doubling; opening is retried
# too; retry-readonly reopens read-only and later writes fail at once;
# when every try fails the client gets the error.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

cat > plug.sh <<EOF2
#!/bin/bash
d=$tmpdir
case "\$1" in
  open)
    read i < \$d/opens; echo \$((i+1)) > \$d/opens
    if [ \$i -lt "\$(cat \$d/open-fails)" ]; then echo "EIO open failed" >&2; exit 1; fi
    echo h ;;
  can_write) exit 0 ;;
  pread|pwrite)
    [ "\$1" = pwrite ] && cat > /dev/null
    read i < \$d/fails; echo \$((i-1)) > \$d/fails
    if [ \$i -gt 0 ]; then echo "EIO \$1 failed" >&2; exit 1; fi
    [ "\$1" = pread ] && dd if=/dev/zero count=\$3 iflag=count_bytes 2>/dev/null
    exit 0 ;;
  get_size) echo 4096 ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh
setup () { echo 0 > opens; echo "$1" > fails; echo "${2:-0}" > open-fails; }
run () { t "$NBDKIT" -U - --filter=retry sh ./plug.sh "$@"; }

# Three failures: three reopens, waits 0.2 + 0.4 + 0.8 s.
setup 3
start=$(date +%s.%N)
run retry-delay=0.2 --run 'nbdsh -u "$uri" -c "assert h.pread(512, 0) == bytes(512)"' \
  || fail "read with 3 failures"
el=$(echo "$(date +%s.%N) - $start" | bc)
assert_eq opens "$(cat opens)" 4
[ "$(echo "$el >= 1.4" | bc)" = 1 ] || fail "too fast for doubling delays: $el"

# Without doubling: 3 x 0.2 s.
setup 3
run retry-delay=200ms retry-exponential=false \
  --run 'nbdsh -u "$uri" -c "h.pread(512, 0)"' || fail "no exponential"
assert_eq opens "$(cat opens)" 4

# More failures than retries: the client gets EIO.
setup 5
run retry-delay=0.01 retries=2 --run 'nbdsh -u "$uri" -c "
import errno
try:
    h.pread(512, 0)
    assert False
except nbd.Error as e:
    assert e.errnum == errno.EIO, e
"' || fail "retries=2"
assert_eq opens "$(cat opens)" 3

# The first open fails: it is retried.
setup 0 1
run retry-delay=0.01 --run 'nbdsh -u "$uri" -c "h.pread(512, 0)"' \
  || fail "open retried"
assert_eq opens "$(cat opens)" 2

# retry-readonly: after the first failure the plugin is read-only and
# writes fail with EROFS (EPERM on the wire) at once, without more
# reopens.
setup 1
run retry-delay=0.01 retry-readonly=true --run 'nbdsh -u "$uri" -c "
import errno
for _ in range(2):
    try:
        h.pwrite(b\"x\" * 512, 0)
        assert False
    except nbd.Error as e:
        assert e.errnum in (errno.EROFS, errno.EPERM), e
assert h.pread(512, 0) == bytes(512)
"' || fail "retry-readonly"
assert_eq opens "$(cat opens)" 2

# A block status that fails half way leaves nothing behind: the retry's
# answer is the client's whole answer.
cat > ext.sh <<EOF2
#!/bin/bash
d=$tmpdir
case "\$1" in
  can_extents) exit 0 ;;
  extents)
    read i < \$d/fails; echo \$((i-1)) > \$d/fails
    echo "0 512 0"
    if [ \$i -gt 0 ]; then echo "not an extent"; else echo "512 512 3"; fi ;;
  get_size) echo 1024 ;;
  *) exit 2 ;;
esac
EOF2
chmod +x ext.sh
setup 1
t "$NBDKIT" -U - --filter=retry sh ./ext.sh retry-delay=0.01 --run 'nbdsh --base-allocation -u "$uri" -c "
got = []
h.block_status(1024, 0, lambda ctx, off, e, err: got.extend(e))
assert got == [512, 0, 512, 3], got
"' || fail "extents retried"

if run retry-delay=soon --run true 2>err; then fail "retry-delay=soon accepted"; fi
grep -q "retry-delay=soon" err || fail "message: $(cat err)"
echo "filter-retry: OK"
