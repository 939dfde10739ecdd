#!/usr/bin/env bash
# ssh plugin: failures against a real OpenSSH server
# (tests/services/sshd.sh), each with an error naming the host and the
# path: changed and unknown host keys (refused unless
# verify-remote-host=false), a missing file, a directory, a key the
# server does not accept, a refused connection; and sshd killed in the
# middle of a transfer: the client gets EIO within 5 s (never wrong
# bytes), our server stays up and serves a new connection once sshd is
# back; sshd's sessions stopped: with timeout= a read fails in time,
# with EIO (not the EINVAL of a wrong request).
. "$(dirname "$0")/functions.sh"
. "$SRCDIR/tests/services/sshd.sh"
requires nbdinfo
requires nbdsh
requires_python_nbd
[ -x "$SSHD_BIN" ] || skip "$SSHD_BIN not installed"
requires_ours
pkg-config --exists libssh 2>/dev/null || skip "libssh not installed"
cd "$tmpdir"

mkdir sshd
sshd_start "$tmpdir/sshd" || fail "sshd did not start"
who="ssh $SSHD_USER@127.0.0.1:$SSHD_PORT"
base=(host=127.0.0.1 port="$SSHD_PORT" config= identity="$SSHD_KEY")
head -c $((4 << 20)) /dev/urandom > disk.img
sha=$(sha256sum < disk.img | cut -d' ' -f1)

# expect_refused NAME PATTERN PLUGIN-ARGS...: a client of a server
# started with the args gets no export, and the server's error log
# matches PATTERN (grep -E).
expect_refused ()
{
  local name=$1 pattern=$2
  shift 2
  start_nbdkit "$name" ssh "$@" 2> "$name.err"
  if t nbdinfo --size "$uri" > /dev/null 2>&1; then
    fail "$name: the connection was not refused"
  fi
  stop_nbdkit "$pid"
  grep -Eq -- "$pattern" "$name.err" \
    || { cat "$name.err"; fail "$name: no error matching '$pattern'"; }
}

# A known hosts file recording another key for this host and port.
ssh-keygen -q -t ed25519 -N '' -f other_host_key
echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 other_host_key.pub)" > bad_known_hosts
: > empty_known_hosts

expect_refused changed "$who: the host key has CHANGED.*bad_known_hosts" \
  "${base[@]}" known-hosts="$tmpdir/bad_known_hosts" "$tmpdir/disk.img"
expect_refused unknown "$who: the host key is unknown.*empty_known_hosts" \
  "${base[@]}" known-hosts="$tmpdir/empty_known_hosts" "$tmpdir/disk.img"
# A different key in any file is a refusal, even if another file agrees.
expect_refused changed2 "$who: the host key has CHANGED" \
  "${base[@]}" known-hosts="$tmpdir/bad_known_hosts" \
  known-hosts="$SSHD_KNOWN_HOSTS" "$tmpdir/disk.img"
# The host found in the second file, its name expanded (%% and %p).
cp "$SSHD_KNOWN_HOSTS" "$SSHD_DIR/known_%hosts_$SSHD_PORT"
start_nbdkit second ssh "${base[@]}" known-hosts="$tmpdir/empty_known_hosts" \
  known-hosts="$SSHD_DIR/known_%%hosts_%p" "$tmpdir/disk.img"
assert_eq "size, host in the second known hosts file" \
  "$(t nbdinfo --size "$uri")" $((4 << 20))
stop_nbdkit "$pid"
# verify-remote-host=false connects whatever the known hosts say.
start_nbdkit noverify ssh "${base[@]}" known-hosts="$tmpdir/bad_known_hosts" \
  verify-remote-host=false "$tmpdir/disk.img"
nbdsh_u "$uri" -c "
import hashlib
assert hashlib.sha256(h.pread(h.get_size(), 0)).hexdigest() == '$sha'
"
stop_nbdkit "$pid"

good=("${base[@]}" known-hosts="$SSHD_KNOWN_HOSTS")
expect_refused missing "$who: $tmpdir/nope.img: opening read-write: no such file" \
  "${good[@]}" "$tmpdir/nope.img"
expect_refused missing-ro "$who: $tmpdir/nope.img: opening read-only: no such file" \
  -r "${good[@]}" "$tmpdir/nope.img"
expect_refused directory "$who: $tmpdir: is a directory" \
  -r "${good[@]}" "$tmpdir"

# A key the server does not know (and no password).
ssh-keygen -q -t ed25519 -N '' -f wrong_key
expect_refused wrongkey "$who: authentication failed.*tried: publickey" \
  host=127.0.0.1 port="$SSHD_PORT" config= identity="$tmpdir/wrong_key" \
  known-hosts="$SSHD_KNOWN_HOSTS" "$tmpdir/disk.img"

# Nothing listens on this port.
dead_port=$(free_port)
expect_refused refused "ssh [^ ]*127.0.0.1:$dead_port: cannot connect: .*refused" \
  host=127.0.0.1 port="$dead_port" config= "$tmpdir/disk.img"

