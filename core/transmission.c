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

#include "async.h"
#include "internal.h"
#include "protocol.h"
#include "reply.h"
#include "request.h"

/* What one thread keeps between requests: its buffers and read state,
 * reused so a request allocates nothing.
 *
 * Bytes a plugin does not write must reach the client as zeroes, and
 * clearing every read buffer costs a memset per read.  So the read
 * buffer is kept zero except for its first DIRTY bytes, which reads
 * may have written; write payloads go to a buffer of their own.  A
 * read through layers that all promise to fill needs nothing; any
 * other read clears only the dirty part of its range.  Reads answered
 * wholly with holes and loans (the memory plugin) leave it clean.
 */
struct out;
struct worker {
  char *buf; /* reads */
  size_t buf_size;
  size_t dirty; /* buf[dirty..buf_size) holds zeroes */
  char *wbuf;   /* write payloads */
  size_t wbuf_size;
  struct nbdkit_read rd;
  struct out *out;
  /* Small replies held back while the next request is already in
   * hand, to leave together in one sendmsg (see execute).
   */
  char *held;
  size_t held_len;
};

/* Requests that take longer than this on average are worth handing
 * to another thread when several are queued: about the cost of waking
 * a thread and switching to it.
 */
#define HANDOFF_NS 20000

/* Grow *BUF to at least N bytes.  The contents need not survive, and
 * a new buffer from calloc starts clean (large ones are fresh pages,
 * which cost no clearing).
 */
static int
grow (char **buf, size_t *size, size_t n)
{
  if (n <= *size)
    return 0;
  char *nb = calloc (1, n);
  if (nb == NULL)
    return -1;
  free (*buf);
  *buf = nb;
  *size = n;
  return 0;
}

/* Replies up to HOLD_REPLY bytes are held back while the next request
 * is already buffered, up to HOLD_MAX bytes in all.  One sendmsg then
 * carries several replies and the client wakes once for them, instead
 * of once per reply.  HOLD_MAX stays well under a queue of 16 4 KiB
 * replies so that the client gets some while the rest are served.
 */
#define HOLD_REPLY 16384
#define HOLD_MAX 32768

/* Held replies wait for the requests served after them; where
 * requests take this long on average, holding is not worth that.
 */
#define HOLD_NS 1000000

static int
grow_buf (struct worker *w, size_t n)
{
  if (n <= w->buf_size)
    return 0;
  w->dirty = 0;
  return grow (&w->buf, &w->buf_size, n);
}

/* Whether every layer promises to fill the read buffer. */
static bool
chain_fills (const struct context *t)
{
  for (; t; t = t->next)
    if (!layer_pread_fills (t->b))
      return false;
  return true;
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
  } else {
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
  r->err = request_validate (c, r);
  if (r->err == 0 && atomic_load (&c->soft_disconnect))
    r->err = ESHUTDOWN;
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
    r->err = EINVAL; /* only writes carry a payload here */

  if (payload > 0) {
    if (r->err || grow (&w->wbuf, &w->wbuf_size, payload) == -1) {
      if (r->err == 0)
        r->err = ENOMEM;
      if (discard (c, payload) == -1)
        return -1;
    } else if (conn_recv (c, w->wbuf, payload) == -1)
      return -1;
  }
  if (r->type == NBD_CMD_READ && r->err == 0
      && grow_buf (w, r->count ? r->count : 1) == -1)
    r->err = ENOMEM;
  return 0;
}

/* ---- execution ---- */

/* Send the replies held back, if any; with the send lock held. */
static int
send_held (struct connection *c, struct worker *w)
{
  int r = 0;
  if (w->held_len > 0)
    r = conn_send (c, w->held, w->held_len);
  w->held_len = 0;
  return r;
}

/* Send the held replies outside a request, taking the send lock. */
static void
flush_held (struct connection *c, struct worker *w)
{
  if (w->held_len == 0)
    return;
  pthread_mutex_lock (&c->send_lock);
  async_send_partial (c);
  int sent = send_held (c, w);
  pthread_mutex_unlock (&c->send_lock);
  if (sent == -1)
    atomic_store (&c->status, CONN_DEAD);
}

/* Hold the reply gathered in O back instead of sending it, if it is
 * small and fits: its bytes are copied, so the buffer and the loans
 * can go at once.  False if it must be sent now.
 */
