#!/usr/bin/env bash
# file plugin: writes through nbdsh land in the file at the right offsets.
. "$(dirname "$0")/functions.sh"
requires nbdsh
requires cmp

truncate -s 4M disk.img
head -c 100000 /dev/urandom > chunk
start_nbdkit f file file=disk.img

t nbdsh -u "$uri" -c '
assert h.get_size() == 4 << 20, h.get_size()
data = open("chunk", "rb").read()
h.pwrite(data, 1234567, nbd.CMD_FLAG_FUA)
h.pwrite(b"tail", (4 << 20) - 4)
h.zero(100, 1234567 + 50)
h.flush()
'
dd if=disk.img of=got bs=1 skip=1234567 count=100000 status=none
# Expected: chunk with bytes 50..149 zeroed.
{ head -c 50 chunk; head -c 100 /dev/zero; tail -c +151 chunk; } > want
cmp got want || fail "written data not in file"
assert_eq "tail" "$(tail -c 4 disk.img)" "tail"
assert_eq "file size" "$(stat -c %s disk.img)" $((4 << 20))
cmp -n 1234567 disk.img /dev/zero || fail "bytes before the write changed"

# Changes to the file are visible to a new client.
printf 'XYZ' | dd of=disk.img bs=1 seek=10 conv=notrunc status=none
t nbdsh -u "$uri" -c 'assert h.pread(5, 9) == b"\0XYZ\0", h.pread(5, 9)'
echo "file-write: OK"
