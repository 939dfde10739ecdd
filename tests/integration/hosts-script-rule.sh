#!/usr/bin/env bash
# The script= rule, the same in every language host (langs/common/
# script.h): the first key names the script; a later script=VALUE
# belongs to the script and reaches its config unchanged, as in nbdkit,
# instead of being refused or taken by the host.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo

cat > s.py <<'PY'
import nbdkit
API_VERSION = 2
seen = []
def config(key, value): seen.append("%s=%s" % (key, value))
def open(readonly): return 1
def get_size(h): return 512
def export_description(h): return ",".join(seen)
def pread(h, buf, offset, flags): buf[:] = bytes(len(buf))
PY

cat > s.lua <<'LUA'
local seen = {}
function config(key, value) seen[#seen + 1] = key .. "=" .. value end
function open(readonly) return {} end
function get_size(h) return 512 end
function export_description(h) return table.concat(seen, ",") end
function pread(h, count, offset, flags) return string.rep("\0", count) end
LUA

cat > s.ml <<'ML'
let seen = ref []
let () =
  NBDKit.register_plugin ~name:"scriptrule"
    ~config:(fun k v -> seen := (k ^ "=" ^ v) :: !seen)
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> 512L)
    ~export_description:(fun () -> String.concat "," (List.rev !seen))
    ~pread:(fun () buf _ _ -> Bytes.fill buf 0 (Bytes.length buf) '\000')
    ()
ML

desc () { t "$NBDKIT" -U - "$@" --run 'nbdinfo "$uri"' | sed -n 's/^\tdescription: //p'; }

ran=0
for host in python lua ocaml; do
  [ -f "$BUILDDIR/plugins/nbdkit-$host-plugin.so" ] || { note "$host: host not built"; continue; }
  case $host in
    python) ext=py ;;
    lua) ext=lua ;;
    ocaml) ext=ml
           command -v ocamlfind >/dev/null || { note "ocaml: no ocamlfind"; continue; }
           export XDG_CACHE_HOME="$tmpdir/cache" ;;
  esac
  assert_eq "$host: keys after the script" \
    "$(desc "$host" "./s.$ext" a=1 script=two b=2)" "a=1,script=two,b=2"
  assert_eq "$host: script= given by key" \
    "$(desc "$host" "script=./s.$ext" script=again)" "script=again"
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || skip "no language host built"
