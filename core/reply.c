/* reply.c: replies on the wire.  Headers and chunk payload headers
 * are built in the struct out, data is pointed at (the buffer, lent
 * memory, a static block of zeroes), and all of it leaves through
 * sendmsg in as few calls as fit.  Read replies gather consecutive
 * data into one chunk; only holes worth a chunk of their own break it.
 */

#include <endian.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "protocol.h"
#include "reply.h"

static const char zeroes[65536];

void
out_init (struct out *o, struct connection *c)
{
  o->c = c;
  o->n = 0;
  o->used = 0;
  o->last_flags = NULL;
  o->flushes = 0;
  o->nowait = false;
  o->blocked = false;
  o->skip = 0;
  o->sent = 0;
  o->built = 0;
}

/* Leave out of the gathered iovecs the bytes already sent (o->skip);
 * the number of iovecs left, from *IOV on.
 */
static int
out_skip (struct out *o, struct iovec **iov)
{
  struct iovec *v = o->iov;
  int n = o->n;

  while (n > 0 && o->skip > 0) {
    if (o->skip >= v->iov_len) {
      o->skip -= v->iov_len;
      o->sent += v->iov_len;
      v++;
      n--;
    } else {
      v->iov_base = (char *)v->iov_base + o->skip;
      v->iov_len -= o->skip;
      o->sent += o->skip;
      o->skip = 0;
    }
  }
  *iov = v;
  return n;
}

/* Reply headers and chunk payload headers are built here, the data is
 * pointed at, and everything leaves in as few sendmsg calls as fit.
 */
int
out_flush (struct out *o)
{
  int r = 0;
  if (o->n > 0) {
    struct iovec *iov = o->iov;
    int n = o->skip > 0 ? out_skip (o, &iov) : o->n;
    if (n > 0 && o->nowait) {
      size_t len = 0;
      for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
      ssize_t k = conn_sendv_nowait (o->c, iov, n);
      if (k == -1)
        r = -1;
      else {
        o->sent += k;
        if ((size_t)k < len) {
          o->blocked = true;
          r = -1;
        }
      }
    } else if (n > 0)
      r = conn_sendv (o->c, iov, n);
    o->flushes++;
  }
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
  o->built += len;
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
  o->iov[o->n].iov_base = (void *)data;
  o->iov[o->n].iov_len = len;
  o->n++;
  o->built += len;
  if (o->n >= MAX_IOV - 4 || o->used >= sizeof o->hdr - 200)
    return out_flush (o);
  return 0;
}

/* Room for one more chunk header and its payload header (or, before
 * a reply, for its first headers: several replies may be gathered).
 */
