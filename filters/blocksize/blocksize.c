/* blocksize.c: the blocksize filter, which lets any client talk to a
 * plugin with strict block sizes.
 *
 *   nbdkit --filter=blocksize PLUGIN [minblock=N] [maxdata=N] [maxlen=N]
 *
 * The client may send anything (the filter announces a minimum of 1);
 * the plugin sees only requests aligned to MINBLOCK, reads and writes
 * of at most MAXDATA bytes and any request of at most MAXLEN.
 * Reads are widened to the alignment through a bounce buffer; the
 * unaligned head and tail of writes and zeroes are read-modify-write
 * cycles; those of trims are dropped (a trim is only advice).  The
 * size is rounded down to MINBLOCK: combine with the truncate filter
 * (round-up=) to reach the last bytes.
 *
 * Locking: a read-modify-write must not interleave with another write
 * to the same block, or one of them is lost.  Every write-like request
 * holds one rwlock: aligned pieces shared (they may run in parallel
 * with each other, as they cannot touch a block partly), read-modify-
 * write cycles exclusive.  Reads take no lock.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

#include "aligned.h"

#define MAX_DATA_DEFAULT (64 * 1024 * 1024)

static int64_t cfg_minblock = 0, cfg_maxdata = 0, cfg_maxlen = 0;

static const struct nbdkit_param blocksize_params[]
    = { { .name = "minblock",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "alignment of requests to the plugin (power of 2, up to 64K;"
                 " default: the plugin's minimum)",
          .dest = &cfg_minblock },
        { .name = "maxdata",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "largest read or write sent to the plugin (multiple of"
                 " minblock; default: 64M or the plugin's maximum)",
          .dest = &cfg_maxdata },
        { .name = "maxlen",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "largest trim, zero, cache or block status sent to the plugin"
                 " (multiple of minblock; default: 4G-1)",
          .dest = &cfg_maxlen },
        { .name = NULL } };

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;

/* Per connection: the sizes in force, from the parameters and the
 * plugin's own block sizes.
 */
struct handle {
  uint64_t minblock, maxdata, maxlen;
  uint32_t preferred; /* the plugin's */
};

#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a)-1))
#define ALIGN_UP(x, a) ALIGN_DOWN ((x) + (a)-1, a)
#define MIN(a, b) ((a) < (b) ? (a) : (b))

static const char *
blocksize_config_help (void)
{
  return "Splits and aligns requests so that the plugin sees only the"
         " block sizes it accepts.";
}

static int
blocksize_config_complete (void)
{
  if (cfg_minblock
      && (cfg_minblock & (cfg_minblock - 1) || cfg_minblock > 65536)) {
    nbdkit_error ("minblock=%" PRId64 ": must be a power of 2, at most 64K",
                  cfg_minblock);
    return -1;
  }
  if (cfg_maxdata && cfg_minblock && cfg_maxdata % cfg_minblock) {
    nbdkit_error ("maxdata=%" PRId64 " is not a multiple of minblock=%" PRId64,
                  cfg_maxdata, cfg_minblock);
    return -1;
  }
  if (cfg_maxlen && cfg_minblock && cfg_maxlen % cfg_minblock) {
    nbdkit_error ("maxlen=%" PRId64 " is not a multiple of minblock=%" PRId64,
                  cfg_maxlen, cfg_minblock);
    return -1;
  }
  if (cfg_maxdata > MAX_DATA_DEFAULT) {
    nbdkit_error ("maxdata=%" PRId64 ": must be at most 64M", cfg_maxdata);
    return -1;
  }
  return 0;
}

static void *
blocksize_open (nbdkit_context *ctx, int readonly, const char *exportname,
                int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL)
    nbdkit_error ("calloc: %m");
  return h;
}

static void
blocksize_close (void *handle)
{
  free (handle);
}

static int
blocksize_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  struct nbdkit_block_size bs;

  if (nbdkit_next_block_size (next, &bs) == -1)
    return -1;
  h->minblock = cfg_minblock ? cfg_minblock : bs.minimum ? bs.minimum : 1;
  if (cfg_maxdata)
    h->maxdata = cfg_maxdata;
  else {
    h->maxdata = MAX_DATA_DEFAULT;
    if (bs.maximum && bs.maximum < h->maxdata)
      h->maxdata = bs.maximum;
  }
  if (cfg_maxlen)
    h->maxlen = cfg_maxlen;
  else {
    h->maxlen = 0xffffffff;
    if (bs.maximum_virtual && bs.maximum_virtual < h->maxlen)
      h->maxlen = bs.maximum_virtual;
  }
  /* No request of any kind is larger than maxlen, data ones included. */
  if (h->maxdata > h->maxlen)
    h->maxdata = h->maxlen;
  h->maxdata = ALIGN_DOWN (h->maxdata, h->minblock);
  h->maxlen = ALIGN_DOWN (h->maxlen, h->minblock);
  h->preferred = bs.preferred;
  if (h->maxdata == 0 || h->maxlen == 0) {
    nbdkit_error ("maxdata and maxlen must be at least minblock (%" PRIu64 ")",
                  h->minblock);
    return -1;
  }
  if (cfg_minblock && bs.minimum > h->minblock) {
    nbdkit_error ("minblock=%" PRIu64 " is smaller than the plugin's minimum"
                  " block size %" PRIu32,
                  h->minblock, bs.minimum);
    return -1;
  }
  return 0;
}

