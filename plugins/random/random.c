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

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

static int64_t size;
static int64_t seed = -1;

static const struct nbdkit_param random_params[] = {
  { .name = "size", .type = NBDKIT_PARAM_SIZE, .flags = NBDKIT_PARAM_REQUIRED,
    .doc = "size of the disk", .dest = &size },
  { .name = "seed", .type = NBDKIT_PARAM_INT,
    .doc = "random seed, for the same data in every run (default: time)",
    .dest = &seed },
  { .name = NULL }
};

/* splitmix64: a good 64-bit mix, one word per index. */
static uint64_t
word_at (uint64_t k)
{
  uint64_t z = (uint64_t) seed + (k + 1) * UINT64_C (0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static uint8_t
byte_at (uint64_t off)
{
  return word_at (off / 8) >> (8 * (off % 8));
}

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

static int
random_fill (uint8_t *p, uint64_t count, uint64_t offset)
{
  while (count > 0 && offset % 8) {
    *p++ = byte_at (offset++);
    count--;
  }
  for (; count >= 8; count -= 8, offset += 8, p += 8) {
    uint64_t w = word_at (offset / 8);
    for (int i = 0; i < 8; i++)
      p[i] = w >> (8 * i);
  }
  while (count > 0) {
    *p++ = byte_at (offset++);
    count--;
  }
  return 0;
}

static int
random_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_read *rd)
{
  return random_fill (buf, count, offset);
}

/* Compare with the data here; the first differing byte is named. */
static int
random_pwrite (void *handle, const void *buf, uint64_t count,
               uint64_t offset, uint32_t flags)
{
  const uint8_t *p = buf;
  uint8_t want[4096];

  for (uint64_t done = 0; done < count; ) {
    uint64_t n = count - done < sizeof want ? count - done : sizeof want;
    random_fill (want, n, offset + done);
    if (memcmp (want, p + done, n) != 0) {
      for (uint64_t i = 0; i < n; i++)
        if (want[i] != p[done + i]) {
          nbdkit_error ("write at offset %" PRIu64 ": byte 0x%02x differs "
                        "from the random data 0x%02x", offset + done + i,
                        p[done + i], want[i]);
          break;
        }
      nbdkit_set_error (EIO);
      return -1;
    }
    done += n;
  }
  return 0;
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
  .pwrite = random_pwrite,
  .flush = random_flush,
};

NBDKIT_REGISTER_PLUGIN (plugin)
