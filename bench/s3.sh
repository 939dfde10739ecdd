#!/usr/bin/env bash
# The S3 plugin against Debian's nbdkit S3 plugin (nbdkit 1.32, Python
# and boto3, package nbdkit-plugin-python), side by side on the same
# radosgw bucket of a single-node Ceph cluster started for the run
# (tests/services/ceph.sh).
#
#   bench/s3.sh [-q] [-a] [-r ROUNDS] [-s SIZE_MIB] [-t SECONDS] [-o OBJSIZE] [-b BUILDDIR]
#
#   -a           ours asynchronous (the default) against ours with
#                async=false, instead of against Debian's, adding random
#                reads at depth 64 and random 4 KiB writes at depth 16
#                and 64 (wrand4k-qdN, with wthread-qdN their threads)
#   -r ROUNDS    rounds (default 3); each round measures both servers
#   -s SIZE_MIB  size of the disk and of the copies (default 64)
#   -t SECONDS   length of each random-read run (default 5)
#   -o OBJSIZE   object-size= of the disk (default 64k: Debian's plugin
#                announces it as its minimum block size, which nbdkit
#                1.32 refuses above 64K)
#   -b BUILDDIR  our build (default build)
#   -q           quick: -r 1 -s 16 -t 2, to try the script
#
# Both servers serve key=bench in one bucket, size=SIZE and the same
# object-size, on Unix sockets.  Workloads, per server start:
#   seqwrite     nbdcopy SRCFILE URI, random data on tmpfs (MiB/s)
#   seqread      nbdcopy --no-extents URI null: (MiB/s)
#   rand4k-qd1, rand4k-qd16
#                random 4 KiB reads at depth 1 and 16 for -t seconds
#                (IOPS), by a libnbd client (bench/s3-randread.py) with
#                libnbd's alignment check off: Debian's plugin
#                announces object-size as its minimum block size, so
#                fio (strict libnbd) cannot send it 4 KiB reads.
#   threads-qdN  the most threads the server had (/proc/PID/task)
#                during the random reads at depth N
#   cpu-seqwrite, cpu-seqread
#                CPU seconds per GiB copied, of the server (srv) and of
#                radosgw with the Ceph daemons behind it (rgw): on a
#                2-CPU machine the sequential copies are bounded by
#                radosgw's CPU, and these rows show where the time went
#   wrand4k-qdN, wthread-qdN (-a)
#                random 4 KiB writes at depth N (a read-modify-write of
#                an object each), IOPS and the most threads
# Rounds alternate the order of the servers; the table gives medians
# and ours/Debian's against the issue's target (>= 3x), then every
# run's values.
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=3
size_mib=64
secs=5
osz=64k
builddir=build
servers="ours debian"
depths="1 16"
wdepths=""
while getopts "qar:s:t:o:b:" o; do
  case $o in
    a) servers="ours ours-sync" depths="1 16 64" wdepths="16 64" ;;
    q) rounds=1 size_mib=16 secs=2 ;;
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    t) secs=$OPTARG ;;
    o) osz=$OPTARG ;;
    b) builddir=$OPTARG ;;
    *) sed -n '2,/^set /{/^#/p}' "$0"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
src=$(pwd)
ours=$(realpath "${NBDKIT:-$builddir/nbdkit}")
theirs=/usr/bin/nbdkit
size=$((size_mib << 20))

[ -x "$ours" ] || { echo "bench: build first: $ours" >&2; exit 2; }
[ -f "$(dirname "$ours")/plugins/nbdkit-S3-plugin.so" ] ||
  { echo "bench: the S3 plugin is not built (libcurl4-gnutls-dev)" >&2; exit 2; }
[ -f /usr/lib/x86_64-linux-gnu/nbdkit/plugins/nbdkit-S3-plugin ] ||
  { echo "bench: Debian's S3 plugin missing (apt-get install nbdkit-plugin-python)" >&2; exit 2; }
for c in nbdcopy radosgw python3; do
  command -v $c >/dev/null || { echo "bench: $c is needed" >&2; exit 2; }
done

tmp=$(mktemp -d /dev/shm/bench-s3.XXXXXX)
pid=""
stop () {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
trap 'stop; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
. "$src/tests/services/ceph.sh"
echo "bench: starting Ceph and radosgw in $tmp/c" >&2
ceph_start "$tmp/c" --rgw --no-pool
python3 - <<PY
import boto3
boto3.client("s3", endpoint_url="$RGW_ENDPOINT", aws_access_key_id="$RGW_ACCESS_KEY",
             aws_secret_access_key="$RGW_SECRET_KEY",
             region_name="us-east-1").create_bucket(Bucket="bench")
PY

echo "bench: preparing ${size_mib} MiB of data in $tmp" >&2
head -c "$size" /dev/urandom > "$tmp/src.img"

start () {
  local s=$1 sock=$tmp/sock bin extra=""
  rm -f "$sock"
  case $s in
    debian) bin=$theirs ;;
    ours) bin=$ours ;;
    ours-sync) bin=$ours extra=async=false ;;
  esac
  "$bin" -f -U "$sock" S3 endpoint-url="$RGW_ENDPOINT" \
    access-key="$RGW_ACCESS_KEY" secret-key="$RGW_SECRET_KEY" \
    bucket=bench key=bench size="$size" object-size="$osz" $extra &
  pid=$!
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
  [ -S "$sock" ] || { echo "bench: $s did not start" >&2; exit 1; }
  uri="nbd+unix:///?socket=$sock"
}

