#!/usr/bin/env bash
# <nbdkit-server.h> as a user gets it: install the tree under a
# temporary prefix, build abi/example-embed.c against it with
# `pkg-config nbdkit-server`, run it (memory 1M on socket A, pattern 2M
# on socket B, two servers in one process), check both exports' sizes
# and bytes with nbdinfo and nbdsh, then stop it with SIGTERM.
. "$(dirname "$0")/functions.sh"
requires_ours
requires cmake
requires cc
requires pkg-config
requires nbdinfo
requires nbdsh
[ -f "$BUILDDIR/CMakeCache.txt" ] || skip "no build tree at $BUILDDIR"

prefix="$tmpdir/inst"
t cmake --install "$BUILDDIR" --prefix "$prefix" > install.log 2>&1 ||
  { cat install.log; fail "cmake --install"; }
pc=$(find "$prefix" -name nbdkit-server.pc | head -1)
[ -n "$pc" ] || fail "nbdkit-server.pc not installed"
[ -f "$prefix/include/nbdkit-server.h" ] || fail "nbdkit-server.h not installed"
export PKG_CONFIG_PATH="$(dirname "$pc")"
libdir=$(pkg-config --variable=libdir nbdkit-server)
[ -f "$libdir/libnbdkit.so" ] || fail "libnbdkit.so not in $libdir"

# A sanitized build's library needs the sanitizer runtime in the program.
extra=""
if grep -q '^SANITIZE:BOOL=ON' "$BUILDDIR/CMakeCache.txt"; then
  extra="-fsanitize=address,undefined"
elif grep -q '^TSAN:BOOL=ON' "$BUILDDIR/CMakeCache.txt"; then
  extra="-fsanitize=thread"
fi
# shellcheck disable=SC2046,SC2086
cc $extra -o example-embed "$SRCDIR/abi/example-embed.c" \
   $(pkg-config --cflags --libs nbdkit-server) -Wl,-rpath,"$libdir" ||
  fail "example-embed does not build against the installed tree"

# The installed plugins are found relative to the installed library,
# not from the build tree.
unset NBDKIT_PLUGINDIR NBDKIT_FILTERDIR
export ASAN_OPTIONS=detect_leaks=0
./example-embed "$tmpdir/a.sock" "$tmpdir/b.sock" > embed.out 2> embed.err &
epid=$!
register_pid "$epid"
for _ in $(seq 100); do
  [ -S "$tmpdir/a.sock" ] && [ -S "$tmpdir/b.sock" ] && break
  kill -0 "$epid" 2>/dev/null || { cat embed.err; fail "example-embed died"; }
  sleep 0.1
done
[ -S "$tmpdir/a.sock" ] && [ -S "$tmpdir/b.sock" ] || fail "sockets not made"
ua="nbd+unix:///?socket=$tmpdir/a.sock"
ub="nbd+unix:///?socket=$tmpdir/b.sock"

assert_eq "A size" "$(t nbdinfo --size "$ua")" 1048576
assert_eq "B size" "$(t nbdinfo --size "$ub")" 2097152
t nbdsh -u "$ua" -c '
h.pwrite(b"embedded A", 65536)
assert h.pread(10, 65536) == b"embedded A"
assert h.pread(16, 0) == bytes(16)
' || fail "A (memory) bytes"
t nbdsh -u "$ub" -c '
assert h.is_read_only()
for off in (0, 8, 4096, 2097144):
    assert h.pread(8, off) == off.to_bytes(8, "big"), off
' || fail "B (pattern) bytes"
# What one server stores does not show in the other.
t nbdsh -u "$ub" -c 'assert h.pread(8, 65536) == (65536).to_bytes(8, "big")' ||
  fail "B sees A's write"

kill -TERM "$epid"
rc=0
for _ in $(seq 100); do kill -0 "$epid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$epid" 2>/dev/null && fail "example-embed ignored SIGTERM"
wait "$epid" || rc=$?
cat embed.out embed.err
assert_eq "example-embed exit status" "$rc" 0
[ -e "$tmpdir/a.sock" ] && fail "socket A left behind"
echo "embed-installed: OK"
