#!/usr/bin/env bash
# async.sh: asynchronous completion through the nbd plugin.  A memory
# server (this server) behind the nbd plugin (this server again); fio
# sends random 4 KiB reads at queue depth 64 to the proxy, which runs
# with the plugin's async path (async=true) or the synchronous one
# (async=false, one server thread waits per request) at -t 16 (the
# default) and -t 64.  Reports IOPS and the proxy's threads (the most
# seen in /proc/PID/task while fio runs).  Medians of the rounds;
# configurations alternate round by round.
#
#   bench/async.sh [-b BUILD] [-r ROUNDS] [-t SECONDS] [-d DEPTH]
#
# Not part of the tests.
set -euo pipefail

build=$(cd "$(dirname "$0")/.." && pwd)/build
rounds=3
secs=5
depth=64
while getopts b:r:t:d: o; do
  case $o in
    b) build=$(cd "$OPTARG" && pwd) ;;
    r) rounds=$OPTARG ;;
    t) secs=$OPTARG ;;
    d) depth=$OPTARG ;;
    *) exit 2 ;;
  esac
done
nbdkit=$build/nbdkit
for c in fio python3; do
  command -v $c >/dev/null || { echo "async.sh: needs $c" >&2; exit 1; }
done
[ -x "$nbdkit" ] || { echo "async.sh: no $nbdkit (build first)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup () {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Start a server on socket $1 with the rest as arguments; wait for it.
serve () {
  local sock=$1
  shift
  rm -f "$sock" "$sock.pid"
  "$nbdkit" -U "$sock" -P "$sock.pid" -f "$@" &
  pids+=($!)
  for _ in $(seq 100); do
    [ -s "$sock.pid" ] && return 0
    sleep 0.05
  done
  echo "async.sh: server did not start: $*" >&2
  exit 1
}

serve "$tmp/mem.sock" memory 1G
# Fill it, so reads move data.
fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$tmp/mem.sock" \
  --rw=write --bs=1M --size=1G --output-format=terse >/dev/null 2>&1

configs=("async -t 16:async=true:16" "sync -t 16:async=false:16"
         "sync -t 64:async=false:64")
for ((round = 1; round <= rounds; round++)); do
  for cfg in "${configs[@]}"; do
    IFS=: read -r name arg threads <<< "$cfg"
    serve "$tmp/px.sock" -t "$threads" nbd socket="$tmp/mem.sock" "$arg"
    pid=$(cat "$tmp/px.sock.pid")
    # The most threads seen while fio runs.
    ( max=0
      while kill -0 "$pid" 2>/dev/null; do
        n=$(ls "/proc/$pid/task" 2>/dev/null | wc -l)
        [ "$n" -gt "$max" ] && { max=$n; echo "$max" > "$tmp/threads"; }
        sleep 0.1
      done ) &
    watcher=$!
    iops=$(fio --name=r --ioengine=nbd \
             --uri="nbd+unix:///?socket=$tmp/px.sock" --rw=randread --bs=4k \
             --iodepth="$depth" --runtime="$secs" --time_based --size=1G \
             --output-format=json 2>/dev/null \
           | python3 -c 'import json,sys; t=sys.stdin.read(); print(round(json.loads(t[t.index("{"):])["jobs"][0]["read"]["iops"]))')
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    wait "$watcher" 2>/dev/null || true
    echo "$name|$iops|$(cat "$tmp/threads")" >> "$tmp/results"
    echo "round $round: $name: $iops IOPS, $(cat "$tmp/threads") threads" >&2
  done
done

echo "random 4 KiB reads, queue depth $depth, nbd plugin -> memory," \
  "medians of $rounds rounds of ${secs}s"
python3 - "$tmp/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, iops, th = line.strip().split("|")
    rows.setdefault(name, []).append((int(iops), int(th)))
print("%-12s %10s %16s" % ("proxy", "IOPS", "server threads"))
for name, v in rows.items():
    print("%-12s %10d %16d" % (name, statistics.median(x[0] for x in v),
                               statistics.median(x[1] for x in v)))
PY
