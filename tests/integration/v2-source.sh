#!/usr/bin/env bash
# Plugins written for nbdkit's API 2 compile unchanged against abi/ with
# -Werror: THREAD_MODEL defined after the #include (not a redefinition),
# NBDKIT_HANDLE_NOT_NEEDED as the handle; the model they choose is the
# one the server reports.
. "$(dirname "$0")/functions.sh"
requires_ours
requires cc --version
requires nbdsh --version

for order in after before none; do
  {
    [ $order = before ] &&
      echo '#define THREAD_MODEL NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS'
    cat <<'C'
#include <string.h>
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

static void *
v2_open (int readonly)
{
  (void) readonly;
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t
v2_get_size (void *handle)
{
  return handle == NBDKIT_HANDLE_NOT_NEEDED ? 4096 : -1;
}

static int
v2_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
          uint32_t flags)
{
  (void) handle; (void) offset; (void) flags;
  memset (buf, 'v', count);
  return 0;
}
C
    [ $order = after ] &&
      echo '#define THREAD_MODEL NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS'
    cat <<'C'
static struct nbdkit_plugin plugin = {
  .name = "v2src",
  .open = v2_open,
  .get_size = v2_get_size,
  .pread = v2_pread,
};
NBDKIT_REGISTER_PLUGIN (plugin)
C
  } > v2src-$order.c
  cc -Wall -Wextra -Werror -shared -fPIC -I"$SRCDIR/abi" -I"$BUILDDIR/abi" \
     v2src-$order.c -o v2src-$order.so \
    || fail "an API 2 plugin ($order) does not compile with -Werror"
  case $order in
    after) want=serialize_all_requests ;;
    before) want=serialize_requests ;;
    none) want=parallel ;;
  esac
  got=$(t "$NBDKIT" ./v2src-$order.so --dump-plugin | sed -n 's/^thread_model=//p')
  assert_eq "thread_model ($order)" "$got" "$want"
  out=$(t "$NBDKIT" -U - ./v2src-$order.so --run 'nbdsh -u "$uri" -c "
assert h.get_size() == 4096
print(h.pread(3, 100).decode())
"')
  assert_eq "read ($order)" "$out" vvv
done
echo "v2-source: OK"
