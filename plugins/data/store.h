/* store.h: a sparse byte store, the allocated runs of a disk in order.
 *
 * Used by the data plugin both while evaluating the data language
 * (each expression is a store) and as the disk it serves.  Ranges
 * never written read as zeroes and are reported as holes.  Not
 * thread-safe: the caller locks.
 */

#ifndef DATA_STORE_H
#define DATA_STORE_H

#include <stddef.h>
#include <stdint.h>

struct run {
  uint64_t off, len, cap;
  uint8_t *data;
};

struct store {
  struct run *runs; /* sorted, not overlapping, not adjacent */
  size_t n, cap;
};

/* All return 0, or -1 with errno ENOMEM. */
extern int store_write (struct store *s, uint64_t off, const void *p,
                        uint64_t len);
extern int store_zero (struct store *s, uint64_t off, uint64_t len);
/* Copy SRC's bytes in [FROM, TO) to DST at AT (holes stay holes). */
extern int store_paste (struct store *dst, uint64_t at, const struct store *src,
                        uint64_t from, uint64_t to);
extern void store_read (const struct store *s, uint64_t off, uint64_t len,
                        void *buf);
/* The allocated bytes; and the first run that ends after OFF. */
extern uint64_t store_allocated (const struct store *s);
extern size_t store_find (const struct store *s, uint64_t off);
extern void store_free (struct store *s);

#endif /* DATA_STORE_H */
