#!/usr/bin/env bash
# The rbd plugin against qemu-nbd serving the same Ceph RBD image
# through qemu's rbd driver (Debian's qemu-block-extra), side by side.
#
#   bench/rbd.sh [-q] [-a] [-r ROUNDS] [-s SIZE_MIB] [-t SECONDS] [-b BUILDDIR]
#
#   -a           instead: our plugin with asynchronous completion (the
#                default) against async=false (a server thread per
#                request), fio random 4 KiB reads at depths 16 and 64:
#                IOPS, and the most threads the server had during the
#                run (/proc/PID/task, sampled every 50 ms)
#   -r ROUNDS    rounds (default 3); each round measures both servers
#   -s SIZE_MIB  size of the image (default 512; the memstore OSD holds
#                at most 1 GiB)
#   -t SECONDS   length of each fio run (default 5)
#   -b BUILDDIR  our build (default build)
#   -q           quick: -r 1 -s 128 -t 2, to try the script
#
# A single-node cluster (tests/services/ceph.sh: one monitor, one
# memstore OSD) is started under /dev/shm; one image is filled with
# random data by `rbd import`.  Servers, each on a Unix socket, as
# client.admin with the cluster's conf and keyring:
#   ours       nbdkit rbd rbd/bench conf=... keyring=...
#   qemu-nbd   qemu-nbd -t -f raw -e 8 'rbd:rbd/bench:conf=...:id=admin:keyring=...'
# Workloads:
#   seqwrite     nbdcopy SRC URI, SRC a file of random data on tmpfs
#                (MiB/s)
#   seqread-1c   nbdcopy --no-extents -C 1 URI null: (MiB/s)
#   seqread-mc   nbdcopy --no-extents URI null:, its default connections
#                (multi-conn where the server offers it) (MiB/s)
#   rand4k-qd1, rand4k-qd16
#                fio (nbd engine) random 4 KiB reads (IOPS)
# Nothing is pinned: the OSD, the monitor, the server and the client
# share the machine's CPUs.  Rounds alternate the order of the servers;
# the table gives medians and ours/qemu-nbd, then every run's values.
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=3
size_mib=512
secs=5
builddir=build
mode=qemu
while getopts "qar:s:t:b:" o; do
  case $o in
    q) rounds=1 size_mib=128 secs=2 ;;
    a) mode=async ;;
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    t) secs=$OPTARG ;;
    b) builddir=$OPTARG ;;
    *) sed -n '2,35p' "$0"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ours=$(realpath "${NBDKIT:-$builddir/nbdkit}")
[ -x "$ours" ] || { echo "bench: build first: $ours" >&2; exit 2; }
"$ours" rbd --dump-plugin >/dev/null 2>&1 ||
  { echo "bench: the rbd plugin is not built (librbd-dev, librados-dev)" >&2; exit 2; }
for c in ceph-mon qemu-nbd fio nbdcopy python3; do
  command -v $c >/dev/null || { echo "bench: $c is needed" >&2; exit 2; }
done

tmp=$(mktemp -d /dev/shm/bench-rbd.XXXXXX)
pid=""
stop () {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
trap 'stop; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
# shellcheck source=../tests/services/ceph.sh
. tests/services/ceph.sh
t0=$(date +%s%N)
ceph_start "$tmp/c"
echo "bench: cluster up in $(( ($(date +%s%N) - t0) / 1000000 )) ms" >&2

echo "bench: filling a ${size_mib} MiB image with random data" >&2
head -c $((size_mib << 20)) /dev/urandom > "$tmp/src.img"
rbd import --no-progress "$tmp/src.img" rbd/bench

start () {
  local s=$1 sock=$tmp/sock
  rm -f "$sock"
  case $s in
    ours)
      "$ours" -f -U "$sock" rbd rbd/bench conf="$CEPH_CONF" \
        keyring="$CEPH_KEYRING" &
      ;;
    ours-sync)
      "$ours" -f -U "$sock" rbd rbd/bench conf="$CEPH_CONF" \
        keyring="$CEPH_KEYRING" async=false &
      ;;
    qemu-nbd)
      qemu-nbd -t -f raw -e 8 -k "$sock" \
        "rbd:rbd/bench:conf=$CEPH_CONF:id=admin:keyring=$CEPH_KEYRING" &
      ;;
  esac
  pid=$!
  for _ in $(seq 400); do [ -S "$sock" ] && break; sleep 0.05; done
  [ -S "$sock" ] || { echo "bench: $s did not start" >&2; exit 1; }
  uri="nbd+unix:///?socket=$sock"
}

