#!/usr/bin/env bash
# curl plugin, asynchronous reads and writes (async=true, the default)
# against a real nginx: 64 reads in flight from one client return the
# bytes of the file with async=true and with async=false, and with
# async=true the server keeps them in flight with a handful of threads
# (/proc/PID/task) where async=false has a thread per read; nbdcopy
# -C 4 -R 16 copies the file byte for byte; a file removed (404) and a
# server that stops honouring Range fail the reads with a message
# naming the URL and the range, and the errno of the synchronous path;
# nginx killed with 64 reads on the wire fails them (no hang), the
# server stays up and serves a new client once nginx is back; a client
# that stops reading its replies does not hold up another's reads.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
requires_ours # async= and connections= are ours
NGINX_SLOW_RATE=512k
. "$here/../services/nginx.sh"
requires nbdcopy
requires nbdsh
requires_python_nbd
cd "$tmpdir"

mkdir www
head -c $(( (16 << 20) + 4321 )) /dev/urandom > www/disk.img
cp www/disk.img want.img
nginx_start www ng || exit $?
url="$NGINX_URL/data/disk.img"

# aread.py URI PID DEPTH N SEED [LEN]: N reads (of LEN bytes, or 4 KiB
# to 256 KiB) at random offsets, DEPTH in flight, each checked against want.img as it
# completes; prints "ok", "errors E" (the errno names of failed reads,
# sorted, unique) and "threads T" (the most threads the server PID had).
cat > aread.py <<'PY'
import errno, os, random, sys
import nbd
uri, pid, depth, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
want = open("want.img", "rb").read()
h = nbd.NBD()
h.connect_uri(uri)
assert h.get_size() == len(want)
sizes = [int(sys.argv[6])] if len(sys.argv) > 6 else [4096, 4096, 65536, 262144]
rng = random.Random(seed)
started = done = ok = most = 0
errs = set()

def tasks():
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except OSError:
        return 0

def check(buf, off, ln):
    def cb(err):
        global done, ok
        done += 1
        if err.value:
            errs.add(errno.errorcode.get(err.value, str(err.value)))
            err.value = 0
        else:
            assert buf.to_bytearray() == want[off:off + ln], \
                "read of %d at %d differs" % (ln, off)
            ok += 1
        return 1
    return cb

while done < n:
    while started < n and h.aio_in_flight() < depth:
        ln = rng.choice(sizes)
        off = rng.randrange(0, len(want) - ln + 1)
        buf = nbd.Buffer(ln)
        h.aio_pread(buf, off, completion=check(buf, off, ln))
        started += 1
    most = max(most, tasks())
    h.poll(-1)
print("ok %d" % ok)
print("errors %s" % (",".join(sorted(errs)) or "none"))
print("threads %d" % most)
PY

field () { sed -n "s/^$1 //p" "$2"; }

# 1. 64 reads in flight, connections=4, -t 64 (room for a thread per
# read): async=true uses the driver (the server says so with -v).
for a in true false; do
  start_nbdkit "a-$a" -v -t 64 -r curl "$url" connections=4 async=$a \
    2> "a-$a.log"
  t "$PYTHON" aread.py "$uri" "$pid" 64 3000 1 > "a-$a.out" ||
    { cat "a-$a.out"; fail "async=$a: reads at depth 64 failed"; }
  cat "a-$a.out"
  assert_eq "async=$a: reads right" "$(field ok "a-$a.out")" 3000
  assert_eq "async=$a: errors" "$(field errors "a-$a.out")" none
  stop_nbdkit "$pid"
done
grep -Eq "asynchronous requests: 0x[0-9a-f]*[13579bdf]\b" a-true.log ||
  fail "async=true: reads are not asynchronous"
ta=$(field threads a-true.out)
ts=$(field threads a-false.out)
note "threads at depth 64: async=true $ta, async=false $ts"
[ "$ta" -le 8 ] || fail "async=true: $ta threads at depth 64 (want <= 8)"
# (On one CPU the core serves each request on the thread that read it,
# so async=false has no more threads to show.)
[ "$(nproc)" -eq 1 ] || [ "$ts" -gt "$ta" ] ||
  fail "async=false: $ts threads, not more than async=true's $ta"

