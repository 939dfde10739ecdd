#!/usr/bin/env bash
# nbd plugin: the uses its documentation shows.  An oldstyle server
# behind a newstyle TLS proxy; a newstyle TLS server over TCP behind an
# oldstyle plaintext proxy with --run; qemu-nbd with the partition filter.
. "$(dirname "$0")/functions.sh"
requires nbdsh
requires psktool
cd "$tmpdir"
psktool -u alice -p keys.psk >/dev/null

# Oldstyle server -> nbd plugin -> TLS client, cleaned up with the parent.
"$NBDKIT" -o -U "$tmpdir/old.sock" -P old.pid -f memory 1M &
register_pid $!
wait_for_file old.pid || fail "oldstyle server did not start"
start_nbdkit newtls --tls=require --tls-psk="$tmpdir/keys.psk" \
  nbd socket="$tmpdir/old.sock"
tls_uri="nbds+unix://alice@/?socket=$sock&tls-psk-file=$tmpdir/keys.psk"
t nbdsh -c "h.set_uri_allow_local_file(True); h.connect_uri('$tls_uri')" \
  -c 'h.pwrite(b"old", 0); assert h.pread(3, 0) == b"old"'

# Newstyle TLS server on TCP with export foo -> oldstyle plaintext proxy.
port=$(free_port)
"$NBDKIT" -p "$port" -i 127.0.0.1 -P tcp.pid -f --tls=require \
  --tls-psk="$tmpdir/keys.psk" memory 1M &
register_pid $!
wait_for_file tcp.pid || fail "TCP server did not start"
t "$NBDKIT" -U - -o --tls=off nbd hostname=127.0.0.1 port="$port" export=foo \
  tls=require tls-psk="$tmpdir/keys.psk" tls-username=alice \
  --run 'nbdsh -c "h.connect_unix(\"$unixsocket\")" -c "h.pwrite(b\"tcp\", 9); assert h.pread(3, 9) == b\"tcp\""' ||
  fail "oldstyle client through the proxy failed"

# qemu-nbd with a qcow2 file and the partition filter.
if command -v qemu-nbd >/dev/null && command -v qemu-img >/dev/null &&
   command -v sfdisk >/dev/null; then
  truncate -s 8M raw.img
  printf 'start=2048, size=4096, type=83\n' | sfdisk -q raw.img >/dev/null
  printf 'PART1' | dd of=raw.img bs=512 seek=2048 conv=notrunc status=none
  qemu-img convert -f raw -O qcow2 raw.img disk.qcow2
  start_nbdkit part --filter=partition nbd \
    command=qemu-nbd arg=-f arg=qcow2 arg="$tmpdir/disk.qcow2" partition=1
  nbdsh_u "$uri" -c '
assert h.get_size() == 4096 * 512, h.get_size()
assert h.pread(5, 0) == b"PART1"
'
fi
echo "nbd-plugin-examples: OK"
