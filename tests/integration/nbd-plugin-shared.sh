#!/usr/bin/env bash
# nbd plugin, shared=true: the one connection to the backend is made
# again after the backend was lost, with a second instance of our own
# server (file plugin) as the backend.
#   1. on a Unix socket and on a TCP port (asynchronous and synchronous
#      request paths): one client connection to the proxy reads the
#      right bytes, the backend is killed, its reads fail with EIO (never
#      wrong bytes) while the backend is down, and read the right bytes
#      again once the backend runs again on the same address, without
#      the proxy being restarted;
#   2. a backend that comes back with another size is not served: reads
#      fail with EIO and the log names the backend and both sizes; with
#      the right size again, it is served;
#   3. nbdcopy -C 4 through the proxy while the backend is restarted
#      three times: copies may fail but never hang, the proxy never
#      dies, and a copy afterwards has the right bytes.
. "$(dirname "$0")/functions.sh"
requires_ours # reconnecting in shared mode is ours
requires_python_nbd
requires nbdcopy
cd "$tmpdir"

register_pidfile "$tmpdir/back.pid"
register_pidfile "$tmpdir/restarts.pids"
head -c $((4 << 20)) /dev/urandom > disk.img
head -c $((2 << 20)) /dev/urandom > small.img

# backend_start FILE: the backend, on $back_addr (a socket path, or
# tcp:PORT); sets back_pid.
backend_start ()
{
  local pidfile="$tmpdir/back.pid"
  rm -f "$pidfile"
  case $back_addr in
    tcp:*) "$NBDKIT" -p "${back_addr#tcp:}" -i 127.0.0.1 -P "$pidfile" -f file "$1" & ;;
    *) rm -f "$back_addr"
       "$NBDKIT" -U "$back_addr" -P "$pidfile" -f file "$1" & ;;
  esac
  back_pid=$!
  register_pid "$back_pid"
  wait_for_file "$pidfile" 100 || fail "the backend did not start"
}

backend_kill ()
{
  kill -9 "$back_pid" 2>/dev/null || true
  wait "$back_pid" 2>/dev/null || true
}

# The client: reads with one connection to the proxy through an outage.
# It writes "down" when it wants the backend killed and "up" when it
# wants it back, and waits for the file "ack" each time.
cat > outage.py <<'PY'
import errno, os, sys, time
import nbd
want = open("disk.img", "rb").read()
def ask(what):
    try: os.unlink("ack")
    except FileNotFoundError: pass
    open("want", "w").write(what)
    for _ in range(300):
        if os.path.exists("ack"): return
        time.sleep(0.05)
    sys.exit("no ack for " + what)
h = nbd.NBD()
h.connect_uri(sys.argv[1])
n = 65536
for off in range(0, len(want), 1 << 20):
    assert h.pread(n, off) == want[off:off + n], "wrong bytes before"
ask("down")
fails = 0
for i in range(4):
    start = time.monotonic()
    try:
        got = h.pread(n, 0)
        sys.exit("a read while the backend is down succeeded (%s bytes)"
                 % ("right" if got == want[:n] else "WRONG"))
    except nbd.Error as e:
        assert e.errnum == errno.EIO, e
        assert time.monotonic() - start < 5, "the error took too long"
        fails += 1
ask("up")
for off in range(0, len(want), 1 << 20):
    assert h.pread(n, off) == want[off:off + n], "wrong bytes after, at %d" % off
h.pwrite(b"x" * 4096, 8192)
h.flush()
assert h.pread(4096, 8192) == b"x" * 4096
h.pwrite(want[8192:8192 + 4096], 8192)
print("%d reads failed with EIO during the outage, right bytes after" % fails)
PY

# run_outage NAME: run outage.py against $px_uri, answering the client's "want" file (down/up) until it exits.
run_outage ()
{
  local name=$1 client
  rm -f want ack
  t "$PYTHON" outage.py "$px_uri" > "$name.out" 2>&1 &
  client=$!
  for _ in $(seq 600); do
    if [ -s want ]; then
      case $(cat want) in
        down) backend_kill ;;
        up) backend_start disk.img ;;
      esac
      rm -f want
      echo ok > ack
    fi
    kill -0 "$client" 2>/dev/null || break
    sleep 0.05
  done
  wait "$client" || { cat "$name.out" px.err; fail "$name: the client"; }
  note "$name: $(cat "$name.out")"
  kill -0 "$px_pid" 2>/dev/null || fail "$name: the proxy died"
}

# 1. Unix socket and TCP, both request paths.
for addr in unix tcp; do
  for mode in async=true async=false; do
    if [ $addr = unix ]; then
      back_addr="$tmpdir/back.sock" target="socket=$tmpdir/back.sock"
      set -- socket="$back_addr"
    else
      port=$(free_port)
      back_addr="tcp:$port" target="hostname=127.0.0.1 port=$port"
      set -- hostname=127.0.0.1 port="$port"
    fi
    backend_start disk.img
    start_nbdkit px nbd "$@" shared=true "$mode" 2> px.err
    px_pid=$pid px_uri=$uri
    run_outage "$addr $mode"
    grep -q "the connection to the NBD server at $target is lost" px.err ||
      { cat px.err; fail "$addr $mode: no message naming the backend"; }
    stop_nbdkit "$px_pid" || fail "$addr $mode: the proxy did not stop"
    backend_kill
  done
