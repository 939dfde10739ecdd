/* request.h: an NBD request as the server sees it, and the checks made
 * on it before it reaches the backend (request.c).
 */

#ifndef NBDKIT_REQUEST_H
#define NBDKIT_REQUEST_H

#include <stdint.h>

#include "internal.h"

struct request {
  uint64_t cookie, offset, count;
  uint16_t type, flags;
  uint64_t seq;
  int err; /* errno decided before execution */
};

/* The errno to refuse R with, or 0 if it may go ahead: checked
 * against what was negotiated on C and the export's size and block
 * sizes.
 */
extern int request_validate (const struct connection *c,
                             const struct request *r);

/* errno to the protocol's error values (unknown ones are EINVAL). */
extern uint32_t nbd_errno (int err);

/* "read", "write", ... for messages. */
extern const char *cmd_name (uint16_t type);

#endif /* NBDKIT_REQUEST_H */
