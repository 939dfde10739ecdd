#!/usr/bin/env bash
# An external plugin builds against the installed headers found with
# pkg-config, and the installed server (moved anywhere) loads it by path.
. "$(dirname "$0")/functions.sh"
[ "$OURS" = 1 ] || skip "our server only"
requires pkg-config
requires cc --version
requires nbdsh --version

inst="$tmpdir/inst"
cmake --install "$BUILDDIR" --prefix "$inst" >/dev/null \
  || fail "cmake --install failed"
pc=$(find "$inst" -name nbdkit.pc | head -1)
[ -n "$pc" ] || fail "no nbdkit.pc installed"
cflags=$(PKG_CONFIG_PATH="$(dirname "$pc")" pkg-config --cflags nbdkit) \
  || fail "pkg-config --cflags nbdkit failed"
cc -Wall -Wextra -Wno-unused-parameter -Werror -shared -fPIC $cflags \
   "$SRCDIR/abi/example-plugin.c" -o "$tmpdir/example.so" \
  || fail "the example plugin does not build against installed headers"

out=$("$inst/bin/nbdkit" -U - "$tmpdir/example.so" 1M fill=0x55 \
  --run 'nbdsh -u "$uri" -c "
assert h.get_size() == 1048576
assert h.pread(4, 1000) == b\"UUUU\"
h.pwrite(b\"abc\", 7)
print(h.pread(4, 6).hex())
"') || fail "serving the example plugin failed"
[ "$out" = 55616263 ] || fail "read back '$out', expected 55616263"

# The installed server finds its own plugins relative to itself.
"$inst/bin/nbdkit" -U - memory 1M --run 'nbdinfo --size "$uri"' \
  | grep -qx 1048576 || fail "installed server cannot find memory"

# Bad parameters are refused with the key named.
if "$inst/bin/nbdkit" -U - "$tmpdir/example.so" 1M fill=300 \
     --run true 2>"$tmpdir/err"; then
  fail "fill=300 was accepted"
fi
grep -q "fill=300" "$tmpdir/err" || fail "error does not name fill: $(cat "$tmpdir/err")"
echo "external-plugin: OK"
