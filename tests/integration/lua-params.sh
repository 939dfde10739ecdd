#!/usr/bin/env bash
# Lua host: typed parameters a script declares are checked by the
# server (unknown keys, bad values, missing required keys refused,
# naming the key); --help prints the script's leading comment and its
# parameters; --dump-plugin its facts; scripts that fail to load are
# reported with the file and line; `nbdkit SCRIPT.lua` and
# `nbdkit lua SCRIPT.lua` are the same.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo
[ -f "$BUILDDIR/plugins/nbdkit-lua-plugin.so" ] || skip "Lua host not built"

cat > p.lua <<'LUA'
#!/usr/bin/env nbdkit
-- Parameter test plugin.
--
-- It reports its size as the export description.
params = {
  { name = "size", type = "size", required = true, doc = "Size of the disk" },
  { name = "mode", type = "enum", choices = "a|b", default = "a",
    doc = "the mode" },
}
function get_size(h) return nbdkit.param("size") end
function export_description(h)
  return nbdkit.param("mode") .. ":" .. nbdkit.param("size")
end
function pread(h, count, offset, flags) return string.rep("\0", count) end
function dump_plugin() return { lua_test_key = "yes" } end
LUA

desc () { t "$NBDKIT" -U - "$@" --run 'nbdinfo "$uri"' | sed -n 's/^\tdescription: //p'; }
assert_eq plain "$(desc ./p.lua size=2k)" "a:2048"
assert_eq host "$(desc lua ./p.lua size=1M mode=b)" "b:1048576"
assert_eq script-key "$(desc lua script=./p.lua size=1k)" "a:1024"

must_refuse ()
{
  local want="$1"; shift
  if t "$NBDKIT" -U - "$@" --run true > refuse.out 2>&1; then
    fail "started with $*"
  fi
  grep -qF -- "$want" refuse.out || { cat refuse.out; fail "$*: no '$want'"; }
}
must_refuse "unknown parameter 'colour'" ./p.lua size=1M colour=red
must_refuse "size=lots" ./p.lua size=lots
must_refuse "size" ./p.lua
must_refuse "mode" ./p.lua size=1M mode=c

t "$NBDKIT" ./p.lua --help > help.out
grep -q "^Parameter test plugin\.$" help.out || { cat help.out; fail "no doc"; }
grep -q "It reports its size" help.out || fail "doc body missing"
grep -q "size=<SIZE>.*Size of the disk" help.out || fail "param help missing"
grep -q "mode=<a|b>" help.out || { cat help.out; fail "enum help missing"; }
if grep -q "env nbdkit" help.out; then fail "#! line in help"; fi

t "$NBDKIT" ./p.lua --dump-plugin > dump.out
grep -q "^lua_version=Lua 5.4" dump.out || fail "no lua_version"
grep -q "^lua_script=.*/p.lua$" dump.out || fail "no lua_script"
grep -q "^lua_test_key=yes$" dump.out || fail "script dump_plugin missing"
grep -q "^thread_model=serialize_all_requests$" dump.out ||
  { cat dump.out; fail "default thread model"; }

# `help` as a string global wins over the comment.
cat > h.lua <<'LUA'
-- not this
help = "Help from the global."
function get_size(h) return 512 end
function pread(h, c, o, f) return string.rep("\0", c) end
LUA
t "$NBDKIT" ./h.lua --help > help2.out
grep -q "^Help from the global\.$" help2.out || fail "help global"

# Scripts without params get every key as a string in config.
cat > any.lua <<'LUA'
local got = {}
function config(k, v) got[#got + 1] = k .. "=" .. v .. ":" .. type(v) end
function get_size(h) return 512 end
function export_description(h) return table.concat(got, ",") end
function pread(h, c, o, f) return string.rep("\0", c) end
LUA
assert_eq untyped "$(desc ./any.lua a=1 b=x)" "a=1:string,b=x:string"

# Load errors name the file and line.
printf 'function get_size(h)\n  return 1 +\nend\n' > syntax.lua
must_refuse "syntax.lua:3" ./syntax.lua
printf 'error("top level boom")\n' > boom.lua
must_refuse "top level boom" ./boom.lua
printf 'function get_size(h) return 1 end\n' > nopread.lua
must_refuse "pread" ./nopread.lua
printf 'params = {{name="x", type="colour"}}\nfunction get_size() return 1 end\nfunction pread() end\n' > baddecl.lua
must_refuse "unknown type 'colour'" ./baddecl.lua
note PASS
