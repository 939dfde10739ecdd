#!/usr/bin/env bash
# filters/lua/ip.lua: clients matching an allow rule are served; else
# those matching a deny rule are refused before the handshake; else
# served.  Rules: all, allipv4/allipv6, unix, addresses and networks,
# uid:N.  Checked over a Unix socket and over TCP on 127.0.0.1.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo
[ -f "$BUILDDIR/filters/nbdkit-lua-filter.so" ] || skip "Lua host not built"
IP="$SRCDIR/filters/lua/ip.lua"

# served ARGS...: nbdinfo through a Unix socket gets the size.
served () { t "$NBDKIT" -U - --filter="$IP" memory 1M "$@" \
              --run 'nbdinfo --size "$uri"' > out 2> err; }
served_tcp () { t "$NBDKIT" -p "$(free_port)" -i 127.0.0.1 --filter="$IP" \
                  memory 1M "$@" --run 'nbdinfo --size "$uri"' > out 2> err; }

ok () { "$@" || { cat err; fail "refused: $*"; }
        assert_eq "$*" "$(cat out)" 1048576; }
refused () {
  if "$@"; then fail "served: $*"; fi
  grep -q "refused by ip filter" err || { cat err; fail "no message: $*"; }
}

ok served
refused served deny=all
ok served allow=unix deny=all
refused served allow=allipv4,allipv6 deny=unix
ok served allow="uid:$(id -u)" deny=all
refused served allow="uid:$(( $(id -u) + 1 ))" deny=all

ok served_tcp
ok served_tcp allow=127.0.0.1 deny=all
ok served_tcp allow=127.0.0.0/8 deny=all
refused served_tcp deny=127.0.0.0/8
refused served_tcp allow=10.0.0.0/8 deny=allipv4
refused served_tcp allow=::1 allow=unix deny=all
ok served_tcp deny=unix deny=::1/128

# Bad rules are refused at start, naming the key.
if t "$NBDKIT" -U - --filter="$IP" memory 1M allow=300.1.2.3 --run true \
     2> err; then
  fail "bad rule accepted"
fi
grep -q "allow: cannot parse rule '300.1.2.3'" err || { cat err; fail msg; }
note PASS