static int64_t
blocksize_get_size (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;
  int64_t size = nbdkit_next_get_size (next);
  return size == -1 ? -1 : (int64_t)ALIGN_DOWN ((uint64_t)size, h->minblock);
}

/* The client may send anything (the server still refuses data
 * requests beyond its own 64M); the preferred size, the plugin's or at
 * least minblock, keeps well-behaved clients on the aligned, copy-free
 * path.
 */
static int
blocksize_block_size (nbdkit_next *next, void *handle,
                      struct nbdkit_block_size *bs)
{
  struct handle *h = handle;

  bs->minimum = 1;
  bs->preferred = h->preferred ? h->preferred : 4096;
  if (bs->preferred < h->minblock)
    bs->preferred = h->minblock;
  bs->maximum = 0xffffffff;
  bs->maximum_virtual = 0;
  bs->advisory = 1;
  return 0;
}

/* Read one whole block at BLK into BOUNCE. */
static int
read_block (nbdkit_next *next, struct handle *h, char *bounce, uint64_t blk,
            int *err)
{
  return nbdkit_next_pread (next, bounce, h->minblock, blk, 0, NULL, err);
}

static int
blocksize_pread (nbdkit_next *next, void *handle, void *b, uint64_t count,
                 uint64_t offset, uint32_t flags, struct nbdkit_read *rd,
                 int *err)
{
  struct handle *h = handle;
  char *buf = b;
  char *bounce = NULL;
  uint64_t m = h->minblock;
  int r = -1;

  /* The common case: nothing to change, holes and loans pass through. */
  if (((offset | count) & (m - 1)) == 0 && count <= h->maxdata)
    return nbdkit_next_pread (next, buf, count, offset, flags, rd, err);

  if ((offset | count) & (m - 1)) {
    bounce = malloc (m);
    if (bounce == NULL) {
      *err = ENOMEM;
      return -1;
    }
  }
  /* Unaligned head. */
  if (offset & (m - 1)) {
    uint64_t skip = offset & (m - 1);
    uint64_t n = MIN (m - skip, count);
    if (read_block (next, h, bounce, offset - skip, err) == -1)
      goto out;
    memcpy (buf, bounce + skip, n);
    buf += n;
    offset += n;
    count -= n;
  }
  /* Aligned middle. */
  while (count >= m) {
    uint64_t n = MIN (ALIGN_DOWN (count, m), h->maxdata);
    if (nbdkit_next_pread (next, buf, n, offset, flags, NULL, err) == -1)
      goto out;
    buf += n;
    offset += n;
    count -= n;
  }
  /* Unaligned tail. */
  if (count) {
    if (read_block (next, h, bounce, offset, err) == -1)
      goto out;
    memcpy (buf, bounce, count);
  }
  r = 0;
out:
  free (bounce);
  return r;
}

/* Write the part [SKIP, SKIP+N) of the block at BLK: from BUF, or
 * zeroes if BUF is NULL.  Called with the lock held exclusively.
 */
static int
rmw_block (nbdkit_next *next, struct handle *h, uint64_t blk, uint64_t skip,
           uint64_t n, const char *buf, uint32_t flags, int *err)
{
  char *bounce = malloc (h->minblock);
  int r = -1;

  if (bounce == NULL) {
    *err = ENOMEM;
    return -1;
  }
  if (read_block (next, h, bounce, blk, err) == 0) {
    if (buf)
      memcpy (bounce + skip, buf, n);
    else
      memset (bounce + skip, 0, n);
    r = nbdkit_next_pwrite (next, bounce, h->minblock, blk, flags, err);
  }
  free (bounce);
  return r;
}

/* Handle the unaligned head and tail of a write (BUF) or zero (BUF
 * NULL) under the exclusive lock, and return the aligned middle in
 * *MOFFSET and *MCOUNT (and the matching place in BUF in *MBUF).
 */
