#!/usr/bin/env bash
# The example filters filters/python/xor.py and filters/lua/xor.lua
# (and filters/ocaml/xor.ml when it exists): through each, data written
# reads back as written while the file below holds every byte XORed
# with xorkey; zeroes read back as zeroes; nbdcopy and nbdinfo through
# the filter; a bad xorkey is refused with a message naming it.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdsh
requires nbdcopy
requires_python_nbd
cd "$tmpdir"

for script in "$SRCDIR/filters/python/xor.py" "$SRCDIR/filters/lua/xor.lua" \
              "$SRCDIR/filters/ocaml/xor.ml"; do
  [ -f "$script" ] || { echo "no $script: skipped"; continue; }
  case "$script" in
    *.py) host=python ;; *.lua) host=lua ;; *.ml) host=ocaml ;;
  esac
  [ -f "$BUILDDIR/filters/nbdkit-$host-filter.so" ] ||
    { echo "$host filter host not built: skipped"; continue; }
  export XDG_CACHE_HOME="$tmpdir/cache"
  name=$(basename "$script")
  rm -f disk.img
  truncate -s 1M disk.img

  # Write and read back through the filter, key 0x5a.
  t "$NBDKIT" -U - --filter="$script" file disk.img xorkey=0x5a --run '
nbdsh -u "$uri" -c "
data = bytes(range(256)) * 16
h.pwrite(data, 8192)
assert h.pread(4096, 8192) == data, \"read back\"
h.zero(4096, 16384)
assert h.pread(4096, 16384) == bytes(4096), \"zeroes\"
# Untouched parts of the file below are zeroes: they read as the key.
assert h.pread(4, 0) == bytes([0x5a]) * 4, h.pread(4, 0)
"' || fail "$name: read back through the filter"

  # The file below holds the data XORed with the key.
  "$PYTHON" - <<'PY' || fail "$name: the bytes below are not XORed"
data = open("disk.img", "rb").read()
want = bytes(b ^ 0x5a for b in bytes(range(256)) * 16)
assert data[8192:8192 + 4096] == want, data[8192:8200]
assert data[16384:16384 + 4096] == bytes([0x5a]) * 4096
assert data[0:8192] == bytes(8192)
PY

  # nbdcopy in and out through the filter, another key.
  head -c 300000 /dev/urandom > in.bin
  truncate -s 1M in.bin
  rm -f disk.img; truncate -s 1M disk.img
  t "$NBDKIT" -U - --filter="$script" file disk.img xorkey=7 \
    --run 'nbdcopy in.bin "$uri" && nbdcopy "$uri" out.bin' ||
    fail "$name: nbdcopy"
  cmp in.bin out.bin || fail "$name: nbdcopy round trip differs"
  "$PYTHON" -c '
a = open("in.bin", "rb").read(); b = open("disk.img", "rb").read()
assert bytes(x ^ 7 for x in a[:300000]) == b[:300000]' ||
    fail "$name: nbdcopy data below not XORed with 7"

  # nbdinfo sees the filter's size and a writable export.
  out=$(t "$NBDKIT" -U - --filter="$script" memory 64K xorkey=1 \
          --run 'nbdinfo --json "$uri"') || fail "$name: nbdinfo"
  echo "$out" | grep -q '"export-size": 65536' || fail "$name: nbdinfo: $out"

  # Bad keys: refused, naming the key.
  for bad in 256 -1 abc; do
    if t "$NBDKIT" -U - --filter="$script" memory 1M xorkey=$bad \
         --run true 2>err.txt; then
      fail "$name: xorkey=$bad accepted"
    fi
    grep -q "xorkey" err.txt || fail "$name: xorkey=$bad: $(cat err.txt)"
  done
  echo "$name: ok"
done
