#!/usr/bin/env bash
# Informational options: --version, --dump-config, --dump-plugin, plugin
# --help, and an unknown plugin name.
. "$(dirname "$0")/functions.sh"

t "$NBDKIT" --version > version.out
cat version.out
head -1 version.out | grep -q '^nbdkit' || fail "--version does not start with nbdkit"
t "$NBDKIT" -V | head -1 | grep -q '^nbdkit ' || fail "-V output"

t "$NBDKIT" --dump-config > config.out
for k in version plugindir filterdir host_os binary; do
  grep -q "^$k=." config.out || { cat config.out; fail "--dump-config lacks $k="; }
done
# version= agrees with --version.
v=$(sed -n 's/^version=//p' config.out)
grep -qF "$v" version.out || fail "--dump-config version=$v not in --version"

t "$NBDKIT" memory --dump-plugin > dump.out
grep -qx 'name=memory' dump.out || { cat dump.out; fail "--dump-plugin lacks name=memory"; }
grep -q '^path=.*memory' dump.out || fail "--dump-plugin lacks path="
grep -q '^thread_model=' dump.out || fail "--dump-plugin lacks thread_model="

t "$NBDKIT" memory --help > help.out
grep -q 'size' help.out || { cat help.out; fail "memory --help does not list size"; }
t "$NBDKIT" pattern --help | grep -q 'size' || fail "pattern --help lacks size"
t "$NBDKIT" file --help | grep -q 'file' || fail "file --help lacks file"
t "$NBDKIT" --help | grep -q -- '--run' || fail "--help lacks --run"

# Unknown plugin: non-zero exit and a message naming it.
set +e
t "$NBDKIT" nosuchplugin > unk.out 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "unknown plugin exited 0"
grep -q nosuchplugin unk.out || { cat unk.out; fail "message does not name the plugin"; }

# Missing required parameter: non-zero exit, names the key.
set +e
t "$NBDKIT" -U - memory --run true > nosize.out 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "memory without size exited 0"
grep -q size nosize.out || { cat nosize.out; fail "message does not name size"; }

# Unknown option.
if t "$NBDKIT" --no-such-option memory 1M > badopt.out 2>&1; then
  fail "unknown option accepted"
fi
echo "cmdline-info: OK"
