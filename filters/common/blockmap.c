/* blockmap.c: a disk's blocks in a temporary file with a state byte
 * per block (see blockmap.h).
 */

#define _GNU_SOURCE /* fallocate */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockmap.h"

int
blockmap_check_blksize (const char *param, int64_t value)
{
  if (value < 4096 || (value & (value - 1)) || value > 64 * 1024 * 1024) {
    nbdkit_error ("%s=%" PRId64 ": must be a power of 2 between 4K and 64M",
                  param, value);
    return -1;
  }
  return 0;
}

int
blockmap_create (struct blockmap *bm, const char *prefix)
{
  const char *dir = getenv ("TMPDIR");
  char *template;

  if (dir == NULL || *dir == 0)
    dir = "/var/tmp";
  if (asprintf (&template, "%s/%sXXXXXX", dir, prefix) == -1) {
    nbdkit_error ("asprintf: %m");
    return -1;
  }
  bm->fd = mkostemp (template, O_CLOEXEC);
  if (bm->fd == -1) {
    nbdkit_error ("cannot create the %s in %s (set TMPDIR?): %m", bm->what,
                  dir);
    free (template);
    return -1;
  }
  unlink (template);
  free (template);
  return 0;
}

void
blockmap_free (struct blockmap *bm)
{
  if (bm->fd >= 0)
    close (bm->fd);
  bm->fd = -1;
  free (bm->states);
  bm->states = NULL;
  bm->nblocks = bm->disk_size = 0;
}

int
blockmap_grow (struct blockmap *bm, uint64_t size, bool size_file)
{
  uint64_t n;
  uint8_t *s;

  if (size <= bm->disk_size)
    return 0;
  n = (size + bm->blksize - 1) / bm->blksize;
  s = realloc (bm->states, n ? n : 1);
  if (s == NULL || (size_file && ftruncate (bm->fd, n * bm->blksize) == -1)) {
    nbdkit_error ("cannot grow the %s to %" PRIu64 " bytes: %m", bm->what,
                  size);
    if (s)
      bm->states = s;
    return -1;
  }
  memset (s + bm->nblocks, 0, n - bm->nblocks);
  bm->states = s;
  bm->nblocks = n;
  bm->disk_size = size;
  return 0;
}

uint64_t
blockmap_blk_len (const struct blockmap *bm, uint64_t blk)
{
  uint64_t start = blk * bm->blksize;

  return bm->disk_size - start < bm->blksize ? bm->disk_size - start
                                             : bm->blksize;
}

uint64_t
blockmap_run_len (const struct blockmap *bm, uint64_t first, uint64_t last)
{
  return (last - first) * bm->blksize + blockmap_blk_len (bm, last);
}

static unsigned
kind (const struct blockmap *bm, uint64_t blk, unsigned (*kind_of) (uint8_t))
{
  uint8_t s = __atomic_load_n (&bm->states[blk], __ATOMIC_RELAXED);

  return kind_of ? kind_of (s) : s;
}

uint64_t
blockmap_run_end (const struct blockmap *bm, uint64_t blk, uint64_t last,
                  unsigned (*kind_of) (uint8_t), unsigned *k)
{
  uint64_t b;

  *k = kind (bm, blk, kind_of);
  for (b = blk; b < last && kind (bm, b + 1, kind_of) == *k; b++)
    ;
  return b;
}

bool
blockmap_whole (const struct blockmap *bm, uint64_t offset, uint64_t end,
                uint64_t *last)
{
  if (offset % bm->blksize
      || (end - offset < bm->blksize && end != bm->disk_size))
    return false;
  *last
      = end == bm->disk_size ? (end - 1) / bm->blksize : end / bm->blksize - 1;
  return true;
}

int
blockmap_pread (const struct blockmap *bm, void *buf, uint64_t count,
                uint64_t offset, int *err)
{
  while (count > 0) {
    ssize_t r = pread (bm->fd, buf, count, offset);
    if (r <= 0) {
      if (r == -1 && errno == EINTR)
        continue;
      *err = r == -1 ? errno : EIO;
      nbdkit_error ("%s: pread: %m", bm->what);
      return -1;
    }
    buf = (char *)buf + r;
    count -= r;
    offset += r;
  }
  return 0;
}

int
blockmap_pwrite (const struct blockmap *bm, const void *buf, uint64_t count,
                 uint64_t offset, int *err)
{
  while (count > 0) {
    ssize_t r = pwrite (bm->fd, buf, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      *err = errno;
      if (!bm->quiet_enospc || (errno != ENOSPC && errno != EDQUOT))
        nbdkit_error ("%s: pwrite: %m", bm->what);
      return -1;
    }
    buf = (const char *)buf + r;
    count -= r;
    offset += r;
  }
  return 0;
}

int
blockmap_punch (const struct blockmap *bm, uint64_t offset, uint64_t len)
{
  return fallocate (bm->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
                    len);
}

int
blockmap_read_block (const struct blockmap *bm, nbdkit_next *next, uint64_t blk,
                     char *buf, bool in_file, int *err)
{
  uint64_t n = blockmap_blk_len (bm, blk);

  memset (buf + n, 0, bm->blksize - n);
  if (in_file)
    return blockmap_pread (bm, buf, n, blk * bm->blksize, err);
  return nbdkit_next_pread (next, buf, n, blk * bm->blksize, 0, NULL, err);
}

char *
blockmap_read_below (const struct blockmap *bm, nbdkit_next *next,
                     uint64_t first, uint64_t last, int *err)
{
  uint64_t len = blockmap_run_len (bm, first, last);
  char *buf = malloc (len);

  if (buf == NULL) {
    *err = ENOMEM;
    return NULL;
  }
  if (nbdkit_next_pread (next, buf, len, first * bm->blksize, 0, NULL, err)
      == -1) {
    free (buf);
    return NULL;
  }
  return buf;
}
