#!/usr/bin/env bash
# Python host: a script that cannot load stops the server from starting,
# with a message naming the script (and the traceback where there is
# one): syntax errors, exceptions at module level, missing get_size or
# pread, a bad API_VERSION, no script at all.
. "$(dirname "$0")/functions.sh"
requires_ours

# must_fail NAME EXPECTED-TEXT...: starting on NAME.py fails, and the
# message has every EXPECTED-TEXT.
must_fail ()
{
  local name="$1"; shift
  if t "$NBDKIT" -U - "$tmpdir/$name.py" --run true > "$name.out" 2>&1; then
    fail "$name: the server started"
  fi
  for want in "$@"; do
    grep -qF -- "$want" "$name.out" || {
      cat "$name.out"; fail "$name: no '$want' in the message"; }
  done
  note "$name: $(head -1 "$name.out")"
}

cat > syntax.py <<'PY'
import nbdkit
def get_size(h):
    return 1
def pread(h, buf, offset, flags)
    pass
PY
must_fail syntax "$tmpdir/syntax.py" "SyntaxError" "line 4"

cat > raises.py <<'PY'
import nbdkit
def helper():
    raise LookupError("cannot find the backing store")
helper()
PY
must_fail raises "$tmpdir/raises.py" "Traceback" "line 4" \
  "LookupError: cannot find the backing store"

cat > noimport.py <<'PY'
import no_such_module_here
PY
must_fail noimport "ModuleNotFoundError" "no_such_module_here"

cat > nopread.py <<'PY'
def get_size(h):
    return 1
PY
must_fail nopread "$tmpdir/nopread.py" "does not define pread()"

cat > nosize.py <<'PY'
def pread(h, count, offset):
    return bytes(count)
PY
must_fail nosize "$tmpdir/nosize.py" "does not define get_size()"

cat > badapi.py <<'PY'
API_VERSION = 7
def get_size(h): return 1
def pread(h, buf, offset, flags): pass
PY
must_fail badapi "$tmpdir/badapi.py" "API_VERSION must be 1, 2 or 3"

cat > badcomplete.py <<'PY'
API_VERSION = 3
def get_size(h): return 1
def pread(h, buf, offset, flags): pass
def config_complete():
    raise RuntimeError("config_complete says no")
PY
must_fail badcomplete "$tmpdir/badcomplete.py" "config_complete" \
  "RuntimeError: config_complete says no"

# No script, or one that does not exist.
if t "$NBDKIT" -U - python --run true > none.out 2>&1; then
  fail "started without a script"
fi
grep -q "script" none.out || { cat none.out; fail "no script: message"; }
if t "$NBDKIT" -U - python "$tmpdir/missing.py" --run true > missing.out 2>&1
then
  fail "started with a missing script"
fi
grep -q "missing.py" missing.out || { cat missing.out; fail "missing: message"; }
echo "python-load-errors: OK"
