/* sparse-random.c: the sparse-random plugin, a random sparse disk.
 *
 *   nbdkit sparse-random [size=]SIZE [seed=N] [percent=10]
 *                        [runlength=16M] [random-content=false]
 *
 * The disk is 4K blocks in alternating runs of data and holes, laid
 * out once at start from the seed: data runs average RUNLENGTH bytes
 * and cover about PERCENT of the disk.  A data block is one random
 * non-zero byte repeated (or random bytes with random-content=true),
 * computed from (seed, block) when read.  Extents report the runs.
 * Writes are checked against the data (EIO if they differ), so
 * "nbdcopy $uri $uri" tests a copying tool; zero checks the range
 * is a hole, trim is advisory.  Same seed, same disk.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "random.h"

#define BLOCK 4096
#define MAX_RUNS (UINT64_C (64) << 20)
#define MAX_EXTENTS 65536

static int64_t size;
static int64_t seed = -1;
static const char *percent_str = "10";
static int64_t runlength = 16 * 1024 * 1024;
static bool random_content;

static const struct nbdkit_param sr_params[]
    = { { .name = "size",
          .type = NBDKIT_PARAM_SIZE,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "size of the disk",
          .dest = &size },
        { .name = "seed",
          .type = NBDKIT_PARAM_INT,
          .doc = "random seed, for the same disk in every run (default: time)",
          .dest = &seed },
        { .name = "percent",
          .type = NBDKIT_PARAM_STRING,
          .default_value = "10",
          .doc = "percentage of the disk that holds data, 0 to 100",
          .dest = &percent_str },
        { .name = "runlength",
          .type = NBDKIT_PARAM_SIZE,
          .default_value = "16M",
          .doc = "average length of a run of data",
          .dest = &runlength },
        { .name = "random-content",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "false",
          .doc = "random bytes in data blocks, not one byte repeated",
          .dest = &random_content },
        { .name = NULL } };

/* The data runs, in order: [off, off+len). */
struct run {
  uint64_t off, len;
};
static struct run *runs;
static size_t nruns;

static uint64_t
mix (uint64_t k)
{
  return random_word (seed, k);
}

/* A run length in blocks, 1 to 2*MEAN-1, from random R. */
static uint64_t
draw (uint64_t r, double mean)
{
  uint64_t m = mean < 1 ? 1 : (uint64_t)(mean * 2);
  return 1 + r % (m > 1 ? m - 1 : 1);
}

static int
sr_config_complete (void)
{
  char *end;
  double percent = strtod (percent_str, &end);
  uint64_t blocks, b = 0, k = 0;

  if (end == percent_str || *end || percent < 0 || percent > 100) {
    nbdkit_error ("percent=%s: expected a number from 0 to 100", percent_str);
    return -1;
  }
  if (runlength < BLOCK) {
    nbdkit_error ("runlength=%" PRIi64 ": must be at least %d", runlength,
                  BLOCK);
    return -1;
  }
  if (seed < 0)
    seed = time (NULL);
  blocks = (size + BLOCK - 1) / BLOCK;
  if (percent == 0)
    return 0;
  if (blocks / (runlength / BLOCK) > MAX_RUNS) {
    nbdkit_error ("size=%" PRIi64 " with runlength=%" PRIi64 " needs too "
                  "many runs: make runlength larger",
                  size, runlength);
    return -1;
  }
  /* Data runs average RUNLENGTH; holes are sized so that data is
   * PERCENT of the whole.
   */
  double data_mean = (double)runlength / BLOCK;
  double hole_mean = data_mean * (100 - percent) / percent;
  while (b < blocks) {
    uint64_t hole = percent == 100 ? 0 : draw (mix (k++), hole_mean);
    uint64_t data = percent == 100 ? blocks : draw (mix (k++), data_mean);
    /* The disk may start with data. */
    if (b == 0 && (mix (UINT64_MAX) & 1))
      hole = 0;
    b += hole;
    if (b >= blocks)
      break;
    if (data > blocks - b)
      data = blocks - b;
    struct run *nr = realloc (runs, (nruns + 1) * sizeof *nr);
    if (nr == NULL) {
      nbdkit_error ("realloc: %m");
      return -1;
    }
    runs = nr;
    runs[nruns].off = b * BLOCK;
    runs[nruns].len = data * BLOCK;
    if (runs[nruns].off + runs[nruns].len > (uint64_t)size)
      runs[nruns].len = size - runs[nruns].off;
    nruns++;
    b += data;
  }
  nbdkit_debug ("sparse-random: %zu data runs", nruns);
  return 0;
}

static void
sr_unload (void)
{
  free (runs);
}

