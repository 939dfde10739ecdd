/* cow.c: the copy-on-write filter, a writable overlay on any plugin.
 *
 *   nbdkit --filter=cow PLUGIN [cow-block-size=N] [cow-on-cache=BOOL]
 *                              [cow-on-read=BOOL|/PATH]
 *
 * Writes land in a temporary file in $TMPDIR (default /var/tmp),
 * deleted at once, and never reach the plugin, which is opened
 * read-only.  All connections share the overlay; it is lost when the
 * server exits.  The disk is cut into blocks of cow-block-size (64K by
 * default); each block is in one of three states:
 *
 *   PLUGIN   never written: reads go to the plugin
 *   OVERLAY  its data is in the temporary file
 *   ZERO     trimmed or zeroed whole: reads as zeroes
 *
 * A write to part of a block first copies the rest of the block into
 * the overlay (read-modify-write).  cow-on-read and cow-on-cache copy
 * blocks the client reads or prefetches into the overlay too.
 *
 * Locking: one mutex guards the states and every change to the
 * overlay, so two read-modify-write cycles on one block cannot
 * interleave.  Reads look at the states under the mutex, then read
 * without it: a read racing with a write of the same bytes may see
 * either, as on any disk.
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

#include "blockmap.h"
#include "pathflag.h"

enum state { PLUGIN = 0, OVERLAY = 1, ZERO = 2 };

static int64_t cfg_blksize = 65536;
static bool cow_on_cache = false;
static const char *on_read_text = "false";
static struct path_flag cow_on_read;

static const struct nbdkit_param cow_params[]
    = { { .name = "cow-block-size",
          .type = NBDKIT_PARAM_SIZE,
          .default_value = "64K",
          .doc = "block size of the overlay (power of 2, at least 4K)",
          .dest = &cfg_blksize },
        { .name = "cow-on-cache",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "false",
          .doc = "copy prefetched (cache) blocks into the overlay",
          .dest = &cow_on_cache },
        { .name = "cow-on-read",
          .type = NBDKIT_PARAM_STRING,
          .default_value = "false",
          .doc = "true, false, or /PATH (true while PATH exists): copy blocks"
                 " read into the overlay",
          .dest = &on_read_text },
        { .name = NULL } };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct blockmap bm = BLOCKMAP_INIT ("overlay");

static const char *
cow_config_help (void)
{
  return "Writes go to a temporary overlay in $TMPDIR; the plugin is never"
         " written.";
}

static int
cow_config_complete (void)
{
  if (blockmap_check_blksize ("cow-block-size", cfg_blksize) == -1)
    return -1;
  bm.blksize = cfg_blksize;
  return path_flag_parse (&cow_on_read, "cow-on-read", on_read_text);
}

static int
cow_get_ready (int thread_model)
{
  return blockmap_create (&bm, "cow");
}

static void
cow_unload (void)
{
  blockmap_free (&bm);
}

static void *
cow_open (nbdkit_context *ctx, int readonly, const char *exportname, int is_tls)
{
  /* The plugin is only ever read. */
  if (nbdkit_next_open (ctx, 1, exportname) == -1)
    return NULL;
  return ctx;
}

/* Make room for a disk of SIZE bytes (all connections share one). */
static int
cow_prepare (nbdkit_next *next, void *handle, int readonly)
{
  int64_t size = nbdkit_next_get_size (next);
  int r;

  if (size == -1)
    return -1;
  pthread_mutex_lock (&lock);
  r = blockmap_grow (&bm, size, true);
  pthread_mutex_unlock (&lock);
  return r;
}

