/* aligned.c: extents in whole blocks (see aligned.h). */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>

#include <nbdkit-filter.h>

#include "aligned.h"

int
aligned_extents (nbdkit_next *next, uint64_t count, uint64_t offset,
                 uint32_t flags, uint32_t align, struct nbdkit_extents *e,
                 int *err)
{
  const uint64_t end = offset + count;
  uint64_t pos = offset; /* everything before is answered */
  uint32_t acc = 0;      /* types shared so far by a split block */
  bool added = false;

  if (align <= 1)
    return nbdkit_next_extents (next, count, offset, flags, e, err);

  while (pos < end) {
    struct nbdkit_extents *t = nbdkit_extents_new (pos, end);
    const uint64_t before = pos;
    size_t n;

    if (t == NULL) {
      *err = errno;
      return -1;
    }
    if (nbdkit_next_extents (next, end - pos, pos, flags, t, err) == -1) {
      nbdkit_extents_free (t);
      return -1;
    }
    n = nbdkit_extents_count (t);
    for (size_t i = 0; i < n && pos < end; i++) {
      struct nbdkit_extent x = nbdkit_get_extent (t, i);
      uint64_t s = x.offset > pos ? x.offset : pos;
      uint64_t f = x.offset + x.length < end ? x.offset + x.length : end;

      if (s != pos) /* a gap: not possible from the core */
        break;
      while (s < f) {
        uint64_t blk = s - (s - offset) % align;
        uint64_t blk_end = blk + align < end ? blk + align : end;

        if (s == blk && f - s >= align) {
          /* Whole blocks of one extent. */
          uint64_t len = f == end ? f - s : (f - s) - (f - s) % align;
          if (nbdkit_add_extent (e, s, len, x.type) == -1) {
            *err = errno;
            nbdkit_extents_free (t);
            return -1;
          }
          added = true;
          s += len;
        } else {
          /* Part of a block. */
          uint64_t piece_end = f < blk_end ? f : blk_end;
          acc = s == blk ? x.type : acc & x.type;
          s = piece_end;
          if (s == blk_end) {
            if (nbdkit_add_extent (e, blk, blk_end - blk, acc) == -1) {
              *err = errno;
              nbdkit_extents_free (t);
              return -1;
            }
            added = true;
          }
        }
        pos = s;
      }
    }
    nbdkit_extents_free (t);
    if (pos == before) {
      nbdkit_error ("extents: the layer below gave none at offset %" PRIu64,
                    pos);
      *err = EIO;
      return -1;
    }
    /* Enough when something is answered and no block is left half
     * known; the client asks again for the rest.
     */
    if (added && (pos - offset) % align == 0)
      break;
  }
  return 0;
}
