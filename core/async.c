/* async.c: requests a plugin completes later.  A plugin's async_*
 * callback gets a completion handle and may return at once; when it
 * calls nbdkit_complete, from any thread, the reply is built and
 * queued on its connection, in the order the thread model asks for.
 * So a connection keeps many requests in flight with one or two
 * threads of its own.
 *
 * The completing thread may serve every connection (the rbd plugin's
 * completer, libnbd's reader with shared=true, a curl multi loop), so
 * it must never wait for one client: it sends what the socket takes at
 * once and leaves the rest to a thread that waits for that client
 * alone (see "sending the replies of completions" below).  A client
 * that stops reading holds up its own replies, never another's.
 *
 * Handles are not pointers: a handle names a slot in one process-wide
 * table and the slot's generation, so a handle completed twice, or
 * late, is recognised and refused instead of touching freed memory.
 * The table is global because nbdkit_complete may be called from a
 * thread that knows nothing else (a library's callback thread).
 *
 * Which requests go asynchronously is decided once per connection
 * (async_prepare): only with the parallel and serialize-retirement
 * models (the serializing ones promise one request at a time), only
 * for kinds of request every filter passes through untouched, and only
 * where no layer needs the server to emulate something (FUA by a
 * flush, zeroing by writes, extents as data).  Everything else goes
 * the synchronous way; a plugin with only async callbacks is then
 * called and waited for (struct waiter).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "async.h"
#include "internal.h"
#include "protocol.h"
#include "reply.h"

/* ---- handles ---- */

#define SLOT_BITS (sizeof (uintptr_t) >= 8 ? 24u : 16u)
#define SLOT_MASK (((uintptr_t)1 << SLOT_BITS) - 1)
#define GEN_MASK (UINTPTR_MAX >> SLOT_BITS)
#define CHUNK 4096
#define MAX_CHUNKS ((1u << 24) / CHUNK)

