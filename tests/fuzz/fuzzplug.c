/* fuzzplug.c: the plugin under the fuzzers (tests/fuzz/fuzz-server.c).
 * Loaded by path, never installed.
 *
 * Its answers come from a script of bytes the harness hands it before
 * each connection (fuzzplug_set_script, found with dlsym): every
 * decision (a capability, the outcome of a request, the shape of a
 * read or of an extent list) takes the next byte.  Byte 0 is always
 * the plain choice (full capabilities, a complete read, one extent),
 * and an exhausted script reads as zeroes, so without a script the
 * plugin is an ordinary read-write disk whose data is a pattern of the
 * offset (writes succeed and are forgotten).  The "script byte" in
 * its debug messages (FUZZ_VERBOSE=1) tells which byte a callback
 * took its decision from.
 *
 * Reads may come back short (part of the buffer left unwritten, which
 * the server must send as zeroes), fail, fail part way
 * (nbdkit_read_error_at), or be cut into data, holes and loans.  Each
 * loan is a fresh allocation freed by its release callback, so a
 * server touching a loan after releasing it is caught by
 * AddressSanitizer; fuzzplug_loans counts loans not yet released,
 * which the harness checks is 0 after each connection.
 *
 * Extents follow a layout the script's first byte chooses for the
 * whole connection (see fuzzplug_set_script and layout_type): each
 * block of 2^k bytes has a type, hash-chosen or alternating between
 * data and zeroed holes.  An answer may report less than the layout (a
 * type with fewer bits, as data for a hole), never more:
 * fuzzplug_types tells the harness what the layout allows for a range,
 * so it can check that the server never reports a hole or zeroes where
 * the plugin did not.  Answers come as one extent of data, as the
 * layout's own blocks (from before the request to past its end), as
 * pieces of script-chosen sizes, as more one-byte extents than the
 * server keeps (1M), or as a mistake (a gap, nothing at all, an
 * error).
 *
 *   size=SIZE   the disk (default 4M + 3, so the tail is unaligned)
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#define EXPORTED __attribute__ ((visibility ("default")))

/* A little more than the extents the server keeps for one reply. */
#define MANY_EXTENTS (1024 * 1024 + 2)

static int64_t size = 4 * 1024 * 1024 + 3;

static const uint8_t *script;
static size_t script_len, script_pos;

/* Extents a connection may still give one at a time (cases 1 and 2 of
 * fp_extents): enough to fill the server's list twice, few enough that
 * no input runs for long.
 */
#define EXTENTS_BUDGET (3 * 1024 * 1024)
static uint64_t budget;
static long loans;

/* The layout: blocks of 2^layout_shift bytes. */
static unsigned layout_shift;
static bool layout_alternate;
static uint64_t layout_seed;

EXPORTED void fuzzplug_set_script (const uint8_t *data, size_t len);
EXPORTED long fuzzplug_loans (void);
EXPORTED uint32_t fuzzplug_types (uint64_t offset, uint64_t len);
EXPORTED const uint8_t *fuzzplug_data (uint64_t *size);

/* The first byte chooses the layout; the rest are decisions. */
void
fuzzplug_set_script (const uint8_t *data, size_t len)
{
  unsigned l = len > 0 ? data[0] : 0;

  layout_shift = ((l & 0x1f) + 12) % 23; /* 0: 4 KiB blocks; 11: bytes */
  layout_alternate = l & 0x20;
  layout_seed = l >> 6;
  script = data;
  script_len = len;
  script_pos = len > 0 ? 1 : 0;
  budget = EXTENTS_BUDGET;
}

/* The type of block I of the layout. */
static uint32_t
layout_type (uint64_t i)
{
  uint64_t x;

  if (layout_alternate)
    return i & 1 ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0;
  x = (i + layout_seed) * UINT64_C (0x9E3779B97F4A7C15);
  return (x ^ (x >> 29)) >> 62;
}

/* The type bits every byte of [OFFSET, OFFSET+LEN) has in the layout:
 * the most an extent covering the range may report.
 */
uint32_t
fuzzplug_types (uint64_t offset, uint64_t len)
{
  uint32_t t = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;

  if (len == 0)
    return t;
  for (uint64_t i = offset >> layout_shift;
       t && i <= (offset + len - 1) >> layout_shift; i++)
    t &= layout_type (i);
  return t;
}

