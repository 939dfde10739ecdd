/* request.c: the checks every request passes before it reaches the
 * backend, made once at the edge: the command and its flags against
 * what was negotiated, the range against the export, the length and
 * alignment against the block sizes.  Also errno to NBD errors.
 */

#include <errno.h>
#include <inttypes.h>

#include "internal.h"
#include "protocol.h"
#include "request.h"

const char *
cmd_name (uint16_t type)
{
  switch (type) {
    case NBD_CMD_READ:
      return "read";
    case NBD_CMD_WRITE:
      return "write";
    case NBD_CMD_DISC:
      return "disconnect";
    case NBD_CMD_FLUSH:
      return "flush";
    case NBD_CMD_TRIM:
      return "trim";
    case NBD_CMD_CACHE:
      return "cache";
    case NBD_CMD_WRITE_ZEROES:
      return "write-zeroes";
    case NBD_CMD_BLOCK_STATUS:
      return "block-status";
    default:
      return "unknown";
  }
}

/* errno to the NBD protocol's error values.  A plugin that lost its
 * backend (a timeout, a connection reset, a missing remote object)
 * failed to do I/O: the client hears EIO, not EINVAL, which would say
 * its request was wrong.
 */
uint32_t
nbd_errno (int err)
{
  switch (err) {
    case 0:
      return NBD_SUCCESS;
    case EROFS:
    case EPERM:
    case EACCES:
      return NBD_EPERM;
    case EIO:
    case ETIMEDOUT:
    case ECONNRESET:
    case ECONNREFUSED:
    case ECONNABORTED:
    case EPIPE:
    case ENOTCONN:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
    case ENOENT:
    case ESTALE:
    case ENOLINK:
      return NBD_EIO;
    case ENOMEM:
      return NBD_ENOMEM;
#ifdef EDQUOT
    case EDQUOT:
#endif
    case EFBIG:
    case ENOSPC:
      return NBD_ENOSPC;
    case EOVERFLOW:
      return NBD_EOVERFLOW;
    case ENOTSUP:
#if ENOTSUP != EOPNOTSUPP
    case EOPNOTSUPP:
#endif
      return NBD_ENOTSUP;
    case ESHUTDOWN:
      return NBD_ESHUTDOWN;
    default:
      return NBD_EINVAL;
  }
}

/* Check a request against what was negotiated and the export's
 * limits.  Returns the errno to answer with, or 0.
 */
int
request_validate (const struct connection *c, const struct request *r)
{
  struct server *s = c->server;
  uint16_t known = NBD_CMD_FLAG_FUA;
  uint64_t size = c->exportsize;
  uint64_t max = UINT64_MAX;

  switch (r->type) {
    case NBD_CMD_READ:
      known |= NBD_CMD_FLAG_DF;
      max = c->bs.maximum;
      break;
    case NBD_CMD_WRITE:
      max = c->bs.maximum;
      break;
    case NBD_CMD_FLUSH:
      if (!(c->eflags & NBD_FLAG_SEND_FLUSH))
        return EINVAL;
      break;
    case NBD_CMD_TRIM:
      if (!(c->eflags & NBD_FLAG_SEND_TRIM))
        return c->readonly ? EPERM : EINVAL;
      break;
    case NBD_CMD_WRITE_ZEROES:
      if (!(c->eflags & NBD_FLAG_SEND_WRITE_ZEROES))
        return c->readonly ? EPERM : EINVAL;
      known |= NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
      break;
    case NBD_CMD_CACHE:
      if (!(c->eflags & NBD_FLAG_SEND_CACHE))
        return EINVAL;
      break;
    case NBD_CMD_BLOCK_STATUS:
      if (!c->meta_selected)
        return EINVAL;
      known |= NBD_CMD_FLAG_REQ_ONE;
      break;
    default:
      log_debug (s, "unknown command %u", r->type);
      return EINVAL;
  }
  if (!(c->eflags & NBD_FLAG_SEND_FUA))
    known &= ~NBD_CMD_FLAG_FUA;
  if (!(c->eflags & NBD_FLAG_SEND_DF))
    known &= ~NBD_CMD_FLAG_DF;
  if (!(c->eflags & NBD_FLAG_SEND_FAST_ZERO))
    known &= ~NBD_CMD_FLAG_FAST_ZERO;
  if (c->extended_headers && r->type == NBD_CMD_WRITE)
    known |= NBD_CMD_FLAG_PAYLOAD_LEN;
  if (r->flags & ~known) {
    log_debug (s, "%s: unknown or unnegotiated flags 0x%x", cmd_name (r->type),
               r->flags & ~known);
    return EINVAL;
  }

  if (r->type == NBD_CMD_FLUSH) {
    if (r->offset != 0 || r->count != 0) {
      log_debug (s, "flush with non-zero offset or length");
      return EINVAL;
    }
    return 0;
  }
  if (c->readonly
      && (r->type == NBD_CMD_WRITE || r->type == NBD_CMD_TRIM
          || r->type == NBD_CMD_WRITE_ZEROES))
    return EPERM;
  if (r->offset > size || r->count > size - r->offset) {
    log_debug (s,
               "%s: offset %" PRIu64 " + length %" PRIu64
               " is beyond the end of the export (%" PRIu64 ")",
               cmd_name (r->type), r->offset, r->count, size);
    return (r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES)
               ? ENOSPC
               : EINVAL;
  }
  /* Sizes a layer announced only as advice are not enforced; the
   * server's own maximum still is.
   */
  if (c->bs.advisory) {
    if ((r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE)
        && r->count > MAX_REQUEST_SIZE)
      return EINVAL;
    goto checked;
  }
  if (r->count > max) {
    log_debug (s, "%s: length %" PRIu64 " is larger than the maximum %" PRIu64,
               cmd_name (r->type), r->count, max);
    return EINVAL;
  }
  /* The largest "virtual" request bounds trim, zero and cache (block
   * status is asked about less instead); data requests have maximum.
   */
  if ((r->type == NBD_CMD_TRIM || r->type == NBD_CMD_WRITE_ZEROES
       || r->type == NBD_CMD_CACHE)
      && c->bs.maximum_virtual && r->count > c->bs.maximum_virtual) {
    log_debug (s, "%s: length %" PRIu64 " is larger than the maximum %" PRIu64,
               cmd_name (r->type), r->count, c->bs.maximum_virtual);
    return EINVAL;
  }
  if (c->bs.minimum > 1
      && ((r->offset | r->count) & (c->bs.minimum - 1)) != 0) {
    log_debug (s,
               "%s: offset %" PRIu64 " or length %" PRIu64
               " is not a multiple of the block size %" PRIu32,
               cmd_name (r->type), r->offset, r->count, c->bs.minimum);
    return EINVAL;
  }
checked:
  if (r->type == NBD_CMD_BLOCK_STATUS && r->count == 0) {
    log_debug (s, "block-status of length 0");
    return EINVAL;
  }
  return 0;
}
