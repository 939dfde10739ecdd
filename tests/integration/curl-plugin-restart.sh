#!/usr/bin/env bash
# curl plugin: nginx killed in the middle of a copy.  The client gets
# an error (not wrong data, not a hang), the server stays up, refuses
# new clients clearly while nginx is down, and serves a new client
# with the right data once nginx runs again.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
requires_ours # messages and keys (connections=) of ours
NGINX_SLOW_RATE=512k
. "$here/../services/nginx.sh"
requires nbdcopy
cd "$tmpdir"

mkdir www
head -c $(( 8 << 20 )) /dev/urandom > www/disk.img
nginx_start www ng || exit $?
url="$NGINX_URL/slow/disk.img"

start_nbdkit srv -v -r curl "$url" connections=4 timeout=20 2> srv.log
# nginx sends the first second's worth of a response at once, then
# 512 KiB/s: four 2 MiB reads in parallel take about 3 s.
t nbdcopy -C 4 --request-size=2097152 "$uri" first.img 2> copy.err &
copy=$!
register_pid "$copy"
# Kill nginx half a second after the client's open (logged with -v).
for _ in $(seq 100); do
  grep -aq "byte ranges supported" srv.log && break
  sleep 0.1
done
sleep 0.5
nginx_stop
rc=0
wait "$copy" || rc=$?
cat copy.err
[ "$rc" -ne 0 ] || fail "nbdcopy succeeded although nginx was killed"
kill -0 "$pid" 2>/dev/null || fail "the server died with nginx"
grep -Eq "$url: GET bytes [0-9]+-[0-9]+: " srv.log ||
  fail "no message naming the URL and the range that failed"

# While nginx is down a new client is refused with a clear message.
: > srv.log
if t nbdinfo --size "$uri" 2>/dev/null; then
  fail "a client got through while nginx was down"
fi
grep -aEq "$url: HEAD: .*connect" srv.log ||
  fail "no message naming the URL while nginx is down"

# nginx back on the same port: the same server serves a new client.
nginx_start_again
t nbdcopy -C 4 --request-size=2097152 "$uri" second.img
cmp second.img www/disk.img || fail "after the restart: data differs"
kill -0 "$pid" 2>/dev/null || fail "the server died"
echo "curl-plugin-restart: OK"
