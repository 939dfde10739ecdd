/* random.h: reproducible random data for the random and sparse-random
 * plugins: any byte computed directly from a seed and its place, and
 * writes checked against it.
 */

#ifndef PLUGINS_COMMON_RANDOM_H
#define PLUGINS_COMMON_RANDOM_H

#include <stdint.h>

/* Word K of the stream of SEED (splitmix64 of the pair). */
extern uint64_t random_word (uint64_t seed, uint64_t k);

/* Bytes [OFFSET, OFFSET+COUNT) into P: byte O is byte O%8 (from the
 * least significant) of word BASE + O/8.
 */
extern void random_bytes (uint64_t seed, uint64_t base, uint8_t *p,
                          uint64_t count, uint64_t offset);

/* Compare a write of COUNT bytes from BUF at OFFSET with what FILL
 * gives there.  Returns 0, or -1 with EIO set after logging the first
 * byte that differs from WHAT ("the random data").
 */
extern int random_check_write (const void *buf, uint64_t count, uint64_t offset,
                               void (*fill) (uint8_t *p, uint64_t count,
                                             uint64_t offset),
                               const char *what);

#endif /* PLUGINS_COMMON_RANDOM_H */
