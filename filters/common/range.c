/* range.c: extents of a window onto the layer below (see range.h). */

#include <errno.h>

#include "range.h"

int
range_extents (nbdkit_next *next, uint64_t start, uint64_t count,
               uint64_t offset, uint32_t flags, struct nbdkit_extents *e,
               int *err)
{
  /* The layer below's extents are in its own offsets: collect them
   * apart, then move each.
   */
  struct nbdkit_extents *below
      = nbdkit_extents_new (offset + start, offset + start + count);
  size_t i, n;

  if (below == NULL) {
    *err = errno;
    return -1;
  }
  if (nbdkit_next_extents (next, count, offset + start, flags, below, err)
      == -1) {
    nbdkit_extents_free (below);
    return -1;
  }
  n = nbdkit_extents_count (below);
  for (i = 0; i < n; i++) {
    struct nbdkit_extent x = nbdkit_get_extent (below, i);
    if (nbdkit_add_extent (e, x.offset - start, x.length, x.type) == -1) {
      *err = errno;
      nbdkit_extents_free (below);
      return -1;
    }
  }
  nbdkit_extents_free (below);
  return 0;
}

int
extents_all_or_nothing (nbdkit_next *next, uint64_t count, uint64_t offset,
                        uint32_t flags, struct nbdkit_extents *e, int *err)
{
  struct nbdkit_extents *tmp = nbdkit_extents_new (offset, offset + count);
  int ret;

  if (tmp == NULL) {
    *err = errno;
    return -1;
  }
  ret = nbdkit_next_extents (next, count, offset, flags, tmp, err);
  for (size_t i = 0; ret == 0 && i < nbdkit_extents_count (tmp); i++) {
    struct nbdkit_extent x = nbdkit_get_extent (tmp, i);
    if (nbdkit_add_extent (e, x.offset, x.length, x.type) == -1) {
      *err = errno;
      ret = -1;
    }
  }
  nbdkit_extents_free (tmp);
  return ret;
}
