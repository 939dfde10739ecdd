#!/usr/bin/env bash
# curl plugin: header-script= and cookie-script= against a real nginx
# whose locations refuse (403) a request without the right token in a
# header or cookie.  A read only works when the script's output is
# sent; header= and header-script= headers go together; after the
# renew interval the script runs again ($iteration grows) and its new
# token is used; a failing script is a clear error naming the script
# and its exit status; requests in parallel during renewals get the
# right data.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
requires_ours # header-script and cookie-script are ours only since now
. "$here/../services/nginx.sh"
requires nbdcopy
requires nbdsh
cd "$tmpdir"

mkdir www
head -c $(( 1 << 20 )) /dev/urandom > www/disk.img
head -c $(( 16 << 20 )) /dev/urandom > www/big.img
www="$tmpdir/www"

# tokens N: the locations accept only token-N (header X-Test, with
# X-Static: yes) and session=s-N (cookie); /any/ any token-DIGITS.
tokens ()
{
  cat > ng/conf.d/scripts.conf <<EOF
location /hdr/ {
  alias $www/;
  if (\$http_x_test != "token-$1") { return 403; }
}
location /static/ {
  alias $www/;
  if (\$http_x_test != "token-$1") { return 403; }
  if (\$http_x_static != "yes") { return 403; }
}
location /cookie/ {
  alias $www/;
  if (\$cookie_session != "s-$1") { return 403; }
}
location /any/ {
  alias $www/;
  if (\$http_x_test !~ "^token-[0-9]+\$") { return 403; }
}
EOF
}
mkdir -p ng/conf.d
tokens 0
nginx_start www ng || exit $?

# refused NAME WHAT REGEX [NBDKIT ARGS...]: a server started with ARGS
# refuses clients, logging a message matching REGEX.
refused ()
{
  local name="$1" what="$2" re="$3"; shift 3
  start_nbdkit "$name" "$@" 2> "$name.log"
  if t nbdinfo --size "$uri" > "$name.out" 2>&1; then
    fail "$what: a client got through: $(cat "$name.out")"
  fi
  cat "$name.log"
  grep -Eq "$re" "$name.log" || fail "$what: no message matching /$re/"
  kill -0 "$pid" 2>/dev/null || fail "$what: the server died"
  stop_nbdkit "$pid"
}

# copy NAME: the disk read through $uri is the file.
copy ()
{
  rm -f "$1.img"
  t nbdcopy "$uri" "$1.img" || fail "$1: nbdcopy failed"
  cmp "$1.img" www/disk.img || fail "$1: data differs"
}

# Without the token nginx refuses: the checks below mean something.
refused notoken "no token" "HTTP status 403" -r curl "$NGINX_URL/hdr/disk.img"

# header-script: the header it prints is sent; it runs once without
# renew (two clients, one run: token-0 each time).
start_nbdkit hdr -r curl "$NGINX_URL/hdr/disk.img" \
  header-script='echo "X-Test: token-$iteration"' 2> hdr.log
copy hdr1
copy hdr2
stop_nbdkit "$pid"
grep -q 'GET /hdr/disk.img 206 .*x_test="token-0"' "$NGINX_ACCESS_LOG" ||
  fail "header-script: no ranged GET with its header"
if grep '/hdr/' "$NGINX_ACCESS_LOG" | grep -q 'x_test="token-[1-9]'; then
  fail "header-script ran again without header-script-renew"
fi

# A write (a PUT, which nginx refuses with 405) carries the script's
# header too: without it the answer would be 403.
start_nbdkit put curl "$NGINX_URL/hdr/disk.img" \
  header-script='echo "X-Test: token-$iteration"' 2> put.log
t nbdsh -u "$uri" -c '
try:
    h.pwrite(b"x" * 512, 0)
    assert False, "the write succeeded"
except nbd.Error:
    pass
'
stop_nbdkit "$pid"
grep -q 'PUT /hdr/disk.img 405 .*x_test="token-0"' "$NGINX_ACCESS_LOG" ||
  fail "header-script: the PUT did not carry its header"

# header= and header-script= together: both are sent.  A multi-line
# script with an empty line, $url, and 'Name:' removing the header
# libcurl would add (User-Agent from user-agent=).
refused static-only "header= alone" "HTTP status 403" \
  -r curl "$NGINX_URL/static/disk.img" header='X-Static: yes'
start_nbdkit static -r curl "$NGINX_URL/static/disk.img" \
  header='X-Static: yes' user-agent=static \
  header-script='
    echo "X-Test: token-$iteration"

    echo "X-Url: $url"
    echo "User-Agent:"
  ' 2> static.log
copy static
stop_nbdkit "$pid"
grep -q 'GET /static/disk.img 206 .*ua="-" .*x_test="token-0"' "$NGINX_ACCESS_LOG" ||
  fail "header-script: 'User-Agent:' did not remove the header"

# cookie-script: the cookie it prints is sent.
refused nocookie "no cookie" "HTTP status 403" -r curl "$NGINX_URL/cookie/disk.img"
start_nbdkit cookie -r curl "$NGINX_URL/cookie/disk.img" \
  cookie-script='printf "session=s-%s\n" "$iteration"' 2> cookie.log
