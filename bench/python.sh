#!/usr/bin/env bash
# Python plugins: our python host against Debian's nbdkit python plugin
# (nbdkit 1.32, package nbdkit-plugin-python), side by side.
#
#   bench/python.sh [RUNS] [SECONDS]      (default 5 runs of 10 s each)
#
# Both servers run the same RAM-disk script (API_VERSION 2, which both
# understand; parallel thread model) on a Unix socket, pinned with
# taskset to one CPU (CPU_SERVER, default 0); fio (its nbd engine) runs
# on CPU_CLIENT, by default the same CPU, so that the figures measure
# the CPU each server spends per request rather than the latency of
# waking another CPU (CPU_CLIENT=1 measures that instead).  Random
# 4 KiB reads at queue depth 1 and 16; the runs alternate between the
# servers and the medians of IOPS are printed with the ratio ours/theirs.
# Also: our server with the API 3 plugins/python/ramdisk.py.
set -eu
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
here="$(cd "$(dirname "$0")/.." && pwd)"
ours="${NBDKIT:-$here/build/nbdkit}"
theirs=/usr/bin/nbdkit
runs="${1:-5}"
secs="${2:-10}"
size=1G
cpu_server="${CPU_SERVER:-0}"
cpu_client="${CPU_CLIENT:-$cpu_server}"

[ -x "$ours" ] || { echo "build first: $ours" >&2; exit 1; }
[ -x "$theirs" ] || { echo "$theirs missing (apt-get install nbdkit)" >&2; exit 1; }
"$theirs" python --dump-plugin >/dev/null 2>&1 ||
  { echo "Debian's python plugin missing (apt-get install nbdkit-plugin-python)" >&2; exit 1; }
command -v fio >/dev/null || { echo "fio missing" >&2; exit 1; }

tmp="$(mktemp -d /tmp/bench-python.XXXXXX)"
pids=""
cleanup () { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

cat > "$tmp/ramdisk2.py" <<'PY'
# A RAM disk in nbdkit's Python API 2, which both servers run.
import nbdkit
API_VERSION = 2
disk = None
def thread_model():
    return nbdkit.THREAD_MODEL_PARALLEL
def config(key, value):
    global disk
    disk = bytearray(nbdkit.parse_size(value))
def open(readonly):
    return 1
def get_size(h):
    return len(disk)
def pread(h, buf, offset, flags):
    buf[:] = memoryview(disk)[offset:offset + len(buf)]
def pwrite(h, buf, offset, flags):
    disk[offset:offset + len(buf)] = buf
PY

# start NAME BINARY ARGS...: a server on $tmp/NAME.sock
start () {
  local name="$1" bin="$2"; shift 2
  rm -f "$tmp/$name.sock" "$tmp/$name.pid"
  taskset -c "$cpu_server" "$bin" -f -U "$tmp/$name.sock" -P "$tmp/$name.pid" "$@" &
  pids="$pids $!"
  for _ in $(seq 100); do [ -s "$tmp/$name.pid" ] && return 0; sleep 0.1; done
  echo "server $name did not start" >&2; exit 1
}

start theirs "$theirs" python "$tmp/ramdisk2.py" size=$size
start ours "$ours" python "$tmp/ramdisk2.py" size=$size
start ours3 "$ours" "$here/plugins/python/ramdisk.py" size=$size

# iops NAME DEPTH: one fio run, prints read IOPS
iops () {
  taskset -c "$cpu_client" fio --name=b --ioengine=nbd \
    --uri="nbd+unix:///?socket=$tmp/$1.sock" --rw=randread --bs=4k \
    --iodepth="$2" --size=$size --time_based --runtime="$secs" \
    --ramp_time=1 --output-format=json 2>"$tmp/fio.err" |
    /usr/bin/python3 -c '
import json, sys
out = sys.stdin.read()   # fio prints "connected to NBD server" first
print(round(json.loads(out[out.index("{"):])["jobs"][0]["read"]["iops"]))'
}

median () { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "server on CPU $cpu_server, fio on CPU $cpu_client, $runs runs of $secs s"
printf '%-6s %12s %12s %8s %14s %8s\n' depth theirs ours ratio "ours(API 3)" ratio
for depth in 1 16; do
  t="" o="" o3=""
  for _ in $(seq "$runs"); do
    t="$t $(iops theirs "$depth")"
    o="$o $(iops ours "$depth")"
    o3="$o3 $(iops ours3 "$depth")"
  done
  mt=$(echo "$t" | median) mo=$(echo "$o" | median) mo3=$(echo "$o3" | median)
  printf '%-6s %12s %12s %8s %14s %8s\n' "$depth" "$mt" "$mo" \
    "$(awk -v a="$mo" -v b="$mt" 'BEGIN {printf "%.2fx", a/b}')" "$mo3" \
    "$(awk -v a="$mo3" -v b="$mt" 'BEGIN {printf "%.2fx", a/b}')"
  echo "  runs: theirs:$t  ours:$o  ours(API 3):$o3"
done
