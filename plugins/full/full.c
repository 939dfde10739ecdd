/* full.c: the full plugin, a disk that is always out of space.
 *
 *   nbdkit full [size=]SIZE
 *
 * Reads return zeroes (a hole), every write, zero and trim fails
 * with ENOSPC, as on a thin-provisioned disk whose host ran out of
 * space; flush and cache succeed.  For testing how clients handle a
 * full disk.
 */

#include <errno.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

static int64_t size;

static const struct nbdkit_param full_params[]
    = { { .name = "size",
          .type = NBDKIT_PARAM_SIZE,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "size of the disk",
          .dest = &size },
        { .name = NULL } };

static int
full_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static void *
full_open (int readonly, const char *exportname, int is_tls)
{
  return &size;
}

static int64_t
full_get_size (void *handle)
{
  return size;
}

static int
full_true (void *handle)
{
  return 1;
}

static int
full_native (void *handle)
{
  return 2; /* NBDKIT_ZERO_NATIVE, NBDKIT_FUA_NATIVE, ... */
}

static int
full_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
            uint32_t flags, struct nbdkit_read *rd)
{
  if (nbdkit_read_hole (rd, offset, count) == -1)
    __builtin_memset (buf, 0, count);
  return 0;
}

static int
no_space (const char *what, uint64_t count, uint64_t offset)
{
  nbdkit_set_error (ENOSPC);
  nbdkit_debug ("%s of %llu bytes at %llu: no space left on device", what,
                (unsigned long long)count, (unsigned long long)offset);
  return -1;
}

static int
full_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
             uint32_t flags)
{
  return no_space ("write", count, offset);
}

/* A fast zero fails with ENOSPC too: the answer is final, not slow. */
static int
full_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return no_space ("zero", count, offset);
}

static int
full_trim (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return no_space ("trim", count, offset);
}

static int
full_ok (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return 0;
}

static int
full_flush (void *handle, uint32_t flags)
{
  return 0;
}

static int
full_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
              struct nbdkit_extents *extents)
{
  /* One extent to the end of the disk: the client need not ask again. */
  return nbdkit_add_extent (extents, offset, size - offset,
                            NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO);
}

static struct nbdkit_plugin plugin = {
  .name = "full",
  .longname = "nbdkit full plugin",
  .version = NBDKIT_VERSION,
  .description
  = "a disk of zeroes on which writes, zeroes and trims fail with ENOSPC",
  .params = full_params,
  .magic_config_key = "size",
  .thread_model = full_thread_model,
  .open = full_open,
  .get_size = full_get_size,
  .can_write = full_true,
  .can_flush = full_true,
  .can_trim = full_true,
  .can_zero = full_native,
  .can_fast_zero = full_true,
  .can_fua = full_native,
  .can_multi_conn = full_true,
  .can_extents = full_native,
  .can_cache = full_native,
  .pread = full_pread,
  .pread_fills_buffer = 1, /* every byte, or a hole */
  .pwrite = full_pwrite,
  .flush = full_flush,
  .trim = full_trim,
  .zero = full_zero,
  .extents = full_extents,
  .cache = full_ok,
};

NBDKIT_REGISTER_PLUGIN (plugin)
