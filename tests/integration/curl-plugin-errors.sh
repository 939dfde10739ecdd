#!/usr/bin/env bash
# curl plugin failures against a real nginx: basic auth with the right
# and a wrong password, a missing file (404), a server that ignores
# Range, an unreachable host, a protocol not allowed, a write the
# server refuses.  Each is a clear message naming the URL (and the
# status), never wrong data, and the server keeps running.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
requires_ours # messages and keys (connections=) of ours
. "$here/../services/nginx.sh"
requires nbdcopy
requires nbdsh
cd "$tmpdir"

mkdir www
head -c $(( 2 << 20 )) /dev/urandom > www/disk.img
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

# Basic auth: the right password (on the command line and from a file).
auth="$NGINX_URL/auth/disk.img"
start_nbdkit auth -r curl "$auth" user="$NGINX_USER" password="$NGINX_PASSWORD"
t nbdcopy "$uri" a.img
cmp a.img www/disk.img || fail "auth: data differs"
stop_nbdkit "$pid"
printf '%s\n' "$NGINX_PASSWORD" > pw
start_nbdkit authfile -r curl "$auth" user="$NGINX_USER" password=+pw
t nbdcopy "$uri" b.img
cmp b.img www/disk.img || fail "auth (password=+FILE): data differs"
stop_nbdkit "$pid"

refused badpw "wrong password" "$auth.*HTTP status 401" \
  -r curl "$auth" user="$NGINX_USER" password=wrong
refused nopw "no password" "$auth.*HTTP status 401" -r curl "$auth"
refused missing "404" "$NGINX_URL/data/missing.img.*HTTP status 404" \
  -r curl "$NGINX_URL/data/missing.img"
refused redir404 "a redirect to a missing file" \
  "$NGINX_URL/redirect/missing.img: HEAD \(redirected to $NGINX_URL/data/missing.img\): HTTP status 404" \
  -r curl "$NGINX_URL/redirect/missing.img"
refused norange "no Range support" \
  "$NGINX_URL/norange/disk.img.*does not support byte ranges" \
  -r curl "$NGINX_URL/norange/disk.img"

# Unreachable: a port nobody listens on, and an address with no route
# (bounded by timeout=).
port="$(free_port)"
refused refused "connection refused" \
  "http://127.0.0.1:$port/disk.img.*(connect|Connection refused)" \
  -r curl "http://127.0.0.1:$port/disk.img"
refused noroute "no route" "http://192.0.2.1/disk.img.*(connect|timed out|Timeout)" \
  -r curl http://192.0.2.1/disk.img timeout=2

# timeout=: a server that accepts the connection and never answers.
port="$(free_port)"
"$PYTHON" -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
open("mute.ready", "w").write("1")
time.sleep(120)
' "$port" &
register_pid $!
wait_for_file mute.ready || fail "the mute server did not start"
start=$(date +%s)
refused mute "timeout" "http://127.0.0.1:$port/disk.img: HEAD: .*(Timeout|timed out)" \
  -r curl "http://127.0.0.1:$port/disk.img" timeout=1
[ $(( $(date +%s) - start )) -lt 10 ] || fail "timeout=1 took too long"

# A password in the URL works, and is never shown in messages.
hostport="${NGINX_URL#http://}"
start_nbdkit urlpw -r curl "http://$NGINX_USER:$NGINX_PASSWORD@$hostport/auth/disk.img"
t nbdcopy "$uri" c.img
cmp c.img www/disk.img || fail "password in the URL: data differs"
stop_nbdkit "$pid"
refused urlbadpw "wrong password in the URL" \
  "http://$NGINX_USER@$hostport/auth/disk.img: HEAD: HTTP status 401" \
  -r curl "http://$NGINX_USER:Wr0ngPw@$hostport/auth/disk.img"
if grep -q Wr0ngPw urlbadpw.log; then fail "the password was shown"; fi

# protocols= limits the schemes, redirects included.
refused proto "protocol not allowed" "$NGINX_URL/data/disk.img.*(not supported|disabled)" \
  -r curl "$NGINX_URL/data/disk.img" protocols=https

# Bad parameters are start-up errors naming the key.
if "$NBDKIT" curl "$NGINX_URL/data/disk.img" connections=0 --run true \
     2> conn0.log; then
  fail "connections=0 accepted"
fi
grep -q "connections=0" conn0.log || fail "connections=0: no message"

# Without -r the export is writable, as with nbdkit, and a write is a
# PUT with Content-Range; nginx refuses it (405): the client gets an
# error, the file is unchanged.
start_nbdkit rw curl "$NGINX_URL/data/disk.img" 2> rw.log
cp www/disk.img before.img
t nbdsh -u "$uri" -c '
assert not h.is_read_only()
try:
    h.pwrite(b"x" * 4096, 0)
    assert False, "the write succeeded"
except nbd.Error as e:
    print("write refused:", e.string)
# The connection is still usable.
assert len(h.pread(4096, 0)) == 4096
'
cmp before.img www/disk.img || fail "the file changed"
grep -q "PUT /data/disk.img 405" "$NGINX_ACCESS_LOG" || fail "no PUT reached nginx"
grep -q "$NGINX_URL/data/disk.img: PUT bytes 0-4095.*HTTP status 405" rw.log ||
  fail "no message naming the URL and the status of the PUT"
stop_nbdkit "$pid"
echo "curl-plugin-errors: OK"
