/* transmission.c: the transmission phase.  Requests are read and
 * checked here, once, at the edge (bounds, alignment, sizes, flags,
 * what was negotiated); then run through the backend chain and
 * answered as simple, structured or extended replies.
 */

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "internal.h"
#include "protocol.h"

struct request {
  uint64_t cookie, offset, count;
  uint16_t type, flags;
  uint64_t seq;
  int err;                      /* errno decided before execution */
};

/* What one thread keeps between requests: its data buffer and read
 * state, reused so a request allocates nothing.
 */
struct out;
struct worker {
  char *buf;
  size_t buf_size;
  struct nbdkit_read rd;
  struct out *out;
};

static const char zeroes[65536];

/* Requests that take longer than this on average are worth handing
 * to another thread when several are queued: about the cost of waking
 * a thread and switching to it.
 */
#define HANDOFF_NS 20000

static const char *
cmd_name (uint16_t type)
{
  switch (type) {
    case NBD_CMD_READ: return "read";
    case NBD_CMD_WRITE: return "write";
    case NBD_CMD_DISC: return "disconnect";
    case NBD_CMD_FLUSH: return "flush";
    case NBD_CMD_TRIM: return "trim";
    case NBD_CMD_CACHE: return "cache";
    case NBD_CMD_WRITE_ZEROES: return "write-zeroes";
    case NBD_CMD_BLOCK_STATUS: return "block-status";
    default: return "unknown";
  }
}

/* errno to the NBD protocol's error values. */
static uint32_t
nbd_errno (int err)
{
  switch (err) {
    case 0: return NBD_SUCCESS;
    case EROFS: case EPERM: return NBD_EPERM;
    case EIO: return NBD_EIO;
    case ENOMEM: return NBD_ENOMEM;
#ifdef EDQUOT
    case EDQUOT:
#endif
    case EFBIG: case ENOSPC: return NBD_ENOSPC;
    case EOVERFLOW: return NBD_EOVERFLOW;
    case ENOTSUP:
#if ENOTSUP != EOPNOTSUPP
    case EOPNOTSUPP:
#endif
      return NBD_ENOTSUP;
    case ESHUTDOWN: return NBD_ESHUTDOWN;
    default: return NBD_EINVAL;
  }
}

static int
grow_buf (struct worker *w, size_t n)
{
  if (n <= w->buf_size)
    return 0;
  char *nb = realloc (w->buf, n);
  if (nb == NULL)
    return -1;
  w->buf = nb;
  w->buf_size = n;
  return 0;
}

/* Read and throw away N payload bytes, to stay in step with a client
 * whose request is refused.
 */
static int
discard (struct connection *c, uint64_t n)
{
  char tmp[8192];
  while (n > 0) {
    size_t k = n > sizeof tmp ? sizeof tmp : n;
    if (conn_recv (c, tmp, k) == -1)
      return -1;
    n -= k;
  }
  return 0;
}

/* Check a request against what was negotiated and the export's
 * limits.  Returns the errno to answer with, or 0.
 */
