/* filter.c: loading filters and the layer that calls one, and the
 * nbdkit_next_* functions through which a filter calls the layer
 * below.  A callback a filter does not define passes straight
 * through.
 */

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "nbdkit-filter.h"
#include "protocol.h"

#define F(b) ((struct nbdkit_filter *)(b)->impl)
#define FC(c) F ((c)->b)
#define NEXT(c) ((nbdkit_next *)(c)->next)

/* A filter that opened no layer below (nbdkit_next_open_none) must
 * answer everything itself; a call falling through is its bug.
 */
#define NEED_NEXT(c, ret)                                                      \
  do {                                                                         \
    if ((c)->next == NULL) {                                                   \
      nbdkit_error ("%s: no layer below to pass %s to", (c)->b->name,          \
                    __func__ + 2);                                             \
      return ret;                                                              \
    }                                                                          \
  } while (0)
#define CTX(n) ((struct context *)(n))

/* Requests a filter sends below, through nbdkit_next_* or by leaving a
 * callback out, are checked here against the layer below (its size,
 * and for writes whether it can write): a filter may send any values,
 * and backend.c only asserts.  The message names the layer below.
 */
#define CHECK(ctx, what, count, offset, write)                                 \
  do {                                                                         \
    if (backend_check ((ctx), (what), (count), (offset), (write), err) == -1)  \
      return -1;                                                               \
  } while (0)

/* Messages from inside a filter callback name the filter: backend.c
 * sets that for every call through a context (CALL); ENTER is for the
 * one call that does not come through there, meta_extents.
 */
#define ENTER(c)                                                               \
  struct thread_ctx *t_ = thread_ctx ();                                       \
  const char *saved_name_ = t_->name;                                          \
  t_->name = (c)->b->name
#define LEAVE() t_->name = saved_name_

static void
f_load (struct backend *b)
{
  if (F (b)->load)
    F (b)->load ();
}

static void
f_unload (struct backend *b)
{
  if (F (b)->unload)
    F (b)->unload ();
}

static const struct nbdkit_param *
f_params (struct backend *b)
{
  return F (b)->params;
}

static int
f_config (struct backend *b, const char *key, const char *value)
{
  return F (b)->config ? F (b)->config (key, value) : 0;
}

static int
f_config_complete (struct backend *b)
{
  return F (b)->config_complete ? F (b)->config_complete () : 0;
}

static const char *
f_config_help (struct backend *b)
{
  return F (b)->config_help ? F (b)->config_help () : NULL;
}

static void
f_dump_plugin (struct backend *b, FILE *fp)
{
  if (F (b)->dump_plugin) {
    fflush (fp);
    F (b)->dump_plugin ();
    fflush (stdout);
  }
}

static int
f_thread_model (struct backend *b)
{
  return F (b)->thread_model ? F (b)->thread_model () : TM_PARALLEL;
}

static int
f_get_ready (struct backend *b, int model)
{
  return F (b)->get_ready ? F (b)->get_ready (model) : 0;
}

static int
f_after_fork (struct backend *b)
{
  return F (b)->after_fork ? F (b)->after_fork ((nbdkit_backend *)b->next) : 0;
}

static void
f_cleanup (struct backend *b)
{
  if (F (b)->cleanup)
    F (b)->cleanup ((nbdkit_backend *)b->next);
}

static int
f_preconnect (struct backend *b, int readonly)
{
  /* Every layer's preconnect is called by the server in turn. */
  if (F (b)->preconnect)
    return F (b)->preconnect ((nbdkit_backend *)b->next, readonly);
  return 0;
}

static int
f_list_exports (struct backend *b, int readonly, int is_tls,
                struct nbdkit_exports *x)
{
  if (F (b)->list_exports)
    return F (b)->list_exports ((nbdkit_backend *)b->next, readonly, is_tls, x);
  return b->next->ops->list_exports (b->next, readonly, is_tls, x);
}

static const char *
f_default_export (struct backend *b, int readonly, int is_tls)
{
  if (F (b)->default_export)
    return F (b)->default_export ((nbdkit_backend *)b->next, readonly, is_tls);
  return exports_default (b->next, readonly, is_tls);
}

