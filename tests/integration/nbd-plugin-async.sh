#!/usr/bin/env bash
# nbd plugin, asynchronous completion (plugins/nbd, core/async.c): the
# proxy's data requests complete from libnbd's callbacks, so requests
# in flight need no server thread each.
#   - nbdcopy -C 4 of random data into the proxy and back out: the
#     same bytes, and the same in the backend;
#   - 64 reads in flight on one connection: the proxy runs at most 10
#     threads (one per request in flight before);
#   - --dump-plugin lists the async callbacks (has_async_pread=1 ...);
#   - with async=false the same traffic still works (the comparison
#     path of bench/async.sh);
#   - an error from the backend (the async test plugin failing one
#     read part-way, refusing a write) reaches the client through the
#     proxy, among good requests in flight;
#   - the backend killed with requests in flight: they fail with EIO
#     (not EINVAL, nor a hang), and the proxy stops cleanly.
. "$(dirname "$0")/functions.sh"
requires_ours
requires_python_nbd
requires nbdcopy
asyncplug="$BUILDDIR/tests/plugins/nbdkit-asyncplug-plugin.so"
[ -e "$asyncplug" ] || skip "async test plugin not built"
cd "$tmpdir"

dump=$("$NBDKIT" nbd --dump-plugin)
for f in pread pwrite flush trim zero extents; do
  grep -qx "has_async_$f=1" <<< "$dump" || fail "--dump-plugin lacks has_async_$f"
done
head -c 32M /dev/urandom > in.img
start_nbdkit mem memory 32M
mem_uri=$uri
mem_sock=$sock

for a in true false; do
  start_nbdkit px-$a nbd socket="$mem_sock" async=$a
  px_pid=$pid
  px_uri=$uri
  t nbdcopy -C 4 --requests=64 in.img "$px_uri"
  t nbdcopy -C 4 --requests=64 "$px_uri" out-$a.img
  cmp in.img out-$a.img || fail "async=$a: data through the proxy differs"
  t nbdcopy "$mem_uri" back-$a.img
  cmp in.img back-$a.img || fail "async=$a: data in the backend differs"

  t "$PYTHON" - "$px_uri" "$px_pid" "$a" <<'PY'
import os, sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
pid, mode = int(sys.argv[2]), sys.argv[3]
want = open("in.img", "rb").read(64 * 65536)
bufs = [nbd.Buffer(65536) for _ in range(64)]
most = 0
for rnd in range(10):
    for i, b in enumerate(bufs):
        h.aio_pread(b, i * 65536)
    while h.aio_in_flight() > 0:
        h.poll(-1)
        most = max(most, len(os.listdir("/proc/%d/task" % pid)))
    for i, b in enumerate(bufs):
        assert b.to_bytearray() == want[i * 65536:(i + 1) * 65536], i
print("async=%s: 64 reads in flight, proxy threads at most %d" % (mode, most))
if mode == "true":
    assert most <= 10, most
PY
  stop_nbdkit "$px_pid"
done

# Errors from the backend, through the proxy.
start_nbdkit back "$asyncplug" size=1M delay=5 fail-read-at=10000 \
  fail-write-at=200000
start_nbdkit px2 nbd socket="$sock"
t "$PYTHON" - "$uri" <<'PY'
import sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
res = {}
def cb(name):
    def done(err):
        res[name] = getattr(err, "value", err)
        return 1
    return done
bufs = {n: nbd.Buffer(4096) for n in ("ok1", "bad", "ok2")}
h.aio_pread(bufs["ok1"], 0, completion=cb("ok1"))
h.aio_pread(bufs["bad"], 8192, completion=cb("bad"))
h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b"x" * 4096)), 196608,
             completion=cb("wbad"))
h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b"y" * 4096)), 4096,
             completion=cb("wok"))
h.aio_pread(bufs["ok2"], 16384, completion=cb("ok2"))
while h.aio_in_flight() > 0:
    h.poll(-1)
print(res)
assert res == {"ok1": 0, "bad": 5, "wbad": 28, "wok": 0, "ok2": 0}, res
assert h.pread(4096, 4096) == b"y" * 4096
PY

# The backend dies with requests in flight: they fail with EIO (not
# hang), later ones too, and the proxy stays up and stops cleanly.
for a in true false; do
  start_nbdkit back-$a "$asyncplug" size=1M delay=3000 threads=1
  back_pid=$pid
  start_nbdkit lost-$a nbd socket="$sock" async=$a
  lost_pid=$pid
  t "$PYTHON" - "$uri" "$back_pid" <<'PY'
import os, signal, sys, time
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
res = []
bufs = [nbd.Buffer(4096) for _ in range(16)]
for i, b in enumerate(bufs):
    h.aio_pread(b, i * 4096, completion=lambda err: (
        res.append(getattr(err, "value", err)), 1)[1])
time.sleep(0.2)
os.kill(int(sys.argv[2]), signal.SIGKILL)
t0 = time.monotonic()
while h.aio_in_flight() > 0:
    h.poll(-1)
assert time.monotonic() - t0 < 5
assert set(res) <= {0, 5} and 5 in res, res
try:
    h.pread(4096, 0)
    raise AssertionError("a read after the backend died succeeded")
except nbd.Error as e:
    assert e.errnum == 5, e
PY
  kill -0 "$lost_pid" || fail "async=$a: the proxy died with its backend"
  kill "$lost_pid"
  st=0
  wait "$lost_pid" || st=$?
  [ "$st" = 0 ] || fail "async=$a: the proxy exited with status $st"
done
echo "nbd-plugin-async: OK"
