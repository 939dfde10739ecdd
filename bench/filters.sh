#!/usr/bin/env bash
# Side-by-side benchmark of the data-path filters: this server against
# Debian's nbdkit (/usr/bin/nbdkit) running the same filter in front of
# the memory plugin.  Both servers are pinned to CPU 0 (taskset), the
# client to CPU 1; rounds alternate between the servers.
#
#   bench/filters.sh [-r ROUNDS] [-s SIZE_MIB] [-b BUILDDIR] [FILTER...]
#
# For each filter (default: cache blocksize), each server serves a
# SIZE_MIB (1024) memory disk through --filter=FILTER, filled once with
# random data by nbdcopy (through the filter: for cache, writeback,
# so the data sits in the cache file in $TMPDIR, flushed down).  A
# round is one `nbdcopy --no-extents $uri null:`.  Prints each
# server's median time and throughput, and the ratio
# nbdkit-time / our-time (>= 1.0: we are as fast or faster).
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=5
size_mib=1024
builddir=build
while getopts "r:s:b:" o; do
  case $o in
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    b) builddir=$OPTARG ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
filters=("$@")
[ ${#filters[@]} -gt 0 ] || filters=(cache blocksize)

ours=$(cd "$builddir" && pwd)/nbdkit
theirs=/usr/bin/nbdkit
[ -x "$ours" ] || { echo "no $ours: build first" >&2; exit 1; }
[ -x "$theirs" ] || { echo "no $theirs" >&2; exit 1; }
tmp=$(mktemp -d /var/tmp/benchfilters.XXXXXX)
pids=()
cleanup () {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$tmp/src.img"

# start NAME BINARY FILTER: a server on $tmp/NAME.sock, pinned to CPU 0.
start () {
  local sock=$tmp/$1.sock pidf=$tmp/$1.pid
  TMPDIR=$tmp taskset -c 0 "$2" -f -U "$sock" -P "$pidf" \
    --filter="$3" memory "${size_mib}M" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$pidf" ] && break; sleep 0.1; done
  [ -S "$sock" ] || { echo "$1 did not start" >&2; exit 1; }
  taskset -c 1 nbdcopy --flush "$tmp/src.img" "nbd+unix:///?socket=$sock"
}

# One timed round; prints seconds.
round () {
  local s e
  s=$(date +%s.%N)
  taskset -c 1 nbdcopy --no-extents "nbd+unix:///?socket=$tmp/$1.sock" null:
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}

median () { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

printf '%-10s %-8s %10s %10s\n' filter server "median s" "MiB/s"
for f in "${filters[@]}"; do
  start "ours-$f" "$ours" "$f"
  start "theirs-$f" "$theirs" "$f"
  : > "$tmp/ours.t"; : > "$tmp/theirs.t"
  for r in $(seq "$rounds"); do
    round "ours-$f" >> "$tmp/ours.t"
    round "theirs-$f" >> "$tmp/theirs.t"
  done
  mo=$(median < "$tmp/ours.t")
  mt=$(median < "$tmp/theirs.t")
  printf '%-10s %-8s %10.3f %10.0f\n' "$f" ours "$mo" "$(echo "$size_mib / $mo" | bc -l)"
  printf '%-10s %-8s %10.3f %10.0f\n' "$f" nbdkit "$mt" "$(echo "$size_mib / $mt" | bc -l)"
  printf '%-10s ratio nbdkit/ours = %.2f\n' "$f" "$(echo "$mt / $mo" | bc -l)"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  rm -f "$tmp"/*.sock "$tmp"/*.pid
done
