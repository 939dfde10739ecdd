/* cache.c: the cache filter, a cache of the plugin in a temporary file.
 *
 *   nbdkit --filter=cache PLUGIN [cache=writeback|writethrough|unsafe]
 *          [cache-min-block-size=N] [cache-max-size=SIZE]
 *          [cache-high-threshold=PCT] [cache-low-threshold=PCT]
 *          [cache-on-read=BOOL|/PATH]
 *
 * The cache is a temporary file in $TMPDIR (default /var/tmp), deleted
 * at once, shared by every connection.  The disk is cut into blocks of
 * cache-min-block-size (64K, or the filesystem's block if larger);
 * each block is NOT cached, CLEAN (the cache holds what the plugin
 * holds) or DIRTY (the cache holds newer data).
 *
 *   writeback     writes go to the cache; flush writes dirty blocks to
 *                 the plugin.  FUA writes go through at once.
 *   writethrough  writes go to the plugin, and to the cache as clean.
 *   unsafe        as writeback, but flush does nothing: data reaches
 *                 the plugin only when the cache is reclaimed.
 *
 * Reads of cached blocks come from the file; others from the plugin,
 * and are kept as clean blocks with cache-on-read (or NBD_CMD_CACHE).
 *
 * Reclaiming: with cache-max-size, once the cached blocks pass the
 * high threshold, blocks are dropped until they are under the low one.
 * Whenever a write to the file fails with ENOSPC (the filesystem of
 * $TMPDIR is full), a quarter of the cache is dropped and the write
 * tried again; if there is still no room the block bypasses the cache.
 * Dropping uses the clock algorithm (an approximation of least
 * recently used): each access sets a block's reference bit, the hand
 * clears it and drops blocks found unreferenced; a dirty block is
 * written to the plugin first.  Dropped blocks become holes in the
 * file (FALLOC_FL_PUNCH_HOLE), giving the space back.
 *
 * Locking: one rwlock.  Reads of the file hold it shared, so a block
 * cannot be dropped while it is read; anything that changes the
 * states or the file holds it exclusively.  Reads from the plugin
 * hold nothing.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

#include "blockmap.h"
#include "pathflag.h"

enum { NOT_CACHED = 0, CLEAN = 1, DIRTY = 2 };
#define STATE_MASK 3
#define REFERENCED 0x80

/* Dirty blocks are written back in pieces of up to this size. */
#define FLUSH_CHUNK (4 * 1024 * 1024)

static const char *mode_text = "writeback";
enum { WRITEBACK, WRITETHROUGH, UNSAFE } mode;
static int64_t cfg_blksize = 0;
static int64_t max_size = -1;
static int64_t high_pct = 95, low_pct = 80;
static const char *on_read_text = "false";
static struct path_flag cache_on_read;

static const struct nbdkit_param cache_params[]
    = { { .name = "cache",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "writeback",
          .choices = "writeback|writethrough|unsafe",
          .doc
          = "writeback: writes stay in the cache until flush; writethrough:"
            " writes go to the plugin; unsafe: flush is ignored",
          .dest = &mode_text },
        { .name = "cache-min-block-size",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "block size of the cache (power of 2, at least 4K; default 64K"
                 " or the filesystem's block)",
          .dest = &cfg_blksize },
        { .name = "cache-max-size",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "reclaim blocks when the cache grows past this",
          .dest = &max_size },
        { .name = "cache-high-threshold",
          .type = NBDKIT_PARAM_INT,
          .default_value = "95",
          .doc = "start reclaiming at this % of cache-max-size",
          .dest = &high_pct },
        { .name = "cache-low-threshold",
          .type = NBDKIT_PARAM_INT,
          .default_value = "80",
          .doc = "stop reclaiming at this % of cache-max-size",
          .dest = &low_pct },
        { .name = "cache-on-read",
          .type = NBDKIT_PARAM_STRING,
          .default_value = "false",
          .doc = "true, false, or /PATH (true while PATH exists): keep blocks"
                 " read from the plugin",
          .dest = &on_read_text },
        { .name = NULL } };

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
/* The states are a state | REFERENCED. */
static struct blockmap bm = { .what = "cache", .quiet_enospc = true, .fd = -1 };
static uint64_t ncached, ndirty;
static uint64_t hand; /* the clock hand, a block number */

