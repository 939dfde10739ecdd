#!/usr/bin/env bash
# curl plugin: a read that outlasts timeout=, then nginx killed
# (SIGKILL) while a read is in flight, each after a read checked byte
# for byte: the client gets EIO within a few seconds (never wrong bytes;
# the NBD protocol has no ETIMEDOUT, and EINVAL would tell the client
# its request was wrong), the server stays up, and once nginx runs
# again a new client reads the file byte for byte.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
requires_ours # messages and keys of ours
requires_python_nbd
requires nbdcopy
NGINX_SLOW_RATE=512k
. "$here/../services/nginx.sh"
cd "$tmpdir"

mkdir www
head -c $(( 8 << 20 )) /dev/urandom > www/disk.img
nginx_start www ng || exit $?
url="$NGINX_URL/slow/disk.img"

# reader URI NGINX-PID|-: a 1 MiB read checked, then a 4 MiB read
# (seconds at 512 KiB/s) during which nginx is killed (unless -), which
# must fail with EIO within 5 s.
reader ()
{
  t "$PYTHON" - "$@" <<'PY'
import errno, os, signal, sys, time
import nbd
want = open("www/disk.img", "rb").read()
h = nbd.NBD()
h.connect_uri(sys.argv[1])
M = 1 << 20
assert h.pread(M, 0) == want[:M], "wrong bytes in the first read"
buf = nbd.Buffer(4 * M)
t = time.monotonic()
c = h.aio_pread(buf, 4 * M)
if sys.argv[2] != "-":
    time.sleep(0.3)
    os.kill(int(sys.argv[2]), signal.SIGKILL)
    t = time.monotonic()
while time.monotonic() - t < 15:
    h.poll(500)
    try:
        if h.aio_command_completed(c):
            assert buf.to_bytearray() == want[4 * M:8 * M], "wrong bytes"
            sys.exit("the read succeeded")
    except nbd.Error as e:
        took = time.monotonic() - t
        print("error after %.1f s: %s" % (took, e.string))
        assert e.errnum == errno.EIO, e
        assert took < 5, "the error came after %.1f s" % took
        sys.exit(0)
sys.exit("no error within 15 s")
PY
}

# A read slower than timeout=2.
start_nbdkit slow -r curl "$url" timeout=2 2> slow.log
reader "$uri" - || { cat slow.log; fail "a read that outlasts timeout="; }
grep -Eq "$url: GET bytes 4194304-8388607: .*(Timeout|timed out)" slow.log ||
  { cat slow.log; fail "no message naming the URL and the timeout"; }
kill -0 "$pid" 2>/dev/null || fail "the server died after a timeout"
stop_nbdkit "$pid"

# nginx killed during a read.
start_nbdkit srv -r curl "$url" timeout=20 2> srv.log
reader "$uri" "$NGINX_PID" || { cat srv.log; fail "the reader, nginx killed"; }
NGINX_PID=
kill -0 "$pid" 2>/dev/null || fail "the server died with nginx"
grep -Eq "$url: GET bytes 4194304-8388607: " srv.log ||
  { cat srv.log; fail "no message naming the URL and the range"; }
nginx_start_again
t nbdcopy "$uri" again.img
cmp again.img www/disk.img || fail "after nginx came back: data differs"
stop_nbdkit "$pid"

echo "curl-plugin-drop: OK"
