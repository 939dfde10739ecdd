#!/usr/bin/env bash
# nbd plugin: a backend that freezes (SIGSTOP: its socket stays open,
# nothing answers), with a second instance of our own server (memory
# plugin) as the backend.
#   1. timeout=2: a read in flight fails with EIO after about 2 s, never
#      with wrong bytes, the message names the backend and the request;
#      after SIGCONT a new client reads the right bytes (in shared mode
#      too: the next request connects again);
#   2. a client connecting while the backend is frozen is refused
#      within the connect timeout (timeout=2), with a message;
#   3. SIGTERM to the proxy while the backend is frozen and a read is in
#      flight: the proxy exits within 10 s (without timeout=, with the
#      asynchronous and the synchronous request paths, and in shared
#      mode);
#   4. timeout=2 bounds each request's age: a backend (Python plugin)
#      that leaves one read unanswered for 8 s while it answers the
#      others at once: that read fails with EIO after about 2 s.
. "$(dirname "$0")/functions.sh"
requires_ours # timeout= is ours
requires_python_nbd
requires nbdinfo
requires nbdcopy
cd "$tmpdir"

# Whatever happens, the backend must not stay stopped.
back_pid=
trap '_rc=$?; set +e; [ -z "$back_pid" ] || kill -CONT "$back_pid" 2>/dev/null; (exit $_rc); _cleanup' EXIT

head -c $((4 << 20)) /dev/urandom > disk.img
start_nbdkit back memory 4M
back_pid=$pid back_sock=$sock
t nbdcopy disk.img "$uri"

# frozen.py: freeze(PID) stops the backend and waits until it has.
cat > frozen.py <<'PY'
import os, signal, sys, time
def freeze(pid):
    # SIGSTOP takes effect asynchronously: wait until every thread stops.
    os.kill(pid, signal.SIGSTOP)
    for _ in range(500):
        tasks = os.listdir("/proc/%d/task" % pid)
        states = [open("/proc/%d/task/%s/stat" % (pid, t)).read()
                  .rsplit(")", 1)[1].split()[0] for t in tasks]
        if all(st in "Tt" for st in states):
            return
        time.sleep(0.01)
    sys.exit("the backend did not stop")
PY

# read_frozen URI: read (right bytes), freeze the backend, read again.
# Prints the error and how long it took.
read_frozen ()
{
  t "$PYTHON" - "$1" "$back_pid" <<'PY'
import errno, os, signal, sys, time
import nbd
from frozen import freeze
want = open("disk.img", "rb").read()
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.pread(65536, 0) == want[:65536], "wrong bytes before the freeze"
freeze(int(sys.argv[2]))
start = time.monotonic()
try:
    got = h.pread(65536, 1 << 20)
    sys.exit("a read from a frozen backend succeeded (%s bytes)"
             % ("right" if got == want[1 << 20:(1 << 20) + 65536] else "WRONG"))
except nbd.Error as e:
    took = time.monotonic() - start
    assert e.errnum == errno.EIO, e
    assert 1.5 < took < 6.5, "the error came after %.1f s" % took
    print("EIO after %.1f s: %s" % (took, e.string))
PY
}

# 1. timeout=2: the read in flight fails, then the backend comes back.
for mode in async=true async=false shared=true; do
  start_nbdkit px nbd socket="$back_sock" timeout=2 "$mode" 2> px.err
  px_pid=$pid px_uri=$uri
  out=$(read_frozen "$px_uri" 2>&1) || { echo "$out"; cat px.err; fail "$mode: the frozen read"; }
  note "$mode: $out"
  grep -q "pread: no answer from the NBD server at socket=$back_sock within timeout=2 s" px.err ||
    { cat px.err; fail "$mode: no message naming the request and the backend"; }
  kill -CONT "$back_pid"
  kill -0 "$px_pid" 2>/dev/null || fail "$mode: the proxy died"
  # Shared too: the one connection was dropped, and is made again.
  t nbdcopy "$px_uri" again.img || { cat px.err; fail "$mode: after SIGCONT"; }
  cmp again.img disk.img || fail "$mode: after SIGCONT: data differs"
  stop_nbdkit "$px_pid" || fail "$mode: the proxy did not stop"
done

# 2. A new client while the backend is frozen: refused within ~2 s.
start_nbdkit px nbd socket="$back_sock" timeout=2 2> px.err
px_pid=$pid px_uri=$uri
kill -STOP "$back_pid"
for _ in $(seq 100); do
  grep -q '^State:.*stopped' /proc/"$back_pid"/status && break
  sleep 0.05
done
start=$(date +%s.%N)
if t nbdinfo --size "$px_uri" > frozen.out 2>&1; then
  fail "connect: a client got through while the backend was frozen"
fi
took=$(echo "$(date +%s.%N) - $start" | bc)
echo "$took < 6" | bc | grep -q 1 || fail "connect: refused only after $took s"
grep -q "cannot connect to the NBD server at socket=$back_sock: no answer within 2 s" px.err ||
  { cat px.err; fail "connect: no message naming the backend"; }
