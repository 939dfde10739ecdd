#!/usr/bin/env bash
# readahead over a plugin that caches natively: every read reaches the
# plugin, and each is followed by a cache request (prefetch) for the
# 32K after it while the client moves forward sequentially.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

cat > plug.sh <<'EOF2'
#!/bin/bash
case "$1" in
  thread_model) echo parallel ;;
  can_cache) echo native ;;
  get_size) echo 1M ;;
  cache) echo "cache $3 $4" >> "$TESTDIR/log" ;;
  pread) echo "pread $3 $4" >> "$TESTDIR/log"
         dd if=/dev/zero count=$3 iflag=count_bytes 2>/dev/null ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh
export TESTDIR="$tmpdir"
start_nbdkit ra --filter=readahead sh ./plug.sh
# The prefetches run in the background, and one still queued when the
# client leaves may be dropped: the client stays connected until the
# last has reached the plugin (bounded: a slow sanitized build).
nbdsh_u "$uri" -c '
import os, time
for i in range(0, 512 * 10, 512):
    assert h.pread(512, i) == bytes(512)
log = os.path.join(os.environ["TESTDIR"], "log")
for _ in range(300):
    if "cache 32768 5120\n" in open(log).read():
        break
    time.sleep(0.1)
' || fail "reads"
sed 's/^/  | /' log
for i in $(seq 0 512 4608); do
  grep -q "^pread 512 $i$" log || fail "the read at $i did not reach the plugin"
  grep -q "^cache 32768 $((i + 512))$" log || fail "no prefetch after $i"
done
echo "filter-readahead-prefetch: OK"
