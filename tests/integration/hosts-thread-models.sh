#!/usr/bin/env bash
# Thread models named or numbered by Python and Lua scripts, read
# through one table (langs/common/models.h): names (with '-' or '_'),
# API 3 numbers and nbdkit's API 1/2 numbers 0 to 3 give the model
# --dump-plugin reports; an unknown name or number is refused, naming
# thread_model.
. "$(dirname "$0")/functions.sh"
requires_ours

model () {   # model HOST EXT VALUE: the thread_model --dump-plugin shows
  case $2 in
    py) printf 'import nbdkit\ndef thread_model(): return %s\ndef open(r): return 1\ndef get_size(h): return 512\ndef pread(h, b, o, f): pass\n' "$3" > m.py ;;
    lua) printf 'function thread_model() return %s end\nfunction open(r) return {} end\nfunction get_size(h) return 512 end\nfunction pread(h, c, o, f) return string.rep("\\0", c) end\n' "$3" > m.lua ;;
  esac
  t "$NBDKIT" "$1" "./m.$2" --dump-plugin 2> m.err | sed -n 's/^thread_model=//p'
}

ran=0
for host in python lua; do
  [ -f "$BUILDDIR/plugins/nbdkit-$host-plugin.so" ] || { note "$host: not built"; continue; }
  case $host in python) ext=py ;; lua) ext=lua ;; esac
  while read -r v want; do
    [ $host = python ] && case $v in \"*) continue ;; esac
    [ $host = lua ] && v="${v/nbdkit.THREAD_MODEL_/nbdkit.THREAD_MODEL_}"
    assert_eq "$host: thread_model $v" "$(model $host $ext "$v")" "$want"
  done <<'T'
0 serialize_connections
1 serialize_all_requests
2 serialize_requests
3 parallel
nbdkit.THREAD_MODEL_SERIALIZE_ALL_REQUESTS serialize_all_requests
nbdkit.THREAD_MODEL_PARALLEL parallel
"serialize-requests" serialize_requests
"serialize_connections" serialize_connections
T
  for bad in 7 -1; do
    out="$(model $host $ext $bad)"
    [ -z "$out" ] && grep -q thread_model m.err ||
      { cat m.err; fail "$host: thread_model $bad accepted ($out)"; }
  done
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || skip "no language host built"
