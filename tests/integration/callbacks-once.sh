#!/usr/bin/env bash
# Every answer a connection needs from the plugin is asked once per
# connection and cached, as nbdkit does: default_export (however often
# the handshake needs it: OPT_LIST, then OPT_INFO and OPT_GO on the
# default name, through a filter too), can_flush (which also decides
# FUA emulation), and every other can_* and get_size.  A new
# connection asks again.  (Also: a script without zero gets fast zero
# offered, as the server emulates zero.)
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

cat > plug.sh <<EOF2
#!/bin/sh
echo "\$1" >> $tmpdir/calls
case "\$1" in
  default_export) echo dflt ;;
  get_size) echo 1M ;;
  can_write) exit 0 ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh

for filter in "" --filter=nozero; do
  rm -f calls
  if [ -z "$filter" ]; then export FZ=1; else export FZ=0; fi
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
assert h.can_fua() is False
# No zero method: the server emulates it, so fast zero is offered
# (unless a filter takes zero away).
import os
assert h.can_fast_zero() is (os.environ[\"FZ\"] == \"1\")
"; done' || fail "client failed ($filter)"
  # nbdkit closes and reopens the export between OPT_INFO and OPT_GO;
  # we keep it open, so each can_* is asked once per connection.
  methods=default_export
  if [ "$OURS" = 1 ]; then
    methods="$methods can_write can_flush can_fua can_trim get_size"
    [ -z "$filter" ] && methods="$methods can_zero"
  fi
  for m in $methods; do
    assert_eq "calls to $m for two connections ($filter)" \
      "$(grep -cx "$m" calls)" 2
  done
done
echo "callbacks-once: OK"
