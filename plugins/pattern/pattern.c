/* pattern.c: the pattern plugin, a read-only disk of its own offsets.
 *
 *   nbdkit pattern [size=]SIZE
 *
 * Each 8-byte big-endian word at offset N (N a multiple of 8) holds N,
 * so a test can tell from any data read where it came from.  The disk
 * may have any size; reads may start and end inside a word.
 */

#include <endian.h>
#include <inttypes.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

static int64_t size = -1;

static const struct nbdkit_param pattern_params[]
    = { { .name = "size",
          .type = NBDKIT_PARAM_SIZE,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "size of the disk",
          .dest = &size },
        { .name = NULL } };

static int
pattern_config_complete (void)
{
  if (size < 0) {
    nbdkit_error ("size=%" PRIi64 " must not be negative", size);
    return -1;
  }
  return 0;
}

static int
pattern_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static int64_t
pattern_get_size (void *handle)
{
  return size;
}

static int
pattern_can_write (void *handle)
{
  return 0;
}

static int
pattern_can_multi_conn (void *handle)
{
  return 1;
}

/* All data: the server answers block status itself. */
static int
pattern_can_extents (void *handle)
{
  return NBDKIT_EXTENTS_EMULATE;
}

static int
pattern_can_cache (void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

/* A word at a time: the partial word at each end is cut from the
 * whole one, the middle is stored in one loop the compiler vectorizes.
 */
static int
pattern_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
               uint32_t flags, struct nbdkit_read *rd)
{
  uint8_t *p = buf;
  uint64_t word = offset & ~UINT64_C (7);
  const unsigned skip = offset & 7;
  uint64_t be, i, n;

  if (skip && count > 0) {
    be = htobe64 (word);
    n = 8 - skip < count ? 8 - skip : count;
    memcpy (p, (const uint8_t *)&be + skip, n);
    p += n;
    count -= n;
    word += 8;
  }

  n = count / 8;
  for (i = 0; i < n; i++) {
    be = htobe64 (word + i * 8);
    memcpy (p + i * 8, &be, 8);
  }
  p += n * 8;
  word += n * 8;
  count &= 7;

  if (count > 0) {
    be = htobe64 (word);
    memcpy (p, &be, count);
  }
  return 0;
}

static int
pattern_cache (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "pattern",
  .longname = "nbdkit pattern plugin",
  .version = NBDKIT_VERSION,
  .description = "A read-only disk where each 8-byte word holds its offset.",
  .params = pattern_params,
  .magic_config_key = "size",
  .config_complete = pattern_config_complete,
  .thread_model = pattern_thread_model,
  .get_size = pattern_get_size,
  .can_write = pattern_can_write,
  .can_multi_conn = pattern_can_multi_conn,
  .can_extents = pattern_can_extents,
  .can_cache = pattern_can_cache,
  .pread = pattern_pread,
  .pread_fills_buffer = 1, /* every byte, or a hole */
  .cache = pattern_cache,
};

NBDKIT_REGISTER_PLUGIN (plugin)
