#!/usr/bin/env bash
# sh plugin: what open prints is the handle with exactly one trailing
# newline removed (as nbdkit), so export names ending in newlines, or
# made of them, reach the other methods intact.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

cat > plug.sh <<'EOF2'
#!/bin/bash
case "$1" in
  open) printf '%s\n' "$3" ;;
  get_size) LC_ALL=C; echo ${#2} ;;
  pread) printf %s "$2" | dd skip=$4 count=$3 iflag=skip_bytes,count_bytes 2>/dev/null ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh
start_nbdkit sh sh ./plug.sh
for e in "" test $'\n' $'x\n\n' $'\r' "テスト"; do
  export e sock
  t nbdsh -c '
import os
e = os.environ["e"]
h.set_export_name(e)
h.connect_unix(os.environ["sock"])
b = e.encode("utf-8")
assert h.get_size() == len(b), (h.get_size(), e)
if b:
    assert h.pread(len(b), 0) == b
' || fail "export name $(printf %q "$e")"
done
echo "sh-handle: OK"