long
fuzzplug_loans (void)
{
  return __atomic_load_n (&loans, __ATOMIC_SEQ_CST);
}

/* The next decision: 0 once the script is used up. */
static unsigned
next (void)
{
  return script_pos < script_len ? script[script_pos++] : 0;
}

/* A length from 1 to MAX, mostly small, from the next byte (0: MAX). */
static uint64_t
next_len (uint64_t max)
{
  unsigned b = next ();
  uint64_t n;

  if (b == 0 || max == 0)
    return max;
  if (b < 128)
    n = b;
  else
    n = (uint64_t)1 << ((b - 128) % 24);
  return n < max ? n : max;
}

/* The disk's data, made once: a pattern of the offset. */
static uint8_t *disk;

static int
fp_config_complete (void)
{
  /* Configured again when a harness retries with other settings. */
  free (disk);
  disk = malloc (size);
  if (disk == NULL) {
    nbdkit_error ("malloc: %m");
    return -1;
  }
  for (int64_t i = 0; i < size; i++)
    disk[i] = (uint8_t)(i ^ (i >> 8) ^ (i >> 16));
  return 0;
}

static void
fp_unload (void)
{
  free (disk);
}

/* The disk's data and size, for the harness to check reads against. */
const uint8_t *
fuzzplug_data (uint64_t *sizep)
{
  *sizep = size;
  return disk;
}

static void
fill (uint8_t *p, uint64_t offset, uint64_t count)
{
  memcpy (p, disk + offset, count);
}

static const struct nbdkit_param params[] = { { .name = "size",
                                                .type = NBDKIT_PARAM_SIZE,
                                                .doc = "size of the disk",
                                                .dest = &size },
                                              { .name = NULL } };

static int
fp_list_exports (int readonly, int is_tls, struct nbdkit_exports *e)
{
  switch (next () % 3) {
    case 0:
      if (nbdkit_add_export (e, "", "the default export") == -1
          || nbdkit_add_export (e, "a", NULL) == -1
          || nbdkit_add_export (e, "b", "export b") == -1)
        return -1;
      return 0;
    case 1:
      return nbdkit_use_default_export (e);
    default:
      nbdkit_error ("list_exports failed");
      return -1;
  }
}

static const char *
fp_default_export (int readonly, int is_tls)
{
  return next () % 4 == 3 ? NULL : "";
}

static int handle_token;

static void *
fp_open (int readonly, const char *exportname, int is_tls)
{
  if (strcmp (exportname, "") != 0 && strcmp (exportname, "a") != 0
      && strcmp (exportname, "b") != 0) {
    nbdkit_error ("no export named %s", exportname);
    return NULL;
  }
  if (next () % 16 == 15) {
    nbdkit_error ("open failed");
    return NULL;
  }
  return &handle_token;
}

static int64_t
fp_get_size (void *h)
{
  switch (next () % 8) {
    case 6:
      return 0;
    case 7:
      nbdkit_error ("get_size failed");
      return -1;
    default:
      return size;
  }
}

static const char *
fp_export_description (void *h)
{
  return next () % 2 ? NULL : "a disk for fuzzing";
}

static int
fp_block_size (void *h, struct nbdkit_block_size *bs)
{
  switch (next () % 4) {
    case 0:
      return 0;
    case 1:
      bs->minimum = 512;
      bs->preferred = 4096;
      bs->maximum = 1024 * 1024;
      return 0;
    case 2:
      bs->minimum = 1;
      bs->preferred = 512;
      bs->maximum = 65536;
      bs->maximum_virtual = 2 * 1024 * 1024;
      bs->advisory = next () & 1;
      return 0;
    default:
      nbdkit_error ("block_size failed");
      return -1;
  }
}

/* A capability: 0 from the script means yes (or ANSWERS[0]). */
static int
cap (const int *answers, int n)
{
  return answers[next () % n];
}

static const int yes_no[] = { 1, 0, 1, -1 };