note "connect refused after $took s: $(grep -m1 'cannot connect' px.err)"
kill -CONT "$back_pid"
assert_eq "connect: after SIGCONT" "$(t nbdinfo --size "$px_uri")" $((4 << 20))
stop_nbdkit "$px_pid" || fail "connect: the proxy did not stop"

# 3. SIGTERM with a read in flight to the frozen backend, no timeout=.
for mode in async=true async=false shared=true; do
  start_nbdkit px nbd socket="$back_sock" "$mode" 2> px.err
  px_pid=$pid px_uri=$uri
  rm -f inflight
  t "$PYTHON" - "$px_uri" "$back_pid" > client.out 2>&1 <<'PY' &
import os, signal, sys, time
import nbd
from frozen import freeze
want = open("disk.img", "rb").read()
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.pread(4096, 0) == want[:4096]
freeze(int(sys.argv[2]))
buf = nbd.Buffer(65536)
cookie = h.aio_pread(buf, 1 << 20)
while h.aio_get_direction() & nbd.AIO_DIRECTION_WRITE:
    h.poll(1)
open("inflight", "w").write("1")
end = time.monotonic() + 25
try:
    while not h.aio_command_completed(cookie):
        if time.monotonic() > end:
            sys.exit("the read never ended")
        h.poll(1)
    sys.exit("the read succeeded from a frozen backend (%s bytes)"
             % ("right" if buf.to_bytearray() == want[1 << 20:(1 << 20) + 65536]
                else "WRONG"))
except nbd.Error as e:
    print("the read failed:", e.string)
PY
  client=$!
  wait_for_file inflight 100 || { cat client.out; fail "$mode: no read in flight"; }
  sleep 0.3 # the proxy has passed it on
  start=$(date +%s.%N)
  kill -TERM "$px_pid"
  for _ in $(seq 100); do kill -0 "$px_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$px_pid" 2>/dev/null; then
    kill -CONT "$back_pid"
    fail "$mode: SIGTERM: the proxy is still running after 10 s"
  fi
  took=$(echo "$(date +%s.%N) - $start" | bc)
  wait "$client" || { cat client.out; fail "$mode: the client"; }
  note "$mode: SIGTERM: the proxy exited after $took s; $(cat client.out)"
  kill -CONT "$back_pid"
done

# 4. One read left unanswered while the others are answered (by a
# Python plugin; the ThreadSanitizer build has no Python host).
if [ ! -e "$BUILDDIR/plugins/nbdkit-python-plugin.so" ]; then
  note "SKIP section 4: no Python plugin in $BUILDDIR"
else
cat > slow.py <<'PY'
import time
import nbdkit
API_VERSION = 3
def thread_model():
    return nbdkit.THREAD_MODEL_PARALLEL
def get_size(h):
    return 4 << 20
def pread(h, buf, offset, flags):
    if offset == 1 << 20:
        time.sleep(8)
    buf[:] = bytes([offset >> 20 | 0x40]) * len(buf)
PY
start_nbdkit slow python "$tmpdir/slow.py"
slow_pid=$pid slow_sock=$sock
for mode in async=true async=false shared=true; do
  start_nbdkit px nbd socket="$slow_sock" timeout=2 "$mode" 2> px.err
  px_pid=$pid px_uri=$uri
  t "$PYTHON" - "$px_uri" "$mode" > age.out 2>&1 <<'PY' || { cat age.out px.err; fail "$mode: the slow read"; }
import errno, sys, time
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.pread(4096, 0) == b"\x40" * 4096
buf = nbd.Buffer(4096)
start = time.monotonic()
cookie = h.aio_pread(buf, 1 << 20)
fast = 0
try:
    while True:
        if h.aio_command_completed(cookie):
            sys.exit("the slow read succeeded after %.1f s"
                     % (time.monotonic() - start))
        assert time.monotonic() - start < 7, "the slow read is still waiting"
        try:
            assert h.pread(4096, 2 << 20) == b"\x42" * 4096
            fast += 1
        except nbd.Error:
            pass # in flight when the connection was dropped
        h.poll(0)
        time.sleep(0.1)
except nbd.Error as e:
    took = time.monotonic() - start
    assert e.errnum == errno.EIO, e
    assert 1.5 < took < 6.5, "the error came after %.1f s" % took
    assert fast >= 5, "only %d other reads were answered meanwhile" % fast
    print("EIO after %.1f s, %d other reads answered meanwhile" % (took, fast))
if sys.argv[2] == "shared=true":
    assert h.pread(4096, 0) == b"\x40" * 4096, "no right bytes after"
PY
  note "$mode: age: $(cat age.out)"
  grep -q "pread: no answer from the NBD server at socket=$slow_sock within timeout=2 s" px.err ||
    { cat px.err; fail "$mode: age: no message naming the request and the backend"; }
  stop_nbdkit "$px_pid" || fail "$mode: age: the proxy did not stop"
done
stop_nbdkit "$slow_pid"
fi

# The backend answers again after all this.
assert_eq "the backend" "$(t nbdinfo --size "nbd+unix:///?socket=$back_sock")" $((4 << 20))
echo "$testname: OK"
