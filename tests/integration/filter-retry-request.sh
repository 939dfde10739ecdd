#!/usr/bin/env bash
# retry-request filter: a request failing below is tried again on the
# same connection (nothing reopened) up to retry-request-retries more
# times, the delay apart; then the client sees the error.  Opening is
# retried unless retry-request-open=false.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

# The plugin fails the first $FAILS calls of each kind (open, pread,
# pwrite, extents), counting them in files, and holds 512 bytes of 'a'.
cat > plug.sh <<EOF2
#!/bin/bash
flaky () {
  local n=0
  [ -f $tmpdir/\$1.count ] && read n < $tmpdir/\$1.count
  echo \$((n + 1)) > $tmpdir/\$1.count
  if [ \$n -lt \$(cat $tmpdir/fails) ]; then echo "EIO \$1 failed" >&2; exit 1; fi
}
case "\$1" in
  open) flaky open; echo h ;;
  get_size) echo 512 ;;
  can_write|can_extents) exit 0 ;;
  pread) flaky pread; printf 'a%.0s' \$(seq \$3) ;;
  pwrite) flaky pwrite; cat > /dev/null ;;
  extents) flaky extents; echo 0 512 3 ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh

run () # FAILS FILTER-ARGS... : run the nbdsh script in $script
{
  echo "$1" > fails; shift
  rm -f ./*.count
  t "$NBDKIT" -U - --filter=retry-request sh ./plug.sh "$@" \
    --run "nbdsh $nbdsh_opts -u \"\$uri\" -c '$script'"
}
count () { cat "$1.count" 2>/dev/null || echo 0; }

# (--base-allocation only where open succeeds: libnbd then asks twice.)
nbdsh_opts=--base-allocation
script='
assert h.pread(512, 0) == b"a" * 512
h.pwrite(b"b" * 512, 0)
ents = []
h.block_status(512, 0, lambda c, o, e, err: ents.extend(e))
assert ents == [512, 3], ents
'
# Two failures of each, default retries=2: all succeed on the third try.
start=$(date +%s.%N)
run 2 retry-request-delay=0.2 || fail "2 failures with 2 retries"
end=$(date +%s.%N)
for k in open pread pwrite extents; do
  assert_eq "$k tries" "$(count $k)" 3
done
# 4 kinds x 2 waits of 0.2 s.
awk -v s="$start" -v e="$end" 'BEGIN { exit !(e - s >= 1.6) }' \
  || fail "retries did not wait the delay ($start .. $end)"

nbdsh_opts=
# Three failures: the requests fail with the plugin's errno.
script='
for f in (lambda: h.pread(512, 0), lambda: h.pwrite(b"b" * 512, 0)):
    try:
        f()
        assert False, "succeeded"
    except nbd.Error as e:
        assert e.errno == "EIO", e.errno
'
errors=$script
script='assert h.get_size() == 512'
run 3 retry-request-delay=0 retry-request-open=false 2>/dev/null \
  && fail "open failing 3 times was retried with retry-request-open=false"
assert_eq "open tries without retry-request-open" "$(count open)" 1
run 3 retry-request-delay=0 retry-request-retries=3 || fail "open not retried"
assert_eq "open tries" "$(count open)" 4
echo 3 > fails; rm -f ./*.count; echo 4 > open.count
t "$NBDKIT" -U - --filter=retry-request sh ./plug.sh retry-request-delay=0 \
  --run "nbdsh -u \"\$uri\" -c '$errors'" || fail "errors after retries"
assert_eq "pread tries" "$(count pread)" 3
assert_eq "pwrite tries" "$(count pwrite)" 3

if t "$NBDKIT" -U - --filter=retry-request null retry-request-delay=soon \
     --run true 2>err; then
  fail "retry-request-delay=soon accepted"
fi
grep -q "retry-request-delay=soon" err || fail "message does not name the key"
echo "filter-retry-request: OK"
