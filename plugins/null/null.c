/* null.c: the null plugin, a disk that holds nothing.
 *
 *   nbdkit null [size=]SIZE
 *
 * Reads return zeroes (as a hole, so they cost nothing to send),
 * writes are discarded, and every other request succeeds at once.
 * Useful for benchmarking the server and clients.
 */

#include <inttypes.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

static int64_t size = 0;

static const struct nbdkit_param null_params[] = { { .name = "size",
                                                     .type = NBDKIT_PARAM_SIZE,
                                                     .default_value = "0",
                                                     .doc = "size of the disk",
                                                     .dest = &size },
                                                   { .name = NULL } };

static int
null_config_complete (void)
{
  if (size < 0) {
    nbdkit_error ("size=%" PRIi64 " must not be negative", size);
    return -1;
  }
  return 0;
}

static int
null_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static int64_t
null_get_size (void *handle)
{
  return size;
}

static int
null_can_true (void *handle)
{
  return 1;
}

static int
null_can_zero (void *handle)
{
  return NBDKIT_ZERO_NATIVE;
}

static int
null_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
null_can_extents (void *handle)
{
  return NBDKIT_EXTENTS_NATIVE;
}

static int
null_can_cache (void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

/* The whole request is a hole; if the server cannot take it as one,
 * the buffer gets the zeroes.
 */
static int
null_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
            uint32_t flags, struct nbdkit_read *rd)
{
  if (count > 0 && (rd == NULL || nbdkit_read_hole (rd, offset, count) == -1))
    memset (buf, 0, count);
  return 0;
}

static int
null_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
             uint32_t flags)
{
  return 0;
}

/* flush, trim, zero and cache: nothing to do. */
static int
null_flush (void *handle, uint32_t flags)
{
  return 0;
}

static int
null_range_op (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return 0;
}

static int
null_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
              struct nbdkit_extents *extents)
{
  /* One extent to the end of the disk: the client need not ask again. */
  return nbdkit_add_extent (extents, offset, size - offset,
                            NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO);
}

static struct nbdkit_plugin plugin = {
  .name = "null",
  .longname = "nbdkit null plugin",
  .version = NBDKIT_VERSION,
  .description = "A disk that reads as zeroes and discards writes.",
  .params = null_params,
  .magic_config_key = "size",
  .config_complete = null_config_complete,
  .thread_model = null_thread_model,
  .get_size = null_get_size,
  .can_write = null_can_true,
  .can_flush = null_can_true,
  .can_trim = null_can_true,
  .can_zero = null_can_zero,
  .can_fast_zero = null_can_true,
  .can_fua = null_can_fua,
  .can_multi_conn = null_can_true,
  .can_extents = null_can_extents,
  .can_cache = null_can_cache,
  .pread = null_pread,
  .pread_fills_buffer = 1, /* every byte, or a hole */
  .pwrite = null_pwrite,
  .flush = null_flush,
  .trim = null_range_op,
  .zero = null_range_op,
  .extents = null_extents,
  .cache = null_range_op,
};

NBDKIT_REGISTER_PLUGIN (plugin)