now () { date +%s.%N; }

# seconds WORKLOAD CMD...: run CMD, record MiB/s of the whole image.
seconds () {
  local w=$1 t0 t1
  shift
  t0=$(now); "$@" >/dev/null; t1=$(now)
  echo "$s $w $(echo "$size_mib $t0 $t1" | awk '{ printf "%.1f", $1 / ($3 - $2) }')" \
    >> "$tmp/results"
}

measure () {
  s=$1
  start "$s"
  seconds seqwrite nbdcopy "$tmp/src.img" "$uri"
  seconds seqread-1c nbdcopy --no-extents -C 1 "$uri" null:
  seconds seqread-mc nbdcopy --no-extents "$uri" null:
  for qd in 1 16; do
    fio --name=r --ioengine=nbd --uri="$uri" --rw=randread --bs=4k \
      --iodepth="$qd" --runtime="$secs" --time_based --size=$((size_mib << 20)) \
      --output-format=json > "$tmp/fio.out" 2>/dev/null
    echo "$s rand4k-qd$qd $(python3 -c 'import json, sys
t = open(sys.argv[1]).read()   # after "connected to NBD server"
print(round(json.loads(t[t.index("{"):])["jobs"][0]["read"]["iops"]))' "$tmp/fio.out")" \
      >> "$tmp/results"
  done
  stop
}

# fio random 4 KiB reads at depth QD: IOPS, and the server's most
# threads meanwhile.
measure_async () {
  s=$1
  start "$s"
  for qd in 16 64; do
    rm -f "$tmp/fio.done"
    ( most=0
      while kill -0 "$pid" 2>/dev/null && [ ! -e "$tmp/fio.done" ]; do
        n=$(ls "/proc/$pid/task" 2>/dev/null | wc -l)
        [ "$n" -gt "$most" ] && most=$n
        sleep 0.05
      done
      echo "$most" > "$tmp/threads" ) &
    sampler=$!
    fio --name=r --ioengine=nbd --uri="$uri" --rw=randread --bs=4k \
      --iodepth="$qd" --runtime="$secs" --time_based --size=$((size_mib << 20)) \
      --output-format=json > "$tmp/fio.out" 2>/dev/null
    touch "$tmp/fio.done"
    wait "$sampler"
    echo "$s rand4k-qd$qd $(python3 -c 'import json, sys
t = open(sys.argv[1]).read()
print(round(json.loads(t[t.index("{"):])["jobs"][0]["read"]["iops"]))' "$tmp/fio.out")" \
      >> "$tmp/results"
    echo "$s threads-qd$qd $(cat "$tmp/threads")" >> "$tmp/results"
  done
  stop
}

: > "$tmp/results"
servers="ours qemu-nbd"
[ "$mode" = async ] && servers="ours ours-sync"
order=$servers
for r in $(seq "$rounds"); do
  for s in $order; do
    echo "bench: round $r/$rounds: $s" >&2
    if [ "$mode" = async ]; then measure_async "$s"; else measure "$s"; fi
  done
  order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
done

python3 - "$tmp/results" "$rounds" "$size_mib" "$secs" $servers <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
rounds, size_mib, secs = sys.argv[2:5]
servers = sys.argv[5:]
workloads, vals = [], {}
for s, w, v in rows:
    if w not in workloads:
        workloads.append(w)
    vals.setdefault((s, w), []).append(float(v))
med = {k: statistics.median(v) for k, v in vals.items()}
print("rbd image, %s MiB, %s rounds, %s s fio runs; medians, higher is better"
      % (size_mib, rounds, secs))
ratio = "ours/qemu" if servers[1] == "qemu-nbd" else "ratio"
print("%-12s %-7s" % ("workload", "unit")
      + "".join("%11s" % s for s in servers) + "%11s" % ratio)
for w in workloads:
    a, b = med.get((servers[0], w)), med.get((servers[1], w))
    unit = ("MiB/s" if w.startswith("seq")
            else "threads" if w.startswith("threads") else "IOPS")
    print("%-12s %-7s" % (w, unit)
          + "".join("%11.0f" % med.get((s, w), float("nan")) for s in servers)
          + "%11s" % ("%.2fx" % (a / b) if a and b else "n/a"))
print()
print("runs (in round order):")
for w in workloads:
    for s in servers:
        print("  %-12s %-9s %s" % (w, s, " ".join("%.0f" % x for x in vals.get((s, w), []))))
EOF
