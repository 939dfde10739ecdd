#!/usr/bin/env bash
# Python plugins: our python host against Debian's nbdkit python plugin
# (nbdkit 1.32, package nbdkit-plugin-python), side by side.
#
#   bench/python.sh [-q] [-r ROUNDS] [-s SIZE_MIB] [-t SECONDS] [-b BUILDDIR]
#
#   -r ROUNDS    rounds (default 5); each round measures every server
#   -s SIZE_MIB  size of the disk and of the copies (default 1024)
#   -t SECONDS   length of each fio and nbd-conncycle run (default 5)
#   -b BUILDDIR  our build (default build)
#   -q           quick: -r 1 -s 128 -t 2, to try the script
#
# Every server runs the same RAM-disk script (API_VERSION 2, which both
# understand) on a Unix socket, in two variants that differ only in
# thread_model(): parallel and serialize_requests.  Servers:
#   theirs-par, theirs-ser   Debian's nbdkit python
#   ours-par,   ours-ser     our build's python host
# Server and clients are pinned with taskset to one CPU (CPU, default
# 0), so that the figures measure the CPU each server spends rather
# than the latency of waking another CPU.  On a machine shared with
# other work, NICE=-10 (as root) runs servers and clients at that
# priority, so that niced background jobs on the CPU take little from
# them.  Workloads, per server start:
#   seqread    nbdcopy --no-extents URI null: after filling the disk
#              from a tmpfs file (MiB/s)
#   seqwrite   nbdcopy SRCFILE URI, SRCFILE on tmpfs (MiB/s)
#   rand4k-qd1, rand4k-qd16
#              fio (nbd engine) random 4 KiB reads (IOPS)
#   conn/s     nbd-conncycle: connect, handshake, 4 KiB read,
#              disconnect, in a loop (cycles/s)
# Rounds alternate the order of the servers.  Two tables of medians:
# work per second of wall clock (what the targets are about), and work
# per CPU second that server and client used (user + system, from
# /proc and time(1)), which other load on the machine disturbs much
# less; each with ours/theirs for each thread model and
# parallel/serialize_requests for each server.  Then every run's
# values, to judge the noise.
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=5
size_mib=1024
secs=5
builddir=build
while getopts "qr:s:t:b:" o; do
  case $o in
    q) rounds=1 size_mib=128 secs=2 ;;
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    t) secs=$OPTARG ;;
    b) builddir=$OPTARG ;;
    *) sed -n '2,37p' "$0"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ours=$(realpath "${NBDKIT:-$builddir/nbdkit}")
cycle=$(realpath "$builddir/bench/nbd-conncycle")
theirs=/usr/bin/nbdkit
cpu=${CPU:-0}
pin="nice -n ${NICE:-0} taskset -c $cpu"
size=$((size_mib << 20))

[ -x "$ours" ] || { echo "bench: build first: $ours" >&2; exit 2; }
[ -x "$cycle" ] || { echo "bench: $cycle missing (libnbd-dev)" >&2; exit 2; }
[ -x "$theirs" ] || { echo "bench: $theirs missing (apt-get install nbdkit)" >&2; exit 2; }
"$theirs" python --dump-plugin >/dev/null 2>&1 ||
  { echo "bench: Debian's python plugin missing (apt-get install nbdkit-plugin-python)" >&2; exit 2; }
for c in fio nbdcopy taskset python3; do
  command -v $c >/dev/null || { echo "bench: $c is needed" >&2; exit 2; }
done

tmp=$(mktemp -d /dev/shm/bench-python.XXXXXX)
pid=""
stop () {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
trap 'stop; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT

# The RAM disk, in nbdkit's Python API 2; ser.py differs only in its
# thread model.
cat > "$tmp/par.py" <<'PY'
# A RAM disk in nbdkit's Python API 2, which both servers run.
import nbdkit
API_VERSION = 2
MODEL = nbdkit.THREAD_MODEL_PARALLEL
disk = None
def thread_model():
    return MODEL
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
sed 's/^MODEL = .*/MODEL = nbdkit.THREAD_MODEL_SERIALIZE_REQUESTS/' \
  "$tmp/par.py" > "$tmp/ser.py"

echo "bench: preparing ${size_mib} MiB of data in $tmp" >&2
head -c "$size" /dev/urandom > "$tmp/src.img"

servers="theirs-par theirs-ser ours-par ours-ser"

start () {
  local s=$1 sock=$tmp/sock bin
  rm -f "$sock"
  case $s in
    theirs-*) bin=$theirs ;;
    ours-*) bin=$ours ;;
  esac
  $pin "$bin" -f -U "$sock" python "$tmp/${s#*-}.py" size="$size" &
  pid=$!
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
  [ -S "$sock" ] || { echo "bench: $s did not start" >&2; exit 1; }
  uri="nbd+unix:///?socket=$sock"
}

now () { date +%s.%N; }

# CPU seconds (user + system) the server has used so far.
srv_cpu () {
  awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / t }' \
    "/proc/$pid/stat"
}