static int
fp_can_write (void *h)
{
  return cap (yes_no, 4);
}
static int
fp_can_flush (void *h)
{
  return cap (yes_no, 4);
}
static int
fp_is_rotational (void *h)
{
  return cap (yes_no, 3);
}
static int
fp_can_trim (void *h)
{
  return cap (yes_no, 4);
}
static int
fp_can_zero (void *h)
{
  static const int a[]
      = { NBDKIT_ZERO_NATIVE, NBDKIT_ZERO_EMULATE, NBDKIT_ZERO_NONE, -1 };
  return cap (a, 4);
}
static int
fp_can_fast_zero (void *h)
{
  return cap (yes_no, 4);
}
static int
fp_can_fua (void *h)
{
  static const int a[]
      = { NBDKIT_FUA_NATIVE, NBDKIT_FUA_EMULATE, NBDKIT_FUA_NONE, -1 };
  return cap (a, 4);
}
static int
fp_can_multi_conn (void *h)
{
  return cap (yes_no, 3);
}
static int
fp_can_extents (void *h)
{
  static const int a[] = { NBDKIT_EXTENTS_NATIVE, NBDKIT_EXTENTS_EMULATE,
                           NBDKIT_EXTENTS_NONE, -1 };
  return cap (a, 4);
}
static int
fp_can_cache (void *h)
{
  static const int a[]
      = { NBDKIT_CACHE_NATIVE, NBDKIT_CACHE_EMULATE, NBDKIT_CACHE_NONE, -1 };
  return cap (a, 4);
}

/* An error with an errno the script picks. */
static int
fail (const char *what)
{
  static const int errs[]
      = { EIO, ENOSPC, EINVAL, ENOMEM, EPERM, ESHUTDOWN, EOVERFLOW, ENOTSUP };
  int e = errs[next () % (sizeof errs / sizeof errs[0])];
  nbdkit_set_error (e);
  nbdkit_error ("%s failed (errno %d)", what, e);
  return -1;
}

static void
release (void *opaque)
{
  free (opaque);
  __atomic_sub_fetch (&loans, 1, __ATOMIC_SEQ_CST);
}

/* Lend [OFFSET, OFFSET+N) from a fresh copy, freed on release. */
static int
lend (struct nbdkit_read *rd, uint64_t offset, uint64_t n)
{
  uint8_t *p = malloc (n);
  if (p == NULL) {
    nbdkit_set_error (ENOMEM);
    return -1;
  }
  fill (p, offset, n);
  __atomic_add_fetch (&loans, 1, __ATOMIC_SEQ_CST);
  if (nbdkit_read_lend (rd, offset, p, n, release, p) == -1) {
    /* Not lent: the server does not call release. */
    release (p);
    return -1;
  }
  return 0;
}

static int
fp_pread (void *h, void *buf, uint64_t count, uint64_t offset, uint32_t flags,
          struct nbdkit_read *rd)
{
  uint8_t *b = buf;
  uint64_t done = 0;
  unsigned how = next () % 8;

  nbdkit_debug ("pread %" PRIu64 " at %" PRIu64 ": case %u (script byte %zu)",
                count, offset, how, script_pos);
  switch (how) {
    case 0: /* all of it */
      fill (b, offset, count);
      return 0;
    case 1: /* an error */
      return fail ("pread");
    case 2: /* short: the rest is never written */
      done = next_len (count);
      fill (b, offset, done);
      return 0;
    case 3: /* the whole request is a hole */
      return nbdkit_read_hole (rd, offset, count);
    case 4: /* one loan */
      return lend (rd, offset, count);
    case 5: /* data up to a point, then an error there */
      done = next_len (count) - 1;
      fill (b, offset, done);
      if (nbdkit_read_error_at (rd, offset + done) == -1)
        return -1;
      return fail ("pread part way");
    default: /* pieces of data, holes and loans */
      while (done < count) {
        unsigned kind = next () % 5;
        uint64_t n = next_len (count - done);
        int r = 0;
        switch (kind) {
          case 0:
          case 1:
            fill (b + done, offset + done, n);
            break;
          case 2:
            r = nbdkit_read_hole (rd, offset + done, n);
            break;
          case 3:
            r = lend (rd, offset + done, n);
            break;
          default:
            if (nbdkit_read_error_at (rd, offset + done) == -1)
              return -1;
            return fail ("pread in a piece");
        }
        if (r == -1)
          return -1;
        done += n;
      }
      return 0;
  }
}

/* Writes, flush, trim, zero, cache: succeed, or fail. */
static int
outcome (const char *what)
{
  return next () % 4 == 3 ? fail (what) : 0;
}

