#!/usr/bin/env bash
# -D PLUGIN.FLAG=N sets the plugin's exported int PLUGIN_debug_FLAG
# before config; dashes in names become underscores; an unknown flag is
# only a warning (as with nbdkit).
. "$(dirname "$0")/functions.sh"
[ "$OURS" = 1 ] || skip "our server only"
requires cc --version
requires nbdinfo --version

cat > "$tmpdir/dbg.c" <<'C'
#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>
NBDKIT_DLL_PUBLIC int dbg_debug_level = 0;
NBDKIT_DLL_PUBLIC int dbg_debug_with_dash = 0;
static int dbg_config_complete (void)
{
  nbdkit_error ("level=%d with_dash=%d", dbg_debug_level,
                dbg_debug_with_dash);
  return 0;
}
static void *dbg_open (int ro, const char *e, int tls) { return "x"; }
static int64_t dbg_get_size (void *h) { return 512; }
static int dbg_pread (void *h, void *buf, uint64_t n, uint64_t off,
                      uint32_t f, struct nbdkit_read *rd)
{ return nbdkit_read_hole (rd, off, n); }
static struct nbdkit_plugin plugin = {
  .name = "dbg", .config_complete = dbg_config_complete,
  .open = dbg_open, .get_size = dbg_get_size, .pread = dbg_pread,
};
NBDKIT_REGISTER_PLUGIN (plugin)
C
cc -shared -fPIC -fvisibility=hidden -I"$SRCDIR/abi" -I"$BUILDDIR/abi" \
   "$tmpdir/dbg.c" -o "$tmpdir/dbg.so" || fail "cannot build the plugin"

"$NBDKIT" -D dbg.level=3 -D dbg.with-dash=7 -D dbg.nosuch=1 -U - \
  "$tmpdir/dbg.so" --run 'nbdinfo --size "$uri"' >"$tmpdir/out" 2>"$tmpdir/err" \
  || fail "server failed: $(cat "$tmpdir/err")"
grep -q "level=3 with_dash=7" "$tmpdir/err" || fail "flags not set: $(cat "$tmpdir/err")"
grep -qx 512 "$tmpdir/out" || fail "size: $(cat "$tmpdir/out")"
if "$NBDKIT" -D dbg.level -U - "$tmpdir/dbg.so" --run true 2>"$tmpdir/err"; then
  fail "-D without =VALUE was accepted"
fi
grep -q "format NAME.FLAG=N" "$tmpdir/err" || fail "message: $(cat "$tmpdir/err")"
echo "debug-flag: OK"