# run CMD...: run a client; sets $wall (seconds) and $cpu (CPU seconds
# the client and the server used meanwhile).
run () {
  local t0 t1 s0 s1
  s0=$(srv_cpu); t0=$(now)
  /usr/bin/time -f '%U %S' -o "$tmp/time" "$@" > "$tmp/out" 2>/dev/null
  t1=$(now); s1=$(srv_cpu)
  wall=$(echo "$t0 $t1" | awk '{ print $2 - $1 }')
  cpu=$(echo "$s0 $s1 $(tail -1 "$tmp/time")" |
        awk '{ print $2 - $1 + $3 + $4 }')
}

# record SERVER WORKLOAD WORK: WORK units done in $wall seconds using
# $cpu CPU seconds.
record () {
  echo "$1 $2 $(echo "$3 $wall $cpu" |
    awk '{ printf "%.1f %.1f", $1 / $2, ($3 > 0 ? $1 / $3 : 0) }')" \
    >> "$tmp/results"
}

# One measurement of every workload against server $1; appends
# "server workload per-second per-CPU-second" lines to $tmp/results.
measure () {
  local s=$1 ios
  start "$s"
  $pin nbdcopy "$tmp/src.img" "$uri"          # fill (and fault in) the disk
  run $pin nbdcopy --no-extents "$uri" null:
  record "$s" seqread "$size_mib"
  run $pin nbdcopy "$tmp/src.img" "$uri"
  record "$s" seqwrite "$size_mib"
  for qd in 1 16; do
    run $pin fio --name=r --ioengine=nbd --uri="$uri" --rw=randread --bs=4k \
      --iodepth="$qd" --runtime="$secs" --time_based --size="$size" \
      --output-format=json
    ios=$(python3 -c 'import json, sys
t = open(sys.argv[1]).read()   # after "connected to NBD server"
print(json.loads(t[t.index("{"):])["jobs"][0]["read"]["total_ios"])' "$tmp/out")
    record "$s" "rand4k-qd$qd" "$ios"
  done
  run $pin "$cycle" "$uri" "$secs"
  record "$s" conn/s "$(awk -v s="$secs" '{ print $1 * s }' "$tmp/out")"
  stop
}

echo "bench: server and clients on CPU $cpu (nice ${NICE:-0}); $rounds rounds," \
  "${size_mib} MiB, ${secs} s runs" >&2
: > "$tmp/results"
order=$servers
for r in $(seq "$rounds"); do
  for s in $order; do
    echo "bench: round $r/$rounds: $s" >&2
    measure "$s"
  done
  order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
done

python3 - "$tmp/results" "$rounds" "$size_mib" "$secs" $servers <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
rounds, size_mib, secs = sys.argv[2:5]
servers = sys.argv[5:]
workloads, vals = [], {}
for s, w, v, c in rows:
    if w not in workloads:
        workloads.append(w)
    vals.setdefault((s, w, 0), []).append(float(v))
    vals.setdefault((s, w, 1), []).append(float(c))
med = {k: statistics.median(v) for k, v in vals.items()}
units = {"seqread": "MiB", "seqwrite": "MiB", "conn/s": "cycles"}
def ratio(w, k, a, b):
    x, y = med.get((a, w, k)), med.get((b, w, k))
    return "%.2fx" % (x / y) if x and y else "n/a"
print("python RAM disk, %s MiB, %s rounds, %s s runs; medians, higher is better"
      % (size_mib, rounds, secs))
for k, title in ((0, "per second"), (1, "per CPU second (server + client)")):
    print()
    print("%-34s" % title + " " * (11 * len(servers) - 16)
          + "%11s%11s%11s%11s" % ("ours/thr", "ours/thr", "ours", "theirs"))
    print("%-11s %-6s" % ("workload", "unit")
          + "".join("%11s" % s for s in servers)
          + "%11s%11s%11s%11s" % ("par", "ser", "par/ser", "par/ser"))
    for w in workloads:
        print("%-11s %-6s" % (w, units.get(w, "IOs"))
              + "".join("%11.0f" % med.get((s, w, k), float("nan"))
                        for s in servers)
              + "%11s%11s%11s%11s" % (ratio(w, k, "ours-par", "theirs-par"),
                                      ratio(w, k, "ours-ser", "theirs-ser"),
                                      ratio(w, k, "ours-par", "ours-ser"),
                                      ratio(w, k, "theirs-par", "theirs-ser")))
print()
print("runs, per second / per CPU second (in round order):")
for w in workloads:
    for s in servers:
        out = []
        for k in (0, 1):
            v = vals.get((s, w, k), [])
            m = med.get((s, w, k))
            spread = (max(v) - min(v)) / m * 100 if v and m else 0
            out.append("%s (spread %.0f%%)" % (" ".join("%.0f" % x for x in v),
                                               spread))
        print("  %-11s %-11s %s / %s" % (w, s, out[0], out[1]))
EOF