static int
fp_pwrite (void *h, const void *buf, uint64_t count, uint64_t offset,
           uint32_t flags)
{
  /* The data must be readable in whole. */
  volatile uint8_t sum = 0;
  const uint8_t *p = buf;
  if (count > 0)
    sum ^= p[0] ^ p[count - 1];
  (void)sum;
  return outcome ("pwrite");
}

static int
fp_flush (void *h, uint32_t flags)
{
  return outcome ("flush");
}

static int
fp_trim (void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  return outcome ("trim");
}

static int
fp_zero (void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  if (flags & NBDKIT_FLAG_FAST_ZERO && next () % 4 == 3) {
    nbdkit_set_error (ENOTSUP);
    return -1;
  }
  return outcome ("zero");
}

static int
fp_cache (void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  return outcome ("cache");
}

static int
fp_extents (void *h, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *e)
{
  uint64_t end = offset + count, pos = offset, n;
  uint32_t type = 0;
  unsigned how = next () % 8;

  nbdkit_debug ("extents %" PRIu64 " at %" PRIu64 ": case %u (script byte %zu)",
                count, offset, how, script_pos);
  switch (how) {
    case 0: /* one extent of data */
      return nbdkit_add_extent (e, offset, count, 0);
    case 1: /* the layout's blocks, from before the request to past it */
      pos = offset - (next_len (4096) % (offset + 1));
      n = next_len (4096);
      end = end + n < (uint64_t)size ? end + n : (uint64_t)size;
      for (n = 0; n < MANY_EXTENTS && pos < end && budget > 0; n++, budget--) {
        uint64_t b = pos >> layout_shift;
        uint64_t bend = (b + 1) << layout_shift;
        if (bend > end)
          bend = end;
        if (nbdkit_add_extent (e, pos, bend - pos, layout_type (b)) == -1)
          return -1;
        pos = bend;
      }
      return pos < end ? nbdkit_add_extent (e, pos, end - pos, 0) : 0;
    case 2: /* more one-byte extents than a reply may hold, alternating
             * with data where the layout allows
             */
      for (n = 0; n < MANY_EXTENTS && pos < (uint64_t)size && pos < end + 16
                  && budget > 0;
           n++, pos++, budget--)
        if (nbdkit_add_extent (e, pos, 1, pos & 1 ? fuzzplug_types (pos, 1) : 0)
            == -1)
          return -1;
      nbdkit_debug ("extents: %" PRIu64 " one-byte extents given", n);
      if (pos < (uint64_t)size)
        return nbdkit_add_extent (e, pos, size - pos, 0);
      return 0;
    case 3: /* nothing at all */
      return 0;
    case 4: /* a gap: refused */
      if (nbdkit_add_extent (e, offset, 1, 0) == -1)
        return -1;
      return nbdkit_add_extent (e, offset + 2, 1, 0);
    case 5:
      return fail ("extents");
    default: /* pieces of sizes and types the script picks */
      while (pos < end) {
        n = next_len (end - pos);
        type = next () & fuzzplug_types (pos, n);
        if (nbdkit_add_extent (e, pos, n, type) == -1)
          return -1;
        pos += n;
        if (flags & NBDKIT_FLAG_REQ_ONE && next () & 1)
          break;
      }
      return 0;
  }
}

static struct nbdkit_plugin plugin = {
  .name = "fuzzplug",
  .version = "1",
  .description = "a plugin whose answers the fuzzer chooses",
  .params = params,
  .config_complete = fp_config_complete,
  .unload = fp_unload,
  .list_exports = fp_list_exports,
  .default_export = fp_default_export,
  .open = fp_open,
  .get_size = fp_get_size,
  .export_description = fp_export_description,
  .block_size = fp_block_size,
  .can_write = fp_can_write,
  .can_flush = fp_can_flush,
  .is_rotational = fp_is_rotational,
  .can_trim = fp_can_trim,
  .can_zero = fp_can_zero,
  .can_fast_zero = fp_can_fast_zero,
  .can_fua = fp_can_fua,
  .can_multi_conn = fp_can_multi_conn,
  .can_extents = fp_can_extents,
  .can_cache = fp_can_cache,
  .pread = fp_pread,
  .pwrite = fp_pwrite,
  .flush = fp_flush,
  .trim = fp_trim,
  .zero = fp_zero,
  .extents = fp_extents,
  .cache = fp_cache,
};

NBDKIT_REGISTER_PLUGIN (plugin)
