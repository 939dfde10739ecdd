#!/usr/bin/env bash
# The header-script and cookie-script examples of nbdkit's curl plugin
# manual (HEADER AND COOKIE SCRIPTS), run as written except for the
# host names, against a real nginx playing the services they log in
# to: a token from a login server sent as "Authorization: Bearer", a
# VMware ESXi-like server that takes basic auth once and then its
# cookie, and a Docker registry-like server with a token service, a
# manifest and a gzipped blob (read through --filter=gzip).
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
requires_ours # header-script and cookie-script are ours only since now
. "$here/../services/nginx.sh"
requires curl
requires jq
requires nbdcopy
[ -e "$BUILDDIR/filters/nbdkit-gzip-filter.so" ] || skip "no gzip filter"
cd "$tmpdir"

mkdir -p www/blobs ng/conf.d
head -c $(( 1 << 20 )) /dev/urandom > www/disk.img
gzip -c www/disk.img > www/blobs/sha256:5e1a
www="$tmpdir/www"
cookie='"52a01262-bf93-ccce-d379-8dabb3e55560"'

# The services.  /esx/ asks for basic auth (the htpasswd of nginx.sh)
# unless the request carries the session cookie it sets.
cat > ng/conf.d/examples.conf <<EOF
location = /login { return 200 '{"token":"tok-123"}'; }
location /service/ {
  alias $www/;
  if (\$http_authorization != "Bearer tok-123") { return 401; }
}
location /esx/ {
  alias $www/;
  set \$realm esx;
  if (\$cookie_vmware_soap_session = '$cookie') { set \$realm off; }
  auth_basic \$realm;
  auth_basic_user_file $tmpdir/ng/htpasswd;
  add_header Set-Cookie 'vmware_soap_session=$cookie; Path=/; HttpOnly';
}
location = /token { return 200 '{"token":"docker-tok","expires_in":300}'; }
location = /v2/library/fedora/manifests/latest {
  if (\$http_authorization != "Bearer docker-tok") { return 401; }
  return 200 '{"fsLayers":[{"blobSum":"sha256:5e1a"}]}';
}
location /v2/library/fedora/blobs/ {
  alias $www/blobs/;
  if (\$http_authorization != "Bearer docker-tok") { return 401; }
}
EOF
nginx_start www ng || exit $?
hostport="${NGINX_URL#http://}"

# copy NAME: the disk read through $uri is disk.img.
copy ()
{
  rm -f "$1.img"
  t nbdcopy "$uri" "$1.img" || fail "$1: nbdcopy failed"
  cmp "$1.img" www/disk.img || fail "$1: data differs"
}

# The services refuse a request without their token or cookie.
for u in service/disk.img esx/disk.img v2/library/fedora/blobs/sha256:5e1a; do
  code="$(curl -s -o /dev/null -w '%{http_code}' "$NGINX_URL/$u")"
  [ "$code" = 401 ] || fail "$u without credentials: status $code, not 401"
done

# "nbdkit curl https://service.example.com/disk.img header-script=..."
start_nbdkit service curl "$NGINX_URL/service/disk.img" \
        header-script='
          printf "Authorization: Bearer "
          curl -s -X POST http://'"$hostport"'/login |
               jq -r .token
        ' \
        header-script-renew=50 2> service.log
copy service
stop_nbdkit "$pid"

# "Example: VMware ESXi cookies", over HTTPS with a certificate curl
# does not trust (--insecure, sslverify=false).
SERVER="${NGINX_HTTPS_URL#https://}"
DCPATH=data
DS=datastore1
GUEST=guest-name
URL="https://$SERVER/esx/disk.img?dcPath=$DCPATH&dsName=$DS"
start_nbdkit esx curl "$URL" \
       cookie-script='
           curl --head -s --insecure -u '"$NGINX_USER:$NGINX_PASSWORD"' "$url" |
                sed -ne "{ s/^Set-Cookie: \([^;]*\);.*/\1/ip }"
       ' \
       cookie-script-renew=500 \
       sslverify=false 2> esx.log
copy esx
stop_nbdkit "$pid"
# The reads went with the cookie (nginx logs '"' as \x22).
grep 'GET /esx/disk.img 206 ' "$NGINX_ACCESS_LOG" |
  grep -qF 'cookie="vmware_soap_session=\x2252a01262-bf93-ccce-d379-8dabb3e55560\x22"' ||
  fail "esx: no ranged read with the cookie"

# "Example: Docker Hub authorization tokens".
cat > auth.sh <<EOF
#!/bin/sh -
IMAGE=library/fedora
curl -s "http://$hostport/token?service=registry.docker.io&scope=repository:\$IMAGE:pull" |
     jq -r .token
EOF
cat > blobsum.sh <<EOF
#!/bin/sh -
TOKEN=\`$tmpdir/auth.sh\`
IMAGE=library/fedora
curl -s -X GET -H "Authorization: Bearer \$TOKEN" \\
     "http://$hostport/v2/\$IMAGE/manifests/latest" |
     jq -r '.fsLayers[0].blobSum'
EOF
chmod +x auth.sh blobsum.sh
IMAGE=library/fedora
BLOBSUM=`./blobsum.sh`
[ "$BLOBSUM" = sha256:5e1a ] || fail "docker: blobsum.sh printed '$BLOBSUM'"
URL="http://$hostport/v2/$IMAGE/blobs/$BLOBSUM"
start_nbdkit docker curl "$URL" \
       header-script=' printf "Authorization: Bearer "; '"$tmpdir"'/auth.sh ' \
       header-script-renew=200 \
       --filter=gzip 2> docker.log
copy docker
stop_nbdkit "$pid"
echo "curl-plugin-script-examples: OK"
