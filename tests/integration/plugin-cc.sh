#!/usr/bin/env bash
# cc plugin: a plugin given as C source (a file or standard input) is
# compiled and served; API 1, 2 and 3 sources; parameters reach the
# compiled plugin and are checked against its declarations; CC, CFLAGS
# and EXTRA_CFLAGS; C++; a self-contained "C script"; an OCaml source
# handed to the OCaml host; compile errors and missing sources are
# clear errors.  The temporary files are removed.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo
requires nbdsh --version
requires cc --version
export TMPDIR="$tmpdir/tmp"
mkdir -p "$TMPDIR"

# An API 2 plugin: the example users copy from nbdkit's documentation.
cat > p2.c <<'C'
#include <stdint.h>
#include <string.h>
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#ifndef DISK_SIZE
#define DISK_SIZE (1024 * 1024)
#endif
static char data[DISK_SIZE];
static void *my_open (int readonly) { return NBDKIT_HANDLE_NOT_NEEDED; }
static int64_t my_get_size (void *h) { return sizeof data; }
static int my_pread (void *h, void *buf, uint32_t count, uint64_t offset,
                     uint32_t flags)
{ memcpy (buf, data + offset, count); return 0; }
static int my_pwrite (void *h, const void *buf, uint32_t count,
                      uint64_t offset, uint32_t flags)
{ memcpy (data + offset, buf, count); return 0; }
static struct nbdkit_plugin plugin = {
  .name = "myplugin", .open = my_open, .get_size = my_get_size,
  .pread = my_pread, .pwrite = my_pwrite,
};
NBDKIT_REGISTER_PLUGIN(plugin)
C