static void *
f_open (struct context *c, int readonly, const char *name, int is_tls)
{
  void *h;

  if (FC (c)->open == NULL)
    return c;
  h = FC (c)->open ((nbdkit_context *)c, readonly, name, is_tls);
  return h;
}

static void
f_close (struct context *c)
{
  if (FC (c)->close) {
    FC (c)->close (c->handle);
  }
}

static int
f_prepare (struct context *c)
{
  int r = 0;
  if (FC (c)->prepare) {
    r = FC (c)->prepare (NEXT (c), c->handle, c->readonly);
  }
  return r;
}

static int
f_finalize (struct context *c)
{
  int r = 0;
  if (FC (c)->finalize) {
    r = FC (c)->finalize (NEXT (c), c->handle);
  }
  return r;
}

static int64_t
f_get_size (struct context *c)
{
  int64_t r;
  if (FC (c)->get_size == NULL) {
    NEED_NEXT (c, -1);
    return backend_get_size (c->next);
  }
  r = FC (c)->get_size (NEXT (c), c->handle);
  return r;
}

static const char *
f_export_description (struct context *c)
{
  const char *r;
  if (FC (c)->export_description == NULL) {
    NEED_NEXT (c, NULL);
    return backend_export_description (c->next);
  }
  r = FC (c)->export_description (NEXT (c), c->handle);
  return r;
}

static int
f_block_size (struct context *c, struct nbdkit_block_size *bs)
{
  int r;
  if (FC (c)->block_size == NULL) {
    NEED_NEXT (c, -1);
    return backend_block_size (c->next, bs);
  }
  r = FC (c)->block_size (NEXT (c), c->handle, bs);
  return r;
}

#define CAN(fn)                                                                \
  static int f_##fn (struct context *c)                                        \
  {                                                                            \
    int r;                                                                     \
    if (FC (c)->fn == NULL) {                                                  \
      NEED_NEXT (c, -1);                                                       \
      return backend_##fn (c->next);                                           \
    }                                                                          \
    r = FC (c)->fn (NEXT (c), c->handle);                                      \
    return r;                                                                  \
  }
CAN (can_write)
CAN (can_flush)
CAN (is_rotational)
CAN (can_trim)
CAN (can_zero)
CAN (can_fast_zero)
CAN (can_fua)
CAN (can_multi_conn)
CAN (can_extents)
CAN (can_cache)
#undef CAN

static int
f_pread (struct context *c, void *buf, uint64_t count, uint64_t offset,
         uint32_t flags, struct nbdkit_read *rd, int *err)
{
  int r;
  if (FC (c)->pread == NULL) {
    if (c->next == NULL) {
      *err = EIO;
      NEED_NEXT (c, -1);
    }
    CHECK (c->next, "pread", count, offset, false);
    return backend_pread (c->next, buf, count, offset, flags, rd, err);
  }
  r = FC (c)->pread (NEXT (c), c->handle, buf, count, offset, flags, rd, err);
  return r;
}

static int
f_pwrite (struct context *c, const void *buf, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  int r;
  if (FC (c)->pwrite == NULL) {
    if (c->next == NULL) {
      *err = EIO;
      NEED_NEXT (c, -1);
    }
    CHECK (c->next, "pwrite", count, offset, true);
    return backend_pwrite (c->next, buf, count, offset, flags, err);
  }
  r = FC (c)->pwrite (NEXT (c), c->handle, buf, count, offset, flags, err);
  return r;
}

static int
f_flush (struct context *c, uint32_t flags, int *err)
{
  int r;
  if (FC (c)->flush == NULL) {
    if (c->next == NULL) {
      *err = EIO;
      NEED_NEXT (c, -1);
    }
    return backend_flush (c->next, flags, err);
  }
  r = FC (c)->flush (NEXT (c), c->handle, flags, err);
  return r;
}

