#!/usr/bin/env bash
# nocache filter (as nbdkit's): cachemode=none hides NBD_CMD_CACHE,
# emulate offers it done by reading (the plugin's cache is not called),
# nop offers it and ignores it.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

cat > plug.sh <<EOF2
#!/bin/bash
case "\$1" in
  get_size) echo 1M ;;
  can_cache) echo native ;;
  cache) echo cache >> $tmpdir/calls ;;
  pread) echo pread >> $tmpdir/calls; dd if=/dev/zero count=\$3 iflag=count_bytes 2>/dev/null ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh

for mode in "" none emulate nop; do
  rm -f calls; touch calls
  case $mode in
    ""|none) want=False ;;
    *) want=True ;;
  esac
  t "$NBDKIT" -U - --filter=nocache sh ./plug.sh ${mode:+cachemode=$mode} \
    --run "nbdsh -u \"\$uri\" -c '
assert h.can_cache() is $want
if h.can_cache(): h.cache(4096, 0)
'" || fail "cachemode=$mode"
  case $mode in
    emulate) assert_eq "calls ($mode)" "$(sort -u calls | tr '\n' ' ')" "pread " ;;
    *) assert_eq "calls ($mode)" "$(cat calls)" "" ;;
  esac
done
if t "$NBDKIT" -U - --filter=nocache null 1M cachemode=bogus --run true 2>/dev/null; then
  fail "cachemode=bogus accepted"
fi
echo "filter-nocache: OK"
