#!/usr/bin/env bash
# The cost of the read-buffer guarantee (bytes no layer wrote reach the
# client as zeroes): two builds of this server side by side, BEFORE
# (without it) and AFTER, round by round, server and client pinned to
# one CPU.  Prints medians and AFTER/BEFORE ratios.
#
#   bench/readzero.sh -B BEFORE_BUILDDIR [-A AFTER_BUILDDIR] [-r ROUNDS]
#                     [-s SIZE_MIB] [-t SECONDS]
#
# A BEFORE build, e.g. of the commit before the guarantee:
#   mkdir /tmp/before && git archive COMMIT | tar -x -C /tmp/before
#   cmake -S /tmp/before -B /tmp/before/build -DCMAKE_BUILD_TYPE=Release
#   cmake --build /tmp/before/build -j2
# (and AFTER the same way, so both are built alike).
#
# Plugins: memory (lends its data), file on tmpfs and pattern (copy into
# the buffer and promise to fill it), testplug (copies, promises nothing:
# the guarantee's worst case among C plugins).
# Workloads: seqread  nbdcopy --no-extents -S 0 -C 1 -T 1 to null:, MiB/s
#            rand4k-qd1, rand4k-qd16  fio (nbd engine) random 4 KiB reads
# Each also as *-cpu: the server's CPU time per GiB or per read, which
# varies less than throughput when other work shares the machine.
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=5
size_mib=1024
secs=3
before=""
after=build
while getopts "B:A:r:s:t:" o; do
  case $o in
    B) before=$OPTARG ;;
    A) after=$OPTARG ;;
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    t) secs=$OPTARG ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
  esac
done
[ -n "$before" ] || { sed -n '2,21p' "$0"; exit 2; }
cd "$(dirname "$0")/.."
for c in nbdcopy fio taskset; do
  command -v $c >/dev/null || { echo "readzero: $c is needed" >&2; exit 2; }
done
declare -A bin plug
bin[before]=$(realpath "$before/nbdkit")
bin[after]=$(realpath "$after/nbdkit")
plug[before]=$(realpath "$before/tests/plugins/nbdkit-testplug-plugin.so")
plug[after]=$(realpath "$after/tests/plugins/nbdkit-testplug-plugin.so")
pin="taskset -c ${CPU:-0}"

tmp=$(mktemp -d /dev/shm/nbdzero.XXXXXX)
pid=""
stop () {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
trap 'stop; rm -rf "$tmp"' EXIT
size=$((size_mib << 20))
echo "readzero: preparing ${size_mib} MiB of data in $tmp" >&2
head -c "$size" /dev/urandom > "$tmp/disk.img"

start () { # VERSION PLUGIN
  local v=$1 sock=$tmp/sock
  rm -f "$sock"
  case $2 in
    memory)   $pin "${bin[$v]}" -f -U "$sock" memory "$size" & ;;
    file)     $pin "${bin[$v]}" -f -U "$sock" file "$tmp/disk.img" & ;;
    pattern)  $pin "${bin[$v]}" -f -U "$sock" pattern "$size" & ;;
    testplug) $pin "${bin[$v]}" -f -U "$sock" "${plug[$v]}" size="$size" & ;;
  esac
  pid=$!
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
  uri="nbd+unix:///?socket=$sock"
  case $2 in
    memory|testplug) $pin nbdcopy "$tmp/disk.img" "$uri" ;;
  esac
}

now () { date +%s.%N; }
# CPU time the server used so far, in clock ticks (user + system, all
# threads): on a shared machine a steadier measure than wall time.
ticks () { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
# fio_run QD: prints "IOPS IOS" (IOs done).
fio_run () {
  $pin fio --name=r --ioengine=nbd --uri="$uri" --rw=randread --bs=4k \
    --iodepth="$1" --runtime="$secs" --time_based --size="$size" \
    --output-format=json 2>/dev/null \
    | python3 -c 'import json,sys; t=sys.stdin.read(); r=json.loads(t[t.index("{"):])["jobs"][0]["read"]; print(round(r["iops"]), r["total_ios"])'
}

: > "$tmp/results"
plugins="memory file pattern testplug"
for r in $(seq "$rounds"); do
  for p in $plugins; do
    for v in before after; do
      echo "readzero: round $r/$rounds: $p $v" >&2
      start $v $p
      c0=$(ticks); t0=$(now)
      $pin nbdcopy --no-extents -S 0 -C 1 -T 1 "$uri" null:
      t1=$(now); c1=$(ticks)
      echo "$p seqread $v $(echo "$size_mib $t0 $t1" \
        | awk '{ printf "%.0f", $1 / ($3 - $2) }')" >> "$tmp/results"
      # server CPU ms per GiB read
      echo "$p seqread-cpu $v $(echo "$c0 $c1 $hz $size_mib" \
        | awk '{ printf "%.1f", ($2 - $1) * 1000 / $3 / ($4 / 1024) }')" \
        >> "$tmp/results"
      for qd in 1 16; do
        c0=$(ticks)
        read -r iops ios < <(fio_run $qd)
        c1=$(ticks)
        echo "$p rand4k-qd$qd $v $iops" >> "$tmp/results"
        # server CPU microseconds per 4 KiB read
        echo "$p rand4k-qd$qd-cpu $v $(echo "$c0 $c1 $hz $ios" \
          | awk '{ printf "%.2f", ($2 - $1) * 1e6 / $3 / $4 }')" \
          >> "$tmp/results"
      done
      stop
    done
  done
done

python3 - "$tmp/results" <<'PY'
import statistics, sys
vals = {}
order = []
for p, w, v, x in (l.split() for l in open(sys.argv[1])):
    if (p, w) not in order:
        order.append((p, w))
    vals.setdefault((p, w, v), []).append(float(x))
print("%-10s %-16s %-6s %10s %10s %8s" % ("plugin", "workload", "unit",
                                          "before", "after", "after/b"))
for p, w in order:
    b = statistics.median(vals[(p, w, "before")])
    a = statistics.median(vals[(p, w, "after")])
    unit = {"seqread": "MiB/s", "seqread-cpu": "ms/GiB"}.get(
        w, "us/IO" if w.endswith("-cpu") else "IOPS")
    print("%-10s %-16s %-6s %10.2f %10.2f %8.3f" % (p, w, unit, b, a, a / b))
print("(medians of %d rounds; *-cpu: server CPU time, lower is better)"
      % max(len(v) for v in vals.values()))
PY