static bool
hold_reply (struct worker *w, const struct out *o)
{
  size_t len = 0;

  for (int i = 0; i < o->n; i++)
    len += o->iov[i].iov_len;
  if (len > HOLD_REPLY || w->held_len + len > HOLD_MAX)
    return false;
  if (w->held == NULL && (w->held = malloc (HOLD_MAX)) == NULL)
    return false;
  for (int i = 0; i < o->n; i++) {
    memcpy (w->held + w->held_len, o->iov[i].iov_base, o->iov[i].iov_len);
    w->held_len += o->iov[i].iov_len;
  }
  return true;
}

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
  uint64_t count = r->count;

  /* Asked about more than the layer takes at once, it is asked about
   * less: a reply may describe less than the request.
   */
  if (c->bs.maximum_virtual && !c->bs.advisory && count > c->bs.maximum_virtual)
    count = c->bs.maximum_virtual;

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
      ret = backend_extents (c->top, count, r->offset, f, e, err);
    else {
      struct context *x = c->top;
      while (x && x->b != s->meta_owner[i])
        x = x->next;
      ret = x ? x->b->ops->meta_extents (x, count, r->offset, f, e, err) : -1;
      if (x == NULL)
        *err = EIO;
    }
    if (ret == -1)
      return -1;
    if (extents_count (e) == 0) {
      nbdkit_error ("block status for %s: no extent given for offset %" PRIu64,
                    s->meta_names[i], r->offset);
      *err = EIO;
      return -1;
    }
  }
  return 0;
}

/* Send, or hold back, the reply gathered in O, with the send lock
 * held.  Replies held earlier leave first, in the same sendmsg, unless
 * part of this reply already left (a reply's bytes never interleave
 * with another's).
 */
static int
finish_reply (struct connection *c, struct worker *w, struct out *o, bool hold)
{
  if (o->flushes > 0) {
    if (out_flush (o) == -1)
      return -1;
    return send_held (c, w);
  }
  if (hold && hold_reply (w, o))
    return 0;
  if (w->held_len > 0 && o->n < MAX_IOV) {
    memmove (&o->iov[1], &o->iov[0], o->n * sizeof o->iov[0]);
    o->iov[0].iov_base = w->held;
    o->iov[0].iov_len = w->held_len;
    o->n++;
    w->held_len = 0;
  } else if (send_held (c, w) == -1)
    return -1;
  return out_flush (o);
}

/* Wait for this request's turn to send (serialize-retirement), then
 * hold the send lock.
 */
static void
send_begin (struct connection *c, const struct request *r)
{
  if (c->server->thread_model == TM_SERIALIZE_RETIREMENT) {
    pthread_mutex_lock (&c->lock);
    while (c->next_retire != r->seq
           && atomic_load (&c->status) >= CONN_STOPPING)
      pthread_cond_wait (&c->cond, &c->lock);
    pthread_mutex_unlock (&c->lock);
  }
  pthread_mutex_lock (&c->send_lock);
  async_send_partial (c);
}

static void
send_end (struct connection *c, int sent)
{
  pthread_mutex_unlock (&c->send_lock);
  if (sent == -1)
    atomic_store (&c->status, CONN_DEAD);
  if (c->server->thread_model == TM_SERIALIZE_RETIREMENT)
    async_retire_next (c);
}

/* Serve R; false if it went to the plugin asynchronously (its
 * completion replies).
 */
