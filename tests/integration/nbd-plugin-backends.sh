#!/usr/bin/env bash
# nbd plugin in front of other servers: Debian's nbdkit and qemu-nbd.
# Data written through the proxy reaches the backend, and the map
# through the proxy is the backend's.
. "$(dirname "$0")/functions.sh"
requires nbdsh
requires nbdinfo
cd "$tmpdir"

check_backend ()
{
  local name="$1" back_uri="$2"
  start_nbdkit "px-$name" nbd "$back_uri"
  nbdsh_u "$uri" -c '
h.pwrite(b"A" * 70000, 1 << 20)
h.pwrite(b"B" * 4096, 3 << 20)
h.flush()
'
  nbdsh_u "$back_uri" -c '
assert h.pread(70000, 1 << 20) == b"A" * 70000
assert h.pread(4096, 3 << 20) == b"B" * 4096
'
  nbdinfo --map "$back_uri" > "map.$name.back"
  nbdinfo --map "$uri" > "map.$name.px"
  cmp "map.$name.back" "map.$name.px" ||
    { cat "map.$name.back" "map.$name.px"; fail "$name: map differs"; }
  grep -q hole "map.$name.px" || fail "$name: no hole in the map"
  note "$name: OK"
}

tested=0
if [ -x /usr/bin/nbdkit ]; then
  sock="$tmpdir/deb.sock"
  /usr/bin/nbdkit -U "$sock" -P deb.pid -f memory 8M &
  register_pid $!
  wait_for_file deb.pid || fail "Debian nbdkit did not start"
  check_backend debian "nbd+unix:///?socket=$sock"
  tested=$((tested + 1))
fi

if command -v qemu-nbd >/dev/null && command -v qemu-img >/dev/null; then
  qemu-img create -q -f qcow2 disk.qcow2 8M
  qemu-nbd -f qcow2 -k "$tmpdir/qemu.sock" --pid-file="$tmpdir/qemu.pid" \
    -t --cache=writeback "$tmpdir/disk.qcow2" &
  register_pid $!
  wait_for_file qemu.pid || fail "qemu-nbd did not start"
  check_backend qemu "nbd+unix:///?socket=$tmpdir/qemu.sock"
  tested=$((tested + 1))
fi

[ "$tested" -gt 0 ] || skip "neither /usr/bin/nbdkit nor qemu-nbd"
echo "nbd-plugin-backends: OK"
