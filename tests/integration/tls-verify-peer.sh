#!/usr/bin/env bash
# --tls-verify-peer: the server asks for a client certificate and checks
# it against ca-cert.pem.  A client certificate signed by our CA is
# accepted; no client certificate, or one from another CA, is refused.
# Without --tls-verify-peer a client without a certificate is fine.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/tls-functions.sh"
requires_tls
requires nbdinfo
make_pki

start_nbdkit vp --tls=require --tls-verify-peer --tls-certificates="$pki" \
  memory 1M
size=$(t nbdinfo --size "$(tls_uri_x509 "$clientpki")") \
  || fail "client certificate from our CA refused"
assert_eq size "$size" 1048576
if t nbdinfo --size "$(tls_uri_x509 "$nocertpki")" > nocert.out 2>&1; then
  fail "a client without a certificate was accepted with --tls-verify-peer"
fi
if t nbdinfo --size "$(tls_uri_x509 "$badclientpki")" > badcert.out 2>&1; then
  fail "a client certificate from an untrusted CA was accepted"
fi
if t nbdinfo --size "$uri" >/dev/null 2>&1; then
  fail "plaintext client accepted"
fi
if command -v qemu-img >/dev/null; then
  t qemu-img info --object "tls-creds-x509,id=tls0,dir=$clientpki,endpoint=client" \
    --image-opts "driver=nbd,path=$sock,tls-creds=tls0,tls-hostname=localhost" \
    >/dev/null || fail "qemu-img with a client certificate refused"
  if t qemu-img info --object "tls-creds-x509,id=tls0,dir=$nocertpki,endpoint=client" \
       --image-opts "driver=nbd,path=$sock,tls-creds=tls0,tls-hostname=localhost" \
       >/dev/null 2>&1; then
    fail "qemu-img without a client certificate accepted"
  fi
fi
t nbdinfo --size "$(tls_uri_x509 "$clientpki")" >/dev/null \
  || fail "server stopped serving after refused clients"
stop_nbdkit "$pid"

# Without --tls-verify-peer no client certificate is needed.
start_nbdkit novp --tls=require --tls-certificates="$pki" memory 1M
t nbdinfo --size "$(tls_uri_x509 "$nocertpki")" >/dev/null \
  || fail "without --tls-verify-peer, a client without certificate refused"
stop_nbdkit "$pid"

# --tls-verify-peer without a CA to check against is a start-up error.
mkdir noca
cp "$pki/server-cert.pem" "$pki/server-key.pem" noca/
if timeout 10 "$NBDKIT" -U - --tls=require --tls-verify-peer \
     --tls-certificates="$tmpdir/noca" memory 1M --run true 2>noca.err; then
  # nbdkit 1.32 accepts this and refuses every client instead.
  [ "$OURS" = 1 ] && fail "--tls-verify-peer without ca-cert.pem started"
fi
echo "$testname: OK"