int
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
    o->last_flags = (unsigned char *)h + 4;
  } else {
    struct nbd_structured_reply *h = out_hdr (o, sizeof *h);
    h->magic = htobe32 (NBD_STRUCTURED_REPLY_MAGIC);
    h->flags = htobe16 (flags);
    h->type = htobe16 (type);
    h->cookie = r->cookie;
    h->length = htobe32 (length);
    o->last_flags = (unsigned char *)h + 4;
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
out_error_chunk (struct out *o, const struct request *r, int err, uint64_t at)
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
void
out_status (struct out *o, const struct request *r, int err)
{
  if (!o->c->structured_replies)
    out_simple (o, r, err);
  else if (err)
    out_error_chunk (o, r, err, UINT64_MAX);
  else if (o->c->extended_headers || r->type == NBD_CMD_READ)
    out_chunk (o, r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
  else
    out_simple (o, r, 0); /* allowed with structured replies */
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
  const void *data; /* NULL for a hole */
  bool hole;
};

static void
piece_at (const struct nbdkit_read *rd, const char *buf, size_t i, uint64_t pos,
          uint64_t limit, struct piece *p)
{
  if (i < rd->nsegs && rd->segs[i].offset <= pos) {
    const struct read_seg *g = &rd->segs[i];
    uint64_t end = g->offset + g->length;
    p->len = (end < limit ? end : limit) - pos;
    p->hole = g->data == NULL;
    p->data = g->data ? (const char *)g->data + (pos - g->offset) : NULL;
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
int
reply_read (struct out *o, struct nbdkit_read *rd, const char *buf,
            const struct request *r, int err)
{
  uint64_t limit = !err                         ? r->count
                   : rd->error_at == UINT64_MAX ? 0
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
      if (out_data (o, buf + pos, g->offset - pos) == -1)
        return -1;
      if ((g->data ? out_data (o, g->data, g->length)
                   : out_zeroes (o, g->length))
          == -1)
        return -1;
      pos = g->offset + g->length;
    }
    return out_data (o, buf + pos, r->count - pos);
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

    piece_at (rd, buf, i, pos, limit, &p);
    if (p.hole && !df && p.len >= MIN_HOLE_CHUNK) {
      if (out_hole_chunk (o, r, pos, p.len) == -1)
        return -1;
      piece_advance (rd, &i, &pos, p.len);
      continue;
    }
    /* Measure the run, then send its header and its pieces. */
    while (pos < limit) {
      piece_at (rd, buf, i, pos, limit, &p);
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
    out_chunk (o, r, done ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_OFFSET_DATA,
               8 + run);
    uint64_t off = htobe64 (r->offset + rpos);
    memcpy (out_hdr (o, 8), &off, 8);
    i = ri;
    pos = rpos;
    while (run > 0) {
      piece_at (rd, buf, i, pos, limit, &p);
      if ((p.hole ? out_zeroes (o, p.len) : out_data (o, p.data, p.len)) == -1)
        return -1;
      piece_advance (rd, &i, &pos, p.len);
      run -= p.len;
    }
  }

  if (err)
    out_error_chunk (o, r, err,
                     limit == 0 || limit >= r->count ? UINT64_MAX
                                                     : r->offset + limit);
  else if (done)
    ;
  else if (o->last_flags) {
    uint16_t done = htobe16 (NBD_REPLY_FLAG_DONE);
    memcpy (o->last_flags, &done, 2);
  } else if (pos == 0)
    out_status (o, r, 0); /* zero-length read */
  else {
    /* The last chunk's header was already sent in an earlier batch. */
    out_chunk (o, r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
  }
  return 0;
}

/* Block status for base:allocation. */
int
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
  bool req_one = r->flags & NBD_CMD_FLAG_REQ_ONE;

  /* With REQ_ONE the one extent must end inside the request.  Without
   * it the last extent may run past the request (the protocol allows
   * it, with or without extended headers, as nbdkit does), which saves
   * the client requests; extents starting after the request's end are
   * left out.
   */
  if (req_one && n > 1)
    n = 1;
  buf = malloc (8 + n * dsize);
  if (buf == NULL)
    return -1;
  for (i = 0; i < n; i++) {
    struct nbdkit_extent x = extents_get (e, i);
    uint64_t len = x.length;
    if (x.offset >= end)
      break;
    if (x.offset + len > end) {
      if (req_one)
        len = end - x.offset;
      i = n - 1; /* this is the last descriptor */
    }
    if (!ext && len > UINT32_MAX) {
      /* Stop at a length that fits and keeps the block alignment. */
      uint32_t align = c->bs.minimum > 1 ? c->bs.minimum : 512;
      len = UINT32_MAX - (UINT32_MAX % align);
      i = n - 1; /* this is the last descriptor */
    }
    if (ext) {
      uint64_t l = htobe64 (len), t = htobe64 (x.type);
      memcpy (buf + 8 + k * 16, &l, 8);
      memcpy (buf + 8 + k * 16 + 8, &t, 8);
    } else {
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
    if (out_data (o, buf, 8 + k * 16) == -1) {
      free (buf);
      return -1;
    }
  } else {
    out_chunk (o, r, done, NBD_REPLY_TYPE_BLOCK_STATUS, 4 + k * 8);
    if (out_data (o, buf, 4 + k * 8) == -1) {
      free (buf);
      return -1;
    }
  }
  int ret = out_flush (o);
  free (buf);
  return ret;
}
