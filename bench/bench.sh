#!/usr/bin/env bash
# Side-by-side benchmark: this server against Debian's nbdkit and
# qemu-nbd, over Unix sockets, server and client pinned to one CPU,
# servers alternating round by round.  Prints medians and ratios.
#
#   bench/bench.sh [-r ROUNDS] [-s SIZE_MIB] [-t SECONDS] [-b BUILDDIR]
#
# Workloads (each server serves the same 1 GiB of random data):
#   seqread-1c / -4c  nbdcopy --no-extents to null:, 1 and 4 connections
#   seqwrite          nbdcopy of a 1 GiB file into the export
#   rand4k-qd1/16/64  fio (nbd engine) random 4 KiB reads, IOPS
#   conn/s            connect + handshake + 4 KiB read + disconnect
#   rss-after-write   server peak RSS after the write (MiB)
# Servers: memory (ours, nbdkit), file on tmpfs (ours, nbdkit), qemu-nbd
# on the same tmpfs file.
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=3
size_mib=1024
secs=4
builddir=build
while getopts "r:s:t:b:" o; do
  case $o in
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    t) secs=$OPTARG ;;
    b) builddir=$OPTARG ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ours=$(realpath "$builddir/nbdkit")
cycle=$(realpath "$builddir/bench/nbd-conncycle")
cpu=${CPU:-0}
pin="taskset -c $cpu"
for c in nbdkit qemu-nbd nbdcopy fio taskset; do
  command -v $c >/dev/null || { echo "bench: $c is needed" >&2; exit 2; }
done

tmp=$(mktemp -d /dev/shm/nbdbench.XXXXXX)
pid=""
stop () {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
trap 'stop; rm -rf "$tmp"' EXIT

echo "bench: preparing ${size_mib} MiB of data in $tmp" >&2
head -c $((size_mib << 20)) /dev/urandom > "$tmp/src.img"
cp "$tmp/src.img" "$tmp/disk.img"
size=$((size_mib << 20))

servers="ours-memory nbdkit-memory ours-file nbdkit-file qemu-nbd"

start () {
  local s=$1 sock=$tmp/sock
  rm -f "$sock"
  case $s in
    ours-memory)   $pin "$ours" -f -U "$sock" memory "$size" & ;;
    nbdkit-memory) $pin nbdkit -f -U "$sock" memory "$size" & ;;
    ours-file)     $pin "$ours" -f -U "$sock" file "$tmp/disk.img" & ;;
    nbdkit-file)   $pin nbdkit -f -U "$sock" file "$tmp/disk.img" & ;;
    qemu-nbd)      $pin qemu-nbd -f raw -t -e 64 -k "$sock" "$tmp/disk.img" \
                     2>/dev/null & ;;
  esac
  pid=$!
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
  uri="nbd+unix:///?socket=$sock"
  case $s in
    *-memory) $pin nbdcopy "$tmp/src.img" "$uri" ;;
  esac
}

now () { date +%s.%N; }
mibs () { echo "$size_mib $1 $2" | awk '{ printf "%.0f", $1 / ($3 - $2) }'; }

fio_iops () {
  $pin fio --name=r --ioengine=nbd --uri="$uri" --rw=randread --bs=4k \
    --iodepth="$1" --runtime="$secs" --time_based --size="$size" \
    --output-format=json 2>/dev/null \
    | python3 -c 'import json,sys; t=sys.stdin.read(); print(round(json.loads(t[t.index("{"):])["jobs"][0]["read"]["iops"]))'
}

# One measurement of every workload against server $1; appends
# "server workload value" lines to $tmp/results.
measure () {
  local s=$1 t0 t1 v
  start "$s"
  t0=$(now); $pin nbdcopy --no-extents "$uri" null:; t1=$(now)
  echo "$s seqread-1c $(mibs "$t0" "$t1")" >> "$tmp/results"
  t0=$(now); $pin nbdcopy --no-extents --connections=4 "$uri" null:; t1=$(now)
  echo "$s seqread-4c $(mibs "$t0" "$t1")" >> "$tmp/results"
  for qd in 1 16 64; do
    echo "$s rand4k-qd$qd $(fio_iops $qd)" >> "$tmp/results"
  done
  echo "$s conn/s $($pin "$cycle" "$uri" "$secs")" >> "$tmp/results"
  t0=$(now); $pin nbdcopy "$tmp/src.img" "$uri"; t1=$(now)
  echo "$s seqwrite $(mibs "$t0" "$t1")" >> "$tmp/results"
  v=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")
  echo "$s rss-after-write $v" >> "$tmp/results"
  stop
}

: > "$tmp/results"
for r in $(seq "$rounds"); do
  for s in $servers; do
    echo "bench: round $r/$rounds: $s" >&2
    measure "$s"
  done
done

python3 - "$tmp/results" $servers <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
servers = sys.argv[2:]
workloads = []
vals = {}
for s, w, v in rows:
    if w not in workloads:
        workloads.append(w)
    vals.setdefault((s, w), []).append(float(v))
med = {k: statistics.median(v) for k, v in vals.items()}
units = {"seqread-1c": "MiB/s", "seqread-4c": "MiB/s", "seqwrite": "MiB/s",
         "conn/s": "/s", "rss-after-write": "MiB"}
print("%-16s %-6s" % ("workload", "unit") + "".join("%15s" % s for s in servers)
      + "   ours/nbdkit (mem, file)  ours/qemu-nbd (file)")
for w in workloads:
    line = "%-16s %-6s" % (w, units.get(w, "IOPS"))
    line += "".join("%15.0f" % med.get((s, w), float("nan")) for s in servers)
    def ratio(a, b):
        x, y = med.get((a, w)), med.get((b, w))
        return "%5.2f" % (x / y) if x and y else "  n/a"
    line += "   %s, %s" % (ratio("ours-memory", "nbdkit-memory"),
                           ratio("ours-file", "nbdkit-file"))
    line += "               %s" % ratio("ours-file", "qemu-nbd")
    print(line)
print("(medians of %d rounds; rss: lower is better)"
      % max(len(v) for v in vals.values()))
EOF