/* The first run that ends after OFF. */
static size_t
find (uint64_t off)
{
  size_t lo = 0, hi = nruns;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (runs[mid].off + runs[mid].len <= off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Fill P with the data blocks' bytes for [OFF, OFF+N), all data. */
static void
fill_data (uint8_t *p, uint64_t n, uint64_t off)
{
  while (n > 0) {
    uint64_t blk = off / BLOCK, in = off % BLOCK;
    uint64_t m = BLOCK - in < n ? BLOCK - in : n;
    if (!random_content) {
      uint8_t c = mix (blk ^ UINT64_C (0x5555555555555555)) % 255 + 1;
      memset (p, c, m);
    } else
      random_bytes (seed, UINT64_C (1) << 62, p, m, off);
    p += m;
    off += m;
    n -= m;
  }
}

/* The whole disk as it reads, into P; HOLE (if not NULL) is told of
 * each hole instead of zeroing it.
 */
static void
fill (uint8_t *p, uint64_t count, uint64_t offset, struct nbdkit_read *rd)
{
  const uint64_t end = offset + count;
  uint64_t at = offset;

  for (size_t i = find (offset); i < nruns && at < end; i++) {
    if (runs[i].off >= end)
      break;
    if (runs[i].off > at) {
      if (rd == NULL || nbdkit_read_hole (rd, at, runs[i].off - at) == -1)
        memset (p + (at - offset), 0, runs[i].off - at);
      at = runs[i].off;
    }
    uint64_t e
        = runs[i].off + runs[i].len < end ? runs[i].off + runs[i].len : end;
    fill_data (p + (at - offset), e - at, at);
    at = e;
  }
  if (at < end && (rd == NULL || nbdkit_read_hole (rd, at, end - at) == -1))
    memset (p + (at - offset), 0, end - at);
}

static int
sr_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static void *
sr_open (int readonly, const char *exportname, int is_tls)
{
  return &size;
}

static int64_t
sr_get_size (void *handle)
{
  return size;
}

static int
sr_true (void *handle)
{
  return 1;
}

static int
sr_native (void *handle)
{
  return 2; /* NBDKIT_ZERO_NATIVE, NBDKIT_EXTENTS_NATIVE */
}

static int
sr_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
          uint32_t flags, struct nbdkit_read *rd)
{
  fill (buf, count, offset, rd);
  return 0;
}

static void
fill_all (uint8_t *p, uint64_t count, uint64_t offset)
{
  fill (p, count, offset, NULL);
}

static int
sr_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
           uint32_t flags)
{
  return random_check_write (buf, count, offset, fill_all, "the disk's");
}

/* Zeroing a hole is a no-op; zeroing data would change the disk. */
static int
sr_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  size_t i = find (offset);

  if (i < nruns && runs[i].off < offset + count) {
    uint64_t at = runs[i].off > offset ? runs[i].off : offset;
    nbdkit_error ("zero of %" PRIu64 " bytes at %" PRIu64 ": the disk has "
                  "data at %" PRIu64,
                  count, offset, at);
    nbdkit_set_error (EIO);
    return -1;
  }
  return 0;
}

static int
sr_ok (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return 0;
}

static int
sr_flush (void *handle, uint32_t flags)
{
  return 0;
}

static int
sr_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *extents)
{
  const uint32_t hole = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
  const uint64_t end = offset + count;
  uint64_t at = offset;
  unsigned n = 0;

  for (size_t i = find (offset); i < nruns && at < end && n < MAX_EXTENTS;
       i++) {
    if (runs[i].off >= end)
      break;
    if (runs[i].off > at) {
      if (nbdkit_add_extent (extents, at, runs[i].off - at, hole) == -1)
        return -1;
      at = runs[i].off;
      n++;
    }
    uint64_t e
        = runs[i].off + runs[i].len < end ? runs[i].off + runs[i].len : end;
    if (nbdkit_add_extent (extents, at, e - at, 0) == -1)
      return -1;
    at = e;
    if (++n && (flags & NBDKIT_FLAG_REQ_ONE))
      return 0;
  }
  if (at < end && n < MAX_EXTENTS)
    return nbdkit_add_extent (extents, at, end - at, hole);
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "sparse-random",
  .longname = "nbdkit sparse random plugin",
  .version = NBDKIT_VERSION,
  .description = "a reproducible sparse disk of random data, for copy tests",
  .params = sr_params,
  .magic_config_key = "size",
  .config_complete = sr_config_complete,
  .unload = sr_unload,
  .thread_model = sr_thread_model,
  .open = sr_open,
  .get_size = sr_get_size,
  .can_write = sr_true,
  .can_flush = sr_true,
  .can_trim = sr_true,
  .can_zero = sr_native,
  .can_multi_conn = sr_true,
  .can_extents = sr_native,
  .pread = sr_pread,
  .pread_fills_buffer = 1, /* every byte, or a hole */
  .pwrite = sr_pwrite,
  .flush = sr_flush,
  .trim = sr_ok,
  .zero = sr_zero,
  .extents = sr_extents,
};

NBDKIT_REGISTER_PLUGIN (plugin)