static int
validate (struct connection *c, const struct request *r)
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
  if (c->readonly && (r->type == NBD_CMD_WRITE || r->type == NBD_CMD_TRIM
                      || r->type == NBD_CMD_WRITE_ZEROES))
    return EPERM;
  if (r->offset > size || r->count > size - r->offset) {
    log_debug (s, "%s: offset %" PRIu64 " + length %" PRIu64
               " is beyond the end of the export (%" PRIu64 ")",
               cmd_name (r->type), r->offset, r->count, size);
    return (r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES)
      ? ENOSPC : EINVAL;
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
    return r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE
      ? EINVAL : EOVERFLOW;
  }
  if (r->type != NBD_CMD_BLOCK_STATUS && c->bs.maximum_virtual
      && r->count > c->bs.maximum_virtual) {
    log_debug (s, "%s: length %" PRIu64 " is larger than the maximum %" PRIu64,
               cmd_name (r->type), r->count, c->bs.maximum_virtual);
    return EINVAL;
  }
  if (c->bs.minimum > 1
      && ((r->offset | r->count) & (c->bs.minimum - 1)) != 0) {
    log_debug (s, "%s: offset %" PRIu64 " or length %" PRIu64
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

/* Read one request and its payload.  Returns 0 with *R filled (R->err
 * set if it is to be refused), 1 on NBD_CMD_DISC, -1 when the
 * connection must close (end of file, error, a client out of step).
 */
static int
read_request (struct connection *c, struct worker *w, struct request *r)
{
  struct server *s = c->server;
  uint64_t payload = 0;

  if (c->extended_headers) {
    struct nbd_request_ext h;
    if (conn_recv (c, &h, sizeof h) == -1)
      return -1;
    if (be32toh (h.magic) != NBD_EXTENDED_REQUEST_MAGIC) {
      log_debug (s, "bad extended request magic 0x%x: closing",
                 be32toh (h.magic));
      return -1;
    }
    r->flags = be16toh (h.flags);
    r->type = be16toh (h.type);
    r->cookie = h.cookie;
    r->offset = be64toh (h.offset);
    r->count = be64toh (h.count);
    if (r->flags & NBD_CMD_FLAG_PAYLOAD_LEN)
      payload = r->count;
  }
  else {
    struct nbd_request h;
    if (conn_recv (c, &h, sizeof h) == -1)
      return -1;
    if (be32toh (h.magic) != NBD_REQUEST_MAGIC) {
      log_debug (s, "bad request magic 0x%x: closing", be32toh (h.magic));
      return -1;
    }
    r->flags = be16toh (h.flags);
    r->type = be16toh (h.type);
    r->cookie = h.cookie;
    r->offset = be64toh (h.offset);
    r->count = be32toh (h.count);
    if (r->type == NBD_CMD_WRITE)
      payload = r->count;
    if (r->flags & NBD_CMD_FLAG_PAYLOAD_LEN) {
      log_debug (s, "payload flag without extended headers: closing");
      return -1;
    }
  }
  r->err = 0;

  if (r->type == NBD_CMD_DISC)
    return 1;

  /* A payload we will not take in whole: the client is out of step or
   * hostile; a large one is not worth reading to throw away.
   */
  if (payload > MAX_REQUEST_SIZE) {
    log_debug (s, "%s: payload of %" PRIu64 " bytes is too large: closing",
               cmd_name (r->type), payload);
    return -1;
  }
  r->err = validate (c, r);
  /* An extended write without the payload flag carries no data: we
   * stay in step, and refuse it unless it is empty.
   */
  if (c->extended_headers && r->type == NBD_CMD_WRITE
      && !(r->flags & NBD_CMD_FLAG_PAYLOAD_LEN) && r->count > 0
      && r->err == 0) {
    log_debug (s, "write without the payload flag");
    r->err = EINVAL;
  }
  if (r->type != NBD_CMD_WRITE && payload > 0 && r->err == 0)
    r->err = EINVAL;            /* only writes carry a payload here */

  if (payload > 0) {
    if (r->err || grow_buf (w, payload) == -1) {
      if (r->err == 0)
        r->err = ENOMEM;
      if (discard (c, payload) == -1)
        return -1;
    }
    else if (conn_recv (c, w->buf, payload) == -1)
      return -1;
  }
  if (r->type == NBD_CMD_READ && r->err == 0
      && grow_buf (w, r->count ? r->count : 1) == -1)
    r->err = ENOMEM;
  return 0;
}

/* ---- replies ---- */

/* Reply headers and chunk payload headers are built here, the data is
 * pointed at, and everything leaves in as few sendmsg calls as fit.
 */
#define MAX_IOV 256
struct out {
  struct connection *c;
  struct iovec iov[MAX_IOV];
  int n;
  unsigned char hdr[MAX_IOV * 40];
  size_t used;
  unsigned char *last_flags;    /* of the last chunk header built */
};

static int
out_flush (struct out *o)
{
  int r = 0;
  if (o->n > 0)
    r = conn_sendv (o->c, o->iov, o->n);
  o->n = 0;
  o->used = 0;
  o->last_flags = NULL;
  return r;
}

static void *
out_hdr (struct out *o, size_t len)
{
  void *p = o->hdr + o->used;
  o->iov[o->n].iov_base = p;
  o->iov[o->n].iov_len = len;
  o->n++;
  o->used += len;
  return p;
}

static int
out_data (struct out *o, const void *data, size_t len)
{
  if (len == 0)
    return 0;
  /* Extend the previous iovec when contiguous (e.g. header after
   * header), else add one.
   */
  o->iov[o->n].iov_base = (void *) data;
  o->iov[o->n].iov_len = len;
  o->n++;
  if (o->n >= MAX_IOV - 4 || o->used >= sizeof o->hdr - 200)
    return out_flush (o);
  return 0;
}

/* Room for one more chunk header and its payload header. */
static int
out_room (struct out *o)
{
  if (o->n >= MAX_IOV - 4 || o->used >= sizeof o->hdr - 200)
    return out_flush (o);
  return 0;
}

/* A chunk header for a structured or extended reply. */
static void
out_chunk (struct out *o, const struct request *r, uint16_t flags,
           uint16_t type, uint64_t length)
{
  if (o->c->extended_headers) {
    struct nbd_extended_reply *h = out_hdr (o, sizeof *h);
    h->magic = htobe32 (NBD_EXTENDED_REPLY_MAGIC);
    h->flags = htobe16 (flags);
    h->type = htobe16 (type);
    h->cookie = r->cookie;
    h->offset = htobe64 (r->offset);
    h->length = htobe64 (length);
    o->last_flags = (unsigned char *) h + 4;
  }
  else {
    struct nbd_structured_reply *h = out_hdr (o, sizeof *h);
    h->magic = htobe32 (NBD_STRUCTURED_REPLY_MAGIC);
    h->flags = htobe16 (flags);
    h->type = htobe16 (type);
    h->cookie = r->cookie;
    h->length = htobe32 (length);
    o->last_flags = (unsigned char *) h + 4;
  }
}

static void
out_simple (struct out *o, const struct request *r, int err)
{
  struct nbd_simple_reply *h = out_hdr (o, sizeof *h);
  h->magic = htobe32 (NBD_SIMPLE_REPLY_MAGIC);
  h->error = htobe32 (nbd_errno (err));
  h->cookie = r->cookie;
}

/* An error chunk; OFFSET only for ERROR_OFFSET (AT != UINT64_MAX). */
static void
out_error_chunk (struct out *o, const struct request *r, int err,
                 uint64_t at)
{
  bool with_offset = at != UINT64_MAX;
  out_chunk (o, r, NBD_REPLY_FLAG_DONE,
             with_offset ? NBD_REPLY_TYPE_ERROR_OFFSET : NBD_REPLY_TYPE_ERROR,
             6 + (with_offset ? 8 : 0));
  unsigned char *p = out_hdr (o, 6 + (with_offset ? 8 : 0));
  uint32_t e = htobe32 (nbd_errno (err));
  uint16_t len = 0;
  memcpy (p, &e, 4);
  memcpy (p + 4, &len, 2);
  if (with_offset) {
    uint64_t off = htobe64 (at);
    memcpy (p + 6, &off, 8);
  }
}

/* A reply with no data: success or an error. */
static void
out_status (struct out *o, const struct request *r, int err)
{
  if (!o->c->structured_replies)
    out_simple (o, r, err);
  else if (err)
    out_error_chunk (o, r, err, UINT64_MAX);
  else if (o->c->extended_headers || r->type == NBD_CMD_READ)
    out_chunk (o, r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
  else
    out_simple (o, r, 0);       /* allowed with structured replies */
}

static int
out_hole_chunk (struct out *o, const struct request *r, uint64_t rel,
                uint64_t len)
{
  unsigned char *p;
  uint64_t off = htobe64 (r->offset + rel);
  uint32_t n = htobe32 (len);
  if (out_room (o) == -1)
    return -1;
  out_chunk (o, r, 0, NBD_REPLY_TYPE_OFFSET_HOLE, 12);
  p = out_hdr (o, 12);
  memcpy (p, &off, 8);
  memcpy (p + 8, &n, 4);
  return 0;
}

/* Zeroes for a hole in a simple reply, from a static buffer. */
static int
out_zeroes (struct out *o, uint64_t len)
{
  while (len > 0) {
    size_t n = len > sizeof zeroes ? sizeof zeroes : len;
    if (out_data (o, zeroes, n) == -1)
      return -1;
    len -= n;
  }
  return 0;
}

/* Holes shorter than this go out as zeroes inside a data chunk. */
#define MIN_HOLE_CHUNK 4096

/* A read reply is a sequence of pieces: bytes in the buffer, lent
 * bytes, or holes, in request order, cut at LIMIT.
 */
struct piece {
  uint64_t len;
  const void *data;             /* NULL for a hole */
  bool hole;
};

static void
piece_at (const struct nbdkit_read *rd, const char *buf, size_t i,
          uint64_t pos, uint64_t limit, struct piece *p)
{
  if (i < rd->nsegs && rd->segs[i].offset <= pos) {
    const struct read_seg *g = &rd->segs[i];
    uint64_t end = g->offset + g->length;
    p->len = (end < limit ? end : limit) - pos;
    p->hole = g->data == NULL;
    p->data = g->data ? (const char *) g->data + (pos - g->offset) : NULL;
    return;
  }
  uint64_t end = i < rd->nsegs ? rd->segs[i].offset : limit;
  p->len = (end < limit ? end : limit) - pos;
  p->hole = false;
  p->data = buf + pos;
}

static void
piece_advance (const struct nbdkit_read *rd, size_t *i, uint64_t *pos,
               uint64_t len)
{
  *pos += len;
  if (*i < rd->nsegs && *pos >= rd->segs[*i].offset + rd->segs[*i].length)
    (*i)++;
}

/* A successful (or partly successful) read. */
static int
reply_read (struct out *o, struct worker *w, const struct request *r, int err)
{
  struct nbdkit_read *rd = &w->rd;
  uint64_t limit = !err ? r->count : rd->error_at == UINT64_MAX ? 0
                                                             : rd->error_at;
  uint64_t pos = 0;

  if (!o->c->structured_replies) {
    if (err) {
      out_simple (o, r, err);
      return 0;
    }
    out_simple (o, r, 0);
    for (size_t i = 0; i < rd->nsegs; i++) {
      struct read_seg *g = &rd->segs[i];
      if (out_data (o, w->buf + pos, g->offset - pos) == -1)
        return -1;
      if ((g->data ? out_data (o, g->data, g->length)
                   : out_zeroes (o, g->length)) == -1)
        return -1;
      pos = g->offset + g->length;
    }
    return out_data (o, w->buf + pos, r->count - pos);
  }

  /* Consecutive data, whether in the buffer or lent, goes out as one
   * chunk gathered from several places; only holes large enough to be
   * worth a chunk of their own break it (none with DF).
   */
  bool df = r->flags & NBD_CMD_FLAG_DF;
  bool done = false;
  size_t i = 0;
  while (pos < limit) {
    struct piece p;
    size_t ri = i;
    uint64_t rpos = pos, run = 0;

    piece_at (rd, w->buf, i, pos, limit, &p);
    if (p.hole && !df && p.len >= MIN_HOLE_CHUNK) {
      if (out_hole_chunk (o, r, pos, p.len) == -1)
        return -1;
      piece_advance (rd, &i, &pos, p.len);
      continue;
    }
    /* Measure the run, then send its header and its pieces. */
    while (pos < limit) {
      piece_at (rd, w->buf, i, pos, limit, &p);
      if (p.hole && !df && p.len >= MIN_HOLE_CHUNK)
        break;
      run += p.len;
      piece_advance (rd, &i, &pos, p.len);
    }
    if (out_room (o) == -1)
      return -1;
    /* The last chunk says so in its header, which may leave before
     * its data does.
     */
    done = pos == limit && !err;
    out_chunk (o, r, done ? NBD_REPLY_FLAG_DONE : 0,
               NBD_REPLY_TYPE_OFFSET_DATA, 8 + run);
    uint64_t off = htobe64 (r->offset + rpos);
    memcpy (out_hdr (o, 8), &off, 8);
    i = ri;
    pos = rpos;
    while (run > 0) {
      piece_at (rd, w->buf, i, pos, limit, &p);
      if ((p.hole ? out_zeroes (o, p.len) : out_data (o, p.data, p.len)) == -1)
        return -1;
      piece_advance (rd, &i, &pos, p.len);
      run -= p.len;
    }
  }

  if (err)
    out_error_chunk (o, r, err, limit == 0 ? UINT64_MAX : r->offset + limit);
  else if (done)
    ;
  else if (o->last_flags) {
    uint16_t done = htobe16 (NBD_REPLY_FLAG_DONE);
    memcpy (o->last_flags, &done, 2);
  }
  else if (pos == 0)
    out_status (o, r, 0);       /* zero-length read */
  else {
    /* The last chunk's header was already sent in an earlier batch. */
    out_chunk (o, r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
  }
  return 0;
}

/* Block status for base:allocation. */
static int
reply_block_status (struct out *o, const struct request *r,
                    struct nbdkit_extents *e, uint32_t ctx_id, bool last)
{
  struct connection *c = o->c;
  size_t n = extents_count (e);
  size_t i, k = 0;
  bool ext = c->extended_headers;
  size_t dsize = ext ? 16 : 8;
  unsigned char *buf;
  uint64_t end = r->offset + r->count;

  if (r->flags & NBD_CMD_FLAG_REQ_ONE && n > 1)
    n = 1;
  buf = malloc (8 + n * dsize);
  if (buf == NULL)
    return -1;
  for (i = 0; i < n; i++) {
    struct nbdkit_extent x = extents_get (e, i);
    uint64_t len = x.length;
    if (x.offset >= end)
      break;
    if (x.offset + len > end)
      len = end - x.offset;
    if (!ext && len > UINT32_MAX) {
      /* Stop at a length that fits and keeps the block alignment. */
      uint32_t align = c->bs.minimum > 1 ? c->bs.minimum : 512;
      len = UINT32_MAX - (UINT32_MAX % align);
      i = n - 1;                /* this is the last descriptor */
    }
    if (ext) {
      uint64_t l = htobe64 (len), t = htobe64 (x.type);
      memcpy (buf + 8 + k * 16, &l, 8);
      memcpy (buf + 8 + k * 16 + 8, &t, 8);
    }
    else {
      uint32_t l = htobe32 (len), t = htobe32 (x.type);
      memcpy (buf + 4 + k * 8, &l, 4);
      memcpy (buf + 4 + k * 8 + 4, &t, 4);
    }
    k++;
  }
  uint32_t id = htobe32 (ctx_id);
  uint16_t done = last ? NBD_REPLY_FLAG_DONE : 0;
  memcpy (buf, &id, 4);
  if (ext) {
    uint32_t cnt = htobe32 (k);
    memcpy (buf + 4, &cnt, 4);
    out_chunk (o, r, done, NBD_REPLY_TYPE_BLOCK_STATUS_EXT, 8 + k * 16);
    out_data (o, buf, 8 + k * 16);
  }
  else {
    out_chunk (o, r, done, NBD_REPLY_TYPE_BLOCK_STATUS, 4 + k * 8);
    out_data (o, buf, 4 + k * 8);
  }
  int ret = out_flush (o);
  free (buf);
  return ret;
}

/* ---- execution ---- */

static uint32_t
nbdkit_flags (const struct request *r)
{
  uint32_t f = 0;
  if (r->flags & NBD_CMD_FLAG_FUA)
    f |= NBDKIT_FLAG_FUA;
  if (r->type == NBD_CMD_WRITE_ZEROES && !(r->flags & NBD_CMD_FLAG_NO_HOLE))
    f |= NBDKIT_FLAG_MAY_TRIM;
  if (r->flags & NBD_CMD_FLAG_FAST_ZERO)
    f |= NBDKIT_FLAG_FAST_ZERO;
  if (r->flags & NBD_CMD_FLAG_REQ_ONE)
    f |= NBDKIT_FLAG_REQ_ONE;
  return f;
}

/* Block status for every selected context: base:allocation from the
 * chain's extents, a filter's own context from that filter.  Each
 * must describe at least the start of the range.
 */
static int
block_status (struct connection *c, const struct request *r, uint32_t f,
              struct nbdkit_extents **es, uint32_t *ids, int *nes, int *err)
{
  struct server *s = c->server;

  for (int i = 0; i < s->nmeta; i++) {
    struct nbdkit_extents *e;
    int ret;

    if (!(c->meta_selected & (1u << i)))
      continue;
    e = extents_new (r->offset, c->exportsize);
    if (e == NULL) {
      *err = ENOMEM;
      return -1;
    }
    es[*nes] = e;
    ids[(*nes)++] = i + 1;
    if (i == 0)
      ret = backend_extents (c->top, r->count, r->offset, f, e, err);
    else {
      struct context *x = c->top;
      while (x && x->b != s->meta_owner[i])
        x = x->next;
      ret = x ? x->b->ops->meta_extents (x, r->count, r->offset, f, e, err)
              : -1;
      if (x == NULL)
        *err = EIO;
    }
    if (ret == -1)
      return -1;
    if (extents_count (e) == 0) {
      nbdkit_error ("block status for %s: no extent given for offset %"
                    PRIu64, s->meta_names[i], r->offset);
      *err = EIO;
      return -1;
    }
  }
  return 0;
}

/* Wait for this request's turn to send (serialize-retirement), then
 * hold the send lock.  Returns -1 if the connection died meanwhile.
 */
static int
send_begin (struct connection *c, const struct request *r)
{
  if (c->server->thread_model == TM_SERIALIZE_RETIREMENT) {
    pthread_mutex_lock (&c->lock);
    while (c->next_retire != r->seq && atomic_load (&c->status) >= 0)
      pthread_cond_wait (&c->cond, &c->lock);
    pthread_mutex_unlock (&c->lock);
  }
  pthread_mutex_lock (&c->send_lock);
  return 0;
}

static void
send_end (struct connection *c, int sent)
{
  pthread_mutex_unlock (&c->send_lock);
  if (sent == -1)
    atomic_store (&c->status, -1);
  if (c->server->thread_model == TM_SERIALIZE_RETIREMENT) {
    pthread_mutex_lock (&c->lock);
    c->next_retire++;
    pthread_cond_broadcast (&c->cond);
    pthread_mutex_unlock (&c->lock);
  }
}

static void
execute (struct connection *c, struct worker *w, struct request *r)
{
  struct server *s = c->server;
  struct context *top = c->top;
  struct out *o = NULL;
  struct nbdkit_extents *es[MAX_META];
  uint32_t ids[MAX_META];
  int nes = 0;
  uint32_t f = nbdkit_flags (r);
  int err = r->err, ret = 0, sent;
  bool serialize = s->thread_model == TM_SERIALIZE_ALL_REQUESTS;

  w->rd.nsegs = 0;
  if (err == 0 && r->count == 0 && r->type != NBD_CMD_FLUSH) {
    /* Zero-length requests succeed without reaching the plugin. */
  }
  else if (err == 0) {
    if (serialize)
      pthread_mutex_lock (&s->all_requests_lock);
    switch (r->type) {
      case NBD_CMD_READ:
        /* Zero copy only when the reply can send from the loans. */
        read_init (&w->rd, w->buf, r->count, r->offset, true);
        ret = backend_pread (top, w->buf, r->count, r->offset, 0, &w->rd,
                             &err);
        if (ret == -1 && !c->structured_replies)
          read_release (&w->rd);
        break;
      case NBD_CMD_WRITE:
        ret = backend_pwrite (top, w->buf, r->count, r->offset, f, &err);
        break;
      case NBD_CMD_FLUSH:
        ret = backend_flush (top, 0, &err);
        break;
      case NBD_CMD_TRIM:
        ret = backend_trim (top, r->count, r->offset, f, &err);
        break;
      case NBD_CMD_WRITE_ZEROES:
        ret = backend_zero (top, r->count, r->offset, f, &err);
        break;
      case NBD_CMD_CACHE:
        ret = backend_cache (top, r->count, r->offset, 0, &err);
        break;
      case NBD_CMD_BLOCK_STATUS:
        ret = block_status (c, r, f, es, ids, &nes, &err);
        break;
    }
    if (serialize)
      pthread_mutex_unlock (&s->all_requests_lock);
    /* A layer may set *err on a path it then recovered from. */
    if (ret == 0)
      err = 0;
    else if (err == 0)
      err = EIO;
    if (ret == -1)
      log_debug (s, "%s at %" PRIu64 " for %" PRIu64 " bytes failed: errno %d",
                 cmd_name (r->type), r->offset, r->count, err);
  }

  /* The reply is built in the thread's own struct out, kept between
   * requests: it is large, and allocating it each time showed.
   */
  if (w->out == NULL)
    w->out = malloc (sizeof *w->out);
  o = w->out;
  send_begin (c, r);
  if (o == NULL)
    sent = -1;
  else {
    o->c = c;
    o->n = 0;
    o->used = 0;
    o->last_flags = NULL;
    if (r->type == NBD_CMD_READ && r->err == 0 && r->count > 0)
      sent = reply_read (o, w, r, err) == -1 ? -1 : out_flush (o);
    else if (r->type == NBD_CMD_BLOCK_STATUS && err == 0 && nes > 0) {
      sent = 0;
      for (int i = 0; i < nes && sent == 0; i++)
        sent = reply_block_status (o, r, es[i], ids[i], i == nes - 1);
    }
    else {
      out_status (o, r, err);
      sent = out_flush (o);
    }
  }
  send_end (c, sent);
  read_release (&w->rd);
  for (int i = 0; i < nes; i++)
    extents_free (es[i]);
}

void
transmission_loop (struct connection *c)
{
  struct worker w = { 0 };
  struct request r;
  int rr;

  pthread_mutex_lock (&c->lock);
  for (;;) {
    while (c->reader_busy && atomic_load (&c->status) > 0) {
      c->nidle++;
      pthread_cond_wait (&c->cond, &c->lock);
      c->nidle--;
    }
    if (atomic_load (&c->status) <= 0)
      break;
    c->reader_busy = true;
    pthread_mutex_unlock (&c->lock);

    rr = read_request (c, &w, &r);

    pthread_mutex_lock (&c->lock);
    c->reader_busy = false;
    if (rr != 0) {
      if (rr == 1)
        log_debug (c->server, "client sent disconnect");
      /* Stop reading; requests in flight still finish and reply. */
      int one = 1;
      atomic_compare_exchange_strong (&c->status, &one, 0);
      pthread_cond_broadcast (&c->cond);
      break;
    }
    r.seq = c->next_seq++;
    /* Another thread reads the next request only when one is already
     * waiting: a lone request is served on this thread without any
     * hand-over (the common case at queue depth 1).
     */
    /* Hand the reader role to another thread only if a request is
     * already waiting and requests here take long enough to be worth
     * it.  Otherwise serve this one here, and let the watchdog know in
     * case it is slow after all.
     */
    bool unattended = false;
    uint64_t t0 = 0;
    if (c->max_threads > 1) {
      t0 = monotonic_ns ();
      if (c->service_ns > HANDOFF_NS && conn_input_pending (c))
        connection_find_reader (c);
      else {
        atomic_store (&c->unattended_since, t0);
        unattended = true;
      }
    }
    pthread_mutex_unlock (&c->lock);

    execute (c, &w, &r);

    if (unattended)
      atomic_store (&c->unattended_since, 0);
    pthread_mutex_lock (&c->lock);
    if (t0) {
      /* A moving average of the time a request takes here. */
      int64_t dt = monotonic_ns () - t0;
      c->service_ns += (dt - (int64_t) c->service_ns) / 8;
    }
  }
  pthread_mutex_unlock (&c->lock);
  free (w.buf);
  free (w.rd.segs);
  free (w.out);
}
