#!/usr/bin/env bash
# TLS with X.509 certificates (--tls=require --tls-certificates=DIR),
# through real clients: nbdinfo and nbdcopy with nbds+unix:// and
# nbds:// URIs, qemu-img with tls-creds-x509.  Data written over TLS
# reads back the same; a plaintext client is refused; a server whose
# certificate comes from a CA the client does not trust is refused.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/tls-functions.sh"
requires_tls
requires nbdinfo
requires nbdcopy
make_pki

start_nbdkit x509 --tls=require --tls-certificates="$pki" memory 4M
tlsuri="$(tls_uri_x509)"

# nbdinfo over TLS: size, and the URI says TLS.
size=$(t nbdinfo --size "$tlsuri") || fail "nbdinfo over TLS failed"
assert_eq "size over TLS" "$size" 4194304
t nbdinfo --json "$tlsuri" > info.json || fail "nbdinfo --json over TLS"
grep -Eq '"TLS": *true' info.json || fail "nbdinfo does not report TLS: $(cat info.json)"

# nbdcopy a random file in and out over TLS.
head -c 4194304 /dev/urandom > in.img
t nbdcopy in.img "$tlsuri" || fail "nbdcopy to the server over TLS"
t nbdcopy "$tlsuri" out.img || fail "nbdcopy from the server over TLS"
cmp in.img out.img || fail "data read over TLS differs from data written"

# A plaintext client is refused.
if t nbdinfo --size "$uri" > plain.out 2>&1; then
  fail "plaintext nbdinfo accepted under --tls=require"
fi
grep -qi 'tls' plain.out || fail "plaintext refusal does not mention TLS: $(cat plain.out)"

# qemu-img over the Unix socket (qemu needs a hostname to check the
# certificate against when there is no TCP host).
if command -v qemu-img >/dev/null; then
  qobj="tls-creds-x509,id=tls0,dir=$clientpki,endpoint=client"
  t qemu-img info --output=json --object "$qobj" \
    --image-opts "driver=nbd,path=$sock,tls-creds=tls0,tls-hostname=localhost" \
    > qemu.json || fail "qemu-img info over TLS"
  grep -q '"virtual-size": 4194304' qemu.json || fail "qemu-img size: $(cat qemu.json)"
  t qemu-img convert -O raw --object "$qobj" \
    --image-opts "driver=nbd,path=$sock,tls-creds=tls0,tls-hostname=localhost" \
    qemu.img || fail "qemu-img convert over TLS"
  cmp in.img qemu.img || fail "qemu-img read different data over TLS"
  # Without TLS credentials qemu is refused.
  if t qemu-img info "nbd+unix:///?socket=$sock" >/dev/null 2>&1; then
    fail "plaintext qemu-img accepted under --tls=require"
  fi
fi
stop_nbdkit "$pid"

# TCP, so the client checks the certificate against the host name.
port=$(free_port)
"$NBDKIT" -p "$port" -i 127.0.0.1 -P "$tmpdir/tcp.pid" -f --tls=require \
  --tls-certificates="$pki" memory 1M &
register_pid $!
wait_for_file "$tmpdir/tcp.pid" || fail "TCP server did not start"
size=$(t nbdinfo --size "nbds://localhost:$port/?tls-certificates=$clientpki") \
  || fail "nbdinfo nbds://localhost:$port"
assert_eq "size over TCP TLS" "$size" 1048576
stop_nbdkit "$(cat "$tmpdir/tcp.pid")"

# A server with a certificate from CA 2 (untrusted by the clients).
port=$(free_port)
"$NBDKIT" -p "$port" -i 127.0.0.1 -P "$tmpdir/rogue.pid" -f --tls=require \
  --tls-certificates="$roguepki" memory 1M 2>rogue.err &
register_pid $!
wait_for_file "$tmpdir/rogue.pid" || fail "rogue server did not start"
if t nbdinfo --size "nbds://localhost:$port/?tls-certificates=$clientpki" \
     > rogue.out 2>&1; then
  fail "nbdinfo accepted a server certificate from an untrusted CA"
fi
grep -qi 'certificate' rogue.out || fail "nbdinfo: $(cat rogue.out)"
if command -v qemu-img >/dev/null; then
  if t qemu-img info --object "tls-creds-x509,id=tls0,dir=$clientpki,endpoint=client" \
       --image-opts "driver=nbd,host=localhost,port=$port,tls-creds=tls0" \
       > qrogue.out 2>&1; then
    fail "qemu-img accepted a server certificate from an untrusted CA"
  fi
  grep -qi 'issuer\|certificate' qrogue.out || fail "qemu-img: $(cat qrogue.out)"
fi
# The refused clients did not take the server down.
kill -0 "$(cat "$tmpdir/rogue.pid")" || fail "server died after refused clients"
echo "$testname: OK"