start_nbdkit p2 cc p2.c
assert_eq "API 2 size" "$(t nbdinfo --size "$uri")" 1048576
out=$(nbdsh_u "$uri" -c '
h.pwrite(b"compiled" * 512, 12288)
print(h.pread(4096, 12288) == b"compiled" * 512, h.pread(8, 0) == bytes(8))')
assert_eq "API 2 write and read back" "$out" "True True"
stop_nbdkit "$pid"

# The same source from standard input, with EXTRA_CFLAGS.
"$NBDKIT" -U - cc - EXTRA_CFLAGS="-DDISK_SIZE=2097152" \
  --run 'nbdinfo --size "$uri"' < p2.c > size.out
assert_eq "stdin + EXTRA_CFLAGS size" "$(cat size.out)" 2097152
# CFLAGS replaces the default flags entirely: without -shared the
# compiler makes a program and fails on the missing main.
if "$NBDKIT" -U - cc p2.c CFLAGS="-O0 -fPIC" --run true 2> cflags.err; then
  fail "CFLAGS without -shared did not replace the default flags"
fi
"$NBDKIT" -U - cc p2.c CFLAGS="-O0 -fPIC -shared -DDISK_SIZE=4096" \
  --run 'nbdinfo --size "$uri"' > size.out
assert_eq "CFLAGS size" "$(cat size.out)" 4096

# An API 3 plugin with typed parameters: size= and fill=, checked by
# the server before the plugin sees them.
cat > p3.c <<'C'
#include <stdint.h>
#include <string.h>
#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>
static int64_t size;
static int fill = 'x';
static int config (const char *key, const char *value)
{
  if (strcmp (key, "fill") == 0) fill = value[0];
  return 0;
}
static const struct nbdkit_param params[] = {
  { .name = "size", .type = NBDKIT_PARAM_SIZE, .flags = NBDKIT_PARAM_REQUIRED,
    .doc = "disk size", .dest = &size },
  { .name = "fill", .type = NBDKIT_PARAM_STRING, .doc = "fill byte" },
  { .name = NULL },
};
static void *my_open (int ro, const char *name, int tls) { return NBDKIT_HANDLE_NOT_NEEDED; }
static int64_t get_size (void *h) { return size; }
static int my_pread (void *h, void *buf, uint64_t count, uint64_t offset,
                     uint32_t flags, struct nbdkit_read *rd)
{ memset (buf, fill, count); return 0; }
static struct nbdkit_plugin plugin = {
  .name = "typed", .params = params, .config = config, .open = my_open,
  .get_size = get_size, .pread = my_pread, .pread_fills_buffer = 1,
};
NBDKIT_REGISTER_PLUGIN(plugin)
C
"$NBDKIT" -U - cc p3.c size=3M fill=q \
  --run 'nbdinfo --size "$uri"; nbdsh -u "$uri" -c "print(bytes(h.pread(4, 5000)))"' \
  > p3.out
assert_eq "API 3 typed parameters" "$(tr '\n' ' ' < p3.out)" "3145728 b'qqqq' "
if "$NBDKIT" -U - cc p3.c size=lots --run true 2> p3.err; then
  fail "a bad size= was accepted"
fi
grep -q "size" p3.err || fail "bad size= message: $(cat p3.err)"
if "$NBDKIT" -U - cc p3.c --run true 2> p3.err; then
  fail "a missing required size= was accepted"
fi
grep -q "size" p3.err || fail "missing size= message: $(cat p3.err)"
if "$NBDKIT" -U - cc p3.c size=1M colour=red --run true 2> p3.err; then
  fail "an unknown key was accepted"
fi
grep -q "colour" p3.err || fail "unknown key message: $(cat p3.err)"

# An API 1 plugin (handles, 32-bit counts, no flags).
cat > p1.c <<'C'
#include <stdint.h>
#include <string.h>
#define NBDKIT_API_VERSION 1
#include <nbdkit-plugin.h>
#define THREAD_MODEL NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS
static int h;
static void *my_open (int ro) { return &h; }
static int64_t get_size (void *x) { return 65536; }
static int my_pread (void *x, void *buf, uint32_t count, uint64_t offset)
{ memset (buf, 'v', count); memcpy (buf, "one", count < 3 ? count : 3); return 0; }
static struct nbdkit_plugin plugin = {
  .name = "apione", .open = my_open, .get_size = get_size, .pread = my_pread,
};
NBDKIT_REGISTER_PLUGIN(plugin)
C
"$NBDKIT" -U - cc p1.c \
  --run 'nbdsh -u "$uri" -c "print(h.get_size(), bytes(h.pread(5, 0)))"' > p1.out
assert_eq "API 1" "$(cat p1.out)" "65536 b'onevv'"

# C++ with CC=g++.
if command -v g++ > /dev/null; then
  sed 's/static char data\[DISK_SIZE\];/static char data[DISK_SIZE]; static_assert (sizeof data > 0, "c++");/' \
    p2.c > p2.cpp
  "$NBDKIT" -U - cc CC=g++ p2.cpp --run 'nbdinfo --size "$uri"' > cpp.out
  assert_eq "C++ size" "$(cat cpp.out)" 1048576
fi

# A self-contained C script, run as a command.
{
  printf '#if 0\nexec "$NBDKIT" cc "$0" "$@"\n#endif\n'
  cat p2.c
} > script.c
chmod +x script.c
./script.c -U - EXTRA_CFLAGS=-DDISK_SIZE=8192 --run 'nbdinfo --size "$uri"' \
  > script.out
assert_eq "C script size" "$(cat script.out)" 8192

# Errors: a compile error names the source and the command; nothing
# is served and no temporary file stays behind.
printf 'this is not C;\n' > broken.c
if "$NBDKIT" -U - cc broken.c --run true 2> broken.err; then
  fail "a source that does not compile was served"
fi
grep -q "compiling .*broken.c failed" broken.err \
  || fail "compile error message: $(cat broken.err)"
if "$NBDKIT" -U - cc --run true 2> none.err; then
  fail "cc without a source was accepted"
fi
grep -q "no source file" none.err || fail "no source message: $(cat none.err)"
if "$NBDKIT" -U - cc missing.c --run true 2> missing.err; then
  fail "a missing source was accepted"
fi
grep -q "missing.c" missing.err || fail "missing source message: $(cat missing.err)"
if "$NBDKIT" -U - cc p2.c p3.c --run true 2> two.err; then
  fail "two sources were accepted"
fi
grep -q "only one source" two.err || fail "two sources message: $(cat two.err)"
left=$(ls "$TMPDIR")
assert_eq "temporary files left" "$left" ""

# --dump-plugin shows the compiler and flags used by default.
"$NBDKIT" cc --dump-plugin > dump.out
grep -q "^CC=" dump.out || fail "--dump-plugin lacks CC: $(cat dump.out)"
grep -q "^CFLAGS=.*-shared" dump.out \
  || fail "--dump-plugin lacks CFLAGS: $(cat dump.out)"

# An OCaml source goes to the OCaml host.
if command -v ocamlfind > /dev/null && [ -f "$BUILDDIR/plugins/nbdkit-ocaml-plugin.so" ]; then
  "$NBDKIT" -U - cc "$SRCDIR/plugins/ocaml/ramdisk.ml" size=5M \
    --run 'nbdsh -u "$uri" -c "h.pwrite(b\"caml\", 4096); print(h.get_size(), bytes(h.pread(4, 4096)))"' \
    > ml.out
  assert_eq "OCaml via cc" "$(cat ml.out)" "5242880 b'caml'"
else
  note "no ocamlfind or OCaml host: the OCaml case was not run"
fi
