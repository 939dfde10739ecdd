#!/usr/bin/env bash
# sh/eval list_exports: the output is read as lines, as nbdkit does, so
# an empty line is an export named "" and no output is no exports.
. "$(dirname "$0")/functions.sh"
requires nbdinfo --version

check () {
  printf "$1" > list.txt
  got=$(t "$NBDKIT" -U - eval list_exports="cat $tmpdir/list.txt" \
          get_size='echo 1' --run 'nbdinfo --list --json "$uri"' |
        "$PYTHON" -c 'import json, sys; print([e["export-name"] for e in json.load(sys.stdin)["exports"]])')
  assert_eq "list for $(printf %q "$1")" "$got" "$2"
}
check '' '[]'
check 'NAMES\n' '[]'
check 'INTERLEAVED\n' '[]'
check '\n' "['']"
check 'NAMES\n\n' "['']"
check 'INTERLEAVED\n\n\n' "['']"
check 'NAMES+DESCRIPTIONS\n\n' "['']"
check 'a\nb\n' "['a', 'b']"
echo "sh-list-exports: OK"