static const char *
cache_config_help (void)
{
  return "Caches the plugin in a temporary file in $TMPDIR.";
}

static int
cache_config_complete (void)
{
  mode = strcmp (mode_text, "writethrough") == 0 ? WRITETHROUGH
         : strcmp (mode_text, "unsafe") == 0     ? UNSAFE
                                                 : WRITEBACK;
  if (cfg_blksize
      && blockmap_check_blksize ("cache-min-block-size", cfg_blksize) == -1)
    return -1;
  if (!(0 < low_pct && low_pct < high_pct && high_pct <= 100)) {
    nbdkit_error ("cache-low-threshold=%" PRId64 " and cache-high-threshold"
                  "=%" PRId64 ": need 0 < low < high <= 100",
                  low_pct, high_pct);
    return -1;
  }
  if (max_size == 0) {
    nbdkit_error ("cache-max-size must not be 0");
    return -1;
  }
  return path_flag_parse (&cache_on_read, "cache-on-read", on_read_text);
}

static int
cache_get_ready (int thread_model)
{
  struct statvfs sv;

  if (blockmap_create (&bm, "cache") == -1)
    return -1;
  bm.blksize = cfg_blksize ? (uint64_t)cfg_blksize : 65536;
  if (!cfg_blksize && fstatvfs (bm.fd, &sv) == 0 && sv.f_bsize > bm.blksize
      && (sv.f_bsize & (sv.f_bsize - 1)) == 0)
    bm.blksize = sv.f_bsize;
  nbdkit_debug ("cache: block size %" PRIu64 ", mode %s", bm.blksize,
                mode_text);
  return 0;
}

static void
cache_unload (void)
{
  blockmap_free (&bm);
}

/* All connections share one cache: make room for this disk's size. */
static int
cache_prepare (nbdkit_next *next, void *handle, int readonly)
{
  int64_t size = nbdkit_next_get_size (next);
  int r;

  if (size == -1)
    return -1;
  pthread_rwlock_wrlock (&lock);
  r = blockmap_grow (&bm, size, false);
  pthread_rwlock_unlock (&lock);
  return r;
}