now () { date +%s.%N; }

# timed CMD...: run CMD, set $wall (seconds).
timed () {
  local t0 t1
  t0=$(now)
  "$@" > "$tmp/out"
  t1=$(now)
  wall=$(echo "$t0 $t1" | awk '{ print $2 - $1 }')
}

record () { echo "$1 $2 $3" >> "$tmp/results"; }

# ticks PID...: user + system CPU time of the processes, in clock ticks.
ticks () {
  local p t=0
  for p in "$@"; do
    [ -r /proc/"$p"/stat ] || continue
    t=$((t + $(sed 's/.*) //' /proc/"$p"/stat | awk '{ print $12 + $13 }')))
  done
  echo $t
}
hz=$(getconf CLK_TCK)

# timed_cpu SERVER WORKLOAD CMD...: timed, and record the CPU seconds
# per GiB of the server and of the Ceph daemons during CMD.
timed_cpu () {
  local s=$1 w=$2 s0 c0 s1 c1
  shift 2
  s0=$(ticks "$pid")
  c0=$(ticks $(ceph_pids))
  timed "$@"
  s1=$(ticks "$pid")
  c1=$(ticks $(ceph_pids))
  record "$s" "cpu-$w-srv" "$(echo "$s0 $s1 $hz $size_mib" |
    awk '{ printf "%.2f", ($2 - $1) / $3 * 1024 / $4 }')"
  record "$s" "cpu-$w-rgw" "$(echo "$c0 $c1 $hz $size_mib" |
    awk '{ printf "%.2f", ($2 - $1) / $3 * 1024 / $4 }')"
}

measure () {
  local s=$1
  start "$s"
  timed_cpu "$s" seqwrite nbdcopy "$tmp/src.img" "$uri"
  record "$s" seqwrite "$(echo "$size_mib $wall" | awk '{ printf "%.1f", $1 / $2 }')"
  timed_cpu "$s" seqread nbdcopy --no-extents "$uri" null:
  record "$s" seqread "$(echo "$size_mib $wall" | awk '{ printf "%.1f", $1 / $2 }')"
  for qd in $depths; do
    python3 "$src/bench/s3-randread.py" "$uri" "$qd" "$secs" > "$tmp/iops" &
    local client=$! most=0 n
    while kill -0 "$client" 2>/dev/null; do
      n=$(ls /proc/"$pid"/task 2>/dev/null | wc -l)
      [ "$n" -gt "$most" ] && most=$n
      sleep 0.1
    done
    wait "$client"
    record "$s" "rand4k-qd$qd" "$(cat "$tmp/iops")"
    [ "$qd" = 1 ] || record "$s" "threads-qd$qd" "$most"
  done
  for qd in $wdepths; do
    python3 "$src/bench/s3-randread.py" "$uri" "$qd" "$secs" write > "$tmp/iops" &
    local client=$! most=0 n
    while kill -0 "$client" 2>/dev/null; do
      n=$(ls /proc/"$pid"/task 2>/dev/null | wc -l)
      [ "$n" -gt "$most" ] && most=$n
      sleep 0.1
    done
    wait "$client"
    record "$s" "wrand4k-qd$qd" "$(cat "$tmp/iops")"
    record "$s" "wthread-qd$qd" "$most"
  done
  stop
}

echo "bench: $rounds rounds, ${size_mib} MiB, object-size $osz, ${secs} s runs" >&2
: > "$tmp/results"
order=$servers
for r in $(seq "$rounds"); do
  for s in $order; do
    echo "bench: round $r/$rounds: $s" >&2
    measure "$s"
  done
  order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
done

python3 - "$tmp/results" $servers <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
a, b = sys.argv[2], sys.argv[3]
workloads, vals = [], {}
for s, w, v in rows:
    if w not in workloads:
        workloads.append(w)
    vals.setdefault((s, w), []).append(float(v))
unit = {"seqwrite": "MiB/s", "seqread": "MiB/s"}
print("%-12s %-9s %10s %10s %9s  %s" % ("workload", "unit", a, b, "ratio",
                                        "target" if b == "debian" else ""))
workloads = ([w for w in workloads if not w.startswith("cpu-")] +
             [w for w in workloads if w.startswith("cpu-")])
for w in workloads:
    o = statistics.median(vals[(a, w)])
    d = statistics.median(vals[(b, w)])
    r = o / d if d else float("inf")
    if "thread" in w:
        print("%-12s %-9s %10.0f %10.0f %8.2fx" % (w, "threads", o, d, r))
    elif w.startswith("cpu-"):
        print("%-12s %-9s %10.2f %10.2f %8.2fx" % (w[4:], "CPU s/GiB", o, d, r))
    elif b == "debian":
        print("%-12s %-9s %10.1f %10.1f %8.2fx  >=3x %s" %
              (w, unit.get(w, "IOPS"), o, d, r, "ok" if r >= 3 else "MISSED"))
    else:
        print("%-12s %-9s %10.1f %10.1f %8.2fx" % (w, unit.get(w, "IOPS"), o, d, r))
print()
print("every run:")
for w in workloads:
    for s in (a, b):
        print("  %-16s %-9s %s" % (w, s, " ".join("%.1f" % v for v in vals[(s, w)])))
PY
