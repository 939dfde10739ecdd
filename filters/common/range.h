/* range.h: what filters serving a window of the layer below share
 * (offset, partition): the window's extents, moved to its origin.
 */

#ifndef FILTERS_COMMON_RANGE_H
#define FILTERS_COMMON_RANGE_H

#include <stdint.h>

#include <nbdkit-filter.h>

/* The extents of [OFFSET, OFFSET+COUNT) of the window that starts at
 * byte START of the layer below, added to E in the window's offsets.
 */
extern int range_extents (nbdkit_next *next, uint64_t start, uint64_t count,
                          uint64_t offset, uint32_t flags,
                          struct nbdkit_extents *e, int *err);

/* The extents of [OFFSET, OFFSET+COUNT) of the layer below, added to
 * E only if the whole answer arrives: a try that fails half way (the
 * retry filters try again) leaves E as it was.
 */
extern int extents_all_or_nothing (nbdkit_next *next, uint64_t count,
                                   uint64_t offset, uint32_t flags,
                                   struct nbdkit_extents *e, int *err);

#endif /* FILTERS_COMMON_RANGE_H */
