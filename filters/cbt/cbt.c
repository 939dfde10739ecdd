/* cbt.c: changed block tracking.  Every block written, trimmed or
 * zeroed through this filter is marked dirty in a bitmap of
 * granularity= bytes (default 64K), offered to clients as the metadata
 * context "qemu:dirty-bitmap:NAME" (bitmap=NAME, default "cbt"), as
 * qemu does for its persistent bitmaps: extents of type 1 are dirty,
 * type 0 clean.  A backup tool reads it with libnbd's block_status or
 * `qemu-img map --image-opts ...,x-dirty-bitmap=qemu:dirty-bitmap:cbt`.
 *
 * The bitmap belongs to the server, not to a connection: every
 * client's writes are tracked together.  It lives in memory and starts
 * clean at each start of the server; a block is marked once the layer
 * below accepted the write (a failed write may still have changed it,
 * so it is marked then too).
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-filter.h>

static int64_t granularity = 65536;
static const char *bitmap_name = "cbt";
static const char *context_name;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *bitmap;
static uint64_t nblocks;

static const struct nbdkit_param params[]
    = { { .name = "granularity",
          .type = NBDKIT_PARAM_SIZE,
          .default_value = "64K",
          .doc = "bytes tracked by one bit (a power of 2, 512 or more)",
          .dest = &granularity },
        { .name = "bitmap",
          .type = NBDKIT_PARAM_STRING,
          .default_value = "cbt",
          .doc = "NAME in the context qemu:dirty-bitmap:NAME",
          .dest = &bitmap_name },
        { .name = NULL } };

static const char *
cbt_config_help (void)
{
  return "granularity=SIZE  Bytes per bit (default 64K).\n"
         "bitmap=NAME       Offered as qemu:dirty-bitmap:NAME (default cbt).";
}

static int
cbt_config_complete (void)
{
  if (granularity < 512 || (granularity & (granularity - 1)) != 0) {
    nbdkit_error ("granularity=%" PRId64 ": expected a power of 2, at least"
                  " 512",
                  granularity);
    return -1;
  }
  if (*bitmap_name == '\0') {
    nbdkit_error ("bitmap=: the name must not be empty");
    return -1;
  }
  context_name = nbdkit_printf_intern ("qemu:dirty-bitmap:%s", bitmap_name);
  return context_name ? 0 : -1;
}

static const char *
cbt_meta_context (void)
{
  return context_name;
}

static void
cbt_unload (void)
{
  free (bitmap);
}

/* The bitmap covers the largest export seen; it only grows. */
static int
cbt_prepare (nbdkit_next *next, void *handle, int readonly)
{
  int64_t size = nbdkit_next_get_size (next);
  uint64_t n;
  int r = 0;

  if (size == -1)
    return -1;
  n = ((uint64_t)size + granularity - 1) / granularity;
  pthread_mutex_lock (&lock);
  if (n > nblocks) {
    unsigned char *nb = realloc (bitmap, (n + 7) / 8);
    if (nb == NULL) {
      nbdkit_error ("realloc: %m");
      r = -1;
    } else {
      memset (nb + (nblocks + 7) / 8, 0, (n + 7) / 8 - (nblocks + 7) / 8);
      bitmap = nb;
      nblocks = n;
    }
  }
  pthread_mutex_unlock (&lock);
  return r;
}

static int
get_bit (uint64_t b)
{
  return (bitmap[b / 8] >> (b % 8)) & 1;
}

static void
mark (uint64_t count, uint64_t offset)
{
  uint64_t first = offset / granularity;
  uint64_t last = (offset + count + granularity - 1) / granularity;

  if (count == 0)
    return;
  pthread_mutex_lock (&lock);
  for (uint64_t b = first; b < last && b < nblocks; b++)
    bitmap[b / 8] |= 1 << (b % 8);
  pthread_mutex_unlock (&lock);
}

static int
cbt_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
            uint64_t offset, uint32_t flags, int *err)
{
  int r = nbdkit_next_pwrite (next, buf, count, offset, flags, err);
  mark (count, offset);
  return r;
}

static int
cbt_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  int r = nbdkit_next_trim (next, count, offset, flags, err);
  mark (count, offset);
  return r;
}

static int
cbt_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  int r = nbdkit_next_zero (next, count, offset, flags, err);
  /* A fast zero refused up front changed nothing. */
  if (r == 0 || *err != ENOTSUP)
    mark (count, offset);
  return r;
}

/* Runs of equal bits from OFFSET, as extents of type 1 (dirty) or 0. */
static int
cbt_meta_extents (nbdkit_next *next, void *handle, uint64_t count,
                  uint64_t offset, uint32_t flags,
                  struct nbdkit_extents *extents, int *err)
{
  uint64_t end = offset + count;
  uint64_t b = offset / granularity;
  int r = 0;

  pthread_mutex_lock (&lock);
  while (b * granularity < end && r == 0) {
    int bit = b < nblocks ? get_bit (b) : 0;
    uint64_t start = b;
    while (b * granularity < end && (b < nblocks ? get_bit (b) : 0) == bit)
      b++;
    r = nbdkit_add_extent (extents, start * granularity,
                           (b - start) * granularity, bit);
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break;
  }
  pthread_mutex_unlock (&lock);
  if (r == -1)
    *err = errno ? errno : ENOMEM;
  return r;
}

static struct nbdkit_filter filter = {
  .name = "cbt",
  .longname = "nbdkit changed block tracking filter",
  .description = "track written blocks, offered as a qemu dirty bitmap",
  .params = params,
  .config_help = cbt_config_help,
  .config_complete = cbt_config_complete,
  .unload = cbt_unload,
  .prepare = cbt_prepare,
  .pwrite = cbt_pwrite,
  .trim = cbt_trim,
  .zero = cbt_zero,
  .meta_context = cbt_meta_context,
  .meta_extents = cbt_meta_extents,
};

NBDKIT_REGISTER_FILTER (filter)
