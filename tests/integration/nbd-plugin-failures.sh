#!/usr/bin/env bash
# nbd plugin: the failures of a remote backend, with a second instance
# of our own server as the backend.
#   - a closed TCP port on 127.0.0.1: the client is refused at once and
#     the message names the host and the port;
#   - an export the backend does not have (export=, and a client's name
#     with dynamic-export=true): the message names the export;
#   - a wrong TLS pre-shared key: refused, the message names the socket;
#   - the backend killed while a client reads the disk in a loop: the
#     client gets EIO in bounded time (never wrong bytes), the proxy
#     stays up, refuses new clients with a clear message while the
#     backend is down, and serves correct bytes to a new client once the
#     backend runs again;
#   - the same in shared mode: while the backend is down, a new client's
#     read fails with a message naming the backend (connecting again
#     fails), the proxy stays up and stops cleanly (nbd-plugin-shared.sh
#     tests the backend coming back).
. "$(dirname "$0")/functions.sh"
requires_ours # messages of ours
requires_python_nbd
requires nbdinfo
requires nbdcopy
cd "$tmpdir"

# refused NAME PATTERN NBDKIT-ARGS...: a client of the server started
# with ARGS gets nothing, within 10 s, and the log matches PATTERN.
refused ()
{
  local name=$1 pattern=$2 start
  shift 2
  start_nbdkit "$name" "$@" 2> "$name.err"
  start=$(date +%s)
  if timeout 10 nbdinfo --size "$uri" > "$name.out" 2>&1; then
    fail "$name: a client got through: $(cat "$name.out")"
  fi
  [ $(( $(date +%s) - start )) -lt 10 ] || fail "$name: the refusal took 10 s or more"
  kill -0 "$pid" 2>/dev/null || fail "$name: the server died"
  stop_nbdkit "$pid" || fail "$name: the server did not stop"
  grep -Eq -- "$pattern" "$name.err" ||
    { cat "$name.err"; fail "$name: no error matching /$pattern/"; }
  note "$name: $(grep -E -- "$pattern" "$name.err" | head -n 1)"
}

# Nothing listens on this port.
port=$(free_port)
refused closed "cannot connect to the NBD server at hostname=127.0.0.1 port=$port: .*Connection refused" \
  nbd hostname=127.0.0.1 port="$port"

# A backend with the exports a and b (files of a directory).
mkdir dir
head -c $((1 << 20)) /dev/urandom > dir/a
echo two > dir/b
start_nbdkit dirbk file dir="$tmpdir/dir"
dir_sock=$sock
refused noexport "socket=$dir_sock: .*no export named 'missing'" \
  nbd socket="$dir_sock" export=missing
start_nbdkit dynpx nbd socket="$dir_sock" dynamic-export=true 2> dynpx.err
if t nbdinfo --size "nbd+unix:///nope?socket=$sock" > dyn.out 2>&1; then
  fail "dynamic-export: a missing export was served"
fi
grep -q "no export named 'nope'" dyn.out ||
  { cat dyn.out; fail "dynamic-export: the client is not told which export is missing"; }
grep -q "socket=$dir_sock: .*no export named 'nope'" dynpx.err ||
  { cat dynpx.err; fail "dynamic-export: no error naming the export"; }
assert_eq "dynamic-export, an existing export" \
  "$(t nbdinfo --size "nbd+unix:///b?socket=$sock")" 4
stop_nbdkit "$pid"

# A wrong pre-shared key (the right user name).
if command -v psktool >/dev/null; then
  psktool -u alice -p good.psk >/dev/null
  psktool -u alice -p bad.psk >/dev/null
  cmp -s good.psk bad.psk && fail "psktool made the same key twice"
  start_nbdkit tlsbk --tls=require --tls-psk="$tmpdir/good.psk" memory 1M
  refused badpsk "socket=$sock" \
    nbd socket="$sock" tls=require tls-psk="$tmpdir/bad.psk" tls-username=alice
