#!/usr/bin/env bash
# TLS with a pre-shared key (--tls=require --tls-psk=FILE): nbdinfo and
# nbdcopy with user alice and tls-psk-file=, qemu-img with
# tls-creds-psk.  A client with the wrong key, or a user the file does
# not know, is refused; so is a plaintext client.  The server survives
# all of them.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/tls-functions.sh"
requires_tls
requires nbdinfo
requires nbdcopy
make_pki

start_nbdkit psk --tls=require --tls-psk="$psk" memory 2M
tlsuri="$(tls_uri_psk)"

size=$(t nbdinfo --size "$tlsuri") || fail "nbdinfo with PSK failed"
assert_eq "size over TLS-PSK" "$size" 2097152
head -c 2097152 /dev/urandom > in.img
t nbdcopy in.img "$tlsuri" || fail "nbdcopy to the server with PSK"
t nbdcopy "$tlsuri" out.img || fail "nbdcopy from the server with PSK"
cmp in.img out.img || fail "data read with PSK differs from data written"

# The wrong key for alice.
if t nbdinfo --size "$(tls_uri_psk "$badpsk")" > bad.out 2>&1; then
  fail "a client with the wrong PSK was accepted"
fi
# A user the server has no key for.
sed 's/^alice:/bob:/' "$psk" > bob.psk
if t nbdinfo --size "nbds+unix://bob@/?socket=$sock&tls-psk-file=$tmpdir/bob.psk" \
     > bob.out 2>&1; then
  fail "a client with an unknown PSK user was accepted"
fi
# Plaintext.
if t nbdinfo --size "$uri" >/dev/null 2>&1; then
  fail "plaintext nbdinfo accepted under --tls=require"
fi
# A client offering X.509 only (no PSK) cannot agree on a cipher suite.
if t nbdinfo --size "$(tls_uri_x509)" >/dev/null 2>&1; then
  fail "an X.509 client was accepted by a PSK-only server"
fi

if command -v qemu-img >/dev/null; then
  mkdir qpsk qbad
  cp "$psk" qpsk/keys.psk
  cp "$badpsk" qbad/keys.psk
  t qemu-img info --output=json \
    --object "tls-creds-psk,id=tls0,dir=$tmpdir/qpsk,username=alice,endpoint=client" \
    --image-opts "driver=nbd,path=$sock,tls-creds=tls0" > qemu.json \
    || fail "qemu-img info with tls-creds-psk"
  grep -q '"virtual-size": 2097152' qemu.json || fail "qemu-img: $(cat qemu.json)"
  t qemu-img convert -O raw \
    --object "tls-creds-psk,id=tls0,dir=$tmpdir/qpsk,username=alice,endpoint=client" \
    --image-opts "driver=nbd,path=$sock,tls-creds=tls0" qemu.img \
    || fail "qemu-img convert with tls-creds-psk"
  cmp in.img qemu.img || fail "qemu-img read different data with PSK"
  if t qemu-img info \
       --object "tls-creds-psk,id=tls0,dir=$tmpdir/qbad,username=alice,endpoint=client" \
       --image-opts "driver=nbd,path=$sock,tls-creds=tls0" >/dev/null 2>&1; then
    fail "qemu-img with the wrong PSK was accepted"
  fi
fi

# Still serving, data intact.
t nbdcopy "$tlsuri" after.img || fail "server stopped serving after refused clients"
cmp in.img after.img || fail "data changed"
echo "$testname: OK"
