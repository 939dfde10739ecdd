#!/usr/bin/env bash
# Typed parameters of an API 3 plugin loaded by path (the test plugin,
# which declares many): --help and --dump-plugin list them, a server
# starts with them, and bad values are refused with a message naming
# the key and the expected form -- exit status 1, never a crash.
. "$(dirname "$0")/functions.sh"
requires_ours
: "${TESTPLUG:=$BUILDDIR/tests/plugins/nbdkit-testplug-plugin.so}"
[ -f "$TESTPLUG" ] || skip "test plugin not built"

# expect_status WANT OUTFILE CMD...: run CMD, check its exit status.
expect_status ()
{
  local want="$1" out="$2" rc=0
  shift 2
  t "$@" > "$out" 2>&1 || rc=$?
  sed 's/^/  | /' "$out"
  [ "$rc" = "$want" ] || fail "'$*' exited with $rc, expected $want"
}

expect_status 0 help.out "$NBDKIT" "$TESTPLUG" --help
grep -q '^  size=<SIZE>' help.out || fail "--help lacks size="
grep -q 'thread-model=<serialize_connections|' help.out \
  || fail "--help lacks thread-model choices"
grep -q 'delay-at=.*repeatable' help.out || fail "--help lacks delay-at"

expect_status 0 dump.out "$NBDKIT" "$TESTPLUG" --dump-plugin
grep -qx 'name=testplug' dump.out || fail "--dump-plugin: no name"
grep -qx 'api_version=3' dump.out || fail "--dump-plugin: no api_version=3"
grep -qx 'testplug_param_zero=enum,choices=native|eopnotsupp|none,default=native' \
  dump.out || fail "--dump-plugin: zero= not described"

expect_status 1 bad1.out "$NBDKIT" "$TESTPLUG" thread-model=bogus
grep -q 'thread-model=bogus' bad1.out || fail "message does not name the key"
grep -q 'serialize_retirement' bad1.out || fail "message lacks the choices"
expect_status 1 bad2.out "$NBDKIT" "$TESTPLUG" size=abc
grep -q 'size=abc' bad2.out || fail "message does not name the key"
expect_status 1 bad3.out "$NBDKIT" "$TESTPLUG" holes=maybe
grep -q 'holes=maybe' bad3.out || fail "message does not name the key"
expect_status 1 bad4.out "$NBDKIT" "$TESTPLUG" nosuchkey=1
grep -q "nosuchkey" bad4.out || fail "message does not name the key"
expect_status 1 bad5.out "$NBDKIT" "$TESTPLUG" delay-at=12
grep -q 'delay-at=12' bad5.out || fail "config error not shown"

# Values reach the plugin: size= and repeated delay-at=.
start_nbdkit tp "$TESTPLUG" size=12345 delay-at=0:1 delay-at=4096:1 \
  holes=yes zero=none
assert_eq "size" "$(t nbdinfo --size "$uri")" 12345
echo "core-params: OK"