else
  note "psktool missing: wrong-key case skipped"
fi

# The backend killed while a client reads: our server behind a proxy.
head -c $((8 << 20)) /dev/urandom > disk.img
start_nbdkit back file "$tmpdir/disk.img"
back_pid=$pid back_sock=$sock
start_nbdkit px nbd socket="$back_sock" 2> px.err
px_pid=$pid px_uri=$uri
t "$PYTHON" - "$px_uri" "$back_pid" > reader.out 2>&1 <<'PY' ||
import errno, os, signal, sys, time
import nbd
want = open("disk.img", "rb").read()
h = nbd.NBD()
h.connect_uri(sys.argv[1])
size, n = h.get_size(), 1 << 20
assert size == len(want)
off, reads = 0, 0
killed = None
while True:
    if reads == 4:
        os.kill(int(sys.argv[2]), signal.SIGKILL)
        killed = time.monotonic()
    try:
        got = h.pread(n, off)
    except nbd.Error as e:
        assert killed is not None, "an error before the backend was killed: %s" % e
        took = time.monotonic() - killed
        assert e.errnum == errno.EIO, e
        assert took < 5, "the error came after %.1f s" % took
        print("error %.2f s after the kill: %s" % (took, e.string))
        break
    assert got == want[off:off + n], "wrong bytes at %d" % off
    reads += 1
    assert killed is None or time.monotonic() - killed < 5, "reads go on"
    off = (off + n) % size
# Later requests on this connection fail too, at once.
try:
    h.pread(4096, 0)
    sys.exit("a read after the backend died succeeded")
except nbd.Error as e:
    assert e.errnum == errno.EIO, e
PY
  { cat reader.out; fail "the reader"; }
cat reader.out
grep -q "the connection to the NBD server at socket=$back_sock is lost" px.err ||
  { cat px.err; fail "no message about the lost connection"; }
kill -0 "$px_pid" 2>/dev/null || fail "the proxy died with its backend"
# A new client while the backend is down: refused, with a message.
: > px.err
if t nbdinfo --size "$px_uri" > down.out 2>&1; then
  fail "a client got through while the backend was down"
fi
grep -q "cannot connect to the NBD server at socket=$back_sock" px.err ||
  { cat px.err; fail "no message naming the backend while it is down"; }
kill -0 "$px_pid" 2>/dev/null || fail "the proxy died on a refused client"
# The backend again, on the same socket: a new client gets the disk.
start_nbdkit back file "$tmpdir/disk.img"
t nbdcopy "$px_uri" again.img
cmp again.img disk.img || fail "after the backend came back: data differs"
stop_nbdkit "$px_pid" || fail "the proxy did not stop"

# Shared mode: the one connection to the backend is lost, and cannot
# be made again while the backend is down.
back_pid=$pid
start_nbdkit shpx nbd socket="$back_sock" shared=true 2> shpx.err
sh_pid=$pid sh_uri=$uri
t nbdcopy "$sh_uri" sh.img
cmp sh.img disk.img || fail "shared: data differs"
kill -9 "$back_pid"
: > shpx.err
start=$(date +%s)
t "$PYTHON" - "$sh_uri" <<'PY' || fail "shared: a new client after the backend died"
import errno, sys
import nbd
h = nbd.NBD()
try:
    h.connect_uri(sys.argv[1])
    h.pread(4096, 0)
    sys.exit("a read succeeded after the backend died")
except nbd.Error as e:
    print("shared, backend gone:", e.string)
PY
[ $(( $(date +%s) - start )) -lt 5 ] || fail "shared: the error took too long"
grep -q "socket=$back_sock" shpx.err ||
  { cat shpx.err; fail "shared: no message naming the backend"; }
kill -0 "$sh_pid" 2>/dev/null || fail "shared: the proxy died with its backend"
stop_nbdkit "$sh_pid" || fail "shared: the proxy did not stop"
echo "$testname: OK"
