/* extents.c: the list a plugin fills in its extents callback
 * (nbdkit_add_extent), clipped to the range the server asked about.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "internal.h"

/* A plugin may describe the whole disk in one call; beyond this many
 * extents the answer stops at the last complete extent (the client
 * asks again from there).
 */
#define MAX_EXTENTS (1024 * 1024)

struct nbdkit_extents {
  uint64_t start, end; /* the range the server cares about */
  uint64_t next;       /* where the next extent must begin */
  struct nbdkit_extent *v;
  size_t n, alloc;
  bool full; /* an extent was left out: nothing after it may be added */
};

NBDKIT_EXTERN_C struct nbdkit_extents *
nbdkit_extents_new (uint64_t start, uint64_t end)
{
  struct nbdkit_extents *e = calloc (1, sizeof *e);

  if (e == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  e->start = start;
  e->end = end;
  e->next = 0;
  return e;
}

NBDKIT_EXTERN_C void
nbdkit_extents_free (struct nbdkit_extents *e)
{
  if (e) {
    free (e->v);
    free (e);
  }
}

NBDKIT_EXTERN_C size_t
nbdkit_extents_count (const struct nbdkit_extents *e)
{
  return e->n;
}

NBDKIT_EXTERN_C struct nbdkit_extent
nbdkit_get_extent (const struct nbdkit_extents *e, size_t i)
{
  return e->v[i];
}

NBDKIT_EXTERN_C int
nbdkit_add_extent (struct nbdkit_extents *e, uint64_t offset, uint64_t length,
                   uint32_t type)
{
  uint64_t end;

  if (length == 0)
    return 0;
  if (offset + length < offset) {
    nbdkit_error ("nbdkit_add_extent: offset %" PRIu64 " + length %" PRIu64
                  " overflows",
                  offset, length);
    errno = ERANGE;
    return -1;
  }
  /* The first extent must cover the start of the range; after it,
   * extents must follow each other without gaps.
   */
  if (e->n == 0 && e->next == 0) {
    if (offset > e->start) {
      nbdkit_error ("nbdkit_add_extent: first extent at %" PRIu64
                    " starts after the requested offset %" PRIu64,
                    offset, e->start);
      errno = EINVAL;
      return -1;
    }
  } else if (offset != e->next) {
    nbdkit_error ("nbdkit_add_extent: extent at %" PRIu64
                  " does not follow the previous one, which ended at %" PRIu64,
                  offset, e->next);
    errno = EINVAL;
    return -1;
  }
  e->next = offset + length;

  /* Clip to [start, end). */
  end = offset + length;
  if (end <= e->start || offset >= e->end)
    return 0;
  if (offset < e->start)
    offset = e->start;
  if (end > e->end)
    end = e->end;
  type &= NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;

  /* Once one extent is left out, a later one of the same type as the
   * last kept must not be merged into it across the gap.
   */
  if (e->full)
    return 0;
  if (e->n > 0 && e->v[e->n - 1].type == type) {
    e->v[e->n - 1].length += end - offset;
    return 0;
  }
  if (e->n >= MAX_EXTENTS) {
    e->full = true;
    return 0;
  }
  if (e->n == e->alloc) {
    size_t na = e->alloc ? e->alloc * 2 : 16;
    struct nbdkit_extent *nv = realloc (e->v, na * sizeof *nv);
    if (nv == NULL) {
      nbdkit_error ("realloc: %m");
      return -1;
    }
    e->v = nv;
    e->alloc = na;
  }
  e->v[e->n++] = (struct nbdkit_extent){ offset, end - offset, type };
  return 0;
}
