/* blockmap.h: a disk's blocks kept in a temporary file, with one byte
 * of state per block: the overlay of the cow filter and the cache of
 * the cache filter.
 *
 * The map does no locking; what a state byte means is its user's.  A
 * new block's state is 0.  The struct is open: users read and set
 * states[] and blksize directly.
 */

#ifndef FILTERS_COMMON_BLOCKMAP_H
#define FILTERS_COMMON_BLOCKMAP_H

#include <stdbool.h>
#include <stdint.h>

#include <nbdkit-filter.h>

struct blockmap {
  /* In messages: "the overlay", "the cache". */
  const char *what;
  /* pwrite does not log ENOSPC and EDQUOT: the user reclaims space
   * and tries again.
   */
  bool quiet_enospc;
  /* The temporary file, -1 before blockmap_create. */
  int fd;
  /* A power of 2; the disk's last block may be short. */
  uint64_t blksize;
  uint64_t disk_size;
  /* One per block. */
  uint8_t *states;
  uint64_t nblocks;
};

/* clang-format off */
#define BLOCKMAP_INIT(what_) { .what = (what_), .fd = -1 }
/* clang-format on */

/* Check the value of block size parameter PARAM: a power of 2 from 4K
 * to 64M.  Logs and returns -1 if not.
 */
extern int blockmap_check_blksize (const char *param, int64_t value);

/* Create the file in $TMPDIR (default /var/tmp), named PREFIXXXXXXX
 * and deleted at once, so it goes when the server does.
 */
extern int blockmap_create (struct blockmap *bm, const char *prefix);
extern void blockmap_free (struct blockmap *bm);

/* Make room for a disk of SIZE bytes (the map never shrinks); new
 * blocks are in state 0.  With SIZE_FILE the file is made as long.
 */
extern int blockmap_grow (struct blockmap *bm, uint64_t size, bool size_file);

/* The bytes of block BLK, and of blocks [FIRST, LAST], inside the
 * disk.
 */
extern uint64_t blockmap_blk_len (const struct blockmap *bm, uint64_t blk);
extern uint64_t blockmap_run_len (const struct blockmap *bm, uint64_t first,
                                  uint64_t last);

/* The last block from BLK up to LAST whose state is of the same kind
 * as BLK's, and that kind in *KIND.  KIND_OF maps a state byte to its
 * kind (NULL: the byte itself).  States are read atomically, so
 * readers may run while others only mark bits.
 */
extern uint64_t blockmap_run_end (const struct blockmap *bm, uint64_t blk,
                                  uint64_t last, unsigned (*kind_of) (uint8_t),
                                  unsigned *kind);

/* Whether a write of [OFFSET, END) starts with whole blocks (the
 * disk's short last block counts as whole); if so *LAST is the last
 * of them.  Otherwise the block at OFFSET is written in part.
 */
extern bool blockmap_whole (const struct blockmap *bm, uint64_t offset,
                            uint64_t end, uint64_t *last);

/* I/O on the file, whole or failing: -1 with *ERR set (logged). */
extern int blockmap_pread (const struct blockmap *bm, void *buf, uint64_t count,
                           uint64_t offset, int *err);
extern int blockmap_pwrite (const struct blockmap *bm, const void *buf,
                            uint64_t count, uint64_t offset, int *err);
/* Give the space of [OFFSET, OFFSET+LEN) back to the filesystem where
 * it can; -1 with errno where it cannot (the data is kept).
 */
extern int blockmap_punch (const struct blockmap *bm, uint64_t offset,
                           uint64_t len);

/* Block BLK into BUF (blksize bytes, zeroes past the disk's end): from
 * the file if IN_FILE, else from the layer below.
 */
extern int blockmap_read_block (const struct blockmap *bm, nbdkit_next *next,
                                uint64_t blk, char *buf, bool in_file,
                                int *err);
/* Blocks [FIRST, LAST] from the layer below, in a new buffer to free;
 * NULL with *ERR set on failure.
 */
extern char *blockmap_read_below (const struct blockmap *bm, nbdkit_next *next,
                                  uint64_t first, uint64_t last, int *err);

#endif /* FILTERS_COMMON_BLOCKMAP_H */
