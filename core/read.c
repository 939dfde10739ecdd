/* read.c: what a pread can say beyond plain data: holes, lent memory
 * (zero-copy sends) and a failure part-way (nbdkit_read_*).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void
read_init (struct nbdkit_read *rd, void *buf, uint64_t count, uint64_t offset,
           bool zero_copy)
{
  rd->offset = offset;
  rd->count = count;
  rd->buf = buf;
  rd->zero_copy = zero_copy;
  rd->nsegs = 0;
  rd->error_at = UINT64_MAX;
  rd->buf_zero = false;
}

void
read_release (struct nbdkit_read *rd)
{
  for (size_t i = 0; i < rd->nsegs; i++)
    if (rd->segs[i].release)
      rd->segs[i].release (rd->segs[i].opaque);
  rd->nsegs = 0;
}

void
read_flatten (struct nbdkit_read *rd)
{
  nbdkit_read_fill (rd);
  read_release (rd);
}

bool
read_all_segments (const struct nbdkit_read *rd)
{
  uint64_t pos = 0;
  for (size_t i = 0; i < rd->nsegs; i++) {
    if (rd->segs[i].offset != pos)
      return false;
    pos += rd->segs[i].length;
  }
  return pos == rd->count;
}

/* Check that [OFFSET, OFFSET+LENGTH) lies in the request; make it
 * relative.
 */
static int
check_range (struct nbdkit_read *rd, const char *fn, uint64_t *offset,
             uint64_t length)
{
  if (*offset < rd->offset || length > rd->count
      || *offset - rd->offset > rd->count - length) {
    nbdkit_error ("%s: range %" PRIu64 "+%" PRIu64
                  " is outside the request %" PRIu64 "+%" PRIu64,
                  fn, *offset, length, rd->offset, rd->count);
    errno = EINVAL;
    return -1;
  }
  *offset -= rd->offset;
  return 0;
}

static int
add_seg (struct nbdkit_read *rd, struct read_seg seg)
{
  /* Segments must come in order and not overlap, so the reply can be
   * built by walking them once.
   */
  if (rd->nsegs > 0) {
    struct read_seg *last = &rd->segs[rd->nsegs - 1];
    if (seg.offset < last->offset + last->length) {
      /* Out of order: keep it simple and correct by copying. */
      char *dst = (char *)rd->buf + seg.offset;
      if (seg.data)
        memcpy (dst, seg.data, seg.length);
      else
        memset (dst, 0, seg.length);
      if (seg.release)
        seg.release (seg.opaque);
      return 0;
    }
    /* Merge adjacent holes. */
    if (seg.data == NULL && last->data == NULL
        && last->offset + last->length == seg.offset) {
      last->length += seg.length;
      return 0;
    }
  }
  if (rd->nsegs == rd->segs_alloc) {
    size_t na = rd->segs_alloc ? rd->segs_alloc * 2 : 16;
    struct read_seg *nv = realloc (rd->segs, na * sizeof *nv);
    if (nv == NULL) {
      nbdkit_error ("realloc: %m");
      return -1;
    }
    rd->segs = nv;
    rd->segs_alloc = na;
  }
  rd->segs[rd->nsegs++] = seg;
  return 0;
}

NBDKIT_EXTERN_C int
nbdkit_read_hole (struct nbdkit_read *rd, uint64_t offset, uint64_t length)
{
  if (length == 0)
    return 0;
  if (check_range (rd, "nbdkit_read_hole", &offset, length) == -1)
    return -1;
  if (!rd->zero_copy) {
    memset ((char *)rd->buf + offset, 0, length);
    return 0;
  }
  return add_seg (rd, (struct read_seg){ offset, length, NULL, NULL, NULL });
}

NBDKIT_EXTERN_C int
nbdkit_read_lend (struct nbdkit_read *rd, uint64_t offset, const void *data,
                  uint64_t length, void (*release) (void *), void *opaque)
{
  int r = 0;

  if (length == 0 || data == NULL) {
    if (release)
      release (opaque);
    return 0;
  }
  if (check_range (rd, "nbdkit_read_lend", &offset, length) == -1) {
    if (release)
      release (opaque);
    return -1;
  }
  if (!rd->zero_copy) {
    memcpy ((char *)rd->buf + offset, data, length);
    if (release)
      release (opaque);
    return 0;
  }
  r = add_seg (rd, (struct read_seg){ offset, length, data, release, opaque });
  if (r == -1 && release)
    release (opaque);
  return r;
}

NBDKIT_EXTERN_C int
nbdkit_read_error_at (struct nbdkit_read *rd, uint64_t offset)
{
  if (check_range (rd, "nbdkit_read_error_at", &offset, 0) == -1)
    return -1;
  rd->error_at = offset;
  return 0;
}

NBDKIT_EXTERN_C void
nbdkit_read_fill (struct nbdkit_read *rd)
{
  for (size_t i = 0; i < rd->nsegs; i++) {
    struct read_seg *g = &rd->segs[i];
    char *dst = (char *)rd->buf + g->offset;
    if (g->data)
      memcpy (dst, g->data, g->length);
    else
      memset (dst, 0, g->length);
  }
}

NBDKIT_EXTERN_C void
nbdkit_read_forget (struct nbdkit_read *rd)
{
  read_release (rd);
}