static bool
execute (struct connection *c, struct worker *w, struct request *r, bool hold)
{
  struct server *s = c->server;
  struct context *top = c->top;
  struct out *o = NULL;
  struct nbdkit_extents *es[MAX_META];
  uint32_t ids[MAX_META];
  int nes = 0;
  uint32_t f = nbdkit_flags (r);
  int err = r->err, ret = 0, sent;
  /* The plugin's own lock is taken where calls enter it (backend.c). */
  bool serialize = s->serialize_filters;

  w->rd.nsegs = 0;
  if (err == 0 && r->count == 0 && r->type != NBD_CMD_FLUSH) {
    /* Zero-length requests succeed without reaching the plugin. */
  } else if (err == 0 && async_execute (c, r, f, &w->wbuf, &w->wbuf_size)) {
    return false;
  } else if (err == 0) {
    if (serialize)
      pthread_mutex_lock (&s->all_requests_lock);
    switch (r->type) {
      case NBD_CMD_READ:
        /* Zero copy only when the reply can send from the loans. */
        read_init (&w->rd, w->buf, r->count, r->offset, true);
        if (!chain_fills (top)) {
          if (w->dirty > r->count)
            memset (w->buf, 0, r->count);
          else if (w->dirty) {
            memset (w->buf, 0, w->dirty);
            w->dirty = 0;
          }
          w->rd.buf_zero = true;
        }
        ret = backend_pread (top, w->buf, r->count, r->offset, 0, &w->rd, &err);
        if (!read_all_segments (&w->rd) && w->dirty < r->count)
          w->dirty = r->count;
        if (ret == -1 && !c->structured_replies)
          read_release (&w->rd);
        break;
      case NBD_CMD_WRITE:
        ret = backend_pwrite (top, w->wbuf, r->count, r->offset, f, &err);
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
    out_init (o, c);
    if (r->type == NBD_CMD_READ && r->err == 0 && r->count > 0)
      sent = reply_read (o, &w->rd, w->buf, r, err) == -1
                 ? -1
                 : finish_reply (c, w, o, hold);
    else if (r->type == NBD_CMD_BLOCK_STATUS && err == 0 && nes > 0) {
      sent = send_held (c, w);
      for (int i = 0; i < nes && sent == 0; i++)
        sent = reply_block_status (o, r, es[i], ids[i], i == nes - 1);
    } else {
      out_status (o, r, err);
      sent = finish_reply (c, w, o, hold);
    }
  }
  send_end (c, sent);
  read_release (&w->rd);
  for (int i = 0; i < nes; i++)
    extents_free (es[i]);
  return true;
}

void
transmission_loop (struct connection *c)
{
  struct worker w = { 0 };
  struct request r;
  int rr;
  /* Replies may be held back where their order does not matter (or
   * where one thread sends them all, in order).
   */
  bool may_hold = c->server->thread_model != TM_SERIALIZE_RETIREMENT
                  || (c->max_threads == 1 && !async_used (c));

  pthread_mutex_lock (&c->lock);
  for (;;) {
    /* Held replies go before this thread could wait: for the reader
     * role, or for the client when the next request is not in hand.
     */
    if (w.held_len > 0
        && (c->reader_busy || atomic_load (&c->status) <= CONN_STOPPING
            || !conn_request_buffered (c))) {
      pthread_mutex_unlock (&c->lock);
      flush_held (c, &w);
      pthread_mutex_lock (&c->lock);
    }
    while (c->reader_busy && atomic_load (&c->status) > CONN_STOPPING) {
      c->nidle++;
      pthread_cond_wait (&c->cond, &c->lock);
      c->nidle--;
    }
    if (atomic_load (&c->status) <= CONN_STOPPING)
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
      int live = CONN_LIVE;
      atomic_compare_exchange_strong (&c->status, &live, CONN_STOPPING);
      pthread_cond_broadcast (&c->cond);
      break;
    }
    r.seq = c->next_seq++;
    /* Hand the reader role to another thread only if a request is
     * already waiting and requests here take long enough to be worth
     * it.  Otherwise serve this one here, and let the watchdog know in
     * case it is slow after all.
     */
    bool unattended = false, hold = false;
    uint64_t t0 = monotonic_ns ();
    /* A request started asynchronously takes only the time to start
     * it: no other thread is needed to read the next one meanwhile.
     */
    if (c->max_threads > 1 && !async_would_start (c, &r)) {
      /* On a single CPU another thread cannot run meanwhile: leave slow
       * requests to the watchdog.
       */
      if (c->service_ns > HANDOFF_NS && c->server->ncpus > 1
          && conn_input_pending (c))
        connection_find_reader (c);
      else {
        atomic_store (&c->unattended_since, t0);
        unattended = true;
      }
    }
    /* Served here with the next request in hand, and requests here
     * are not slow: its reply can wait for the next one's.  (A slow
     * one after fast ones delays the replies held before it; the
     * average then stops the holding.)
     */
    hold = may_hold && (unattended || c->max_threads == 1)
           && c->service_ns < HOLD_NS && conn_request_buffered (c);
    pthread_mutex_unlock (&c->lock);

    bool served = execute (c, &w, &r, hold);

    if (unattended)
      atomic_store (&c->unattended_since, 0);
    pthread_mutex_lock (&c->lock);
    /* A moving average of the time a request takes here.  One started
     * asynchronously took only the time to start it, and keeps no
     * thread: handing the reader role on for it would only add
     * threads.
     */
    if (served) {
      int64_t dt = monotonic_ns () - t0;
      c->service_ns += (dt - (int64_t)c->service_ns) / 8;
    }
  }
  pthread_mutex_unlock (&c->lock);
  flush_held (c, &w);
  free (w.held);
  free (w.buf);
  free (w.wbuf);
  free (w.rd.segs);
  free (w.out);
}
