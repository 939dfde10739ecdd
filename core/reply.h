/* reply.h: building replies (reply.c): simple, structured and extended
 * headers, read replies from the buffer, lent memory and holes, block
 * status chunks.  A reply is gathered into a struct out and leaves in
 * as few sendmsg calls as fit.
 */

#ifndef NBDKIT_REPLY_H
#define NBDKIT_REPLY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "internal.h"
#include "request.h"

#define MAX_IOV 256
struct out {
  struct connection *c;
  struct iovec iov[MAX_IOV];
  int n;
  unsigned char hdr[MAX_IOV * 40];
  size_t used;
  unsigned char *last_flags; /* of the last chunk header built */
  unsigned flushes;          /* sendmsg calls since out_init */
  /* A reply may be sent in pieces by different threads: it is built
   * again from the start each time, and SKIP bytes already sent are
   * left out.  With NOWAIT the socket is never waited for: out_flush
   * fails with BLOCKED set once its buffer is full, and SENT says how
   * many bytes of the reply have left in all.  Set after out_init.
   */
  bool nowait;
  bool blocked;
  uint64_t skip;
  uint64_t sent;
  uint64_t built; /* bytes gathered since out_init, sent or not */
};

extern void out_init (struct out *o, struct connection *c);
/* Send what was gathered; 0 or -1 (with BLOCKED set if only because
 * the socket would have made a NOWAIT send wait).
 */
extern int out_flush (struct out *o);
/* Flush if the next reply's first headers might not fit; 0 or -1.
 * Call before each reply gathered after another.
 */
extern int out_room (struct out *o);
/* A reply without data: success or the error ERR. */
extern void out_status (struct out *o, const struct request *r, int err);
/* A read's reply: the data in BUF and RD's loans and holes, or up to
 * RD's error offset then the error ERR.
 */
extern int reply_read (struct out *o, struct nbdkit_read *rd, const char *buf,
                       const struct request *r, int err);
/* One block status chunk for context CTX_ID (LAST: the final one). */
extern int reply_block_status (struct out *o, const struct request *r,
                               struct nbdkit_extents *e, uint32_t ctx_id,
                               bool last);

#endif /* NBDKIT_REPLY_H */
