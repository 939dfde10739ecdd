#!/usr/bin/env bash
# sh plugin, list_exports: every newline ends a line, so an empty line
# is an export named "" ("\n" lists one export, "" none); with
# NAMES+DESCRIPTIONS the first half of the lines (rounded up) are names.
. "$(dirname "$0")/functions.sh"
requires nbdinfo --version

cat > plug.sh <<'EOF2'
#!/bin/bash
case "$1" in
  list_exports) cat "$TESTDIR/list" ;;
  open) echo "$3" ;;
  get_size) echo 1 ;;
  pread) dd if=/dev/zero count=$3 iflag=count_bytes 2>/dev/null ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh
export TESTDIR="$tmpdir"
start_nbdkit sh sh ./plug.sh

# check FORMAT EXPECTED: EXPECTED is python's repr of [(name, desc), ...]
check ()
{
  printf "$1" > list
  t nbdinfo --list --json "$uri" > out.json || fail "nbdinfo --list ($1)"
  got="$("$PYTHON" -c '
import json, sys
d = json.load(open("out.json"))
print([(e["export-name"], e.get("description")) for e in d["exports"]])')"
  assert_eq "list of '$1'" "$got" "$2"
}
check '' '[]'
check 'NAMES\n' '[]'
check 'INTERLEAVED\n' '[]'
check '\n' "[('', None)]"
check 'NAMES\n\n' "[('', None)]"
check 'INTERLEAVED\n\n' "[('', None)]"
check 'NAMES+DESCRIPTIONS\n\n' "[('', None)]"
check 'a\n\nb\n' "[('a', None), ('', None), ('b', None)]"
check 'a\nb' "[('a', None), ('b', None)]"
check 'NAMES+DESCRIPTIONS\nx 1\nx two\nd 1\n' "[('x 1', 'd 1'), ('x two', None)]"
check 'NAMES+DESCRIPTIONS\nx 1\nx two\nd 1\nd 2\n' "[('x 1', 'd 1'), ('x two', 'd 2')]"
check 'INTERLEAVED\nx 1\nd 1\nx two\n' "[('x 1', 'd 1'), ('x two', None)]"
echo "sh-list-exports: OK"