done

# 2. The backend comes back with another size.
back_addr="$tmpdir/back.sock"
backend_start disk.img
start_nbdkit px nbd socket="$back_addr" shared=true 2> px.err
px_pid=$pid px_uri=$uri
t "$PYTHON" - "$px_uri" "$back_addr" <<'PY' > size.out 2>&1 || { cat size.out px.err; fail "size: the client"; }
import errno, os, signal, subprocess, sys, time
import nbd
want = open("disk.img", "rb").read()
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.get_size() == len(want)
assert h.pread(4096, 0) == want[:4096]
proc = None
def gone(pid):
    try:
        stat = open("/proc/%d/stat" % pid).read()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
def backend(file):
    global proc
    pid = int(open("back.pid").read())
    os.kill(pid, signal.SIGKILL)
    if proc:
        proc.wait()
    while not gone(pid):
        time.sleep(0.05)
    os.unlink("back.pid")
    os.unlink(sys.argv[2])
    proc = subprocess.Popen([os.environ["NBDKIT"], "-U", sys.argv[2], "-P", "back.pid",
                      "-f", "file", file])
    for _ in range(200):
        if os.path.exists("back.pid") and os.path.getsize("back.pid"):
            return
        time.sleep(0.05)
    sys.exit("the backend did not start")
backend("small.img")
for i in range(3):
    try:
        got = h.pread(4096, 0)
        sys.exit("a backend of another size was served (%s bytes)"
                 % ("old" if got == want[:4096] else "other"))
    except nbd.Error as e:
        assert e.errnum == errno.EIO, e
# Past the new end, within the old one: not served either.
try:
    h.pread(4096, (3 << 20))
    sys.exit("a read past the new end succeeded")
except nbd.Error as e:
    assert e.errnum == errno.EIO, e
backend("disk.img")
assert h.pread(4096, 0) == want[:4096], "wrong bytes after the right size"
assert h.pread(4096, 3 << 20) == want[3 << 20:(3 << 20) + 4096]
print("another size refused, the right one served again")
PY
back_pid=$(cat back.pid)
register_pid "$back_pid"
note "size: $(cat size.out)"
grep -q "the NBD server at socket=$back_addr came back with a size of $((2 << 20)) bytes instead of $((4 << 20))" px.err ||
  { cat px.err; fail "size: no message naming the backend and both sizes"; }
stop_nbdkit "$px_pid" || fail "size: the proxy did not stop"

# 3. nbdcopy -C 4 while the backend restarts.
start_nbdkit px nbd socket="$back_addr" shared=true 2> px.err
px_pid=$pid px_uri=$uri
t nbdcopy -C 4 "$px_uri" copy.img
fds0=$(ls /proc/"$px_pid"/fd | wc -l) threads0=$(ls /proc/"$px_pid"/task | wc -l)
(
  for _ in 1 2 3; do
    sleep 0.4
    kill -9 "$(cat back.pid)"
    sleep 0.3
    rm -f back.pid "$back_addr"
    "$NBDKIT" -U "$back_addr" -P "$tmpdir/back.pid" -f file "$tmpdir/disk.img" &
    echo $! >> restarts.pids
    wait_for_file back.pid 100
  done
  echo done > restarts.done
) &
restarter=$!
copies=0 failed=0
while [ ! -s restarts.done ]; do
  rc=0
  timeout 30 nbdcopy -C 4 --request-size=65536 "$px_uri" copy.img > copy.err 2>&1 || rc=$?
  [ $rc -ne 124 ] || fail "nbdcopy hung while the backend restarted"
  copies=$((copies + 1))
  [ $rc -eq 0 ] || failed=$((failed + 1))
  kill -0 "$px_pid" 2>/dev/null || fail "the proxy died while the backend restarted"
done
wait "$restarter"
t nbdcopy -C 4 "$px_uri" copy.img || { cat px.err; fail "nbdcopy after the restarts"; }
cmp copy.img disk.img || fail "nbdcopy after the restarts: data differs"
# Each connection lost was closed, its reader thread ended.
sleep 0.5
fds=$(ls /proc/"$px_pid"/fd | wc -l) threads=$(ls /proc/"$px_pid"/task | wc -l)
note "the proxy: $fds0 -> $fds descriptors, $threads0 -> $threads threads"
[ "$fds" -eq "$fds0" ] || { ls -l /proc/"$px_pid"/fd; fail "descriptors leaked: $fds0 before the restarts, $fds after"; }
[ "$threads" -le "$threads0" ] || fail "threads leaked: $threads0 before the restarts, $threads after"
note "nbdcopy -C 4: $copies copies during 3 restarts, $failed failed; right bytes after"
stop_nbdkit "$px_pid" || fail "nbdcopy: the proxy did not stop"
echo "$testname: OK"