struct slot {
  struct completion_target *t; /* NULL when free */
  uintptr_t gen;               /* bumped each time the slot is freed */
  size_t next_free;            /* index + 1, 0 for none */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *chunks[MAX_CHUNKS];
static size_t nslots, free_head;

struct nbdkit_completion *
handle_new (struct completion_target *t)
{
  struct slot *sl;
  size_t i;
  uintptr_t v;

  pthread_mutex_lock (&reg_lock);
  if (free_head) {
    i = free_head - 1;
    sl = &chunks[i / CHUNK][i % CHUNK];
    free_head = sl->next_free;
  } else {
    i = nslots;
    if (i + 1 >= SLOT_MASK || i / CHUNK >= MAX_CHUNKS)
      goto full;
    if (i % CHUNK == 0 && chunks[i / CHUNK] == NULL
        && (chunks[i / CHUNK] = calloc (CHUNK, sizeof (struct slot))) == NULL)
      goto full;
    nslots++;
    sl = &chunks[i / CHUNK][i % CHUNK];
  }
  sl->t = t;
  v = ((sl->gen & GEN_MASK) << SLOT_BITS) | (i + 1);
  pthread_mutex_unlock (&reg_lock);
  return (struct nbdkit_completion *)v;

full:
  pthread_mutex_unlock (&reg_lock);
  nbdkit_error ("no completion handle left: %zu requests outstanding", i);
  return NULL;
}

struct completion_target *
handle_take (struct nbdkit_completion *h)
{
  uintptr_t v = (uintptr_t)h;
  size_t i = (v & SLOT_MASK) - 1;
  struct completion_target *t = NULL;

  if ((v & SLOT_MASK) == 0)
    return NULL;
  pthread_mutex_lock (&reg_lock);
  if (i < nslots) {
    struct slot *sl = &chunks[i / CHUNK][i % CHUNK];
    if (sl->t && (sl->gen & GEN_MASK) == v >> SLOT_BITS) {
      t = sl->t;
      sl->t = NULL;
      sl->gen++;
      sl->next_free = free_head;
      free_head = i + 1;
    }
  }
  pthread_mutex_unlock (&reg_lock);
  return t;
}

NBDKIT_EXTERN_C int
nbdkit_complete (struct nbdkit_completion *h, int err)
{
  struct completion_target *t = handle_take (h);

  if (t == NULL) {
    nbdkit_error ("nbdkit_complete: handle %p is unknown or was completed"
                  " already",
                  (void *)h);
    errno = EINVAL;
    return -1;
  }
  t->done (t, err < 0 ? EIO : err);
  return 0;
}

/* ---- waiting for a completion ---- */

static void
waiter_done (struct completion_target *t, int err)
{
  struct waiter *w = (struct waiter *)t;

  pthread_mutex_lock (&w->lock);
  w->err = err;
  w->done = true;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
}

struct nbdkit_completion *
waiter_begin (struct waiter *w)
{
  struct nbdkit_completion *h;

  w->t.done = waiter_done;
  w->done = false;
  w->err = 0;
  pthread_mutex_init (&w->lock, NULL);
  pthread_cond_init (&w->cond, NULL);
  h = handle_new (&w->t);
  if (h == NULL) {
    pthread_mutex_destroy (&w->lock);
    pthread_cond_destroy (&w->cond);
  }
  return h;
}

int
waiter_end (struct waiter *w, struct nbdkit_completion *h, int r, int *err)
{
  int e = 0;

  if (r == -1) {
    e = callback_errno ();
    /* Failed at once, as it should, without completing. */
    if (handle_take (h) == &w->t) {
      pthread_mutex_destroy (&w->lock);
      pthread_cond_destroy (&w->cond);
      *err = e;
      return -1;
    }
  }
  pthread_mutex_lock (&w->lock);
  while (!w->done)
    pthread_cond_wait (&w->cond, &w->lock);
  pthread_mutex_unlock (&w->lock);
  pthread_mutex_destroy (&w->lock);
  pthread_cond_destroy (&w->cond);
  if (r == -1 || w->err) {
    *err = r == -1 ? e : w->err;
    return -1;
  }
  return 0;
}

/* ---- asynchronous requests of a connection ---- */

/* At most this many requests of one connection outstanding, holding
 * at most this many bytes of buffers (a single request may always
 * go): a client that sends without reading replies is held back.
 */
#define ASYNC_MAX 256
#define ASYNC_MAX_BYTES (256 * 1024 * 1024)
/* Finished requests kept for reuse, with buffers up to KEEP_BUF. */
#define KEEP_FREE 64
#define KEEP_BUF (1024 * 1024)

struct areq {
  struct completion_target t;
  struct connection *c;
  struct areq *next; /* on the free or the ready list */
  struct request r;
  uint32_t flags; /* NBDKIT_FLAG_* */
  int err;
  uint64_t sent; /* bytes of the reply sent (it may leave in pieces) */
  size_t bytes;  /* counted in async_conn.bytes */
  char *buf;     /* reads */
  size_t buf_size;
  size_t dirty; /* buf[dirty..) holds zeroes (as in transmission.c) */
  char *wbuf;   /* a write's payload */
  size_t wbuf_size;
  struct nbdkit_read rd;
  struct nbdkit_extents *e;
};

struct async_conn {
  unsigned ok; /* bit 1 << NBD_CMD_*: may go asynchronously */
  bool fua_ok; /* and with FUA too */
  struct context *plugin;
  struct out *out;      /* replies of completions, under send_lock */
  struct areq *partial; /* a reply cut short, and the replies gathered
                           after it (->next): their rest goes first
                           (send_lock) */
  pthread_cond_t cond;  /* with c->lock: outstanding went down */
  unsigned outstanding; /* started and not yet finished (c->lock) */
  size_t bytes;
  struct areq *free; /* for reuse (c->lock) */
  unsigned nfree;
  struct areq *ready; /* completed, waiting to be sent (in request
                         order for serialize-retirement) (c->lock) */
  struct areq **ready_tail;
  bool sending; /* a thread has the sender role (c->lock) */
  /* Replies sent whole by the thread that completed, replies it cut
   * short, and hand-offs to a pool thread (c->lock): logged at the
   * close (-v).
   */
  uint64_t at_once, cut_short, handed_off;
};

static const uint16_t kinds[]
    = { NBD_CMD_READ, NBD_CMD_WRITE,        NBD_CMD_FLUSH,
        NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES, NBD_CMD_BLOCK_STATUS };

/* Whether every layer of the chain lets TYPE go straight to the
 * plugin, and no layer would have the server emulate it.
 */
static bool
chain_can_start (struct connection *c, uint16_t type)
{
  for (struct context *x = c->top; x; x = x->next) {
    const struct backend_ops *ops = x->b->ops;
    if (ops->can_start == NULL || !ops->can_start (x->b, type))
      return false;
    if (x->next == NULL && (x->b->is_filter || ops->start == NULL))
      return false;
    switch (type) {
      case NBD_CMD_FLUSH:
        if (backend_can_flush (x) != 1)
          return false;
        break;
      case NBD_CMD_WRITE_ZEROES:
        if (backend_can_zero (x) != NBDKIT_ZERO_NATIVE)
          return false;
        break;
      case NBD_CMD_BLOCK_STATUS:
        if (backend_can_extents (x) != NBDKIT_EXTENTS_NATIVE)
          return false;
        break;
    }
  }
  return true;
}

void
async_prepare (struct connection *c)
{
  struct server *s = c->server;
  struct async_conn *a;

  if (c->async || c->top == NULL)
    return;
  if (s->thread_model != TM_PARALLEL
      && s->thread_model != TM_SERIALIZE_RETIREMENT)
    return;
  a = calloc (1, sizeof *a);
  if (a == NULL)
    return;
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (chain_can_start (c, kinds[i]))
      a->ok |= 1u << kinds[i];
  /* Block status for base:allocation alone: other contexts are a
   * filter's.
   */
  if (c->meta_selected != 1)
    a->ok &= ~(1u << NBD_CMD_BLOCK_STATUS);
  a->fua_ok = true;
  for (struct context *x = c->top; x; x = x->next) {
    if (backend_can_fua (x) != NBDKIT_FUA_NATIVE)
      a->fua_ok = false;
    a->plugin = x;
  }
  if (a->ok == 0 || (a->out = malloc (sizeof *a->out)) == NULL) {
    free (a);
    return;
  }
  pthread_cond_init (&a->cond, NULL);
  a->ready_tail = &a->ready;
  c->async = a;
  log_debug (s, "asynchronous requests: 0x%x%s", a->ok,
             a->fua_ok ? " (with FUA)" : "");
}

bool
async_used (const struct connection *c)
{
  return c->async != NULL;
}

static void
areq_free (struct areq *q)
{
  free (q->buf);
  free (q->wbuf);
  free (q->rd.segs);
  extents_free (q->e);
  free (q);
}

/* With c->lock held: Q is done with; the connection may go once the
 * lock is released after the last one.
 */
static void
finish_locked (struct async_conn *a, struct areq *q)
{
  a->outstanding--;
  a->bytes -= q->bytes;
  if (a->nfree < KEEP_FREE) {
    if (q->buf_size > KEEP_BUF) {
      free (q->buf);
      q->buf = NULL;
      q->buf_size = q->dirty = 0;
    }
    if (q->wbuf_size > KEEP_BUF) {
      free (q->wbuf);
      q->wbuf = NULL;
      q->wbuf_size = 0;
    }
    q->next = a->free;
    a->free = q;
    a->nfree++;
  } else
    areq_free (q);
  pthread_cond_broadcast (&a->cond);
}

/* ---- sending the replies of completions ----
 *
 * A completion queues its reply on its connection (a->ready), and
 * one thread at a time, the one holding the sender role (a->sending),
 * sends the queue.  The thread that completed takes the role if it is
 * free, but it may be shared by every connection (a library's
 * callback thread), so it never waits for the client: it sends only
 * what the socket takes at once (over TLS too: tls.c's push function
 * does not wait for it either).  The rest, and the role, go to a
 * pool thread (flusher), which may wait on this client alone, and
 * sends the queue in batches.  A reply cut short that way is finished
 * before anything else leaves (a->partial): built again and sent from
 * the byte where it stopped (struct out's skip), by the flusher or by
 * a thread of the connection that takes the send lock first.  Over
 * TLS the bytes of a record the socket took only in part are not
 * counted as sent, so that sending again starts at the record's first
 * byte, where GnuTLS wants the same record sent again.  The
 * connection is freed only once no thread has the role.
 */

/* Replies sent together, at most. */
#define BATCH 16

/* With c->lock held: whether the first queued reply may go now. */
static bool
ready_in_turn (struct connection *c)
{
  struct async_conn *a = c->async;

  return a->ready
         && (c->server->thread_model != TM_SERIALIZE_RETIREMENT
             || a->ready->r.seq == c->next_retire
             /* Once the connection is dead turns no longer matter (a
              * synchronous request may have taken one out of order):
              * nothing may be left waiting.
              */
             || atomic_load (&c->status) < CONN_STOPPING);
}

/* With c->lock held: queue Q, in request order for
 * serialize-retirement.
 */
static void
ready_put (struct connection *c, struct areq *q)
{
  struct async_conn *a = c->async;
  struct areq **p = a->ready_tail;

  if (c->server->thread_model == TM_SERIALIZE_RETIREMENT)
    for (p = &a->ready; *p && (*p)->r.seq < q->r.seq; p = &(*p)->next)
      ;
  q->next = *p;
  *p = q;
  if (q->next == NULL)
    a->ready_tail = &q->next;
}

static struct areq *
ready_take (struct async_conn *a)
{
  struct areq *q = a->ready;

  a->ready = q->next;
  if (a->ready == NULL)
    a->ready_tail = &a->ready;
  return q;
}

/* Gather Q's reply in O after what is there (flushing as it fills):
 * 0 or -1.
 */
static int
build_reply (struct out *o, struct areq *q)
{
  o->last_flags = NULL; /* a DONE patched in belongs to this reply */
  if (out_room (o) == -1)
    return -1;
  if (q->r.type == NBD_CMD_READ)
    return reply_read (o, &q->rd, q->buf, &q->r, q->err);
  if (q->r.type == NBD_CMD_BLOCK_STATUS && q->err == 0)
    return reply_block_status (o, &q->r, q->e, 1, true);
  out_status (o, &q->r, q->err);
  return 0;
}

/* With send_lock held, on a thread that may wait: send the N replies
 * of Q together, as few sendmsg calls as fit, unless the connection
 * is dead.
 */
static void
send_replies (struct connection *c, struct areq **q, size_t n)
{
  struct out *o = c->async->out;
  int sent = 0;

  if (atomic_load (&c->status) < CONN_STOPPING)
    return;
  out_init (o, c);
  for (size_t i = 0; i < n && sent == 0; i++)
    sent = build_reply (o, q[i]);
  if (sent == 0)
    sent = out_flush (o);
  if (sent == -1)
    atomic_store (&c->status, CONN_DEAD);
}

/* With send_lock held, on the thread that completed: send the N
 * replies of Q together without waiting for the socket (over TLS, a
 * few replies to a record instead of one each).  Returns how many left
 * whole, or were dropped (dead connection); if fewer than N, the next
 * one was cut short, its ->sent saying how far it got (perhaps 0: over
 * TLS its first bytes may be in a record cut short), and the ones after
 * it did not leave, or only in that record.  A reply's bytes do not
 * depend on what was gathered before it, so the rest can be gathered
 * again from the one cut short (send_chain).
 */
static size_t
send_replies_nowait (struct connection *c, struct areq **q, size_t n)
{
  struct out *o = c->async->out;
  uint64_t start[BATCH];
  size_t begun = 0, k = 0;
  int sent = 0;

  if (atomic_load (&c->status) < CONN_STOPPING)
    return n;
  out_init (o, c);
  o->nowait = true;
  while (begun < n && sent == 0) {
    /* Flush first if need be, so that START is where the reply begins. */
    if (out_room (o) == -1) {
      sent = -1;
      break;
    }
    start[begun] = o->built;
    sent = build_reply (o, q[begun]);
    begun++;
  }
  if (sent == 0)
    sent = out_flush (o);
  if (sent == 0)
    return n;
  if (!o->blocked) {
    atomic_store (&c->status, CONN_DEAD);
    return n;
  }
  /* The reply holding the first byte that did not leave. */
  while (k + 1 < begun && start[k + 1] <= o->sent)
    k++;
  q[k]->sent = o->sent - start[k];
  return k;
}

/* With send_lock held, on a thread that may wait: finish the replies
 * cut short, Q and those chained after it by ->next, as they were
 * gathered: the same bytes again, Q's from byte Q->sent on, unless the
 * connection is dead.  Sent together because over TLS the record cut
 * short may hold the first bytes of the replies after Q.
 */
static void
send_chain (struct areq *q)
{
  struct connection *c = q->c;
  struct out *o = c->async->out;
  int sent = 0;

  if (atomic_load (&c->status) < CONN_STOPPING)
    return;
  out_init (o, c);
  o->skip = q->sent;
  for (struct areq *p = q; p && sent == 0; p = p->next)
    sent = build_reply (o, p);
  if (sent == 0)
    sent = out_flush (o);
  if (sent == -1)
    atomic_store (&c->status, CONN_DEAD);
}

/* Q's reply has left, or was dropped: give back its loans. */
static void
reply_release (struct areq *q)
{
  if (q->r.type == NBD_CMD_READ) {
    if (!read_all_segments (&q->rd) && q->dirty < q->r.count)
      q->dirty = q->r.count;
    read_release (&q->rd);
  }
  extents_free (q->e);
  q->e = NULL;
}

/* With c->lock held, after Q's reply: the next one's turn
 * (serialize-retirement), and Q is done with.
 */
static void
retired_locked (struct connection *c, struct areq *q)
{
  if (c->server->thread_model == TM_SERIALIZE_RETIREMENT) {
    c->next_retire++;
    pthread_cond_broadcast (&c->cond);
  }
  finish_locked (c->async, q);
}

void
async_send_partial (struct connection *c)
{
  struct async_conn *a = c->async;
  struct areq *q;

  if (a == NULL || a->partial == NULL)
    return;
  q = a->partial;
  a->partial = NULL;
  send_chain (q);
  for (struct areq *p = q; p; p = p->next)
    reply_release (p);
  pthread_mutex_lock (&c->lock);
  while (q) {
    struct areq *next = q->next; /* retiring reuses ->next */
    retired_locked (c, q);
    q = next;
  }
  pthread_mutex_unlock (&c->lock);
}

/* With c->lock held: whether the first queued reply may go in the same
 * batch as PREV, just taken (NULL: none yet).
 */
static bool
batch_next (struct connection *c, const struct areq *prev)
{
  struct async_conn *a = c->async;

  if (prev == NULL)
    return ready_in_turn (c);
  return a->ready
         && (c->server->thread_model != TM_SERIALIZE_RETIREMENT
             || a->ready->r.seq == prev->r.seq + 1
             || atomic_load (&c->status) < CONN_STOPPING);
}

/* With the sender role, on a thread that may wait for the client (the
 * flusher, a thread of the connection): send the queue in turn until
 * none is left, in batches, each gathered into as few sendmsg calls as
 * fit (a client that reads slowly gets many small replies at once).
 */
static void
drain_waiting (struct connection *c)
{
  struct async_conn *a = c->async;
  struct areq *q[BATCH];
  size_t n;

  /* First the reply cut short, if no other thread finished it (with
   * serialize-retirement nothing else is in turn before it).
   */
  pthread_mutex_lock (&c->send_lock);
  async_send_partial (c);
  pthread_mutex_unlock (&c->send_lock);
  pthread_mutex_lock (&c->lock);
  for (;;) {
    for (n = 0; n < BATCH && batch_next (c, n ? q[n - 1] : NULL); n++)
      q[n] = ready_take (a);
    if (n == 0)
      break;
    pthread_mutex_unlock (&c->lock);
    pthread_mutex_lock (&c->send_lock);
    send_replies (c, q, n);
    pthread_mutex_unlock (&c->send_lock);
    for (size_t i = 0; i < n; i++)
      reply_release (q[i]);
    pthread_mutex_lock (&c->lock);
    for (size_t i = 0; i < n; i++)
      retired_locked (c, q[i]);
  }
  /* The connection may be freed once the lock is released. */
  a->sending = false;
  pthread_cond_broadcast (&a->cond);
  pthread_mutex_unlock (&c->lock);
}

static void *
flusher (void *arg)
{
  struct connection *c = arg;

  thread_ctx_set (c->server, c, c->server->plugin->name);
  drain_waiting (c);
  return NULL;
}

/* With the sender role, and c->lock held: give the role to a pool
 * thread, which may wait for the client.
 */
static void
hand_off (struct connection *c)
{
  c->async->handed_off++;
  pthread_mutex_unlock (&c->lock);
  if (pool_run (c->server, flusher, c) == -1)
    drain_waiting (c); /* no thread: wait here, as before */
}

/* With the sender role, on the thread that completed: send the queued
 * replies in turn, FIRST (not queued) before them if not NULL, as far
 * as the socket takes them at once; the rest, and the role, are
 * handed off.  Over TLS too: the push function does not wait either
 * (core/tls.c), and a record cut short is held by the session until
 * the partial reply is sent again from its first byte, which GnuTLS
 * turns into the retry of the same record.  -s pipes are always handed
 * off: a write to a pipe has no MSG_DONTWAIT, and making the pipe
 * non-blocking would make the connection's own senders fail.
 */
static void
drain (struct connection *c, struct areq *first)
{
  struct async_conn *a = c->async;
  struct areq *q[BATCH];
  size_t n = 0, k;
  bool nowait_ok = c->is_socket;

  pthread_mutex_lock (&c->lock);
  if (first)
    q[n++] = first;
  for (;;) {
    for (; n < BATCH && batch_next (c, n ? q[n - 1] : NULL); n++)
      q[n] = ready_take (a);
    if (n == 0)
      break;
    /* On one CPU over TLS, with other requests outstanding, the pool
     * thread does better: it runs once the plugin's threads yield the
     * CPU, by when more replies are ready to share its records
     * (bench/README.md, TLS).
     */
    bool now
        = nowait_ok
          && !(c->tls_session && c->server->ncpus == 1 && a->outstanding > n);
    pthread_mutex_unlock (&c->lock);
    /* A thread of the connection may be sending (and waiting), or a
     * reply cut short must go first: leave it all to a pool thread.
     */
    if (!now || pthread_mutex_trylock (&c->send_lock) != 0) {
      pthread_mutex_lock (&c->lock);
      for (size_t i = 0; i < n; i++)
        ready_put (c, q[i]);
      hand_off (c);
      return;
    }
    if (a->partial) {
      pthread_mutex_unlock (&c->send_lock);
      pthread_mutex_lock (&c->lock);
      for (size_t i = 0; i < n; i++)
        ready_put (c, q[i]);
      hand_off (c);
      return;
    }
    k = send_replies_nowait (c, q, n);
    if (k < n) {
      /* The one cut short and those after it, in this order. */
      for (size_t i = k; i < n; i++)
        q[i]->next = i + 1 < n ? q[i + 1] : NULL;
      a->partial = q[k];
    }
    pthread_mutex_unlock (&c->send_lock);
    for (size_t i = 0; i < k; i++)
      reply_release (q[i]);
    pthread_mutex_lock (&c->lock);
    a->at_once += k;
    for (size_t i = 0; i < k; i++)
      retired_locked (c, q[i]);
    if (k < n) {
      /* The rest, and the role, to a thread that may wait. */
      a->cut_short++;
      hand_off (c);
      return;
    }
    n = 0;
  }
  /* The connection may be freed once the lock is released. */
  a->sending = false;
  pthread_cond_broadcast (&a->cond);
  pthread_mutex_unlock (&c->lock);
}

void
async_retire_next (struct connection *c)
{
  struct async_conn *a = c->async;
  bool go = false;

  pthread_mutex_lock (&c->lock);
  c->next_retire++;
  pthread_cond_broadcast (&c->cond);
  if (a && !a->sending && ready_in_turn (c))
    go = a->sending = true;
  pthread_mutex_unlock (&c->lock);
  if (go)
    drain_waiting (c);
}

/* The request is over: queue its reply, and send the queue if no
 * other thread is sending it.
 */
static void
retire (struct areq *q)
{
  struct connection *c = q->c;
  struct async_conn *a = c->async;
  struct thread_ctx saved = *thread_ctx ();
  bool go;

  /* Messages from here belong to the connection, whatever thread
   * completed the request.
   */
  thread_ctx_set (c->server, c, c->server->plugin->name);
  if (q->err)
    log_debug (c->server,
               "%s at %" PRIu64 " for %" PRIu64 " bytes failed: errno %d",
               cmd_name (q->r.type), q->r.offset, q->r.count, q->err);
  if (q->r.type == NBD_CMD_BLOCK_STATUS && q->err == 0
      && extents_count (q->e) == 0) {
    nbdkit_error ("block status: no extent given for offset %" PRIu64,
                  q->r.offset);
    q->err = EIO;
  }
  q->sent = 0;
  pthread_mutex_lock (&c->lock);
  go = !a->sending;
  if (go)
    a->sending = true;
  if (go && c->server->thread_model != TM_SERIALIZE_RETIREMENT) {
    /* Nothing is queued when no one sends: Q goes first. */
    pthread_mutex_unlock (&c->lock);
    drain (c, q);
  } else {
    ready_put (c, q);
    if (go && !ready_in_turn (c))
      go = a->sending = false;
    pthread_mutex_unlock (&c->lock);
    if (go)
      drain (c, NULL);
  }
  *thread_ctx () = saved;
}

/* A native zero the plugin could not do this time is done by writes,
 * which may call the plugin and wait: on a server thread, not on the
 * thread that completed.
 */
static void *
zero_fallback (void *arg)
{
  struct areq *q = arg;
  struct connection *c = q->c;
  int err = 0;

  thread_ctx_set (c->server, c, c->server->plugin->name);
  if (backend_zero_fallback (c->async->plugin, q->r.count, q->r.offset,
                             q->flags, &err)
      == -1)
    q->err = err ? err : EIO;
  else
    q->err = 0;
  retire (q);
  return NULL;
}

static void
areq_done (struct completion_target *t, int err)
{
  struct areq *q = (struct areq *)t;

  q->err = err;
  if (q->r.type == NBD_CMD_WRITE_ZEROES
      && (err == EOPNOTSUPP || err == ENOTSUP)) {
    if (q->flags & NBDKIT_FLAG_FAST_ZERO)
      q->err = ENOTSUP;
    else if (pool_run (q->c->server, zero_fallback, q) == 0)
      return;
    else
      q->err = EIO;
  }
  retire (q);
}

/* A request slot and room for NEED bytes, waiting while the
 * connection has too many outstanding.
 */
static struct areq *
reserve (struct connection *c, size_t need)
{
  struct async_conn *a = c->async;
  struct areq *q;

  pthread_mutex_lock (&c->lock);
  while (atomic_load (&c->status) >= CONN_STOPPING
         && (a->outstanding >= ASYNC_MAX
             || (a->outstanding > 0 && a->bytes + need > ASYNC_MAX_BYTES)))
    pthread_cond_wait (&a->cond, &c->lock);
  q = a->free;
  if (q) {
    a->free = q->next;
    a->nfree--;
  } else if ((q = calloc (1, sizeof *q)) == NULL) {
    pthread_mutex_unlock (&c->lock);
    return NULL;
  }
  a->outstanding++;
  a->bytes += need;
  pthread_mutex_unlock (&c->lock);
  q->bytes = need;
  return q;
}

bool
async_would_start (const struct connection *c, const struct request *r)
{
  const struct async_conn *a = c->async;

  return a && r->err == 0 && (a->ok & (1u << r->type))
         && (r->count > 0 || r->type == NBD_CMD_FLUSH)
         && (!(r->flags & NBD_CMD_FLAG_FUA) || a->fua_ok);
}

bool
async_execute (struct connection *c, const struct request *r, uint32_t flags,
               char **wbuf, size_t *wbuf_size)
{
  struct async_conn *a = c->async;
  struct nbdkit_completion *h;
  struct async_op op;
  struct areq *q;
  int err = 0;

  if (!async_would_start (c, r))
    return false;
  q = reserve (c, r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE ? r->count
                                                                      : 0);
  if (q == NULL)
    return false;
  q->t.done = areq_done;
  q->c = c;
  q->r = *r;
  q->flags = flags;
  q->err = 0;
  op = (struct async_op){
    .type = r->type, .count = r->count, .offset = r->offset, .flags = flags
  };
  switch (r->type) {
    case NBD_CMD_READ:
      if (r->count > q->buf_size) {
        char *nb = calloc (1, r->count);
        if (nb == NULL)
          goto undo;
        free (q->buf);
        q->buf = nb;
        q->buf_size = r->count;
        q->dirty = 0;
      }
      read_init (&q->rd, q->buf, r->count, r->offset, true);
      /* Clean below the plugin unless it promises to fill. */
      if (!layer_pread_fills (a->plugin->b)) {
        memset (q->buf, 0, q->dirty < r->count ? q->dirty : r->count);
        if (q->dirty <= r->count)
          q->dirty = 0;
        q->rd.buf_zero = true;
      }
      op.buf = q->buf;
      op.rd = &q->rd;
      break;
    case NBD_CMD_WRITE: {
      char *t = q->wbuf;
      size_t ts = q->wbuf_size;
      q->wbuf = *wbuf;
      q->wbuf_size = *wbuf_size;
      *wbuf = t;
      *wbuf_size = ts;
      op.buf = q->wbuf;
      break;
    }
    case NBD_CMD_BLOCK_STATUS:
      if (c->bs.maximum_virtual && !c->bs.advisory
          && op.count > c->bs.maximum_virtual)
        op.count = c->bs.maximum_virtual;
      q->e = extents_new (r->offset, c->exportsize);
      if (q->e == NULL)
        goto undo;
      op.e = q->e;
      break;
  }
  h = handle_new (&q->t);
  if (h == NULL) {
    if (r->type == NBD_CMD_WRITE) {
      /* Give the payload back for the synchronous way. */
      char *t = q->wbuf;
      size_t ts = q->wbuf_size;
      q->wbuf = *wbuf;
      q->wbuf_size = *wbuf_size;
      *wbuf = t;
      *wbuf_size = ts;
    }
    goto undo;
  }
  /* From here Q belongs to the completion, which may come at once. */
  if (backend_start (a->plugin, &op, h, &err) == -1 && handle_take (h) == &q->t)
    areq_done (&q->t, err ? err : EIO);
  return true;

undo:
  extents_free (q->e);
  q->e = NULL;
  pthread_mutex_lock (&c->lock);
  finish_locked (a, q);
  pthread_mutex_unlock (&c->lock);
  return false;
}

void
async_wait_all (struct connection *c)
{
  struct async_conn *a = c->async;

  if (a == NULL)
    return;
  pthread_mutex_lock (&c->lock);
  while (a->outstanding > 0 || a->sending)
    pthread_cond_wait (&a->cond, &c->lock);
  pthread_mutex_unlock (&c->lock);
}

void
async_conn_free (struct connection *c)
{
  struct async_conn *a = c->async;

  if (a == NULL)
    return;
  log_debug (c->server,
             "asynchronous replies: %" PRIu64 " sent by the completing"
             " thread, %" PRIu64 " cut short, %" PRIu64
             " hand-offs to a pool thread",
             a->at_once, a->cut_short, a->handed_off);
  while (a->free) {
    struct areq *q = a->free;
    a->free = q->next;
    areq_free (q);
  }
  pthread_cond_destroy (&a->cond);
  free (a->out);
  free (a);
  c->async = NULL;
}
