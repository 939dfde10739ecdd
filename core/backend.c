/* backend.c: calls through one layer of the chain for one connection.
 *
 * Capability answers are asked once per connection and layer, then
 * cached.  What a layer lacks is emulated here so plugins stay small:
 * FUA by a flush, zeroing by writes, cache by reads, extents as data.
 * Requests arrive checked, a client's at the edge (request.c), a
 * filter's where it calls below (filter.c, by backend_check): here
 * they are asserted.
 */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "protocol.h"
#include "request.h"

/* With -v every call into a layer is traced, as "NAME: CALL ARGS";
 * -D nbdkit.backend.controlpath=0 and datapath=0 silence the calls
 * that set a connection up and the data requests respectively.
 */
#define TRACE(path, c, fmt, ...)                                               \
  do {                                                                         \
    struct server *s_ = (c)->b->server;                                        \
    if (s_->opt.verbose && s_->debug_##path)                                   \
      log_debug (s_, "%s: " fmt, (c)->b->name, ##__VA_ARGS__);                 \
  } while (0)
#define TRACE_CTL(c, ...) TRACE (controlpath, c, __VA_ARGS__)
#define TRACE_DATA(c, ...) TRACE (datapath, c, __VA_ARGS__)

/* The thread model's promise to the plugin is kept where calls enter
 * it, for every context: a filter's own contexts
 * (nbdkit_next_context_open), called from its own threads or from
 * several connections, are held to it like the clients' requests.
 * serialize_connections and serialize_all_requests: one call at a
 * time into the plugin, server-wide (a filter's extra contexts count
 * as the connection that opened them: their calls take turns with
 * it); serialize_requests: one call at a time per plugin handle.  The
 * parallel models take no lock.  A thread already in the plugin (a
 * capability asking another) does not lock again.
 */
static inline pthread_mutex_t *
plugin_lock (struct context *c, const struct thread_ctx *t)
{
  struct server *s = c->b->server;

  if (c->b->is_filter || t->in_plugin)
    return NULL;
  switch (s->thread_model) {
    case TM_SERIALIZE_CONNECTIONS:
    case TM_SERIALIZE_ALL_REQUESTS:
      return &s->plugin_lock;
    case TM_SERIALIZE_REQUESTS:
      return &c->lock;
    default:
      return NULL;
  }
}

/* Messages from a layer's callbacks name that layer, whichever layer
 * called it: an error from a plugin behind a filter reads
 * "PLUGIN[CONN]: error: ...", not the filter's name.  Every call into
 * a layer through a context crosses this boundary, which sets the
 * thread's log context for the call and gives the caller's back after,
 * and takes the plugin's thread model lock (above).
 */
#define CALL(c, call)                                                          \
  ({                                                                           \
    struct thread_ctx *t_ = thread_ctx ();                                     \
    const char *saved_ = t_->name;                                             \
    pthread_mutex_t *l_ = plugin_lock ((c), t_);                               \
    if (l_) {                                                                  \
      pthread_mutex_lock (l_);                                                 \
      t_->in_plugin = true;                                                    \
    }                                                                          \
    t_->name = (c)->b->name;                                                   \
    __typeof__ (call) r_ = (call);                                             \
    t_->name = saved_;                                                         \
    if (l_) {                                                                  \
      t_->in_plugin = false;                                                   \
      pthread_mutex_unlock (l_);                                               \
    }                                                                          \
    r_;                                                                        \
  })
#define CALL_VOID(c, call)                                                     \
  do {                                                                         \
    struct thread_ctx *t_ = thread_ctx ();                                     \
    const char *saved_ = t_->name;                                             \
    pthread_mutex_t *l_ = plugin_lock ((c), t_);                               \
    if (l_) {                                                                  \
      pthread_mutex_lock (l_);                                                 \
      t_->in_plugin = true;                                                    \
    }                                                                          \
    t_->name = (c)->b->name;                                                   \
    call;                                                                      \
    t_->name = saved_;                                                         \
    if (l_) {                                                                  \
      t_->in_plugin = false;                                                   \
      pthread_mutex_unlock (l_);                                               \
    }                                                                          \
  } while (0)

/* Zeroing and caching by emulation go in pieces of this size. */
#define EMULATE_CHUNK (1024 * 1024)
static const char zero_buf[EMULATE_CHUNK];

static void
context_reset_caps (struct context *c)
{
  c->size = -1;
  c->can_write = c->can_flush = c->is_rotational = c->can_trim = -1;
  c->can_zero = c->can_fast_zero = c->can_fua = c->can_multi_conn = -1;
  c->can_extents = c->can_cache = -1;
  c->bs_known = 0;
}

struct context *
context_new (struct backend *b, struct connection *conn)
{
  struct context *c = calloc (1, sizeof *c);

  if (c == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  c->b = b;
  c->conn = conn;
  pthread_mutex_init (&c->lock, NULL);
  context_reset_caps (c);
  return c;
}

static void
context_free (struct context *c)
{
  pthread_mutex_destroy (&c->lock);
  free (c);
}

/* Open layer B and, below it, the rest of the chain.  A filter may
 * open its next layer itself from its open (nbdkit_next_open);
 * otherwise it is opened here with the same arguments.
 */
static struct context *
open_layer (struct backend *b, struct connection *conn, int readonly,
            const char *exportname, int is_tls)
{
  struct context *c = context_new (b, conn);

  if (c == NULL)
    return NULL;
  /* Each layer resolves the default export ("") by its own
   * default_export, as in nbdkit: a filter may present the default
   * export as "" while the plugin below opens its own default.
   */
  if (*exportname == '\0') {
    exportname = exports_default (b, readonly, is_tls);
    if (exportname == NULL) {
      context_free (c);
      return NULL;
    }
  }
  c->readonly = readonly;
  c->is_tls = is_tls;
  TRACE_CTL (c, "open readonly=%d exportname=\"%s\" tls=%d", readonly,
             exportname ? exportname : "", is_tls);
  c->handle = CALL (c, b->ops->open (c, readonly, exportname, is_tls));
  if (c->handle == NULL) {
    backend_close (c->next);
    context_free (c);
    return NULL;
  }
  if (b->next && c->next == NULL && !c->no_next) {
    c->next = open_layer (b->next, conn, readonly, exportname, is_tls);
    if (c->next == NULL) {
      CALL_VOID (c, b->ops->close (c));
      context_free (c);
      return NULL;
    }
  }
  return c;
}

/* Called by a filter's open (through nbdkit_next_open). */
int
backend_open_next (struct context *c, int readonly, const char *exportname)
{
  if (c->b->next == NULL || c->next) {
    nbdkit_error ("%s: nbdkit_next_open called twice or without a layer"
                  " below",
                  c->b->name);
    return -1;
  }
  c->next = open_layer (c->b->next, c->conn, readonly, exportname, c->is_tls);
  return c->next ? 0 : -1;
}

int
backend_preconnect (struct backend *top, int readonly)
{
  for (struct backend *b = top; b; b = b->next) {
    struct thread_ctx *t = thread_ctx ();
    const char *saved = t->name;
    int r;
    t->name = b->name;
    if (b->server->opt.verbose && b->server->debug_controlpath)
      log_debug (b->server, "%s: preconnect readonly=%d", b->name, readonly);
    r = b->ops->preconnect (b, readonly);
    t->name = saved;
    if (r == -1)
      return -1;
  }
  return 0;
}

/* prepare runs bottom up once everything is open. */
static int
prepare (struct context *c)
{
  if (c == NULL)
    return 0;
  if (prepare (c->next) == -1)
    return -1;
  TRACE_CTL (c, "prepare readonly=%d", c->readonly);
  if (c->b->ops->prepare && CALL (c, c->b->ops->prepare (c)) == -1)
    return -1;
  c->prepared = 1;
  return 0;
}

struct context *
backend_open (struct backend *top, struct connection *conn, int readonly,
              const char *exportname, int is_tls)
{
  struct context *c = open_layer (top, conn, readonly, exportname, is_tls);

  if (c && prepare (c) == -1) {
    backend_close (c);
    return NULL;
  }
  return c;
}

void
backend_close (struct context *c)
{
  /* finalize top down, while every layer is still open; then close. */
  for (struct context *f = c; f; f = f->next)
    if (f->prepared && f->b->ops->finalize) {
      TRACE_CTL (f, "finalize");
      CALL_VOID (f, f->b->ops->finalize (f));
    }
  while (c) {
    struct context *next = c->next;
    if (c->handle) {
      TRACE_CTL (c, "close");
      CALL_VOID (c, c->b->ops->close (c));
    }
    context_free (c);
    c = next;
  }
}

/* The answers cached below may be asked for from several threads at
 * once where a filter shares a context (its own threads, or several
 * connections): each is published with one atomic store, and two
 * threads asking at once both ask the layer and store the same answer.
 */
#define LOAD(field) __atomic_load_n (&(field), __ATOMIC_ACQUIRE)
#define STORE(field, v) __atomic_store_n (&(field), (v), __ATOMIC_RELEASE)

int64_t
backend_get_size (struct context *c)
{
  int64_t size = LOAD (c->size);

  if (size == -1) {
    TRACE_CTL (c, "get_size");
    size = CALL (c, c->b->ops->get_size (c));
    if (size < 0) {
      if (size != -1)
        nbdkit_error ("%s: get_size returned a negative size %" PRId64,
                      c->b->name, size);
      return -1;
    }
    STORE (c->size, size);
  }
  return size;
}

int
backend_block_size (struct context *c, struct nbdkit_block_size *bs)
{
  int requested = c->conn ? c->conn->client_requested_bs : 0;

  /* The answer may depend on whether the client asked for sizes (a
   * connection's own contexts, during its handshake).  The first
   * answer is kept once published.
   */
  if (!LOAD (c->bs_known) || c->bs.client_requested != requested) {
    struct nbdkit_block_size r = { 0 };
    r.client_requested = requested;
    TRACE_CTL (c, "block_size");
    if (CALL (c, c->b->ops->block_size (c, &r)) == -1)
      return -1;
    r.client_requested = requested;
    pthread_mutex_lock (&c->lock);
    if (!c->bs_known || c->bs.client_requested != requested) {
      c->bs = r;
      STORE (c->bs_known, 1);
    }
    pthread_mutex_unlock (&c->lock);
    *bs = r;
    return 0;
  }
  *bs = c->bs;
  return 0;
}

/* A boolean answer: any true value is 1, but -1 stays an error. */
static int
as_bool (int r)
{
  return r == -1 ? -1 : r != 0;
}

/* Ask once, cache the answer; -1 (error) is not cached. */
#define CACHED(field, expr)                                                    \
  do {                                                                         \
    int v_ = LOAD (c->field);                                                  \
    if (v_ == -1) {                                                            \
      TRACE_CTL (c, #field);                                                   \
      v_ = (expr);                                                             \
      if (v_ == -1)                                                            \
        return -1;                                                             \
      STORE (c->field, v_);                                                    \
    }                                                                          \
    return v_;                                                                 \
  } while (0)

int
backend_can_write (struct context *c)
{
  /* A context opened read-only (by the client's -r, by a filter, or
   * for an export found read-only) cannot write, whatever its layer
   * says.
   */
  if (c->readonly || (c->conn && c->conn->readonly))
    return 0;
  CACHED (can_write, as_bool (CALL (c, c->b->ops->can_write (c))));
}

int
backend_can_flush (struct context *c)
{
  CACHED (can_flush, as_bool (CALL (c, c->b->ops->can_flush (c))));
}

int
backend_is_rotational (struct context *c)
{
  CACHED (is_rotational, as_bool (CALL (c, c->b->ops->is_rotational (c))));
}

int
backend_can_trim (struct context *c)
{
  int w = backend_can_write (c);
  if (w <= 0)
    return w;
  CACHED (can_trim, as_bool (CALL (c, c->b->ops->can_trim (c))));
}

int
backend_can_zero (struct context *c)
{
  int w = backend_can_write (c);
  if (w <= 0)
    return w == 0 ? NBDKIT_ZERO_NONE : -1;
  CACHED (can_zero, CALL (c, c->b->ops->can_zero (c)));
}

int
backend_can_fast_zero (struct context *c)
{
  int z = backend_can_zero (c);
  if (z <= NBDKIT_ZERO_NONE)
    return z == NBDKIT_ZERO_NONE ? 0 : -1;
  /* Where zeroing is emulated by writes the server answers FAST_ZERO
   * requests itself with ENOTSUP, quickly; each layer says whether it
   * offers that (plugins do unless they say otherwise).
   */
  CACHED (can_fast_zero, as_bool (CALL (c, c->b->ops->can_fast_zero (c))));
}

int
backend_can_fua (struct context *c)
{
  int w = backend_can_write (c);
  if (w <= 0)
    return w == 0 ? NBDKIT_FUA_NONE : -1;
  CACHED (can_fua, CALL (c, c->b->ops->can_fua (c)));
}

int
backend_can_multi_conn (struct context *c)
{
  CACHED (can_multi_conn, as_bool (CALL (c, c->b->ops->can_multi_conn (c))));
}

int
backend_can_extents (struct context *c)
{
  CACHED (can_extents, CALL (c, c->b->ops->can_extents (c)));
}

int
backend_can_cache (struct context *c)
{
  CACHED (can_cache, CALL (c, c->b->ops->can_cache (c)));
}

const char *
backend_export_description (struct context *c)
{
  TRACE_CTL (c, "export_description");
  return CALL (c, c->b->ops->export_description (c));
}

/* Requests are checked once, where they enter the chain or cross to
 * a layer from a filter: a client's at the edge (request.c), against
 * the export; a filter's where it calls below (filter.c), against
 * the layer below, with backend_check.  Here they are only asserted.
 */
int
backend_check (struct context *c, const char *what, uint64_t count,
               uint64_t offset, bool write, int *err)
{
  int64_t size = backend_get_size (c);

  if (size == -1) {
    *err = EIO;
    return -1;
  }
  if (offset > (uint64_t)size || count > (uint64_t)size - offset) {
    nbdkit_error ("%s: %s at offset %" PRIu64 " for %" PRIu64
                  " bytes is beyond the end of the layer below (%" PRId64 ")",
                  c->b->name, what, offset, count, size);
    *err = EINVAL;
    return -1;
  }
  if (write) {
    int w = backend_can_write (c);
    if (w != 1) {
      if (w == 0)
        nbdkit_error ("%s: %s at offset %" PRIu64 " for %" PRIu64
                      " bytes: the layer below is read-only",
                      c->b->name, what, offset, count);
      *err = w == 0 ? EROFS : EIO;
      return -1;
    }
  }
  return 0;
}

#ifndef NDEBUG
/* What backend_check made sure of. */
static bool
in_range (const struct context *c, uint64_t count, uint64_t offset)
{
  int64_t size = LOAD (c->size);

  return size >= 0 && offset <= (uint64_t)size
         && count <= (uint64_t)size - offset;
}
#endif

int
backend_pread (struct context *c, void *buf, uint64_t count, uint64_t offset,
               uint32_t flags, struct nbdkit_read *rd, int *err)
{
  int r;

  assert (in_range (c, count, offset));
  /* What a layer leaves alone reaches the client as zeroes: clear the
   * buffer for a layer that does not promise to fill it, unless it is
   * known to hold zeroes already (the server's own buffer usually is).
   */
  TRACE_DATA (c, "pread count=%" PRIu64 " offset=%" PRIu64, count, offset);
  bool fills = layer_pread_fills (c->b);
  if (!fills && !(rd && rd->buf_zero && rd->buf == buf && rd->count == count))
    memset (buf, 0, count);
  r = CALL (c, c->b->ops->pread (c, buf, count, offset, flags, rd, err));
  /* Asked again (a retry), the buffer holds what this try wrote. */
  if (rd && !fills)
    rd->buf_zero = false;
  return r;
}

/* After a write-like request that the layer did without FUA. */
static int
emulate_fua (struct context *c, uint32_t flags, int *err)
{
  if ((flags & NBDKIT_FLAG_FUA) && backend_can_fua (c) == NBDKIT_FUA_EMULATE)
    return CALL (c, c->b->ops->flush (c, 0, err));
  return 0;
}

/* Strip FUA unless the layer does it natively. */
static uint32_t
native_flags (struct context *c, uint32_t flags)
{
  if ((flags & NBDKIT_FLAG_FUA) && backend_can_fua (c) != NBDKIT_FUA_NATIVE)
    flags &= ~NBDKIT_FLAG_FUA;
  return flags;
}

int
backend_pwrite (struct context *c, const void *buf, uint64_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  assert (in_range (c, count, offset) && LOAD (c->can_write) == 1);
  TRACE_DATA (c, "pwrite count=%" PRIu64 " offset=%" PRIu64 " fua=%d", count,
              offset, !!(flags & NBDKIT_FLAG_FUA));
  if (CALL (c, c->b->ops->pwrite (c, buf, count, offset,
                                  native_flags (c, flags), err))
      == -1)
    return -1;
  return emulate_fua (c, flags, err);
}

int
backend_flush (struct context *c, uint32_t flags, int *err)
{
  if (backend_can_flush (c) != 1)
    return 0;
  TRACE_DATA (c, "flush");
  return CALL (c, c->b->ops->flush (c, 0, err));
}

int
backend_trim (struct context *c, uint64_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  assert (in_range (c, count, offset) && LOAD (c->can_write) == 1);
  TRACE_DATA (c, "trim count=%" PRIu64 " offset=%" PRIu64 " fua=%d", count,
              offset, !!(flags & NBDKIT_FLAG_FUA));
  if (CALL (c, c->b->ops->trim (c, count, offset, native_flags (c, flags), err))
      == -1)
    return -1;
  return emulate_fua (c, flags, err);
}

/* The piece size for emulation: at most CAP, within the layer's
 * largest data request, and a multiple of its block size.
 */
static uint64_t
emulate_chunk (struct context *c, uint64_t cap)
{
  struct nbdkit_block_size bs;
  uint64_t n = cap;

  if (backend_block_size (c, &bs) == 0) {
    if (bs.maximum && bs.maximum < n)
      n = bs.maximum;
    if (bs.minimum > 1)
      n -= n % bs.minimum;
  }
  return n ? n : cap;
}

/* Zero by writing zeroes, piece by piece, each at its own offset. */
static int
zero_by_writes (struct context *c, uint64_t count, uint64_t offset, int *err)
{
  uint64_t chunk = emulate_chunk (c, EMULATE_CHUNK);

  while (count > 0) {
    uint64_t n = count > chunk ? chunk : count;
    if (CALL (c, c->b->ops->pwrite (c, zero_buf, n, offset, 0, err)) == -1)
      return -1;
    offset += n;
    count -= n;
  }
  return 0;
}

int
backend_zero_fallback (struct context *c, uint64_t count, uint64_t offset,
                       uint32_t flags, int *err)
{
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    *err = ENOTSUP;
    return -1;
  }
  if (zero_by_writes (c, count, offset, err) == -1)
    return -1;
  if (flags & NBDKIT_FLAG_FUA)
    return CALL (c, c->b->ops->flush (c, 0, err));
  return 0;
}

int
backend_zero (struct context *c, uint64_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  int z = backend_can_zero (c);

  assert (in_range (c, count, offset) && LOAD (c->can_write) == 1);
  TRACE_DATA (
      c, "zero count=%" PRIu64 " offset=%" PRIu64 " may_trim=%d fua=%d fast=%d",
      count, offset, !!(flags & NBDKIT_FLAG_MAY_TRIM),
      !!(flags & NBDKIT_FLAG_FUA), !!(flags & NBDKIT_FLAG_FAST_ZERO));
  if (z == NBDKIT_ZERO_NATIVE) {
    if (CALL (c,
              c->b->ops->zero (c, count, offset, native_flags (c, flags), err))
        == 0)
      return emulate_fua (c, flags, err);
    /* A layer that cannot zero this time lets us write zeroes, unless
     * the client wanted only a fast zero.
     */
    if (*err != EOPNOTSUPP && *err != ENOTSUP)
      return -1;
  }
  return backend_zero_fallback (c, count, offset, flags, err);
}

int
backend_extents (struct context *c, uint64_t count, uint64_t offset,
                 uint32_t flags, struct nbdkit_extents *e, int *err)
{
  assert (in_range (c, count, offset));
  TRACE_DATA (c, "extents count=%" PRIu64 " offset=%" PRIu64 " req_one=%d",
              count, offset, !!(flags & NBDKIT_FLAG_REQ_ONE));
  if (backend_can_extents (c) != NBDKIT_EXTENTS_NATIVE) {
    if (nbdkit_add_extent (e, offset, count, 0) == -1) {
      *err = errno ? errno : EIO;
      return -1;
    }
    return 0;
  }
  return CALL (c, c->b->ops->extents (c, count, offset, flags, e, err));
}

int
backend_cache (struct context *c, uint64_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  int r = backend_can_cache (c);

  assert (in_range (c, count, offset));
  TRACE_DATA (c, "cache count=%" PRIu64 " offset=%" PRIu64, count, offset);
  if (r == NBDKIT_CACHE_NATIVE)
    return CALL (c, c->b->ops->cache (c, count, offset, flags, err));

  /* Emulate by reading and discarding, in pieces as large as a
   * client's read may be (as nbdkit), so that a plugin sees the reads a
   * client would send.
   */
  if (count == 0)
    return 0;
  uint64_t chunk = emulate_chunk (c, MAX_REQUEST_SIZE);
  char *buf = malloc (count < chunk ? count : chunk);
  struct nbdkit_read rd = { 0 };
  if (buf == NULL) {
    *err = ENOMEM;
    return -1;
  }
  while (count > 0) {
    uint64_t n = count > chunk ? chunk : count;
    read_init (&rd, buf, n, offset, false);
    rd.buf_zero = true; /* the data is thrown away */
    if (CALL (c, c->b->ops->pread (c, buf, n, offset, 0, &rd, err)) == -1) {
      free (buf);
      return -1;
    }
    offset += n;
    count -= n;
  }
  free (rd.segs);
  free (buf);
  return 0;
}

int
backend_start (struct context *c, const struct async_op *op,
               struct nbdkit_completion *h, int *err)
{
  struct async_op o = *op;

  /* The filters let it pass untouched, but the plugin's size (or
   * writability) may still differ from what the client was told.
   */
  if (o.type != NBD_CMD_FLUSH
      && backend_check (c, cmd_name (o.type), o.count, o.offset,
                        o.type == NBD_CMD_WRITE || o.type == NBD_CMD_TRIM
                            || o.type == NBD_CMD_WRITE_ZEROES,
                        err)
             == -1)
    return -1;
  TRACE_DATA (c, "async %s count=%" PRIu64 " offset=%" PRIu64 " flags=0x%x",
              cmd_name (o.type), o.count, o.offset, o.flags);
  /* As backend_pread: a layer that does not promise to fill gets a
   * clean buffer.
   */
  if (o.type == NBD_CMD_READ && !layer_pread_fills (c->b)
      && !(o.rd && o.rd->buf_zero))
    memset (o.buf, 0, o.count);
  if (o.type == NBD_CMD_WRITE || o.type == NBD_CMD_TRIM
      || o.type == NBD_CMD_WRITE_ZEROES)
    o.flags = native_flags (c, o.flags);
  return c->b->ops->start (c, &o, h, err);
}