static int
cow_can_write (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
cow_can_flush (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
cow_can_trim (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
cow_can_zero (nbdkit_next *next, void *handle)
{
  return NBDKIT_ZERO_NATIVE;
}

static int
cow_can_fast_zero (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
cow_can_fua (nbdkit_next *next, void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
cow_can_multi_conn (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
cow_can_extents (nbdkit_next *next, void *handle)
{
  return NBDKIT_EXTENTS_NATIVE;
}

static int
cow_can_cache (nbdkit_next *next, void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

/* Read the whole of block BLK, as the client sees it, into BUF. */
static int
blk_read (nbdkit_next *next, uint64_t blk, char *buf, enum state st, int *err)
{
  if (st == ZERO) {
    memset (buf, 0, bm.blksize);
    return 0;
  }
  return blockmap_read_block (&bm, next, blk, buf, st == OVERLAY, err);
}

/* Copy the blocks in [FIRST, LAST] that are still PLUGIN into the
 * overlay.  Called without the lock; BUF holds their data, read from
 * the plugin, starting at block FIRST.
 */
static int
store_plugin_blocks (uint64_t first, uint64_t last, const char *buf, int *err)
{
  uint64_t b;
  int r = 0;

  pthread_mutex_lock (&lock);
  for (b = first; r == 0 && b <= last; b++) {
    if (bm.states[b] != PLUGIN)
      continue;
    r = blockmap_pwrite (&bm, buf + (b - first) * bm.blksize,
                         blockmap_blk_len (&bm, b), b * bm.blksize, err);
    if (r == 0)
      bm.states[b] = OVERLAY;
  }
  pthread_mutex_unlock (&lock);
  return r;
}

/* Read the blocks [FIRST, LAST] from the plugin into the overlay. */
static int
copy_up (nbdkit_next *next, uint64_t first, uint64_t last, int *err)
{
  char *tmp = blockmap_read_below (&bm, next, first, last, err);
  int r;

  if (tmp == NULL)
    return -1;
  r = store_plugin_blocks (first, last, tmp, err);
  free (tmp);
  return r;
}

/* The run of blocks from BLK up to LAST with the same state as BLK. */
static uint64_t
run_end (uint64_t blk, uint64_t last, enum state *st)
{
  unsigned k;

  pthread_mutex_lock (&lock);
  last = blockmap_run_end (&bm, blk, last, NULL, &k);
  pthread_mutex_unlock (&lock);
  *st = k;
  return last;
}

static int
cow_pread (nbdkit_next *next, void *handle, void *b, uint64_t count,
           uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  char *buf = b;
  uint64_t end = offset + count;
  bool copy = path_flag_get (&cow_on_read);

  while (offset < end) {
    uint64_t blk = offset / bm.blksize;
    enum state st;
    uint64_t last = run_end (blk, (end - 1) / bm.blksize, &st);
    uint64_t run = (last + 1) * bm.blksize;
    uint64_t n = (run < end ? run : end) - offset;

    if (st == PLUGIN && copy) {
      if (copy_up (next, blk, last, err) == -1)
        return -1;
      continue; /* now in the overlay (or changed since) */
    }
    if (st == PLUGIN) {
      if (nbdkit_next_pread (next, buf, n, offset, 0, n == count ? rd : NULL,
                             err)
          == -1)
        return -1;
    } else if (st == OVERLAY) {
      if (blockmap_pread (&bm, buf, n, offset, err) == -1)
        return -1;
    } else if (rd == NULL || nbdkit_read_hole (rd, offset, n) == -1)
      memset (buf, 0, n);
    buf += n;
    offset += n;
    count -= n;
  }
  return 0;
}

/* Write [OFFSET, OFFSET+COUNT) from BUF, or mark it zero if BUF is
 * NULL, inside the lock.
 */
static int
write_range (nbdkit_next *next, const char *buf, uint64_t count,
             uint64_t offset, int *err)
{
  uint64_t end = offset + count;
  char *bounce = NULL;
  int r = 0;

  pthread_mutex_lock (&lock);
  while (r == 0 && offset < end) {
    uint64_t blk = offset / bm.blksize;
    uint64_t skip = offset % bm.blksize;
    uint64_t last, n;

    if (blockmap_whole (&bm, offset, end, &last)) {
      /* Whole blocks: no need to read anything first. */
      n = blockmap_run_len (&bm, blk, last);
      if (buf) {
        r = blockmap_pwrite (&bm, buf, n, offset, err);
        memset (bm.states + blk, OVERLAY, last - blk + 1);
      } else {
        /* Give the space back where the filesystem can. */
        blockmap_punch (&bm, offset, n);
        memset (bm.states + blk, ZERO, last - blk + 1);
      }
    } else {
      n = bm.blksize - skip < end - offset ? bm.blksize - skip : end - offset;
      if (bounce == NULL && (bounce = malloc (bm.blksize)) == NULL) {
        *err = ENOMEM;
        r = -1;
        break;
      }
      r = blk_read (next, blk, bounce, bm.states[blk], err);
      if (r == 0) {
        if (buf)
          memcpy (bounce + skip, buf, n);
        else
          memset (bounce + skip, 0, n);
        r = blockmap_pwrite (&bm, bounce, blockmap_blk_len (&bm, blk),
                             blk * bm.blksize, err);
        if (r == 0)
          bm.states[blk] = OVERLAY;
      }
    }
    if (buf)
      buf += n;
    offset += n;
  }
  pthread_mutex_unlock (&lock);
  free (bounce);
  return r;
}

static int
cow_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
            uint64_t offset, uint32_t flags, int *err)
{
  return write_range (next, buf, count, offset, err);
}

static int
cow_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  return write_range (next, NULL, count, offset, err);
}

/* Trim: the range reads as zeroes afterwards, as with zero. */
static int
cow_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  return write_range (next, NULL, count, offset, err);
}

static int
cow_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  /* The overlay is temporary: there is nothing to make durable. */
  return 0;
}

static int
cow_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  uint64_t end = offset + count;

  if (!cow_on_cache)
    return nbdkit_next_cache (next, count, offset, flags, err);
  while (offset < end) {
    enum state st;
    uint64_t blk = offset / bm.blksize;
    uint64_t last = run_end (blk, (end - 1) / bm.blksize, &st);
    if (st == PLUGIN && copy_up (next, blk, last, err) == -1)
      return -1;
    offset = (last + 1) * bm.blksize;
  }
  return 0;
}

static int
cow_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
             uint32_t flags, struct nbdkit_extents *e, int *err)
{
  uint64_t end = offset + count;

  while (offset < end) {
    enum state st;
    uint64_t blk = offset / bm.blksize;
    uint64_t last = run_end (blk, (end - 1) / bm.blksize, &st);
    uint64_t run
        = (last + 1) * bm.blksize < end ? (last + 1) * bm.blksize : end;

    if (st == PLUGIN) {
      if (nbdkit_extents_full (next, run - offset, offset, flags, e, err) == -1)
        return -1;
    } else if (nbdkit_add_extent (
                   e, offset, run - offset,
                   st == ZERO ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0)
               == -1) {
      *err = errno;
      return -1;
    }
    offset = run;
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break;
  }
  return 0;
}

static struct nbdkit_filter filter = {
  .name = "cow",
  .longname = "nbdkit copy-on-write filter",
  .description = "a writable overlay that never writes to the plugin",
  .params = cow_params,
  .config_complete = cow_config_complete,
  .config_help = cow_config_help,
  .get_ready = cow_get_ready,
  .unload = cow_unload,
  .open = cow_open,
  .prepare = cow_prepare,
  .can_write = cow_can_write,
  .can_flush = cow_can_flush,
  .can_trim = cow_can_trim,
  .can_zero = cow_can_zero,
  .can_fast_zero = cow_can_fast_zero,
  .can_fua = cow_can_fua,
  .can_multi_conn = cow_can_multi_conn,
  .can_extents = cow_can_extents,
  .can_cache = cow_can_cache,
  .pread = cow_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = cow_pwrite,
  .flush = cow_flush,
  .trim = cow_trim,
  .zero = cow_zero,
  .cache = cow_cache,
  .extents = cow_extents,
};

NBDKIT_REGISTER_FILTER (filter)
