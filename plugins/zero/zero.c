/* zero.c: the zero plugin, a read-only disk of zeroes.
 *
 *   nbdkit zero [size=]SIZE
 *
 * nbdkit keeps this plugin for old command lines; the null plugin is
 * the writable equivalent.  The size defaults to 0.
 */

#include <inttypes.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

static int64_t size = 0;

static const struct nbdkit_param zero_params[] = { { .name = "size",
                                                     .type = NBDKIT_PARAM_SIZE,
                                                     .default_value = "0",
                                                     .doc = "size of the disk",
                                                     .dest = &size },
                                                   { .name = NULL } };

static int
zero_config_complete (void)
{
  if (size < 0) {
    nbdkit_error ("size=%" PRIi64 " must not be negative", size);
    return -1;
  }
  return 0;
}

static int
zero_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static int64_t
zero_get_size (void *handle)
{
  return size;
}

static int
zero_can_write (void *handle)
{
  return 0;
}

static int
zero_can_multi_conn (void *handle)
{
  return 1;
}

static int
zero_can_extents (void *handle)
{
  return NBDKIT_EXTENTS_NATIVE;
}

static int
zero_can_cache (void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

static int
zero_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
            uint32_t flags, struct nbdkit_read *rd)
{
  if (count > 0 && (rd == NULL || nbdkit_read_hole (rd, offset, count) == -1))
    memset (buf, 0, count);
  return 0;
}

static int
zero_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
              struct nbdkit_extents *extents)
{
  return nbdkit_add_extent (extents, offset, count,
                            NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO);
}

static int
zero_cache (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "zero",
  .longname = "nbdkit zero plugin",
  .version = NBDKIT_VERSION,
  .description = "A read-only disk of zeroes.",
  .params = zero_params,
  .magic_config_key = "size",
  .config_complete = zero_config_complete,
  .thread_model = zero_thread_model,
  .get_size = zero_get_size,
  .can_write = zero_can_write,
  .can_multi_conn = zero_can_multi_conn,
  .can_extents = zero_can_extents,
  .can_cache = zero_can_cache,
  .pread = zero_pread,
  .pread_fills_buffer = 1, /* every byte, or a hole */
  .extents = zero_extents,
  .cache = zero_cache,
};

NBDKIT_REGISTER_PLUGIN (plugin)
