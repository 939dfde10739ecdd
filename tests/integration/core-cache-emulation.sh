#!/usr/bin/env bash
# A plugin that asks for cache emulation sees the cache request as
# reads as large as a client's may be (64 MiB), as nbdkit does: a
# plugin that remembers what was read then knows what was cached.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

cat > plug.sh <<'EOF2'
#!/bin/bash
case "$1" in
  get_size) echo 134217729 ;;
  can_cache) echo emulate ;;
  pread) echo "$3 $4" >> "$TESTDIR/reads"
         dd if=/dev/zero count=$3 iflag=count_bytes 2>/dev/null ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh
export TESTDIR="$tmpdir"
start_nbdkit sh sh ./plug.sh
nbdsh_u "$uri" -c 'h.cache(h.get_size() - 100, 100)' -c 'h.cache(7, 0)' \
  || fail "cache"
printf '%s\n' "67108864 100" "67108765 67108964" "7 0" > expected
cmp expected reads || { cat reads; fail "the plugin saw other reads"; }
echo "core-cache-emulation: OK"
