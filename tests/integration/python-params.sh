#!/usr/bin/env bash
# Python host: typed parameters declared by the script.  The server
# checks and converts them (unknown keys, bad values and missing
# required keys are refused, naming the key), applies defaults, and the
# script gets Python values (Param.value and config(key, value));
# --help shows the docstring and the parameters; --dump-plugin the
# python_* facts.  Scripts without params get every key as a string.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo

cat > p.py <<'PY'
"""Parameter test plugin.

It reports its parameters as the export description.
"""
import nbdkit

API_VERSION = 3
size = nbdkit.Param("size", nbdkit.SIZE, required=True, doc="Size of the disk")
mode = nbdkit.Param("mode", nbdkit.ENUM, choices=["a", "b"], default="a",
                    doc="the mode")
ro = nbdkit.Param("ro", nbdkit.BOOL, default=False)
count = nbdkit.Param("count", nbdkit.INT, default=7)
tag = nbdkit.Param("tag", nbdkit.LIST)
params = [size, mode, ro, count, tag]
seen = []

def config(key, value):
    seen.append("%s=%r" % (key, value))

def get_size(h):
    return size.value

def export_description(h):
    return "|".join([repr(p.value) for p in params] + seen)

def pread(h, buf, offset, flags):
    pass
PY

desc () { t "$NBDKIT" -U - p.py "$@" --run 'nbdinfo "$uri"' | sed -n 's/^\tdescription: //p'; }

got="$(desc size=1M)"
assert_eq defaults "$got" "1048576|'a'|False|7|[]|size=1048576|mode='a'|ro=False|count=7"
got="$(desc size=2k mode=b ro=yes count=0x10 tag=x tag=y)"
assert_eq given "$got" "2048|'b'|True|16|['x', 'y']|size=2048|mode='b'|ro=True|count=16|tag='x'|tag='y'"

# must_refuse EXPECTED ARGS...: the server refuses ARGS with EXPECTED.
must_refuse ()
{
  local want="$1"; shift
  if t "$NBDKIT" -U - p.py "$@" --run true > refuse.out 2>&1; then
    fail "started with $*"
  fi
  grep -qF -- "$want" refuse.out || { cat refuse.out; fail "$*: no '$want'"; }
}
must_refuse "unknown parameter 'colour'" size=1M colour=red
must_refuse "size=lots" size=lots
must_refuse "expected a size" size=lots
must_refuse "missing required parameter 'size'"
must_refuse "mode=c: expected one of a|b" size=1M mode=c
must_refuse "ro=maybe" size=1M ro=maybe
# A key given twice: the last one counts, as in nbdkit.
got="$(desc size=1M size=2k)"
assert_eq twice "$got" "2048|'a'|False|7|[]|size=1048576|size=2048|mode='a'|ro=False|count=7"

# --help: the docstring and the parameters.
t "$NBDKIT" p.py --help > help.out
for want in "Parameter test plugin." "It reports its parameters" \
    "size=<SIZE>" "(required) Size of the disk" "mode=<a|b>" \
    "(default: a)" "ro=<BOOL>" "count=<INT>" "tag=<STRING>"; do
  grep -qF -- "$want" help.out || { cat help.out; fail "--help: no '$want'"; }
done
t "$NBDKIT" python --help | grep -q "script=<FILE>" || fail "python --help"

# --dump-plugin
t "$NBDKIT" p.py --dump-plugin > dump.out
for want in "name=python" "python_version=$(/usr/bin/python3 -c "import platform; print(platform.python_version())")" "python_pep_384_abi_version=3" \
    "python_api_version=3" "python_script=$tmpdir/p.py" \
    "python_callbacks=config,get_size,export_description,pread" \
    "python_param_size=size,required" \
    "python_param_mode=enum,choices=a|b,default=a" \
    "thread_model=serialize_all_requests"; do
  grep -qxF -- "$want" dump.out || { cat dump.out; fail "--dump-plugin: no '$want'"; }
done

# A script without params: every key reaches config as a string.
cat > old.py <<'PY'
got = []
def config(key, value):
    got.append("%s=%r" % (key, value))
def open(readonly):
    return 1
def get_size(h):
    return 512
def export_description(h):
    return ",".join(got)
def pread(h, count, offset):
    return bytes(count)
PY
got="$(t "$NBDKIT" -U - old.py anything=1G other=x --run 'nbdinfo "$uri"' |
       sed -n 's/^\tdescription: //p')"
assert_eq untyped "$got" "anything='1G',other='x'"
echo "python-params: OK"
