#!/usr/bin/env bash
# qemu-io writes a pattern through an nbd+unix URI and reads it back; a
# wrong pattern is detected.
. "$(dirname "$0")/functions.sh"
requires qemu-io

start_nbdkit mem memory 16M

t qemu-io -f raw -c 'write -P 0x55 0 64k' -c 'read -P 0x55 0 64k' \
  -c 'write -P 0xaa 1M 4k' -c 'read -P 0xaa 1M 4k' -c 'read -P 0 64k 960k' \
  "$uri" > io.out
cat io.out
grep -q 'wrote 65536/65536 bytes at offset 0' io.out || fail "write not reported"
grep -q 'read 65536/65536 bytes at offset 0' io.out || fail "read not reported"
grep -q 'read 983040/983040 bytes at offset 65536' io.out || fail "zero read"
! grep -qi 'pattern verification failed' io.out || fail "pattern mismatch"

# Bytes as seen by another client.
t nbdsh -u "$uri" -c '
assert h.pread(65536, 0) == b"\x55" * 65536
assert h.pread(4096, 1 << 20) == b"\xaa" * 4096
assert h.pread(1, 65536) == b"\0"
'

# qemu-io must notice a wrong pattern.
t qemu-io -f raw -c 'read -P 0x66 0 4k' "$uri" > bad.out 2>&1 || true
grep -qi 'pattern verification failed' bad.out || { cat bad.out; fail "bad pattern not detected"; }
echo "qemu-io: OK"
