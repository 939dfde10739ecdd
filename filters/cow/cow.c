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

#define _GNU_SOURCE /* fallocate */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

enum state { PLUGIN = 0, OVERLAY = 1, ZERO = 2 };

static int64_t blksize = 65536;
static bool cow_on_cache = false;
static const char *on_read_text = "false";
static bool cow_on_read;
static const char *cow_on_read_path;

static const struct nbdkit_param cow_params[] = {
  { .name = "cow-block-size", .type = NBDKIT_PARAM_SIZE,
    .default_value = "64K",
    .doc = "block size of the overlay (power of 2, at least 4K)",
    .dest = &blksize },
  { .name = "cow-on-cache", .type = NBDKIT_PARAM_BOOL,
    .default_value = "false",
    .doc = "copy prefetched (cache) blocks into the overlay",
    .dest = &cow_on_cache },
  { .name = "cow-on-read", .type = NBDKIT_PARAM_STRING,
    .default_value = "false",
    .doc = "true, false, or /PATH (true while PATH exists): copy blocks"
           " read into the overlay", .dest = &on_read_text },
  { .name = NULL }
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int fd = -1;
static uint8_t *states;       /* one per block */
static uint64_t nblocks;
static uint64_t disk_size;

static const char *
cow_config_help (void)
{
  return "Writes go to a temporary overlay in $TMPDIR; the plugin is never"
         " written.";
}

static int
cow_config_complete (void)
{
  if (blksize < 4096 || (blksize & (blksize - 1))
      || blksize > 64 * 1024 * 1024) {
    nbdkit_error ("cow-block-size=%" PRId64 ": must be a power of 2 between"
                  " 4K and 64M", blksize);
    return -1;
  }
  if (on_read_text[0] == '/')
    cow_on_read_path = on_read_text;
  else {
    int r = nbdkit_parse_bool (on_read_text);
    if (r == -1) {
      nbdkit_error ("cow-on-read=%s: expected true, false or an absolute"
                    " path", on_read_text);
      return -1;
    }
    cow_on_read = r;
  }
  return 0;
}

static int
cow_get_ready (int thread_model)
{
  const char *dir = getenv ("TMPDIR");
  char *template;

  if (dir == NULL || *dir == 0)
    dir = "/var/tmp";
  if (asprintf (&template, "%s/cowXXXXXX", dir) == -1) {
    nbdkit_error ("asprintf: %m");
    return -1;
  }
  fd = mkostemp (template, O_CLOEXEC);
  if (fd == -1) {
    nbdkit_error ("cannot create the overlay in %s (set TMPDIR?): %m", dir);
    free (template);
    return -1;
  }
  unlink (template);
  free (template);
  return 0;
}

static void
cow_unload (void)
{
  if (fd >= 0)
    close (fd);
  free (states);
}

static bool
on_read (void)
{
  if (cow_on_read_path)
    return access (cow_on_read_path, F_OK) == 0;
  return cow_on_read;
}

static void *
cow_open (nbdkit_context *ctx, int readonly, const char *exportname,
          int is_tls)
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
  int r = 0;

  if (size == -1)
    return -1;
  pthread_mutex_lock (&lock);
  if ((uint64_t) size > disk_size) {
    uint64_t n = ((uint64_t) size + blksize - 1) / blksize;
    uint8_t *s = realloc (states, n ? n : 1);
    if (s == NULL || ftruncate (fd, n * blksize) == -1) {
      nbdkit_error ("cannot grow the overlay to %" PRId64 " bytes: %m", size);
      if (s)
        states = s;
      r = -1;
    }
    else {
      memset (s + nblocks, PLUGIN, n - nblocks);
      states = s;
      nblocks = n;
      disk_size = size;
    }
  }
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

/* The bytes of block BLK that are inside the disk. */
static uint64_t
blk_len (uint64_t blk)
{
  uint64_t start = blk * blksize;
  return disk_size - start < (uint64_t) blksize ? disk_size - start
                                                : (uint64_t) blksize;
}

static int
full_pread (void *buf, uint64_t count, uint64_t offset, int *err)
{
  while (count > 0) {
    ssize_t r = pread (fd, buf, count, offset);
    if (r <= 0) {
      if (r == -1 && errno == EINTR)
        continue;
      *err = r == -1 ? errno : EIO;
      nbdkit_error ("overlay: pread: %m");
      return -1;
    }
    buf = (char *) buf + r;
    count -= r;
    offset += r;
  }
  return 0;
}

static int
full_pwrite (const void *buf, uint64_t count, uint64_t offset, int *err)
{
  while (count > 0) {
    ssize_t r = pwrite (fd, buf, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      *err = errno;
      nbdkit_error ("overlay: pwrite: %m");
      return -1;
    }
    buf = (const char *) buf + r;
    count -= r;
    offset += r;
  }
  return 0;
}

/* Read the whole of block BLK, as the client sees it, into BUF. */
static int
blk_read (nbdkit_next *next, uint64_t blk, char *buf, enum state st,
          int *err)
{
  uint64_t n = blk_len (blk);

  memset (buf + n, 0, blksize - n);
  switch (st) {
    case PLUGIN:
      return nbdkit_next_pread (next, buf, n, blk * blksize, 0, NULL, err);
    case OVERLAY:
      return full_pread (buf, n, blk * blksize, err);
    default:
      memset (buf, 0, n);
      return 0;
  }
}

/* Copy the blocks in [FIRST, LAST] that are still PLUGIN into the
 * overlay.  Called without the lock; BUF holds their data, read from
 * the plugin, starting at block FIRST.
 */
static int
store_plugin_blocks (uint64_t first, uint64_t last, const char *buf,
                     int *err)
{
  uint64_t b;
  int r = 0;

  pthread_mutex_lock (&lock);
  for (b = first; r == 0 && b <= last; b++) {
    if (states[b] != PLUGIN)
      continue;
    r = full_pwrite (buf + (b - first) * blksize, blk_len (b), b * blksize,
                     err);
    if (r == 0)
      states[b] = OVERLAY;
  }
  pthread_mutex_unlock (&lock);
  return r;
}

/* Read the blocks [FIRST, LAST] from the plugin into the overlay. */
static int
copy_up (nbdkit_next *next, uint64_t first, uint64_t last, int *err)
{
  uint64_t end = (last + 1) * blksize < disk_size ? (last + 1) * blksize
                                                  : disk_size;
  char *tmp = malloc (end - first * blksize);
  int r;

  if (tmp == NULL) {
    *err = ENOMEM;
    return -1;
  }
  r = nbdkit_next_pread (next, tmp, end - first * blksize, first * blksize,
                         0, NULL, err);
  if (r == 0)
    r = store_plugin_blocks (first, last, tmp, err);
  free (tmp);
  return r;
}

/* The run of blocks from BLK up to LAST with the same state as BLK. */
static uint64_t
run_end (uint64_t blk, uint64_t last, enum state *st)
{
  uint64_t b;

  pthread_mutex_lock (&lock);
  *st = states[blk];
  for (b = blk; b < last && states[b + 1] == *st; b++)
    ;
  pthread_mutex_unlock (&lock);
  return b;
}

static int
cow_pread (nbdkit_next *next, void *handle, void *b, uint64_t count,
           uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  char *buf = b;
  uint64_t end = offset + count;
  bool copy = on_read ();

  while (offset < end) {
    uint64_t blk = offset / blksize;
    enum state st;
    uint64_t last = run_end (blk, (end - 1) / blksize, &st);
    uint64_t run = (last + 1) * blksize;
    uint64_t n = (run < end ? run : end) - offset;

    if (st == PLUGIN && copy) {
      if (copy_up (next, blk, last, err) == -1)
        return -1;
      continue;             /* now in the overlay (or changed since) */
    }
    if (st == PLUGIN) {
      if (nbdkit_next_pread (next, buf, n, offset, 0,
                             n == count ? rd : NULL, err) == -1)
        return -1;
    }
    else if (st == OVERLAY) {
      if (full_pread (buf, n, offset, err) == -1)
        return -1;
    }
    else if (rd == NULL || nbdkit_read_hole (rd, offset, n) == -1)
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
    uint64_t blk = offset / blksize;
    uint64_t skip = offset % blksize;
    uint64_t n = blksize - skip;

    if (n > end - offset)
      n = end - offset;
    if (skip == 0 && (n == (uint64_t) blksize || offset + n == disk_size)) {
      /* Whole blocks: no need to read anything first. */
      uint64_t whole = (end - offset) / blksize * blksize;
      if (end == disk_size)
        whole = end - offset;
      if (buf) {
        r = full_pwrite (buf, whole, offset, err);
        memset (states + blk, OVERLAY, (whole + blksize - 1) / blksize);
      }
      else {
        /* Give the space back where the filesystem can. */
        fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
                   whole);
        memset (states + blk, ZERO, (whole + blksize - 1) / blksize);
      }
      n = whole;
    }
    else {
      if (bounce == NULL && (bounce = malloc (blksize)) == NULL) {
        *err = ENOMEM;
        r = -1;
        break;
      }
      r = blk_read (next, blk, bounce, states[blk], err);
      if (r == 0) {
        if (buf)
          memcpy (bounce + skip, buf, n);
        else
          memset (bounce + skip, 0, n);
        r = full_pwrite (bounce, blk_len (blk), blk * blksize, err);
        if (r == 0)
          states[blk] = OVERLAY;
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
cow_pwrite (nbdkit_next *next, void *handle, const void *buf,
            uint64_t count, uint64_t offset, uint32_t flags, int *err)
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
    uint64_t blk = offset / blksize;
    uint64_t last = run_end (blk, (end - 1) / blksize, &st);
    if (st == PLUGIN && copy_up (next, blk, last, err) == -1)
      return -1;
    offset = (last + 1) * blksize;
  }
  return 0;
}

static int
cow_extents (nbdkit_next *next, void *handle, uint64_t count,
             uint64_t offset, uint32_t flags, struct nbdkit_extents *e,
             int *err)
{
  uint64_t end = offset + count;

  while (offset < end) {
    enum state st;
    uint64_t blk = offset / blksize;
    uint64_t last = run_end (blk, (end - 1) / blksize, &st);
    uint64_t run = (last + 1) * blksize < end ? (last + 1) * blksize : end;

    if (st == PLUGIN) {
      if (nbdkit_extents_full (next, run - offset, offset, flags, e,
                               err) == -1)
        return -1;
    }
    else if (nbdkit_add_extent (e, offset, run - offset,
                                st == ZERO ? NBDKIT_EXTENT_HOLE
                                | NBDKIT_EXTENT_ZERO : 0) == -1) {
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
  .pwrite = cow_pwrite,
  .flush = cow_flush,
  .trim = cow_trim,
  .zero = cow_zero,
  .cache = cow_cache,
  .extents = cow_extents,
};

NBDKIT_REGISTER_FILTER (filter)
