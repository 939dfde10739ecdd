#!/usr/bin/env bash
# curl plugin: a disk image served by a real nginx, read through real
# clients (nbdcopy, nbdsh, qemu-img) byte for byte; the bare URL,
# header=, cookie=, user-agent= reach the server; connections= bounds
# the HTTP connections of the pool; redirects are followed, or not
# with followlocation=false.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/../services/nginx.sh"
requires nbdcopy
requires nbdsh
requires_python_nbd
cd "$tmpdir"

mkdir www
# Not a multiple of any block size: the last request is short.
head -c $(( (8 << 20) + 12345 )) /dev/urandom > www/disk.img
nginx_start www ng || exit $?
url="$NGINX_URL/data/disk.img"

# The bare first word is the URL; header, cookie and user agent are sent.
start_nbdkit plain -r curl "$url" header='X-Test: hello' \
  cookie='name=value; other=1' user-agent='nbdkit-test/1.0'
t nbdcopy "$uri" copy.img
cmp copy.img www/disk.img || fail "nbdcopy: data differs"
assert_eq "size" "$(t nbdinfo --size "$uri")" "$(stat -c %s www/disk.img)"
grep -q 'GET /data/disk.img 206 range="bytes=' "$NGINX_ACCESS_LOG" ||
  fail "no range request in the access log"
grep -q 'ua="nbdkit-test/1.0" cookie="name=value; other=1" x_test="hello"' \
  "$NGINX_ACCESS_LOG" || fail "header, cookie or user agent not sent"

# Random reads of random lengths, compared with the file.
t "$PYTHON" - "$uri" www/disk.img <<'PY'
import nbd, random, sys
want = open(sys.argv[2], "rb").read()
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.get_size() == len(want)
assert h.is_read_only()
rng = random.Random(13)
for i in range(200):
    n = rng.choice([1, 511, 4096, 65536, 300000, 2 << 20])
    off = rng.randrange(0, len(want) - n + 1)
    got = h.pread(n, off)
    assert got == want[off:off + n], "read of %d at %d differs" % (n, off)
# The very end of the disk.
assert h.pread(1, len(want) - 1) == want[-1:]
print("200 random reads OK")
PY

# qemu-img reads it too (and rounds the size up to whole sectors).
if command -v qemu-img >/dev/null; then
  t qemu-img convert -f raw -O raw "$uri" qemu.img
  cmp -n "$(stat -c %s www/disk.img)" qemu.img www/disk.img || fail "qemu-img convert: data differs"
fi
stop_nbdkit "$pid"

# The rest uses keys and messages of ours (nbdkit 1.32 has no
# connections=).
[ "$OURS" = 1 ] || { echo "curl-plugin: OK (nbdkit's part)"; exit 0; }

# connections=4 with nbdcopy -C 4: every byte right, and the requests
# come over at most 4, and more than 1, HTTP connections.
: > "$NGINX_ACCESS_LOG"
start_nbdkit four -r curl url="$url" connections=4
t nbdinfo "$uri" | grep -q "can_multi_conn: true" ||
  fail "read-only export without multi-conn"
t nbdcopy -C 4 --request-size=65536 "$uri" copy4.img
cmp copy4.img www/disk.img || fail "nbdcopy -C 4: data differs"
n=$(grep '^GET ' "$NGINX_ACCESS_LOG" | sed 's/.*conn=//' | sort -u | wc -l)
note "connections=4: $n HTTP connections"
[ "$n" -ge 2 ] && [ "$n" -le 4 ] || fail "connections=4 used $n connections"
stop_nbdkit "$pid"

# connections=1: one HTTP connection for everything.
: > "$NGINX_ACCESS_LOG"
start_nbdkit one -r curl url="$url" connections=1
t nbdcopy -C 4 --request-size=65536 "$uri" copy1.img
cmp copy1.img www/disk.img || fail "connections=1: data differs"
n=$(grep '^GET ' "$NGINX_ACCESS_LOG" | sed 's/.*conn=//' | sort -u | wc -l)
assert_eq "HTTP connections with connections=1" "$n" 1
stop_nbdkit "$pid"

# A redirect (302) is followed, and the data is the target's.
: > "$NGINX_ACCESS_LOG"
start_nbdkit redir -r curl "$NGINX_URL/redirect/disk.img"
t nbdcopy "$uri" redir.img
cmp redir.img www/disk.img || fail "through a redirect: data differs"
grep -q 'GET /redirect/disk.img 302' "$NGINX_ACCESS_LOG" ||
  fail "the redirect was not taken"
stop_nbdkit "$pid"

# followlocation=false: the client is refused, the message says why.
start_nbdkit noredir -r curl "$NGINX_URL/redirect/disk.img" \
  followlocation=false 2> noredir.log
if t nbdinfo --size "$uri" 2>/dev/null; then
  fail "followlocation=false: the redirect was followed"
fi
cat noredir.log
grep -q "$NGINX_URL/redirect/disk.img.*302" noredir.log ||
  fail "followlocation=false: no message naming the URL and 302"
echo "curl-plugin: OK"
