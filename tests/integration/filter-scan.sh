#!/usr/bin/env bash
# scan filter: while a client is connected to the default export, the
# whole disk is prefetched once with CACHE requests of scan-size, in
# order; scan-forever repeats; scan-ahead skips past client reads;
# other exports, non-parallel plugins and plugins that cannot cache are
# not scanned; the man page's cache and cow stacks work.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version
requires nbdcopy --version

# 8M, scan-size 1M: each cache call logs its offset in MiB.
cat > plug.sh <<EOF2
#!/bin/bash
case "\$1" in
  thread_model) echo \${MODEL:-parallel} ;;
  get_size) echo 8M ;;
  can_cache) echo native ;;
  cache) sleep \${DELAY:-0}; echo \$((\$4 / 1048576)) >> $tmpdir/calls ;;
  pread) dd if=/dev/zero count=\$3 iflag=count_bytes 2>/dev/null ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh

# wait_calls N: until N calls were logged (bounded).
wait_calls ()
{
  for _ in $(seq 100); do
    [ "$(wc -l < calls)" -ge "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
calls () { tr '\n' ' ' < calls; }

# One pass, in order, while the client stays connected.
: > calls
t "$NBDKIT" -U - --filter=scan sh ./plug.sh scan-size=1M \
  --run "nbdsh -u \"\$uri\" -c '
import time
for _ in range(100):
    if len(open(\"calls\").read().split()) >= 8: break
    time.sleep(0.1)
time.sleep(0.5)
'"
assert_eq "one pass" "$(calls)" "0 1 2 3 4 5 6 7 "

# scan-forever: more than one pass while connected.
: > calls
t "$NBDKIT" -U - --filter=scan sh ./plug.sh scan-size=1M scan-forever=true \
  --run "nbdsh -u \"\$uri\" -c '
import time
for _ in range(100):
    if len(open(\"calls\").read().split()) >= 12: break
    time.sleep(0.1)
'"
case "$(calls)" in
  "0 1 2 3 4 5 6 7 0 1 2 3 "*) ;;
  *) fail "scan-forever: $(calls)" ;;
esac

# scan-ahead: a read at 5M moves a slow scan to 6M; with
# scan-ahead=false the scan ignores it.
for ahead in true false; do
  : > calls
  DELAY=0.3 t "$NBDKIT" -U - --filter=scan sh ./plug.sh scan-size=1M \
    scan-ahead=$ahead --run "nbdsh -u \"\$uri\" -c '
import time
h.pread(4096, 5 * 1048576)
for _ in range(100):
    if \"7\" in open(\"calls\").read().split(): break
    time.sleep(0.1)
'"
  # Under load the read may even come before the first block is
  # scanned: then the scan starts at 6M.
  case "$ahead: $(calls)" in
    true:*" 5 "*) fail "scan-ahead=true scanned 5M after the read: $(calls)" ;;
    "true: 0 "*"6 7 " | "true: 6 7 ") ;;
    "false: 0 1 2 3 4 5 6 7 ") ;;
    *) fail "scan-ahead=$ahead: $(calls)" ;;
  esac
done

# Not scanned: another export, a serializing plugin.
: > calls
t "$NBDKIT" -U - --filter=scan sh ./plug.sh scan-size=1M \
  --run "nbdsh -u nbd+unix:///nondefault?socket=\$unixsocket -c 'import time; time.sleep(1)'"
assert_eq "non-default export" "$(calls)" ""
: > calls
MODEL=serialize_requests t "$NBDKIT" -U - --filter=scan sh ./plug.sh \
  scan-size=1M --run "nbdsh -u \"\$uri\" -c 'import time; time.sleep(1)'" 2>err
assert_eq "serialize_requests" "$(calls)" ""
grep -q "not parallel" err || fail "no warning for a serializing plugin"

# The man page's stacks: scan over cache, over cow with cow-on-cache.
"$PYTHON" -c 'import os, sys; sys.stdout.buffer.write(os.urandom(3 << 20))' > disk.img
for stack in "--filter=cache" "--filter=cow"; do
  rm -f out.img
  extra=; [ "$stack" = --filter=cow ] && extra=cow-on-cache=true
  t "$NBDKIT" -U - --filter=scan $stack file disk.img $extra \
    --run 'nbdcopy "$uri" out.img' || fail "scan $stack"
  cmp disk.img out.img || fail "scan $stack: copy differs"
done

if t "$NBDKIT" -U - --filter=scan null 1M scan-size=3000 --run true 2>err; then
  fail "scan-size=3000 accepted"
fi
grep -q "scan-size" err || fail "message does not name scan-size"
echo "filter-scan: OK"
