#!/usr/bin/env bash
# multi-conn filter, track-dirty=connection: which flushes reach a
# plugin without multi-conn (counted by the plugin).
# - emulate: a connection that only read is not flushed while nothing
#   was written; one that cached is flushed when another writes with FUA
#   (the writer's FUA is a flush of its own: 2).
# - plugin: a flush goes through while anything was written since a
#   flush that made every connection consistent (none can, here).
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

cat > plug.sh <<'EOF2'
#!/bin/bash
case "$1" in
  thread_model) echo parallel ;;
  get_size) echo 1M ;;
  can_write|can_flush|can_cache) exit 0 ;;
  can_fua) echo emulate ;;
  can_multi_conn) exit 3 ;;
  flush) echo "$1" >> "$TESTDIR/log" ;;
  pread) dd if=/dev/zero count=$3 iflag=count_bytes 2>/dev/null ;;
  pwrite) cat >/dev/null ;;
  cache) ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh
export TESTDIR="$tmpdir"

# run MODE PYTHON: the number of flushes the plugin saw.
run ()
{
  rm -f log; touch log
  export code="$2"
  t "$NBDKIT" -U - --filter=multi-conn sh ./plug.sh multi-conn-mode="$1" \
    --run 'nbdsh -c "
import os
h = []
for i in range(4):
    h.append(nbd.NBD())
    h[i].connect_uri(os.environ[\"uri\"])
exec(os.environ[\"code\"])
"' >/dev/null || fail "$1: $2"
  wc -l < log
}
assert_eq "emulate, read only" \
  "$(run emulate 'h[0].flush(); h[0].pread(1, 0); h[0].flush()')" 0
assert_eq "emulate, cached then FUA write elsewhere" \
  "$(run emulate 'h[0].cache(512, 0); h[1].pwrite(b"x", 0, nbd.CMD_FLAG_FUA)')" 2
assert_eq "plugin, no write" \
  "$(run plugin 'h[0].pread(1, 0); h[3].flush()')" 0
assert_eq "plugin, a write elsewhere" \
  "$(run plugin 'h[1].pwrite(b"x", 0); h[3].flush(); h[3].flush(); h[2].flush()')" 3
echo "filter-multi-conn-dirty: OK"
