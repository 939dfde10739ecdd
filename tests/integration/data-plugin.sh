#!/usr/bin/env bash
# data plugin: bytes, offsets, repeats, strings, files, variables,
# expressions, base64=, raw=, size=; extents show holes; writes stick;
# parse errors name the offset and show a caret.
. "$(dirname "$0")/functions.sh"
requires nbdcopy
requires nbdinfo
requires xxd

# dump ARGS...: the served disk as hex.
dump () { t "$NBDKIT" -U - data "$@" --run 'nbdcopy "$uri" - | xxd -p' | tr -d '\n'; }

assert_eq bytes "$(dump '1 2 3 @0x6 0xff')" "010203000000ff"
assert_eq repeat "$(dump '(0x55 0xAA)*3')" "55aa55aa55aa"
assert_eq align "$(dump '1 @^4 2')" "0100000002"
assert_eq string "$(dump '"AB" le16:0x0102 be16:0x0102')" "414202010102"
assert_eq slice "$(dump '("hello")[1:3]')" "656c"
# An empty slice is empty wherever it starts (as nbdkit).
assert_eq empty-slice "$(dump '1 "hello"[99:99] 2')" "0102"
# Variables are for data= only: elsewhere a stray key is an error.
if t "$NBDKIT" -U - data raw=AB a=1 --run true 2>/dev/null; then
  fail "raw= with a variable key accepted"
fi
assert_eq raw "$(t "$NBDKIT" -U - data raw=AB --run 'nbdcopy "$uri" - | xxd -p')" "4142"
assert_eq names "$(dump '(1 2) -> \a \a @+1 \a')" "0102000102"
assert_eq var "$(dump '$p*2' p='7 8')" "07080708"
assert_eq size "$(dump '1 2' size=4)" "01020000"
assert_eq trunc "$(dump '1 2 3' size=2)" "0102"
assert_eq base64 "$(dump base64=aGVsbG8=)" "68656c6c6f"
assert_eq raw "$(dump raw=hi)" "6869"
printf 'AB' > f.bin
assert_eq file "$(dump '<f.bin @^4 <f.bin')" "414200004142"
if [ "$OURS" = 1 ]; then
  # Beyond nbdkit: expressions, data-format files, binary variables.
  assert_eq expr "$(dump '(0x55 0xAA)*n' n=2)" "55aa55aa"
  assert_eq expr2 "$(dump '1*(n*2+1)' n=1)" "010101"
  printf '1 2 (3)*2 # a comment\n' > f.data
  assert_eq datafile "$(dump 'data:<f.data 9')" "0102030309"
  assert_eq rawvar "$(dump 'raw:$b 0' b=AB)" "414200"
  assert_eq b64var "$(dump 'base64:$b' b=aGk=)" "6869"
  assert_eq string-escapes "$(dump '"\x41\101\n"')" "41410a"

  # Errors point at the place.
  if "$NBDKIT" data '1 2 3 zap' --run true 2> err.txt; then
    fail "bad data accepted"
  fi
  grep -q "unexpected 'z' at offset 6" err.txt || fail "message: $(cat err.txt)"
  grep -q "^  1 2 3 zap$" err.txt || fail "no text: $(cat err.txt)"
  grep -q "^        \^$" err.txt || fail "no caret: $(cat err.txt)"
  if "$NBDKIT" data '$v' v='1 (2' --run true 2> err.txt; then
    fail "bad variable accepted"
  fi
  grep -q '\$v: unmatched .(. at offset 2' err.txt \
    || fail "message: $(cat err.txt)"
fi

# Sparse: extents report the holes by 32K page, as nbdkit's data
# plugin does (a page holding only written zeroes is allocated, type
# zero), and the disk is writable.
start_nbdkit d data '1 @1048576 2 @^2097152 @65536 0'
map=$(t nbdinfo --map "$uri" | awk '{print $1, $2, $3}' | tr '\n' ' ')
assert_eq map "$map" "0 32768 0 32768 32768 3 65536 32768 2 98304 950272 3 1048576 32768 0 1081344 1015808 3 "
assert_eq size "$(t nbdinfo --size "$uri")" 2097152
nbdsh_u "$uri" -c 'h.pwrite(b"xyz", 4096)' -c 'assert h.pread(3, 4096) == b"xyz"' \
  -c 'h.zero(1, 1048576)' -c 'assert h.pread(2, 1048575) == bytes(2)'
echo "data-plugin: OK"
