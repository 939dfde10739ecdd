/* sparse.h: a sparse byte array for the memory plugin.
 *
 * The disk is cut into pages of SPARSE_PAGE_SIZE bytes kept in a radix
 * tree indexed by page number.  Pages never written, or made all
 * zeroes again, are not stored and read as zeroes.  Memory grows only
 * with the data written.  Sizes up to SPARSE_MAX_SIZE.
 *
 * Nothing here locks or logs: the caller serializes writers against
 * everyone else and reports errors (functions that can fail return -1
 * with errno set).  Ranges passed in must lie inside the array.
 *
 * A reader may hold a page beyond its lock (sparse_page_hold): the
 * page's bytes then never change, as writers copy a held page rather
 * than change it, and the page stays allocated until released.
 */

#ifndef SPARSE_H
#define SPARSE_H

#include <stdbool.h>
#include <stdint.h>

#define SPARSE_PAGE_SHIFT 15
#define SPARSE_PAGE_SIZE (UINT64_C (1) << SPARSE_PAGE_SHIFT)
#define SPARSE_MAX_SIZE ((uint64_t)INT64_MAX)

struct sparse;
struct sparse_page;

/* A new empty array of SIZE bytes (<= SPARSE_MAX_SIZE); NULL with
 * errno set on error.
 */
extern struct sparse *sparse_new (uint64_t size);
extern void sparse_free (struct sparse *sa);

/* The number of pages holding data. */
extern uint64_t sparse_pages (const struct sparse *sa);

/* Walk [OFFSET, OFFSET+COUNT) in runs, calling FN for each: DATA
 * points to the stored bytes of a run inside page PAGE, or both are
 * NULL for a run of zeroes (any length).  DATA stays valid until the
 * next change to the array, or while PAGE is held.  Stops at the first
 * FN returning non-zero and returns that value; 0 when the walk ends.
 */
typedef int (*sparse_read_fn) (void *opaque, uint64_t offset, uint64_t len,
                               const void *data, struct sparse_page *page);
extern int sparse_read (const struct sparse *sa, uint64_t count,
                        uint64_t offset, sparse_read_fn fn, void *opaque);

/* Hold PAGE (from sparse_read, with the array not changing meanwhile)
 * so that its bytes stay valid and unchanged after the array changes;
 * release it from any thread, at any time.
 */
extern void sparse_page_hold (struct sparse_page *page);
extern void sparse_page_release (struct sparse_page *page);

/* Copy BUF into the array.  Pages that would hold only zeroes are not
 * allocated (and are freed if they become all zeroes).  -1 with errno
 * ENOMEM when a page cannot be allocated or a held page copied (a
 * prefix may be written).
 */
extern int sparse_write (struct sparse *sa, const void *buf, uint64_t count,
                         uint64_t offset);

/* Make the range read as zeroes: pages inside it are freed, partly
 * covered ones are cleared there (and freed if then all zeroes).  -1
 * with errno ENOMEM only if a held page must be copied and cannot be.
 */
extern int sparse_zero (struct sparse *sa, uint64_t count, uint64_t offset);

/* Walk [OFFSET, OFFSET+COUNT) as maximal runs of allocated pages
 * (ALLOCATED true) and of unallocated ones, clipped to the range.
 * Stops as sparse_read does.
 */
typedef int (*sparse_extent_fn) (void *opaque, uint64_t offset, uint64_t len,
                                 bool allocated);
extern int sparse_extents (const struct sparse *sa, uint64_t count,
                           uint64_t offset, sparse_extent_fn fn, void *opaque);

#endif /* SPARSE_H */