static int
cache_can_flush (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
cache_can_fua (nbdkit_next *next, void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
cache_can_zero (nbdkit_next *next, void *handle)
{
  return NBDKIT_ZERO_NATIVE;
}

static int
cache_can_multi_conn (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
cache_can_cache (nbdkit_next *next, void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

static int
cache_can_extents (nbdkit_next *next, void *handle)
{
  return NBDKIT_EXTENTS_NATIVE;
}

static inline unsigned
state (uint64_t blk)
{
  return __atomic_load_n (&bm.states[blk], __ATOMIC_RELAXED) & STATE_MASK;
}

/* Readers hold the lock shared and may mark blocks at the same time. */
static inline void
touch (uint64_t blk)
{
  __atomic_fetch_or (&bm.states[blk], REFERENCED, __ATOMIC_RELAXED);
}

static void
set_state (uint64_t blk, unsigned st)
{
  unsigned old = state (blk);

  ncached += (st != NOT_CACHED) - (old != NOT_CACHED);
  ndirty += (st == DIRTY) - (old == DIRTY);
  bm.states[blk] = st | REFERENCED;
}

/* Kinds of state for blockmap_run_end. */
static unsigned
state_of (uint8_t s)
{
  return s & STATE_MASK;
}

/* Cached or not: clean and dirty alike. */
static unsigned
cached_of (uint8_t s)
{
  return (s & STATE_MASK) == DIRTY ? CLEAN : s & STATE_MASK;
}

/* Dirty or not: clean and uncached blocks alike hold the plugin's data. */
static unsigned
dirty_of (uint8_t s)
{
  return (s & STATE_MASK) == DIRTY ? DIRTY : CLEAN;
}

static uint64_t
blk_len (uint64_t blk)
{
  return blockmap_blk_len (&bm, blk);
}

static uint64_t
run_len (uint64_t first, uint64_t last)
{
  return blockmap_run_len (&bm, first, last);
}

static void
punch (uint64_t first, uint64_t last)
{
  /* Where holes cannot be punched the space stays used until exit. */
  if (blockmap_punch (&bm, first * bm.blksize, run_len (first, last)) == -1)
    nbdkit_debug ("cache: cannot punch a hole: %m");
}

/* Write dirty block BLK back to the plugin (lock held exclusively). */
static int
write_back (nbdkit_next *next, uint64_t blk, char *bounce, int *err)
{
  if (blockmap_pread (&bm, bounce, blk_len (blk), blk * bm.blksize, err) == -1
      || nbdkit_next_pwrite (next, bounce, blk_len (blk), blk * bm.blksize, 0,
                             err)
             == -1)
    return -1;
  set_state (blk, CLEAN);
  return 0;
}

/* Drop blocks, least recently used first (roughly), until at most
 * TARGET blocks are cached.  Lock held exclusively.  Returns how many
 * were dropped.
 */
static uint64_t
reclaim (nbdkit_next *next, uint64_t target)
{
  uint64_t dropped = 0, steps;
  char *bounce = NULL;
  int err;

  for (steps = 0; ncached > target && steps < 2 * bm.nblocks + 2; steps++) {
    uint64_t b = hand;
    hand = (hand + 1) % bm.nblocks;
    if (state (b) == NOT_CACHED)
      continue;
    if (bm.states[b] & REFERENCED) {
      bm.states[b] &= ~REFERENCED;
      continue;
    }
    if (state (b) == DIRTY) {
      if (bounce == NULL && (bounce = malloc (bm.blksize)) == NULL)
        break;
      if (write_back (next, b, bounce, &err) == -1)
        continue;
    }
    punch (b, b);
    set_state (b, NOT_CACHED);
    bm.states[b] &= ~REFERENCED;
    dropped++;
  }
  free (bounce);
  if (dropped)
    nbdkit_debug ("cache: reclaimed %" PRIu64 " blocks, %" PRIu64 " left",
                  dropped, ncached);
  return dropped;
}

/* Before adding NEW blocks: keep under cache-max-size. */
static void
make_room (nbdkit_next *next, uint64_t new)
{
  uint64_t high, low;

  if (max_size == -1)
    return;
  high = (uint64_t)max_size / 100 * high_pct / bm.blksize;
  low = (uint64_t)max_size / 100 * low_pct / bm.blksize;
  if (ncached + new > high)
    reclaim (next, low > new ? low - new : 0);
}

/* Store whole blocks [FIRST, LAST] from BUF in the file as state ST
 * (lock held exclusively).  Returns 0, -1 on error, or 1 if there is
 * no room even after reclaiming: the caller does without the cache.
 */
static int
store (nbdkit_next *next, uint64_t first, uint64_t last, const char *buf,
       unsigned st, int *err)
{
  uint64_t b, len = run_len (first, last);
  int tries;

  make_room (next, last - first + 1);
  for (tries = 0;; tries++) {
    if (blockmap_pwrite (&bm, buf, len, first * bm.blksize, err) == 0)
      break;
    if ((*err != ENOSPC && *err != EDQUOT))
      return -1;
    /* The filesystem is full: drop a quarter of the cache, try again. */
    if (tries >= 3 || ncached == 0
        || reclaim (next, ncached - ncached / 4 - 1) == 0) {
      nbdkit_debug ("cache: no room for blocks %" PRIu64 "-%" PRIu64
                    ", bypassing the cache",
                    first, last);
      punch (first, last);
      return 1;
    }
  }
  for (b = first; b <= last; b++)
    set_state (b, st);
  return 0;
}

/* The last block from BLK up to LAST in the same state as BLK,
 * counting CLEAN and DIRTY as the same when BOTH is set.
 */
static uint64_t
run_end (uint64_t blk, uint64_t last, bool both, unsigned *st)
{
  return blockmap_run_end (&bm, blk, last, both ? cached_of : state_of, st);
}

/* Read blocks [FIRST, LAST] from the plugin and keep the ones still
 * not cached as clean.
 */
static int
fill (nbdkit_next *next, uint64_t first, uint64_t last, int *err)
{
  char *tmp = blockmap_read_below (&bm, next, first, last, err);
  uint64_t b = first;
  int r = 0;

  if (tmp == NULL)
    return -1;
  pthread_rwlock_wrlock (&lock);
  while (r == 0 && b <= last) {
    unsigned st;
    uint64_t e = run_end (b, last, true, &st);
    if (st == NOT_CACHED)
      r = store (next, b, e, tmp + (b - first) * bm.blksize, CLEAN, err);
    b = e + 1;
  }
  pthread_rwlock_unlock (&lock);
  free (tmp);
  return r == -1 ? -1 : 0;
}

static int
cache_pread (nbdkit_next *next, void *handle, void *b, uint64_t count,
             uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  char *buf = b;
  uint64_t end = offset + count;
  bool keep = path_flag_get (&cache_on_read);

  while (offset < end) {
    uint64_t blk = offset / bm.blksize, last, run, n, i;
    unsigned st;

    pthread_rwlock_rdlock (&lock);
    last = run_end (blk, (end - 1) / bm.blksize, true, &st);
    run = (last + 1) * bm.blksize;
    n = (run < end ? run : end) - offset;
    if (st != NOT_CACHED) {
      int r = blockmap_pread (&bm, buf, n, offset, err);
      for (i = blk; i <= last; i++)
        touch (i);
      pthread_rwlock_unlock (&lock);
      if (r == -1)
        return -1;
    } else {
      pthread_rwlock_unlock (&lock);
      if (keep) {
        if (fill (next, blk, last, err) == -1)
          return -1;
        pthread_rwlock_rdlock (&lock);
        st = state (blk);
        pthread_rwlock_unlock (&lock);
        if (st != NOT_CACHED)
          continue; /* now read it from the cache */
      }
      /* Only a read of the whole request may pass the loans on. */
      if (nbdkit_next_pread (next, buf, n, offset, 0, n == count ? rd : NULL,
                             err)
          == -1)
        return -1;
    }
    buf += n;
    offset += n;
    count -= n;
  }
  return 0;
}

/* The content of block BLK as the client sees it (lock held). */
static int
blk_read (nbdkit_next *next, uint64_t blk, char *buf, int *err)
{
  return blockmap_read_block (&bm, next, blk, buf, state (blk) != NOT_CACHED,
                              err);
}

/* Write-back of [OFFSET, OFFSET+COUNT) from BUF, lock held: into the
 * cache as dirty blocks, or, where there is no room, to the plugin.
 */
static int
write_cached (nbdkit_next *next, const char *buf, uint64_t count,
              uint64_t offset, int *err)
{
  uint64_t end = offset + count;
  char *bounce = NULL;
  int r = 0;

  while (r == 0 && offset < end) {
    uint64_t blk = offset / bm.blksize, skip = offset % bm.blksize, last;
    const char *data;

    if (blockmap_whole (&bm, offset, end, &last))
      data = buf; /* whole blocks, straight from BUF */
    else {
      uint64_t n
          = bm.blksize - skip < end - offset ? bm.blksize - skip : end - offset;
      if (bounce == NULL && (bounce = malloc (bm.blksize)) == NULL) {
        *err = ENOMEM;
        return -1;
      }
      if (blk_read (next, blk, bounce, err) == -1) {
        r = -1;
        break;
      }
      memcpy (bounce + skip, buf, n);
      last = blk;
      data = bounce;
    }
    r = store (next, blk, last, data, DIRTY, err);
    if (r == 1) {
      /* No room: this data goes to the plugin, the blocks uncached. */
      r = nbdkit_next_pwrite (next, data, run_len (blk, last), blk * bm.blksize,
                              0, err);
      for (uint64_t b = blk; r == 0 && b <= last; b++)
        set_state (b, NOT_CACHED);
    }
    buf += (last + 1) * bm.blksize - offset;
    offset = (last + 1) * bm.blksize;
  }
  free (bounce);
  return r == -1 ? -1 : 0;
}

/* Write-through of [OFFSET, OFFSET+COUNT), lock held: the plugin gets
 * it; cached blocks are updated, whole blocks are kept as clean.
 */
static int
write_through (nbdkit_next *next, const char *buf, uint64_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  uint64_t end = offset + count, blk;

  if (nbdkit_next_pwrite (next, buf, count, offset, flags, err) == -1)
    return -1;
  for (blk = offset / bm.blksize; blk * bm.blksize < end; blk++) {
    uint64_t start = blk * bm.blksize, bend = start + blk_len (blk);
    uint64_t a = start > offset ? start : offset;
    uint64_t z = bend < end ? bend : end;
    bool whole = a == start && z == bend;
    int r;

    if (state (blk) == NOT_CACHED && !whole)
      continue;
    if (state (blk) == NOT_CACHED)
      r = store (next, blk, blk, buf + (a - offset), CLEAN, err);
    else
      r = blockmap_pwrite (&bm, buf + (a - offset), z - a, a, err);
    if (r != 0) {
      /* The plugin has the data: forget the block rather than fail. */
      punch (blk, blk);
      set_state (blk, NOT_CACHED);
    }
  }
  return 0;
}

static int
cache_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
              uint64_t offset, uint32_t flags, int *err)
{
  int r;

  pthread_rwlock_wrlock (&lock);
  if (mode == WRITETHROUGH || (mode == WRITEBACK && (flags & NBDKIT_FLAG_FUA)))
    r = write_through (next, buf, count, offset, flags, err);
  else
    r = write_cached (next, buf, count, offset, err);
  pthread_rwlock_unlock (&lock);
  return r;
}

static const char zeroes[1024 * 1024];

static int
cache_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  uint64_t blk, last;

  if (mode == WRITETHROUGH
      || (mode == WRITEBACK && (flags & NBDKIT_FLAG_FUA))) {
    /* The plugin zeroes; the blocks touched are dropped. */
    pthread_rwlock_wrlock (&lock);
    if (nbdkit_next_zero (next, count, offset, flags, err) == -1) {
      pthread_rwlock_unlock (&lock);
      return -1;
    }
    last = (offset + count - 1) / bm.blksize;
    for (blk = offset / bm.blksize; blk <= last; blk++) {
      if (state (blk) == DIRTY) {
        /* Parts outside the range are newer than the plugin's. */
        char *bounce = malloc (bm.blksize);
        uint64_t s = blk * bm.blksize, e = s + blk_len (blk);
        if (bounce == NULL
            || blockmap_pread (&bm, bounce, blk_len (blk), s, err) == -1) {
          free (bounce);
          pthread_rwlock_unlock (&lock);
          *err = bounce ? *err : ENOMEM;
          return -1;
        }
        if (offset > s)
          memset (bounce + (offset - s), 0,
                  (e < offset + count ? e : offset + count) - offset);
        else
          memset (bounce, 0, (e < offset + count ? e : offset + count) - s);
        if (nbdkit_next_pwrite (next, bounce, blk_len (blk), s, flags, err)
            == -1) {
          free (bounce);
          pthread_rwlock_unlock (&lock);
          return -1;
        }
        free (bounce);
      }
      if (state (blk) != NOT_CACHED) {
        punch (blk, blk);
        set_state (blk, NOT_CACHED);
      }
    }
    pthread_rwlock_unlock (&lock);
    return 0;
  }
  while (count > 0) {
    uint64_t n = count < sizeof zeroes ? count : sizeof zeroes;
    if (cache_pwrite (next, handle, zeroes, n, offset, 0, err) == -1)
      return -1;
    offset += n;
    count -= n;
  }
  return 0;
}

/* Trim is advice: whole blocks are dropped from the cache (their data
 * is no longer wanted), then the plugin is told.
 */
static int
cache_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  uint64_t first = (offset + bm.blksize - 1) / bm.blksize;
  uint64_t end = offset + count, blk;
  int r;

  pthread_rwlock_wrlock (&lock);
  for (blk = first; blk * bm.blksize < end; blk++) {
    if (blk * bm.blksize + blk_len (blk) > end)
      break;
    if (state (blk) != NOT_CACHED) {
      punch (blk, blk);
      set_state (blk, NOT_CACHED);
    }
  }
  r = nbdkit_next_trim (next, count, offset, flags, err);
  pthread_rwlock_unlock (&lock);
  return r;
}

/* Write every dirty block to the plugin, lock held. */
static int
flush_dirty (nbdkit_next *next, int *err)
{
  uint64_t blk = 0;
  char *tmp = NULL;
  int r = 0;

  while (r == 0 && ndirty > 0 && blk < bm.nblocks) {
    unsigned st;
    uint64_t last = run_end (blk, bm.nblocks - 1, false, &st);
    if (last - blk + 1 > FLUSH_CHUNK / bm.blksize)
      last
          = blk + (FLUSH_CHUNK > bm.blksize ? FLUSH_CHUNK / bm.blksize : 1) - 1;
    if (st == DIRTY) {
      uint64_t len = run_len (blk, last);
      if (tmp == NULL
          && (tmp
              = malloc (FLUSH_CHUNK > bm.blksize ? FLUSH_CHUNK : bm.blksize))
                 == NULL) {
        *err = ENOMEM;
        return -1;
      }
      r = blockmap_pread (&bm, tmp, len, blk * bm.blksize, err);
      if (r == 0)
        r = nbdkit_next_pwrite (next, tmp, len, blk * bm.blksize, 0, err);
      for (uint64_t b = blk; r == 0 && b <= last; b++) {
        unsigned ref = bm.states[b] & REFERENCED;
        set_state (b, CLEAN);
        bm.states[b] = (bm.states[b] & ~REFERENCED) | ref;
      }
    }
    blk = last + 1;
  }
  free (tmp);
  return r;
}

static int
cache_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  int r;

  if (mode == UNSAFE)
    return 0;
  pthread_rwlock_wrlock (&lock);
  r = flush_dirty (next, err);
  pthread_rwlock_unlock (&lock);
  if (r == 0)
    r = nbdkit_next_flush (next, 0, err);
  return r;
}

