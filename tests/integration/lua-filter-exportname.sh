#!/usr/bin/env bash
# filters/lua/exportname.lua: the default export's name, the list of
# exports clients see (keep, error, empty, defaultonly, explicit), strict
# names (others refused), and the export description.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo
[ -f "$BUILDDIR/filters/nbdkit-lua-filter.so" ] || skip "Lua host not built"
EN="$SRCDIR/filters/lua/exportname.lua"

# A plugin that tells which name it was opened with, and lists p1, p2.
cat > names.lua <<'LUA'
function open(readonly, name, is_tls) return name end
function get_size(h) return 512 end
function export_description(h) return "opened:" .. h end
function list_exports(readonly, is_tls) return { "p1", "p2" } end
function default_export(readonly, is_tls) return "p1" end
function pread(h, c, o, f) return string.rep("\0", c) end
LUA

# run ARGS... -- CMD: the server with the filter, CMD under --run.
run () {
  local args=()
  while [ "$1" != -- ]; do args+=("$1"); shift; done; shift
  t "$NBDKIT" -U - --filter="$EN" ./names.lua "${args[@]}" --run "$*"
}
desc () { sed -n 's/^\tdescription: //p'; }
list () { grep -E '^export=' | sed 's/^export="\(.*\)":$/\1/' | tr '\n' ' '; }

# keep: the plugin's list and default.
assert_eq keep-list "$(run -- 'nbdinfo --list "$uri"' | list)" "p1 p2 "
assert_eq keep-default "$(run -- 'nbdinfo "$uri"' | desc)" "opened:p1"

# default-export renames "".
assert_eq default "$(run default-export=zz -- 'nbdinfo "$uri"' | desc)" \
  "opened:zz"

# Lists.
assert_eq explicit "$(run exportname-list=explicit exportname=a exportname=b \
  -- 'nbdinfo --list "$uri"' | list)" "a b "
assert_eq empty "$(run exportname-list=empty -- 'nbdinfo --list "$uri"' |
  list)" ""
assert_eq defaultonly "$(run exportname-list=defaultonly default-export=d \
  -- 'nbdinfo --list "$uri"' | list)" "d "
if run exportname-list=error -- 'nbdinfo --list "$uri"' > /dev/null 2>&1; then
  fail "exportname-list=error listed"
fi

# Strict names.
strict=(exportname-strict=true exportname=a exportname=b default-export=a)
assert_eq strict-a "$(run "${strict[@]}" -- \
  'nbdinfo "nbd+unix:///b?socket=$unixsocket"' | desc)" "opened:b"
# The default export only with exportname= (empty), as in nbdkit.
if run "${strict[@]}" -- 'nbdinfo "$uri"' > /dev/null 2> err; then
  fail "strict: the default export was served without exportname="
fi
grep -q "default export is not one of the permitted names" err ||
  { cat err; fail "strict default message"; }
assert_eq strict-default "$(run "${strict[@]}" exportname= -- \
  'nbdinfo "$uri"' | desc)" "opened:a"
if run "${strict[@]}" -- 'nbdinfo "nbd+unix:///zzz?socket=$unixsocket"' \
     > /dev/null 2> err; then
  fail "strict: zzz was served"
fi
grep -q "export 'zzz' is not one of the permitted names" err ||
  { cat err; fail "strict message"; }
# Not strict: any name passes.
assert_eq loose "$(run exportname=a -- \
  'nbdinfo "nbd+unix:///zzz?socket=$unixsocket"' | desc)" "opened:zzz"

# Descriptions.
assert_eq fixed "$(run exportdesc=fixed:hello -- 'nbdinfo "$uri"' | desc)" \
  "hello"
assert_eq none "$(run exportdesc=none -- 'nbdinfo "$uri"' | desc)" ""
assert_eq script "$(run 'exportdesc=script:echo "<$name>"' -- \
  'nbdinfo "nbd+unix:///it%27s?socket=$unixsocket"' | desc)" "<it's>"
# exportdesc applies to the listed exports too.
ldesc () { grep -E '^\sdescription:' | sed 's/^\sdescription: //' | tr '\n' ' '; }
assert_eq list-fixed "$(run exportdesc=fixed:hi -- 'nbdinfo --list "$uri"' |
  ldesc)" "hi hi "
assert_eq list-script "$(run 'exportdesc=script:echo $name$name' -- \
  'nbdinfo --list "$uri"' | ldesc)" "p1p1 p2p2 "

# default-export= (empty): the client sees "", the plugin below opens
# its own default export, as in nbdkit.
assert_eq empty-default "$(run default-export= -- 'nbdinfo "$uri"' |
  grep -E '^export=' )" 'export="":'
assert_eq empty-default-opened "$(run default-export= -- 'nbdinfo "$uri"' |
  desc)" "opened:p1"

# A plugin without a list of its own: its default export is listed.
assert_eq memory-list "$(t "$NBDKIT" -U - --filter="$EN" memory 1M \
  --run 'nbdinfo --list "$uri"' | list)" " "
note PASS