static int
edges (nbdkit_next *next, struct handle *h, const char *buf, uint64_t count,
       uint64_t offset, uint32_t flags, uint64_t *moffset, uint64_t *mcount,
       const char **mbuf, int *err)
{
  uint64_t m = h->minblock;
  int r = 0;

  *moffset = offset;
  *mcount = count;
  *mbuf = buf;
  if (((offset | count) & (m - 1)) == 0)
    return 0;

  pthread_rwlock_wrlock (&lock);
  if (offset & (m - 1)) {
    uint64_t skip = offset & (m - 1);
    uint64_t n = MIN (m - skip, count);
    r = rmw_block (next, h, offset - skip, skip, n, buf, flags, err);
    if (buf)
      buf += n;
    offset += n;
    count -= n;
  }
  if (r == 0 && count & (m - 1)) {
    uint64_t tail = count & (m - 1);
    r = rmw_block (next, h, offset + count - tail, 0, tail,
                   buf ? buf + count - tail : NULL, flags, err);
    count -= tail;
  }
  pthread_rwlock_unlock (&lock);
  *moffset = offset;
  *mcount = count;
  *mbuf = buf;
  return r;
}

static int
blocksize_pwrite (nbdkit_next *next, void *handle, const void *b,
                  uint64_t count, uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  const char *buf;
  int r = 0;

  if (edges (next, h, b, count, offset, flags, &offset, &count, &buf, err)
      == -1)
    return -1;
  pthread_rwlock_rdlock (&lock);
  while (r == 0 && count > 0) {
    uint64_t n = MIN (count, h->maxdata);
    r = nbdkit_next_pwrite (next, buf, n, offset, flags, err);
    buf += n;
    offset += n;
    count -= n;
  }
  pthread_rwlock_unlock (&lock);
  return r;
}

static int
blocksize_zero (nbdkit_next *next, void *handle, uint64_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  const char *unused;
  int r = 0;

  /* A read-modify-write is not fast. */
  if ((flags & NBDKIT_FLAG_FAST_ZERO)
      && ((offset | count) & (h->minblock - 1))) {
    *err = ENOTSUP;
    return -1;
  }
  if (edges (next, h, NULL, count, offset, flags, &offset, &count, &unused, err)
      == -1)
    return -1;
  pthread_rwlock_rdlock (&lock);
  while (r == 0 && count > 0) {
    uint64_t n = MIN (count, h->maxlen);
    r = nbdkit_next_zero (next, n, offset, flags, err);
    offset += n;
    count -= n;
  }
  pthread_rwlock_unlock (&lock);
  return r;
}

static int
blocksize_trim (nbdkit_next *next, void *handle, uint64_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  uint64_t end = ALIGN_DOWN (offset + count, h->minblock);
  bool trimmed = false;
  int r = 0;

  offset = ALIGN_UP (offset, h->minblock);
  pthread_rwlock_rdlock (&lock);
  while (r == 0 && offset < end) {
    uint64_t n = MIN (end - offset, h->maxlen);
    r = nbdkit_next_trim (next, n, offset, flags, err);
    offset += n;
    trimmed = true;
  }
  pthread_rwlock_unlock (&lock);
  /* Trimming nothing still owes the client its FUA. */
  if (r == 0 && !trimmed && (flags & NBDKIT_FLAG_FUA))
    r = nbdkit_next_flush (next, 0, err);
  return r;
}

static int
blocksize_cache (nbdkit_next *next, void *handle, uint64_t count,
                 uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  uint64_t end = ALIGN_UP (offset + count, h->minblock);

  offset = ALIGN_DOWN (offset, h->minblock);
  while (offset < end) {
    uint64_t n = MIN (end - offset, h->maxlen);
    if (nbdkit_next_cache (next, n, offset, flags, err) == -1)
      return -1;
    offset += n;
  }
  return 0;
}

static int
blocksize_extents (nbdkit_next *next, void *handle, uint64_t count,
                   uint64_t offset, uint32_t flags, struct nbdkit_extents *e,
                   int *err)
{
  struct handle *h = handle;
  uint64_t start = ALIGN_DOWN (offset, h->minblock);
  uint64_t end = ALIGN_UP (offset + count, h->minblock);

  /* One request (or a few, until the first block is whole), in whole
   * blocks; the client asks again for what is not answered.
   */
  return aligned_extents (next, MIN (end - start, h->maxlen), start, flags,
                          h->minblock, e, err);
}

static struct nbdkit_filter filter = {
  .name = "blocksize",
  .longname = "nbdkit blocksize filter",
  .description = "split and align requests for the plugin",
  .params = blocksize_params,
  .config_complete = blocksize_config_complete,
  .config_help = blocksize_config_help,
  .open = blocksize_open,
  .close = blocksize_close,
  .prepare = blocksize_prepare,
  .get_size = blocksize_get_size,
  .block_size = blocksize_block_size,
  .pread = blocksize_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = blocksize_pwrite,
  .trim = blocksize_trim,
  .zero = blocksize_zero,
  .cache = blocksize_cache,
  .extents = blocksize_extents,
};

NBDKIT_REGISTER_FILTER (filter)
