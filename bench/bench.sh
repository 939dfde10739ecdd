#!/usr/bin/env bash
# Side-by-side benchmark: this server against Debian's nbdkit and
# qemu-nbd, over Unix sockets, in three placements of server and
# client, servers alternating round by round.  Prints, per placement,
# medians and the ratios of this server to nbdkit and to qemu-nbd.
#
#   bench/bench.sh [-q] [-p PLACEMENTS] [-r ROUNDS] [-s SIZE_MIB]
#                  [-t SECONDS] [-S SERVERS] [-w WORKLOADS] [-b BUILDDIR]
#                  [-o RESULTS] [-B OTHER_BUILDDIR]
#
#   -q             quick check: 256 MiB, 1 round, 2 s timed runs
#   -p same,split,free
#                  placements: same (server and client on CPU 0),
#                  split (server on CPU 0, client on CPU 1), free
#                  (nothing pinned); default all three
#   -r ROUNDS      rounds (default 3); each round runs every placement
#                  and every server, so servers alternate
#   -s SIZE_MIB    export size and bytes copied (default 1024)
#   -t SECONDS     length of the fio and connection-cycle runs (default 4)
#   -S SERVERS     space-separated, from: ours-memory nbdkit-memory
#                  qemu-nbd ours-file nbdkit-file
#                  (default: ours-memory nbdkit-memory qemu-nbd)
#   -w WORKLOADS   a regular expression selecting workloads (default all)
#   -o RESULTS     keep the raw "placement server workload value" lines
#   -B DIR         another build of this server (e.g. of an older commit),
#                  measured as "base-memory" in the same run: before and
#                  after side by side
#
# Workloads (each server serves SIZE of random data):
#   read-1c / read-mc    nbdcopy --no-extents to null:, -C 1 -T 1 and
#                        nbdcopy's defaults (multi-conn), MiB/s
#   write-1c / write-mc  nbdcopy of a file on tmpfs into the export, MiB/s
#   qemu-img-from / -to  qemu-img convert from the export to null-co://
#                        and from a tmpfs file into the export, MiB/s
#   rand4k-qd1/16/64     fio (nbd engine) random 4 KiB reads, IOPS
#   conn/s               connect + handshake + 4 KiB read + disconnect
#   peak-rss             the server's peak RSS at the end (MiB, lower
#                        is better)
# ours-memory and nbdkit-memory use the memory plugin; qemu-nbd (and
# the -file servers) serve a file on the same tmpfs.
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=3
size_mib=1024
secs=4
builddir=build
placements="same split free"
servers="ours-memory nbdkit-memory qemu-nbd"
wre=.
keep=""
base=""
while getopts "qp:r:s:t:S:w:b:o:B:" o; do
  case $o in
    q) rounds=1 size_mib=256 secs=2 ;;
    p) placements=${OPTARG//,/ } ;;
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    t) secs=$OPTARG ;;
    S) servers=$OPTARG ;;
    w) wre=$OPTARG ;;
    b) builddir=$OPTARG ;;
    o) keep=$OPTARG ;;
    B) base=$(realpath "$OPTARG/nbdkit") servers="base-memory $servers" ;;
    *) sed -n '2,37p' "$0"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ours=$(realpath "$builddir/nbdkit")
cycle=$(realpath "$builddir/bench/nbd-conncycle")
for c in nbdkit qemu-nbd qemu-img nbdcopy fio taskset python3; do
  command -v $c >/dev/null || { echo "bench: $c is needed" >&2; exit 2; }
done
[ -x "$ours" ] && [ -x "$cycle" ] || {
  echo "bench: build first ($builddir/nbdkit, $builddir/bench/nbd-conncycle)" >&2
  exit 2
}
if [ "$(nproc)" -lt 2 ]; then
  echo "bench: one CPU: only the same placement is possible" >&2
  placements=same
fi

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

# Set spin (server) and cpin (client) for placement $1.
place () {
  case $1 in
    same)  spin="taskset -c 0" cpin="taskset -c 0" ;;
    split) spin="taskset -c 0" cpin="taskset -c 1" ;;
    free)  spin="" cpin="" ;;
    *) echo "bench: unknown placement $1" >&2; exit 2 ;;
  esac
}

start () {
  local s=$1 sock=$tmp/sock
  rm -f "$sock"
  case $s in
    ours-memory)   $spin "$ours" -f -U "$sock" memory "$size" & ;;
    base-memory)   $spin "$base" -f -U "$sock" memory "$size" & ;;
    nbdkit-memory) $spin nbdkit -f -U "$sock" memory "$size" & ;;
    ours-file)     $spin "$ours" -f -U "$sock" file "$tmp/disk.img" & ;;
    nbdkit-file)   $spin nbdkit -f -U "$sock" file "$tmp/disk.img" & ;;
    qemu-nbd)      $spin qemu-nbd -f raw -t -e 64 -k "$sock" "$tmp/disk.img" \
                     2>/dev/null & ;;
    *) echo "bench: unknown server $s" >&2; exit 2 ;;
  esac
  pid=$!
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
  uri="nbd+unix:///?socket=$sock"
  case $s in
    *-memory) $cpin nbdcopy "$tmp/src.img" "$uri" ;;
  esac
}