/* NBD_CMD_CACHE: bring the blocks into the cache. */
static int
cache_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
             uint32_t flags, int *err)
{
  uint64_t blk = offset / bm.blksize, last = (offset + count - 1) / bm.blksize;

  while (blk <= last) {
    unsigned st;
    uint64_t e;
    pthread_rwlock_rdlock (&lock);
    e = run_end (blk, last, true, &st);
    pthread_rwlock_unlock (&lock);
    if (st == NOT_CACHED && fill (next, blk, e, err) == -1)
      return -1;
    blk = e + 1;
  }
  return 0;
}

/* Dirty blocks are data; for the rest the plugin knows. */
static int
cache_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
               uint32_t flags, struct nbdkit_extents *e, int *err)
{
  uint64_t end = offset + count;

  while (offset < end) {
    unsigned st;
    uint64_t blk = offset / bm.blksize, last, run;

    pthread_rwlock_rdlock (&lock);
    last = blockmap_run_end (&bm, blk, (end - 1) / bm.blksize, dirty_of, &st);
    pthread_rwlock_unlock (&lock);
    run = (last + 1) * bm.blksize < end ? (last + 1) * bm.blksize : end;
    if (st == DIRTY) {
      if (nbdkit_add_extent (e, offset, run - offset, 0) == -1) {
        *err = errno;
        return -1;
      }
    } else if (nbdkit_extents_full (next, run - offset, offset, flags, e, err)
               == -1)
      return -1;
    offset = run;
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break;
  }
  return 0;
}

static struct nbdkit_filter filter = {
  .name = "cache",
  .longname = "nbdkit caching filter",
  .description = "cache the plugin in a temporary file",
  .params = cache_params,
  .config_complete = cache_config_complete,
  .config_help = cache_config_help,
  .get_ready = cache_get_ready,
  .unload = cache_unload,
  .prepare = cache_prepare,
  .can_flush = cache_can_flush,
  .can_fua = cache_can_fua,
  .can_zero = cache_can_zero,
  .can_multi_conn = cache_can_multi_conn,
  .can_cache = cache_can_cache,
  .can_extents = cache_can_extents,
  .pread = cache_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = cache_pwrite,
  .flush = cache_flush,
  .trim = cache_trim,
  .zero = cache_zero,
  .cache = cache_cache,
  .extents = cache_extents,
};

NBDKIT_REGISTER_FILTER (filter)
