#!/usr/bin/env bash
# qemu-img info, convert -n into an nbd export, compare file vs nbd.
. "$(dirname "$0")/functions.sh"
requires qemu-img
requires "$PYTHON" -c 'import json'

start_nbdkit mem memory 32M

t qemu-img info --output=json "$uri" > info.json
"$PYTHON" -c '
import json, sys
j = json.load(open("info.json"))
assert j["virtual-size"] == 32 << 20, j
assert j["format"] == "raw", j
'

head -c $((32 << 20)) /dev/urandom > src.img
# Punch some zero areas so convert has holes to skip.
dd if=/dev/zero of=src.img bs=1M seek=4 count=4 conv=notrunc status=none
t qemu-img convert -n -f raw -O raw src.img "$uri"
t qemu-img compare -f raw -F raw src.img "$uri" || fail "qemu-img compare differs"

# Changing one byte on the server makes compare report a difference (exit 1).
t nbdsh -u "$uri" -c 'h.pwrite(b"\xff", 12345678)'
set +e
t qemu-img compare -f raw -F raw src.img "$uri" > cmp.out
rc=$?
set -e
assert_eq "qemu-img compare exit after change" "$rc" 1
grep -q "mismatch at offset $((12345678 / 512 * 512))" cmp.out || { cat cmp.out; fail "compare did not name offset"; }
echo "qemu-img: OK"
