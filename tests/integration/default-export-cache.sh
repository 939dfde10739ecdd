#!/usr/bin/env bash
# The plugin's default_export is asked once per connection, however
# often the handshake needs it (OPT_LIST, then OPT_INFO and OPT_GO on
# the default name), through a filter too; a new connection asks again.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

cat > plug.sh <<EOF2
#!/bin/sh
case "\$1" in
  default_export) echo x >> $tmpdir/calls; echo dflt ;;
  get_size) echo 1M ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh

for filter in "" --filter=nozero; do
  rm -f calls
  t "$NBDKIT" -U - $filter sh ./plug.sh --run 'for i in 1 2; do nbdsh -c "
h.set_opt_mode(True)
h.connect_uri(\"$uri\")
names = []
h.opt_list(lambda n, d: names.append(n))
assert names == [\"dflt\"], names
h.set_export_name(\"\")
h.opt_info()
h.opt_go()
assert h.get_size() == 1 << 20
"; done' || fail "client failed ($filter)"
  assert_eq "default_export calls for two connections ($filter)" \
    "$(wc -l < calls)" 2
done
echo "default-export-cache: OK"