# 1b. transfer-threads=: that many threads named curl-transfer run the
# transfers, each handle always on the same one, so every one of them
# works; by default one per CPU, at most connections; more than
# connections is refused, naming the key.
xfer_threads () {
  local n=0 busy=0 task
  for task in /proc/"$1"/task/*; do
    [ "$(cat "$task/comm")" = curl-transfer ] || continue
    n=$((n + 1))
    # utime + stime (fields 14 and 15), after the ")" of the name.
    if [ "$(sed 's/.*) //' "$task/stat" | awk '{print $12 + $13}')" -gt 0 ]; then
      busy=$((busy + 1))
    fi
  done
  echo "$n $busy"
}
start_nbdkit x3 -r curl "$url" connections=6 transfer-threads=3
t "$PYTHON" aread.py "$uri" "$pid" 64 3000 5 > x3.out ||
  { cat x3.out; fail "transfer-threads=3: reads failed"; }
assert_eq "transfer-threads=3: reads right" "$(field ok x3.out)" 3000
assert_eq "transfer-threads=3: threads, busy" "$(xfer_threads "$pid")" "3 3"
stop_nbdkit "$pid"
start_nbdkit xd -r curl "$url" connections=4
cpus=$(nproc)  # the CPUs the server may run on, as it counts them
want=$(( cpus < 4 ? cpus : 4 ))
assert_eq "default transfer threads" "$(xfer_threads "$pid" | cut -d' ' -f1)" "$want"
stop_nbdkit "$pid"
if "$NBDKIT" -r curl "$url" connections=2 transfer-threads=3 --run true \
     2> xbad.log; then
  fail "transfer-threads=3 with connections=2 was accepted"
fi
grep -q "transfer-threads=3: must be" xbad.log ||
  fail "no message naming transfer-threads: $(cat xbad.log)"

# 2. nbdcopy with 64 requests in flight, 4 HTTP connections at most.
: > "$NGINX_ACCESS_LOG"
start_nbdkit copy -r curl "$url" connections=4
t nbdcopy -C 4 -R 16 --request-size=65536 "$uri" copy.img
cmp copy.img want.img || fail "nbdcopy -C 4 -R 16: data differs"
n=$(grep '^GET ' "$NGINX_ACCESS_LOG" | sed 's/.*conn=//' | sort -u | wc -l)
note "nbdcopy -C 4 -R 16: $n HTTP connections for the GETs"
[ "$n" -ge 1 ] && [ "$n" -le 4 ] || fail "connections=4 used $n connections"
stop_nbdkit "$pid"

# 3. Errors after open, through the asynchronous path.  The file goes
# (404: ENOENT, which NBD carries as EIO), comes back (the same
# connection reads again), then nginx stops honouring Range (200 and
# the whole body: EIO, no wrong data).
start_nbdkit err -v -r curl "$url" connections=4 2> err.log
t nbdsh -u "$uri" -c '
import os, time
want = open("want.img", "rb").read()

def burst(expect):
    bufs = [(nbd.Buffer(8192), 8192 * (i + 1)) for i in range(16)]
    cmds = [(h.aio_pread(b, off), b, off) for b, off in bufs]
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for c, b, off in cmds:
        try:
            h.aio_command_completed(c)
            assert expect is None, "read at %d succeeded" % off
            assert b.to_bytearray() == want[off:off + 8192], off
        except nbd.Error as e:
            assert expect is not None, "read at %d: %s" % (off, e)
            # libnbd gives the errno by name
            assert e.errno == expect, (off, e.errno, e.string)

burst(None)
os.rename("www/disk.img", "www/gone.img")
burst("EIO")
os.rename("www/gone.img", "www/disk.img")
burst(None)
# The shell restarts nginx without Range support.
open("ready", "w").write("1")
for _ in range(200):
    if os.path.exists("norange"):
        break
    time.sleep(0.1)
burst("EIO")
' &
client=$!
register_pid "$client"
wait_for_file ready 200 || fail "the client did not get to the restart"
nginx_stop
sed -i "s|location /data/ { alias \([^;]*\); }|location /data/ { alias \1; max_ranges 0; }|" \
  "$NGINX_DIR/locations.conf"
grep -q "max_ranges 0; }" "$NGINX_DIR/locations.conf" || fail "sed failed"
nginx_start_again
touch norange
wait "$client" || fail "errors through the asynchronous path"
grep -Eq "asynchronous requests: 0x[0-9a-f]*[13579bdf]\b" err.log ||
  fail "reads are not asynchronous"
grep -Eq "$url: GET bytes 8192-16383: HTTP status 404 Not Found" err.log ||
  fail "no message naming the URL, the range and the 404"
grep -Eq "$url: GET bytes [0-9]+-[0-9]+: the server does not support byte ranges" err.log ||
  fail "no message naming the URL, the range and the missing Range support"
kill -0 "$pid" 2>/dev/null || fail "the server died"
stop_nbdkit "$pid"

# Back to a normal nginx for the rest.
nginx_stop
sed -i "s|; max_ranges 0; }|; }|" "$NGINX_DIR/locations.conf"
nginx_start_again

# 4. nginx killed with 64 reads of 2 MiB from /slow/ in flight (8 on
# the wire, each taking seconds at 512 KiB/s): every read
# completes (most with an error, none with wrong data, none hangs),
# the server stays up, and serves a new client once nginx is back.
slow="$NGINX_URL/slow/disk.img"
start_nbdkit kill -r curl "$slow" connections=8 timeout=20 2> kill.log
t "$PYTHON" aread.py "$uri" "$pid" 64 64 2 $((2 << 20)) > kill.out 2>&1 &
client=$!
register_pid "$client"
sleep 1
nginx_stop
rc=0
wait "$client" || rc=$?
cat kill.out
[ "$rc" -eq 0 ] || fail "the client failed or hung (exit $rc)"
[ "$(field errors kill.out)" != none ] || fail "no read failed although nginx was killed"
[ "$(field ok kill.out)" -lt 64 ] || fail "every read succeeded"
kill -0 "$pid" 2>/dev/null || fail "the server died with nginx"
grep -Eq "$slow: GET bytes [0-9]+-[0-9]+: " kill.log ||
  fail "no message naming the URL and the range that failed"
nginx_start_again
t "$PYTHON" aread.py "$uri" "$pid" 64 300 3 > again.out ||
  { cat again.out; fail "after the restart: reads failed"; }
cat again.out
assert_eq "after the restart: reads right" "$(field ok again.out)" 300
stop_nbdkit "$pid"

# 5. A client that goes with 16 reads of /slow/ in flight: the server
# waits for them (their replies dropped), serves the next client, and
# a server stopped with reads in flight exits once they are done.
start_nbdkit disc -r curl "$slow" connections=4 timeout=20 2> disc.log
disc () {
  t "$PYTHON" -c '
import sys, time
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
for i in range(16):
    h.aio_pread(nbd.Buffer(1 << 20), i << 20)
end = time.monotonic() + 0.5
while time.monotonic() < end:
    h.poll(100)
assert h.aio_in_flight() > 0, "every read done already"
' "$uri"
}
disc || fail "the disconnecting client failed"
# (the 16 reads go first: seconds at 512 KiB/s on 4 connections, many
# more on a machine busy with other work)
timeout 90 "$PYTHON" aread.py "$uri" "$pid" 16 50 4 > disc.out ||
  { cat disc.out; fail "the next client: reads failed"; }
assert_eq "the next client: reads right" "$(field ok disc.out)" 50
disc &
client=$!
sleep 1
stop_nbdkit "$pid" || fail "the server did not exit with reads in flight"
wait "$client" || true

# 6. Writes go asynchronously too: a PUT that nginx refuses (405,
# EROFS, which NBD carries as EPERM) fails the write, names the range.
start_nbdkit rw -v curl "$url" 2> rw.log
t nbdsh -u "$uri" -c '
try:
    h.pwrite(b"x" * 4096, 8192)
    assert False, "the write succeeded"
except nbd.Error as e:
    assert e.errno == "EPERM", e.errno
assert h.pread(4096, 0) == open("want.img", "rb").read()[:4096]
'
grep -Eq "asynchronous requests: 0x[0-9a-f]*[2367abef]\b" rw.log ||
  fail "writes are not asynchronous"
grep -q "$url: PUT bytes 8192-12287.*HTTP status 405" rw.log ||
  fail "no message naming the URL, the range and the status of the PUT"
cmp www/disk.img want.img || fail "the file changed"
stop_nbdkit "$pid"
# 7. A client that stops reading its replies holds up no other client:
# the driver completes every connection's reads, so it must not wait
# on one socket.  A sends 32 reads of 1 MiB and reads nothing (its
# socket fills); meanwhile B's 200 reads through the same server, and
# so the same driver, all come back right within 10 s; then A reads
# its 32 replies whole and right.
start_nbdkit stall -r curl "$url" connections=4
t "$PYTHON" - "$here" "$sock" "$uri" <<'PY' || fail "a stalled client held up another"
import random, sys, time
sys.path.insert(0, sys.argv[1])
import nbd
import nbdtest_raw as rawnbd
MiB = 1 << 20
want = open("want.img", "rb").read()
a = rawnbd.connect(sys.argv[2])
sent = [(a.send(rawnbd.CMD_READ, (i % 16) * MiB, MiB), (i % 16) * MiB)
        for i in range(32)]
time.sleep(1)
b = nbd.NBD()
b.connect_uri(sys.argv[3])
rng = random.Random(7)
t0 = time.monotonic()
for _ in range(200):
    off = rng.randrange(0, len(want) - 65536)
    assert b.pread(65536, off) == want[off:off + 65536], off
took = time.monotonic() - t0
print("B: 200 reads in %.2f s while A is stalled" % took)
assert took < 10, "B's reads took %.1f s" % took
b.shutdown()
for _ in sent:
    r = a.reply()
    assert r.error == 0, r
    off = dict(sent)[r.cookie]
    assert r.data == want[off:off + MiB], "A: read at %d differs" % off
print("A: 32 replies right")
PY
kill -0 "$pid" 2>/dev/null || fail "the server died"
stop_nbdkit "$pid"
echo "curl-plugin-async: OK"
