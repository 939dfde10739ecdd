#!/usr/bin/env bash
# --dump-plugin as nbdkit prints it: the declared and the effective
# thread model (filters included), errno_is_preserved, a has_ line per
# callback, every parameter applied first (eval's dump_plugin= runs),
# and no dump with -s (stdout belongs to the protocol then).  --version
# names each layer with a version tools can read.
. "$(dirname "$0")/functions.sh"

"$NBDKIT" --dump-plugin memory > dump.out || fail "--dump-plugin memory"
for want in max_thread_model=parallel thread_model=parallel \
            has_pread=1 has_get_size=1; do
  grep -qx "$want" dump.out || fail "--dump-plugin memory: no $want"
done
grep -q "^errno_is_preserved=[01]$" dump.out || fail "no errno_is_preserved"
! grep -qx "has_list_exports=1" dump.out || fail "memory has no list_exports"

# A filter's parameter changes the effective model, not the declared.
"$NBDKIT" --dump-plugin --filter=noparallel memory 1M \
  serialize=connections > dump.out || fail "with noparallel"
grep -qx "thread_model=serialize_connections" dump.out \
  || fail "noparallel serialize=connections: $(grep thread_model dump.out)"
grep -qx "max_thread_model=parallel" dump.out || fail "declared model changed"

# eval: its dump_plugin= script adds lines.
"$NBDKIT" --dump-plugin eval dump_plugin='echo extra=stuff' > dump.out \
  || fail "eval dump_plugin="
grep -qx "extra=stuff" dump.out || fail "eval dump_plugin= not run"

# sh without a script limits nothing; a script without thread_model
# serializes all requests.
"$NBDKIT" --dump-plugin sh > dump.out
grep -qx "thread_model=parallel" dump.out || fail "sh alone: $(grep thread dump.out)"
printf 'case "$1" in get_size) echo 1M ;; *) exit 2 ;; esac\n' > s.sh
chmod +x s.sh
"$NBDKIT" --dump-plugin sh s.sh > dump.out
grep -qx "thread_model=serialize_all_requests" dump.out \
  || fail "sh script: $(grep thread dump.out)"

# -s and --dump-plugin: an error, nothing on stdout.
if "$NBDKIT" --dump-plugin -s null > dump.out 2> err.out; then
  fail "--dump-plugin -s accepted"
fi
[ ! -s dump.out ] || fail "--dump-plugin -s printed on stdout"
[ -s err.out ] || fail "--dump-plugin -s: no message"

# --version: every layer with nbdkit-style numbering.
out="$("$NBDKIT" --filter=offset --filter=cow memory --version)"
for l in nbdkit offset cow memory; do
  grep -q "^$l 1\.[0-9]" <<<"$out" || fail "--version: $l: $out"
done
echo "dump-plugin: OK"