copy cookie
stop_nbdkit "$pid"
grep -q 'GET /cookie/disk.img 206 .*cookie="session=s-0"' "$NGINX_ACCESS_LOG" ||
  fail "cookie-script: no ranged GET with its cookie"

# Renewal: token-0 works, then nginx takes token-1 only; a read after
# the renew interval works only with the script's new output.
start_nbdkit renew -r -v curl "$NGINX_URL/hdr/disk.img" -D curl.scripts=1 \
  header-script='echo "X-Test: token-$iteration"' header-script-renew=2 \
  2> renew.log
start_nbdkit renewc -r curl "$NGINX_URL/cookie/disk.img" \
  cookie-script='echo "session=s-$iteration"' cookie-script-renew=2 \
  2> renewc.log
urih="$tmpdir/renew.sock" uric="$tmpdir/renewc.sock"
uri="nbd+unix:///?socket=$urih"; copy renew0
uri="nbd+unix:///?socket=$uric"; copy renewc0
nginx_stop
tokens 1
nginx_start_again
sleep 2.5
uri="nbd+unix:///?socket=$urih"; copy renew1
uri="nbd+unix:///?socket=$uric"; copy renewc1
grep -q 'GET /hdr/disk.img 206 .*x_test="token-1"' "$NGINX_ACCESS_LOG" ||
  fail "header-script-renew: the renewed header was not sent"
grep -q 'GET /cookie/disk.img 206 .*cookie="session=s-1"' "$NGINX_ACCESS_LOG" ||
  fail "cookie-script-renew: the renewed cookie was not sent"
grep -q 'header-script: header: X-Test: token-1' renew.log ||
  fail "-D curl.scripts=1 did not show the header"
stop_nbdkit "$(cat renew.pid)"
stop_nbdkit "$(cat renewc.pid)"
nginx_stop
tokens 0
nginx_start_again

# Failures: the message names the key, what the script said, the
# script and its exit status; the server keeps running.
refused hfail "a failing header-script" \
  "header-script failed: no token for you \(the script 'echo \"no token for you\" >&2; exit 3' exited with status 3\)" \
  -r curl "$NGINX_URL/hdr/disk.img" \
  header-script='echo "no token for you" >&2; exit 3'
refused cfail "a failing cookie-script" \
  "cookie-script failed: the script 'false' exited with status 1" \
  -r curl "$NGINX_URL/cookie/disk.img" cookie-script=false
refused hbad "a header-script printing a non-header" \
  "header-script: line 2 of its output is not a header .*: not a header" \
  -r curl "$NGINX_URL/hdr/disk.img" \
  header-script='echo "X-Test: token-0"; echo "not a header"'

# A renewal that fails: the read after the interval gets an error and
# the message; the next one, once the script works again, succeeds.
start_nbdkit rfail -r curl "$NGINX_URL/any/disk.img" \
  header-script='if [ -e broken ]; then echo "login server down" >&2; exit 2; fi; echo "X-Test: token-$iteration"' \
  header-script-renew=1 2> rfail.log
copy rfail0
touch broken
sleep 1.5
if t nbdinfo --size "$uri" > rfail.out 2>&1; then
  fail "a failed renewal: the client got through"
fi
grep -q "header-script failed: login server down (the script .* exited with status 2)" rfail.log ||
  fail "a failed renewal: no message"
rm broken
copy rfail1
stop_nbdkit "$pid"

# Parallel requests while the script is renewed every second and takes
# a while: every byte right, several tokens used.
start_nbdkit par -r curl "$NGINX_URL/any/big.img" connections=4 \
  header-script='sleep 0.2; echo "X-Test: token-$iteration"' \
  header-script-renew=1 2> par.log
for i in 1 2 3; do
  t nbdcopy --connections=4 --requests=16 "$uri" par.img ||
    fail "parallel: nbdcopy failed"
  cmp par.img www/big.img || fail "parallel: data differs"
  sleep 1
done
stop_nbdkit "$pid"
n="$(grep 'GET /any/big.img' "$NGINX_ACCESS_LOG" |
     grep -o 'x_test="token-[0-9]*"' | sort -u | wc -l)"
[ "$n" -ge 3 ] || fail "parallel: the script was not renewed ($n tokens)"

# Start-up errors naming the keys.
if "$NBDKIT" curl "$NGINX_URL/hdr/disk.img" cookie=a=b cookie-script='echo a=b' \
     --run true 2> both.log; then
  fail "cookie= and cookie-script= accepted together"
fi
grep -q "cookie and cookie-script cannot be used together" both.log ||
  fail "cookie with cookie-script: no message"
if "$NBDKIT" curl "$NGINX_URL/hdr/disk.img" header-script-renew=5 \
     --run true 2> renewonly.log; then
  fail "header-script-renew without header-script accepted"
fi
grep -q "header-script-renew needs header-script" renewonly.log ||
  fail "header-script-renew alone: no message"
echo "curl-plugin-scripts: OK"
