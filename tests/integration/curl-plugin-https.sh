#!/usr/bin/env bash
# curl plugin over HTTPS: the server's certificate is checked against
# cainfo=, not checked with sslverify=false, and refused (with a
# message naming the URL) when nothing vouches for it.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/../services/nginx.sh"
requires nbdcopy
cd "$tmpdir"

mkdir www
head -c $(( 3 << 20 )) /dev/urandom > www/disk.img
nginx_start www ng || exit $?
url="$NGINX_HTTPS_URL/data/disk.img"

start_nbdkit noverify -r curl "$url" sslverify=false
t nbdcopy "$uri" a.img
cmp a.img www/disk.img || fail "sslverify=false: data differs"
stop_nbdkit "$pid"

start_nbdkit ca -r curl "$url" cainfo="$NGINX_CA"
t nbdcopy "$uri" b.img
cmp b.img www/disk.img || fail "cainfo=: data differs"
stop_nbdkit "$pid"

# cainfo= empty: no CA at all, so nothing vouches for the certificate.
start_nbdkit verify -r curl "$url" cainfo= 2> verify.log
if t nbdinfo --size "$uri" 2>/dev/null; then
  fail "an unknown certificate was accepted"
fi
cat verify.log
[ "$OURS" = 1 ] || { echo "curl-plugin-https: OK (nbdkit's part)"; exit 0; }
grep -q "$url.*certificate" verify.log ||
  fail "no message naming the URL and the certificate problem"
echo "curl-plugin-https: OK"
