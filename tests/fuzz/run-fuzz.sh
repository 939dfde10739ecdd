#!/usr/bin/env bash
# Build the libFuzzer harnesses (fuzz-server.c) in a clang configuration
# of their own, with ASan and UBSan; run each once on every reproducer
# kept in tests/fuzz/crashes/ (MODE-NAME), then each for a bounded time
# on its seed corpus.  Run by ctest in the sanitizer build (label
# "fuzz"); skipped (77) without clang or its libFuzzer runtime.
#
#   tests/fuzz/run-fuzz.sh [SECONDS]    # per harness; default 25
#
# Environment: SRCDIR (source root), BUILDDIR (the normal build tree;
# the clang build goes in $BUILDDIR/tests/fuzz/clang-build and is reused
# by later runs), FUZZ_SECONDS (same as the argument), FUZZ_JOBS (build
# jobs), FUZZ_MODES (default "handshake transmission plugin").
# Inputs that crash, leak or hang are left in
# $BUILDDIR/tests/fuzz/artifacts/ and fail the test; copy them to
# tests/fuzz/crashes/ as reproducers (run: fuzz-handshake FILE).
# tests/fuzz/README says how to run the fuzzers for longer.
set -u
export PATH=/usr/bin:/bin:$PATH
here="$(cd "$(dirname "$0")" && pwd)"
: "${SRCDIR:=$(cd "$here/../.." && pwd)}"
: "${BUILDDIR:=$SRCDIR/build}"
secs="${1:-${FUZZ_SECONDS:-25}}"
modes="${FUZZ_MODES:-handshake transmission plugin}"

skip () { echo "run-fuzz: SKIP: $*"; exit 77; }
command -v clang >/dev/null || skip "clang not found"
command -v cmake >/dev/null || skip "cmake not found"

out="$BUILDDIR/tests/fuzz"
fb="$out/clang-build"
mkdir -p "$out/artifacts" "$fb"

# Can clang link a libFuzzer program at all (libclang-rt-*-dev)?
probe="$out/probe.c"
echo 'int LLVMFuzzerTestOneInput (const char *d, unsigned long n)
{ return 0; }' > "$probe"
clang -fsanitize=fuzzer,address "$probe" -o "$out/probe" 2>/dev/null \
  || skip "clang cannot link with -fsanitize=fuzzer (libclang-rt-dev?)"

if [ ! -f "$fb/CMakeCache.txt" ]; then
  cmake -S "$SRCDIR" -B "$fb" -DCMAKE_C_COMPILER=clang \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUZZ=ON -DSANITIZE=ON -DWERROR=OFF \
    -DWITH_PYTHON=OFF -DWITH_LUA=OFF -DWITH_OCAML=OFF \
    -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" >"$out/cmake.log" 2>&1 \
    || { tail -20 "$out/cmake.log"; echo "run-fuzz: FAIL: configure"; exit 1; }
fi
cmake --build "$fb" -j"${FUZZ_JOBS:-2}" --target fuzz-all \
  >"$out/build.log" 2>&1 \
  || { tail -30 "$out/build.log"; echo "run-fuzz: FAIL: build"; exit 1; }

# Leaks are checked after each input that allocated more than it freed
# (libFuzzer's -detect_leaks); not at exit, where the plugin's global
# state is still held.  clang 14's LeakSanitizer sometimes crashes in
# its own thread tracer on Debian 12's glibc ("Tracer caught signal
# 11"): that is reported, but is not a finding.
export ASAN_OPTIONS="detect_leaks=1:leak_check_at_exit=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
rc=0

# The reproducers of what the fuzzers found: each must now pass.  A
# harness that still crashes on one is not run further: it would only
# find the same again.
failed=" "
for f in "$here"/crashes/*; do
  [ -f "$f" ] || continue
  mode="$(basename "$f")"
  mode="${mode%%-*}"
  case " $modes " in *" $mode "*) ;; *) continue ;; esac
  if ! "$fb/tests/fuzz/fuzz-$mode" -timeout=20 -rss_limit_mb=3072 "$f" \
       >"$out/crash-$(basename "$f").log" 2>&1; then
    echo "run-fuzz: FAIL: fuzz-$mode $f; see $out/crash-$(basename "$f").log"
    grep -E '^fuzz:|ERROR|SUMMARY' "$out/crash-$(basename "$f").log" | head -5
    failed="$failed$mode "
    rc=1
  fi
done

for mode in $modes; do
  case "$failed" in *" $mode "*) continue ;; esac
  work="$out/work-$mode"
  mkdir -p "$work"
  echo "run-fuzz: fuzz-$mode for ${secs}s"
  "$fb/tests/fuzz/fuzz-$mode" -max_total_time="$secs" -timeout=20 \
    -rss_limit_mb=3072 -max_len=8192 -print_final_stats=1 \
    -dict="$here/nbd.dict" -artifact_prefix="$out/artifacts/$mode-" \
    "$work" "$here/corpus-$mode" >"$out/fuzz-$mode.log" 2>&1
  r=$?
  grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss)' \
    "$out/fuzz-$mode.log" | sed "s/^/  $mode: /"
  if [ $r -ne 0 ] && grep -q 'LeakSanitizer has encountered a fatal error' \
       "$out/fuzz-$mode.log" && ! grep -Eq \
       'ERROR: (AddressSanitizer|LeakSanitizer: detected)|runtime error|libFuzzer: (timeout|out-of-memory)' \
       "$out/fuzz-$mode.log"; then
    echo "run-fuzz: WARNING: fuzz-$mode: LeakSanitizer's tracer crashed" \
         "(a clang 14 / glibc problem, not a finding); see $out/fuzz-$mode.log"
    sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$out/fuzz-$mode.log" \
      | sort -u | xargs -r rm -f
    r=0
  fi
  if [ $r -ne 0 ]; then
    echo "run-fuzz: FAIL: fuzz-$mode exited $r; see $out/fuzz-$mode.log"
    grep -E '^fuzz:|ERROR|SUMMARY|Test unit written' "$out/fuzz-$mode.log" | head
    rc=1
  fi
done
[ $rc -eq 0 ] && echo "run-fuzz: OK"
exit $rc