#define RANGE(fn, write)                                                       \
  static int f_##fn (struct context *c, uint64_t count, uint64_t offset,       \
                     uint32_t flags, int *err)                                 \
  {                                                                            \
    int r;                                                                     \
    if (FC (c)->fn == NULL) {                                                  \
      *err = EIO;                                                              \
      NEED_NEXT (c, -1);                                                       \
      CHECK (c->next, #fn, count, offset, write);                              \
      return backend_##fn (c->next, count, offset, flags, err);                \
    }                                                                          \
    r = FC (c)->fn (NEXT (c), c->handle, count, offset, flags, err);           \
    return r;                                                                  \
  }
RANGE (trim, true)
RANGE (zero, true)
RANGE (cache, false)
#undef RANGE

static int
f_extents (struct context *c, uint64_t count, uint64_t offset, uint32_t flags,
           struct nbdkit_extents *e, int *err)
{
  int r;
  if (FC (c)->extents == NULL) {
    if (c->next == NULL) {
      *err = EIO;
      NEED_NEXT (c, -1);
    }
    CHECK (c->next, "extents", count, offset, false);
    return backend_extents (c->next, count, offset, flags, e, err);
  }
  r = FC (c)->extents (NEXT (c), c->handle, count, offset, flags, e, err);
  return r;
}

static const char *
f_meta_context (struct backend *b)
{
  return F (b)->meta_context ? F (b)->meta_context () : NULL;
}

static int
f_meta_extents (struct context *c, uint64_t count, uint64_t offset,
                uint32_t flags, struct nbdkit_extents *e, int *err)
{
  int r;
  if (FC (c)->meta_extents == NULL) {
    *err = EINVAL;
    return -1;
  }
  /* Called by transmission.c directly, not through backend.c's
   * boundary: name the filter here.
   */
  ENTER (c);
  r = FC (c)->meta_extents (NEXT (c), c->handle, count, offset, flags, e, err);
  LEAVE ();
  return r;
}

/* A filter that leaves a kind of request alone lets it go to the
 * layer below as it is, and so asynchronously; one that handles it
 * itself calls the layer below and waits.
 */
static bool
f_can_start (struct backend *b, uint16_t type)
{
  const struct nbdkit_filter *f = F (b);

  switch (type) {
    case NBD_CMD_READ:
      return f->pread == NULL;
    case NBD_CMD_WRITE:
      return f->pwrite == NULL;
    case NBD_CMD_FLUSH:
      return f->flush == NULL;
    case NBD_CMD_TRIM:
      return f->trim == NULL;
    case NBD_CMD_WRITE_ZEROES:
      return f->zero == NULL;
    case NBD_CMD_BLOCK_STATUS:
      return f->extents == NULL;
    default:
      return false;
  }
}

static int
f_reload (struct backend *b)
{
  if (F (b)->reload == NULL)
    return 0;
  return F (b)->reload () == -1 ? -1 : 1;
}

static const struct backend_ops filter_ops = {
  .load = f_load,
  .unload = f_unload,
  .params = f_params,
  .config = f_config,
  .config_complete = f_config_complete,
  .config_help = f_config_help,
  .dump_plugin = f_dump_plugin,
  .thread_model = f_thread_model,
  .get_ready = f_get_ready,
  .after_fork = f_after_fork,
  .cleanup = f_cleanup,
  .preconnect = f_preconnect,
  .list_exports = f_list_exports,
  .default_export = f_default_export,
  .open = f_open,
  .close = f_close,
  .prepare = f_prepare,
  .finalize = f_finalize,
  .get_size = f_get_size,
  .export_description = f_export_description,
  .block_size = f_block_size,
  .can_write = f_can_write,
  .can_flush = f_can_flush,
  .is_rotational = f_is_rotational,
  .can_trim = f_can_trim,
  .can_zero = f_can_zero,
  .can_fast_zero = f_can_fast_zero,
  .can_fua = f_can_fua,
  .can_multi_conn = f_can_multi_conn,
  .can_extents = f_can_extents,
  .can_cache = f_can_cache,
  .pread = f_pread,
  .pwrite = f_pwrite,
  .flush = f_flush,
  .trim = f_trim,
  .zero = f_zero,
  .extents = f_extents,
  .cache = f_cache,
  .meta_context = f_meta_context,
  .meta_extents = f_meta_extents,
  .can_start = f_can_start,
  .reload = f_reload,
};

struct backend *
filter_load (struct server *s, const char *name)
{
  struct backend *b;
  char *filename = NULL;
  void *dl;
  struct nbdkit_filter *(*init) (void);
  struct nbdkit_filter *f;
  size_t n = strlen (name);

  if (strchr (name, '/') || (n > 3 && strcmp (name + n - 3, ".so") == 0)) {
    if (strchr (name, '/'))
      filename = strdup (name);
    else if (asprintf (&filename, "./%s", name) == -1)
      filename = NULL;
  } else if (asprintf (&filename, "%s/nbdkit-%s-filter.so", server_filterdir (),
                       name)
             == -1)
    filename = NULL;
  if (filename == NULL) {
    log_error (s, "malloc: %m");
    return NULL;
  }
  if (access (filename, R_OK) == -1) {
    log_error (s, "cannot open filter '%s': %s: %m", name, filename);
    free (filename);
    return NULL;
  }
  const char *why;
  dl = layer_dlopen (s, filename, &why);
  if (dl == NULL) {
    if (why)
      log_error (s, "cannot load filter '%s': %s", name, why);
    free (filename);
    return NULL;
  }
  init = (struct nbdkit_filter * (*)(void)) dlsym (dl, "filter_init");
  f = init ? init () : NULL;
  if (f == NULL) {
    log_error (s, "%s: not a filter: it has no filter_init function%s",
               filename, dlsym (dl, "plugin_init") ? " (it is a plugin)" : "");
    layer_dlclose (dl);
    free (filename);
    return NULL;
  }
  /* nbdkit's filter struct begins with int _api_version (1 to 6 so far)
   * and, after padding, const char *_version: the server version it
   * was compiled for.  Read as our layout, _struct_size is that small
   * number.  Its callbacks take nbdkit's next-function tables, which
   * this server does not provide, so say what the filter is for.
   */
  if (f->_struct_size > 0 && f->_struct_size <= 16) {
    const char *built_for = *(const char *const *)((const char *)f + 8);
    const char *base = strrchr (filename, '/');
    const char *end;
    int len = 0;

    base = base ? base + 1 : filename;
    if (strncmp (base, "nbdkit-", 7) == 0
        && (end = strstr (base, "-filter.so")) != NULL) {
      base += 7;
      len = (int)(end - base);
    }
    log_error (s,
               "%s: this is a filter for nbdkit %s (nbdkit filter API %d), "
               "which this server cannot load; it loads filters built "
               "against its own <nbdkit-filter.h> (NBDKIT_API_VERSION 3)"
               "%s%.*s%s",
               filename, built_for ? built_for : "(unknown version)",
               (int)f->_struct_size, len ? "; try --filter=" : "", len, base,
               len ? ", its counterpart here, if there is one" : "");
    layer_dlclose (dl);
    free (filename);
    return NULL;
  }
  if (f->_api_version != 3) {
    log_error (s,
               "%s: filter built for filter API %d, but this server loads"
               " API 3 filters; rebuild it against this server's"
               " <nbdkit-filter.h>",
               filename, f->_api_version);
    layer_dlclose (dl);
    free (filename);
    return NULL;
  }
  void *impl, *copy;
  if (struct_grow (s, filename, "filter", f, f->_struct_size, sizeof *f, &impl,
                   &copy)
      == -1) {
    layer_dlclose (dl);
    free (filename);
    return NULL;
  }
  f = impl;
  if (f->name == NULL) {
    log_error (s, "%s: filter has no name", filename);
    free (copy);
    layer_dlclose (dl);
    free (filename);
    return NULL;
  }
  b = calloc (1, sizeof *b);
  if (b == NULL) {
    log_error (s, "calloc: %m");
    free (copy);
    layer_dlclose (dl);
    free (filename);
    return NULL;
  }
  b->server = s;
  b->given = name;
  b->is_filter = 1;
  b->impl_copy = copy;
  b->filename = filename;
  b->dl = dl;
  b->impl = f;
  b->ops = &filter_ops;
  b->api_version = 3;
  b->pread_fills = f->pread_fills_buffer;
  b->name = f->name;
  b->version = f->version;
  b->longname = f->longname;
  b->description = f->description;
  b->params = f->params;
  return b;
}

/* ---- what filters call ---- */

NBDKIT_EXTERN_C int64_t
nbdkit_next_get_size (nbdkit_next *n)
{
  return backend_get_size (CTX (n));
}

NBDKIT_EXTERN_C const char *
nbdkit_next_export_description (nbdkit_next *n)
{
  return backend_export_description (CTX (n));
}

NBDKIT_EXTERN_C int
nbdkit_next_block_size (nbdkit_next *n, struct nbdkit_block_size *bs)
{
  return backend_block_size (CTX (n), bs);
}

#define NEXT_CAN(fn)                                                           \
  NBDKIT_EXTERN_C int nbdkit_next_##fn (nbdkit_next *n)                        \
  {                                                                            \
    return backend_##fn (CTX (n));                                             \
  }
NEXT_CAN (can_write)
NEXT_CAN (can_flush)
NEXT_CAN (is_rotational)
NEXT_CAN (can_trim)
NEXT_CAN (can_zero)
NEXT_CAN (can_fast_zero)
NEXT_CAN (can_fua)
NEXT_CAN (can_multi_conn)
NEXT_CAN (can_extents)
NEXT_CAN (can_cache)
#undef NEXT_CAN

bool
layer_pread_fills (const struct backend *b)
{
  /* A filter without a pread passes reads through untouched.  Asked at
   * each read: a language host binds its callbacks once its script is
   * loaded, after the filter was.
   */
  if (b->is_filter && ((const struct nbdkit_filter *)b->impl)->pread == NULL)
    return true;
  return b->pread_fills;
}

NBDKIT_EXTERN_C int
nbdkit_next_pread (nbdkit_next *n, void *buf, uint64_t count, uint64_t offset,
                   uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct nbdkit_read local = { 0 };
  int r;

  CHECK (CTX (n), "pread", count, offset, false);
  /* Loans and holes travel up only for the very request they describe. */
  if (rd && rd->buf == buf && rd->offset == offset && rd->count == count)
    return backend_pread (CTX (n), buf, count, offset, flags, rd, err);
  read_init (&local, buf, count, offset, false);
  /* The same buffer at another offset (offset, partition): whether it
   * holds zeroes does not depend on the offset.
   */
  local.buf_zero = rd && rd->buf == buf && rd->count == count && rd->buf_zero;
  r = backend_pread (CTX (n), buf, count, offset, flags, &local, err);
  if (rd && !local.buf_zero)
    rd->buf_zero = false;
  free (local.segs);
  return r;
}

NBDKIT_EXTERN_C int
nbdkit_next_pwrite (nbdkit_next *n, const void *buf, uint64_t count,
                    uint64_t offset, uint32_t flags, int *err)
{
  CHECK (CTX (n), "pwrite", count, offset, true);
  return backend_pwrite (CTX (n), buf, count, offset, flags, err);
}

NBDKIT_EXTERN_C int
nbdkit_next_flush (nbdkit_next *n, uint32_t flags, int *err)
{
  return backend_flush (CTX (n), flags, err);
}

NBDKIT_EXTERN_C int
nbdkit_next_trim (nbdkit_next *n, uint64_t count, uint64_t offset,
                  uint32_t flags, int *err)
{
  CHECK (CTX (n), "trim", count, offset, true);
  return backend_trim (CTX (n), count, offset, flags, err);
}

NBDKIT_EXTERN_C int
nbdkit_next_zero (nbdkit_next *n, uint64_t count, uint64_t offset,
                  uint32_t flags, int *err)
{
  CHECK (CTX (n), "zero", count, offset, true);
  return backend_zero (CTX (n), count, offset, flags, err);
}

NBDKIT_EXTERN_C int
nbdkit_next_extents (nbdkit_next *n, uint64_t count, uint64_t offset,
                     uint32_t flags, struct nbdkit_extents *e, int *err)
{
  CHECK (CTX (n), "extents", count, offset, false);
  return backend_extents (CTX (n), count, offset, flags, e, err);
}

NBDKIT_EXTERN_C int
nbdkit_next_cache (nbdkit_next *n, uint64_t count, uint64_t offset,
                   uint32_t flags, int *err)
{
  CHECK (CTX (n), "cache", count, offset, false);
  return backend_cache (CTX (n), count, offset, flags, err);
}

NBDKIT_EXTERN_C int
nbdkit_extents_full (nbdkit_next *n, uint64_t count, uint64_t offset,
                     uint32_t flags, struct nbdkit_extents *e, int *err)
{
  uint64_t end = offset + count;

  CHECK (CTX (n), "extents", count, offset, false);
  flags &= ~NBDKIT_FLAG_REQ_ONE;
  while (offset < end) {
    struct nbdkit_extents *part = nbdkit_extents_new (offset, end);
    size_t k;
    if (part == NULL) {
      *err = ENOMEM;
      return -1;
    }
    if (backend_extents (CTX (n), end - offset, offset, flags, part, err)
        == -1) {
      nbdkit_extents_free (part);
      return -1;
    }
    k = nbdkit_extents_count (part);
    if (k == 0) {
      nbdkit_extents_free (part);
      nbdkit_error ("extents: the layer below made no progress at %" PRIu64,
                    offset);
      *err = EIO;
      return -1;
    }
    for (size_t i = 0; i < k; i++) {
      struct nbdkit_extent x = nbdkit_get_extent (part, i);
      if (nbdkit_add_extent (e, x.offset, x.length, x.type) == -1) {
        nbdkit_extents_free (part);
        *err = errno ? errno : EIO;
        return -1;
      }
      offset = x.offset + x.length;
    }
    nbdkit_extents_free (part);
  }
  return 0;
}

NBDKIT_EXTERN_C int
nbdkit_next_open (nbdkit_context *ctx, int readonly, const char *exportname)
{
  return backend_open_next ((struct context *)ctx, readonly, exportname);
}

NBDKIT_EXTERN_C void
nbdkit_next_open_none (nbdkit_context *ctx)
{
  ((struct context *)ctx)->no_next = 1;
}

NBDKIT_EXTERN_C nbdkit_backend *
nbdkit_context_get_backend (nbdkit_context *ctx)
{
  return (nbdkit_backend *)((struct context *)ctx)->b->next;
}

NBDKIT_EXTERN_C nbdkit_next *
nbdkit_next_context_open (nbdkit_backend *backend, int readonly,
                          const char *exportname)
{
  struct backend *b = (struct backend *)backend;
  struct thread_ctx *t = thread_ctx ();

  if (b == NULL) {
    nbdkit_error ("nbdkit_next_context_open: no layer below");
    return NULL;
  }
  /* Not tied to the calling connection: it may outlive it. */
  return (nbdkit_next *)backend_open (b, NULL, readonly, exportname,
                                      t->conn ? t->conn->is_tls : 0);
}

NBDKIT_EXTERN_C void
nbdkit_next_context_close (nbdkit_next *n)
{
  backend_close (CTX (n));
}

NBDKIT_EXTERN_C int
nbdkit_backend_list_exports (nbdkit_backend *backend, int readonly, int is_tls,
                             struct nbdkit_exports *x)
{
  struct backend *b = (struct backend *)backend;

  if (b->ops->list_exports (b, readonly, is_tls, x) == -1)
    return -1;
  return exports_resolve_default (x, b, readonly, is_tls);
}

NBDKIT_EXTERN_C const char *
nbdkit_backend_default_export (nbdkit_backend *backend, int readonly,
                               int is_tls)
{
  return exports_default ((struct backend *)backend, readonly, is_tls);
}
