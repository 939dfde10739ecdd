/* random.c: the random plugin, a disk of reproducible random data.
 *
 *   nbdkit random [size=]SIZE [seed=N]
 *
 * Each 8-byte word at offset 8*K is a hash of (seed, K), so any range
 * is computed directly, the same in every run with the same seed.
 * Writes are not stored: they are compared with the data at that
 * place and fail with EIO if they differ, so "nbdcopy $uri $uri"
 * tests a copying tool.  Without seed= the seed is the time.
 */

#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "random.h"

static int64_t size;
static int64_t seed = -1;

static const struct nbdkit_param random_params[]
    = { { .name = "size",
          .type = NBDKIT_PARAM_SIZE,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "size of the disk",
          .dest = &size },
        { .name = "seed",
          .type = NBDKIT_PARAM_INT,
          .doc = "random seed, for the same data in every run (default: time)",
          .dest = &seed },
        { .name = NULL } };

static int
random_config_complete (void)
{
  if (seed < 0) {
    seed = time (NULL);
    nbdkit_debug ("random: seed=%" PRIi64, seed);
  }
  return 0;
}

static int
random_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static void *
random_open (int readonly, const char *exportname, int is_tls)
{
  return &size;
}

static int64_t
random_get_size (void *handle)
{
  return size;
}

static int
random_true (void *handle)
{
  return 1;
}

static void
random_fill (uint8_t *p, uint64_t count, uint64_t offset)
{
  random_bytes (seed, 0, p, count, offset);
}

static int
random_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_read *rd)
{
  random_fill (buf, count, offset);
  return 0;
}

/* Compare with the data here; the first differing byte is named. */
static int
random_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
               uint32_t flags)
{
  return random_check_write (buf, count, offset, random_fill,
                             "the random data");
}

static int
random_flush (void *handle, uint32_t flags)
{
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "random",
  .longname = "nbdkit random plugin",
  .version = NBDKIT_VERSION,
  .description = "reproducible random data; writes are checked against it",
  .params = random_params,
  .magic_config_key = "size",
  .config_complete = random_config_complete,
  .thread_model = random_thread_model,
  .open = random_open,
  .get_size = random_get_size,
  .can_write = random_true,
  .can_flush = random_true,
  .can_multi_conn = random_true,
  .pread = random_pread,
  .pread_fills_buffer = 1, /* every byte, or a hole */
  .pwrite = random_pwrite,
  .flush = random_flush,
};

NBDKIT_REGISTER_PLUGIN (plugin)