# A configuration file that is not there stops the start.
if timeout 5 "$NBDKIT" -f -U "$tmpdir/x.sock" ssh "${good[@]}" \
     config="$tmpdir/no_config" \
     "$tmpdir/disk.img" 2> noconfig.err; then
  fail "started with a missing config= file"
fi
grep -q "config=$tmpdir/no_config: No such file" noconfig.err \
  || { cat noconfig.err; fail "no error naming the config file"; }

# -D ssh.log: libssh's messages in the debug log.
start_nbdkit debug -v -D ssh.log=2 ssh "${good[@]}" "$tmpdir/disk.img" 2> debug.err
t nbdinfo --size "$uri" > /dev/null
stop_nbdkit "$pid"
grep -q "libssh: " debug.err || { cat debug.err; fail "no libssh debug messages"; }

# sshd (listener and sessions) killed while a client reads in a loop.
start_nbdkit kill ssh "${good[@]}" "$tmpdir/disk.img" 2> kill.err
kill_pid=$pid
"$PYTHON" - "$uri" > reader.out 2>&1 <<'PY' &
import errno, nbd, os, sys, time
want = open("disk.img", "rb").read()
h = nbd.NBD()
h.connect_uri(sys.argv[1])
size = h.get_size()
h.pread(1 << 20, 0)
open("reading", "w").write("1")
deadline = time.time() + 30
off = 0
try:
    while time.time() < deadline:
        got = h.pread(1 << 20, off)
        assert got == want[off:off + (1 << 20)], "wrong bytes at %d" % off
        off = (off + (1 << 20)) % size
except nbd.Error as e:
    print("client got an error:", e)
    assert os.path.exists("killed"), "an error before sshd was killed"
    assert e.errnum == errno.EIO, e
    took = time.time() - os.stat("killed").st_mtime
    assert took < 5, "the error came %.1f s after sshd was killed" % took
    sys.exit(0)
sys.exit("no error within 30 s of sshd being killed")
PY
reader=$!
register_pid $reader
wait_for_file reading 200 || { cat reader.out; fail "the reader did not start"; }
sleep 0.3
touch killed
sshd_kill
wait $reader || { cat reader.out kill.err; fail "the client got no error"; }
grep -q "client got an error" reader.out || { cat reader.out; fail "reader"; }
cat reader.out
grep -q "$who: $tmpdir/disk.img: reading at offset" kill.err \
  || { cat kill.err; fail "no read error naming host and path"; }
kill -0 "$kill_pid" || fail "the server died with sshd"
# While sshd is down, a new client is refused, and the server stays up.
if t nbdinfo --size "$uri" > /dev/null 2>&1; then
  fail "connected while sshd was down"
fi
kill -0 "$kill_pid" || fail "the server died on a refused connection"
sshd_restart || fail "sshd did not restart"
nbdsh_u "$uri" -c "
import hashlib
assert hashlib.sha256(h.pread(h.get_size(), 0)).hexdigest() == '$sha'
"
stop_nbdkit "$kill_pid"

# timeout=: sshd's sessions stopped (SIGSTOP, the connection stays up):
# a read fails after about that long instead of waiting for ever, the
# client is disconnected, the server stays up.
start_nbdkit stall ssh "${good[@]}" timeout=2 "$tmpdir/disk.img" 2> stall.err
stall_pid=$pid
rm -f reading
"$PYTHON" - "$uri" > stall.out 2>&1 <<'PY' &
import errno, nbd, os, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pread(1 << 20, 0)
open("reading", "w").write("1")
while not os.path.exists("stopped"):
    time.sleep(0.05)
t = time.time()
cookie = h.aio_pread(nbd.Buffer(1 << 20), 1 << 20)
while time.time() - t < 15:
    h.poll(500)
    try:
        if h.aio_command_completed(cookie):
            sys.exit("the read succeeded")
    except nbd.Error as e:
        print("client got an error after %.1f s: %s" % (time.time() - t, e))
        # EIO, not the EINVAL of a wrong request.
        assert e.errnum == errno.EIO, e
        sys.exit(0)
sys.exit("no error within 15 s")
PY
reader=$!
register_pid $reader
wait_for_file reading 200 || { cat stall.out; fail "the reader did not start"; }
sessions=$(_sshd_descendants "$SSHD_PID")
[ -n "$sessions" ] || fail "no sshd session to stop"
kill -STOP $sessions
touch stopped
wait $reader || { kill -CONT $sessions; cat stall.out stall.err; fail "no timely error"; }
kill -CONT $sessions
cat stall.out
grep -q "reading at offset .*no answer within timeout=2 s" stall.err \
  || { cat stall.err; fail "no timeout error"; }
kill -0 "$stall_pid" || fail "the server died after a timeout"
nbdsh_u "$uri" -c "
import hashlib
assert hashlib.sha256(h.pread(h.get_size(), 0)).hexdigest() == '$sha'
"
stop_nbdkit "$stall_pid"
echo "$testname: OK"
