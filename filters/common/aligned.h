/* aligned.h: extents in whole blocks, for filters that announce a
 * minimum block size larger than the layer below's (swab, blocksize).
 */

#ifndef FILTERS_COMMON_ALIGNED_H
#define FILTERS_COMMON_ALIGNED_H

#include <stdint.h>

#include <nbdkit-filter.h>

/* The extents of [OFFSET, OFFSET+COUNT) from the layer below, in whole
 * blocks of ALIGN bytes (OFFSET must be a multiple of ALIGN; only the
 * last extent may end unaligned, at OFFSET+COUNT).  Where a block is
 * made of several extents below, it gets the types all of them share:
 * a hole only if all of it is a hole, zero only if all of it reads as
 * zeroes.  The layer below is asked again until the first block that
 * it split is whole.  Adds at least one extent to E, or fails.
 */
extern int aligned_extents (nbdkit_next *next, uint64_t count, uint64_t offset,
                            uint32_t flags, uint32_t align,
                            struct nbdkit_extents *e, int *err);

#endif /* FILTERS_COMMON_ALIGNED_H */