now () { date +%s.%N; }
mibs () { echo "$size_mib $1 $2" | awk '{ printf "%.0f", $1 / ($3 - $2) }'; }

fio_iops () {
  $cpin fio --name=r --ioengine=nbd --uri="$uri" --rw=randread --bs=4k \
    --iodepth="$1" --runtime="$secs" --time_based --size="$size" \
    --output-format=json 2>/dev/null \
    | python3 -c 'import json,sys; t=sys.stdin.read(); print(round(json.loads(t[t.index("{"):])["jobs"][0]["read"]["iops"]))'
}

# Time command "$@" (run with the client's pinning) and record MiB/s.
timed () {
  local w=$1 t0 t1
  shift
  t0=$(now); $cpin "$@" >/dev/null; t1=$(now)
  record "$w" "$(mibs "$t0" "$t1")"
}

record () { echo "$placement $server $1 $2" >> "$tmp/results"; }
want () { [[ $1 =~ $wre ]]; }

# One measurement of every selected workload against $server.
measure () {
  start "$server"
  want read-1c && timed read-1c nbdcopy --no-extents -S 0 -C 1 -T 1 "$uri" null:
  want read-mc && timed read-mc nbdcopy --no-extents -S 0 "$uri" null:
  want qemu-img-from && timed qemu-img-from qemu-img convert -n -f raw \
    "$uri" --target-image-opts "driver=null-co,size=$size"
  for qd in 1 16 64; do
    want "rand4k-qd$qd" && record "rand4k-qd$qd" "$(fio_iops $qd)"
  done
  want conn/s && record conn/s "$($cpin "$cycle" "$uri" "$secs")"
  want write-1c && timed write-1c nbdcopy -C 1 -T 1 "$tmp/src.img" "$uri"
  want write-mc && timed write-mc nbdcopy "$tmp/src.img" "$uri"
  want qemu-img-to && timed qemu-img-to qemu-img convert -n -f raw -O raw \
    "$tmp/src.img" "$uri"
  want peak-rss && record peak-rss \
    "$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")"
  stop
}

: > "$tmp/results"
for r in $(seq "$rounds"); do
  for placement in $placements; do
    place "$placement"
    for server in $servers; do
      echo "bench: round $r/$rounds: $placement: $server" >&2
      measure
    done
  done
done
[ -n "$keep" ] && cp "$tmp/results" "$keep"

python3 - "$tmp/results" "$size_mib" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
size_mib = int(sys.argv[2])
places, servers, workloads, vals = [], [], [], {}
for p, s, w, v in rows:
    for lst, x in ((places, p), (servers, s), (workloads, w)):
        if x not in lst:
            lst.append(x)
    vals.setdefault((p, s, w), []).append(float(v))
med = {k: statistics.median(v) for k, v in vals.items()}
units = {"conn/s": "/s", "peak-rss": "MiB"}
# Targets as ratios of ours to nbdkit (peak-rss: at most, as a ratio
# to the data).
targets = {"read-1c": 1.5, "read-mc": 1.5, "write-1c": 1.3, "write-mc": 1.3,
           "rand4k-qd1": 1.3, "rand4k-qd16": 1.5, "rand4k-qd64": 1.5,
           "conn/s": 5.0}
ours = "ours-memory" if "ours-memory" in servers else servers[0]
def ratio(p, w, a, b):
    x, y = med.get((p, a, w)), med.get((p, b, w))
    return x / y if x and y else None
for p in places:
    print("\n== placement: %s ==" % {
        "same": "same CPU (server and client on CPU 0)",
        "split": "split (server CPU 0, client CPU 1)",
        "free": "unpinned"}.get(p, p))
    print("%-14s %-6s" % ("workload", "unit")
          + "".join("%14s" % s for s in servers)
          + "  /nbdkit  /qemu-nbd  target"
          + ("   base/nbdkit" if "base-memory" in servers else ""))
    for w in workloads:
        line = "%-14s %-6s" % (w, units.get(w, "MiB/s" if "-" in w and
                                           not w.startswith("rand") else "IOPS"))
        line += "".join("%14.0f" % med[(p, s, w)] if (p, s, w) in med
                        else "%14s" % "-" for s in servers)
        rn = ratio(p, w, ours, "nbdkit-memory")
        rq = ratio(p, w, ours, "qemu-nbd")
        line += "  %7s  %9s" % ("%.2fx" % rn if rn else "-",
                                "%.2fx" % rq if rq else "-")
        if w == "peak-rss" and (p, ours, w) in med:
            r = med[(p, ours, w)] / size_mib
            line += "  <=1.05x data: %.2fx %s" % (r, "ok" if r <= 1.05 else "MISS")
        elif w in targets and rn:
            line += "  >=%.1fx %-4s" % (targets[w], "ok" if rn >= targets[w] else "MISS")
        if "base-memory" in servers and w != "peak-rss":
            rb = ratio(p, w, "base-memory", "nbdkit-memory")
            line += "   %s" % ("%.2fx" % rb if rb else "-")
        print(line)
n = max(len(v) for v in vals.values())
print("\n(medians of %d round%s, %d MiB; ratios are %s to each server; "
      "peak-rss: lower is better)" % (n, "" if n == 1 else "s", size_mib, ours))
EOF
