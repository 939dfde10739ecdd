#!/usr/bin/env bash
# filters/lua/tls-fallback.lua: with --tls=on, a client without TLS sees
# one small read-only export holding the notice (tlsreadme=, alias
# tls-fallback-data=), and the plugin is not opened for it; a TLS
# client (PSK here) sees the plugin's disk.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdsh
requires psktool
[ -f "$BUILDDIR/filters/nbdkit-lua-filter.so" ] || skip "Lua host not built"
TF="$SRCDIR/filters/lua/tls-fallback.lua"

psktool -u alice -p keys.psk > /dev/null 2>&1 || skip "psktool failed"
cat > disk.lua <<'LUA'
-- 1 MiB of 'D'; counts opens in a file.
function open(readonly, name, is_tls)
  local f = io.open("opens", "a"); f:write("x"); f:close()
  return {}
end
function get_size(h) return 1048576 end
function can_write(h) return true end
function pread(h, c, o, f) return string.rep("D", c) end
function pwrite(h, buf, o, f) end
LUA

start_nbdkit tf --tls=on --tls-psk="$tmpdir/keys.psk" --filter="$TF" \
  ./disk.lua tls-fallback-data="Please use TLS."

# Plain client: the notice, 512 bytes, read-only, no description.
got="$(t nbdsh -c "
h.set_full_info(True)
h.connect_unix('$sock')
" -c '
print(h.get_size(), h.is_read_only(), h.get_tls_negotiated())
print(bytes(h.pread(15, 0)).decode(), bytes(h.pread(497, 15)) == bytes(497))
try:
    print("description:", h.get_export_description())
except nbd.Error:
    print("no description")
')"
assert_eq plain "$got" "512 True False
Please use TLS. True
no description"
[ ! -e opens ] || fail "the plugin was opened for a plain client"

# TLS client: the plugin.
got="$(t nbdsh -c "
h.set_tls(nbd.TLS_REQUIRE)
h.set_tls_psk_file('$tmpdir/keys.psk')
h.set_tls_username('alice')
h.connect_unix('$sock')
" -c '
print(h.get_size(), h.is_read_only(), h.get_tls_negotiated())
print(bytes(h.pread(4, 0)).decode())
h.pwrite(b"x", 0)
')"
assert_eq tls "$got" "1048576 False True
DDDD"
assert_eq opens "$(cat opens)" "x"
note PASS
