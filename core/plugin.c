/* plugin.c: finding and loading a plugin's shared object, and the
 * layer that calls an API 3 plugin.  API 1 and 2 plugins go through
 * plugin_v2.c instead.
 */

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "protocol.h"

#define P(b) ((struct nbdkit_plugin *)(b)->impl)
#define PC(c) P ((c)->b)

/* The async callbacks, or NULL where the plugin's struct ends before
 * them (built against an older header).  Read at each use: a plugin
 * may drop them in config_complete, a language host bind them late.
 */
#define ASYNC(b, fn)                                                           \
  (P (b)->_struct_size                                                         \
           >= offsetof (struct nbdkit_plugin, fn) + sizeof P (b)->fn           \
       ? P (b)->fn                                                             \
       : NULL)
#define ASYNC_C(c, fn) ASYNC ((c)->b, fn)

/* A name is a path if it contains a '/' or ends in ".so". */
static bool
is_path (const char *name)
{
  size_t n = strlen (name);
  return strchr (name, '/') != NULL || (n > 3 && !strcmp (name + n - 3, ".so"));
}

/* Valid short names: letters, digits, '-', '_'. */
static bool
is_short_name (const char *name)
{
  if (*name == '\0')
    return false;
  for (const char *p = name; *p; p++)
    if (!(*p == '-' || *p == '_' || (*p >= '0' && *p <= '9')
          || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
      return false;
  return true;
}

struct backend *
plugin_load (struct server *s, const char *name)
{
  struct backend *b;
  char *filename = NULL;
  void *dl;
  struct nbdkit_plugin *(*init) (void);
  struct nbdkit_plugin *p;

  if (is_path (name)) {
    filename = strdup (name);
    if (filename && strchr (name, '/') == NULL) {
      /* "foo.so" means ./foo.so, as dlopen would not. */
      free (filename);
      if (asprintf (&filename, "./%s", name) == -1)
        filename = NULL;
    }
  } else if (is_short_name (name)) {
    if (asprintf (&filename, "%s/nbdkit-%s-plugin.so", server_plugindir (),
                  name)
        == -1)
      filename = NULL;
  } else {
    log_error (s,
               "plugin name '%s' is neither a short name (letters, digits,"
               " '-' and '_') nor a path to a .so file",
               name);
    return NULL;
  }
  if (filename == NULL) {
    log_error (s, "malloc: %m");
    return NULL;
  }
  if (access (filename, R_OK) == -1) {
    log_error (s,
               "cannot open plugin '%s': %s: %m"
               " (see 'nbdkit --help' for the plugin directory)",
               name, filename);
    free (filename);
    return NULL;
  }
  const char *why;
  dl = layer_dlopen (s, filename, &why);
  if (dl == NULL) {
    if (why)
      log_error (s, "cannot load plugin '%s': %s", name, why);
    free (filename);
    return NULL;
  }
  init = (struct nbdkit_plugin * (*)(void)) dlsym (dl, "plugin_init");
  if (init == NULL) {
    log_error (s,
               "%s: not a plugin: it has no plugin_init function"
               " (a filter must be given with --filter)",
               filename);
    layer_dlclose (dl);
    free (filename);
    return NULL;
  }
  p = init ();
  if (p == NULL) {
    log_error (s, "%s: plugin registration failed", filename);
    layer_dlclose (dl);
    free (filename);
    return NULL;
  }

  b = calloc (1, sizeof *b);
  if (b == NULL) {
    log_error (s, "calloc: %m");
    layer_dlclose (dl);
    free (filename);
    return NULL;
  }
  b->server = s;
  b->given = name;
  b->filename = filename;
  b->dl = dl;
  b->impl = p;
  b->api_version = p->_api_version;

  if ((b->api_version == 1 || b->api_version == 2) ? plugin_v2_init (b, p) == -1
      : b->api_version == 3                        ? plugin_v3_init (b, p) == -1
                                                   : true) {
    if (b->api_version < 1 || b->api_version > 3)
      log_error (s,
                 "%s: plugin uses API version %d, which this server"
                 " (API 1 to 3) does not know",
                 filename, b->api_version);
    layer_dlclose (dl);
    free (filename);
    free (b->impl_copy);
    free (b);
    return NULL;
  }
  return b;
}

int
struct_grow (struct server *s, const char *filename, const char *kind, void *p,
             uint64_t size, size_t ours, void **impl, void **copy)
{
  /* _struct_size, _api_version, _unused and name: the least a struct
   * needs to say what it is.
   */
  const size_t least = sizeof (uint64_t) + 2 * sizeof (int) + sizeof (char *);
  void *full;

  *copy = NULL;
  if (size > ours) {
    log_error (s,
               "%s: this %s was built against a newer <nbdkit-%s.h>: its"
               " struct is %" PRIu64 " bytes, while this server (API %d,"
               " version %s) knows %zu bytes; upgrade the server or"
               " rebuild the %s against its headers",
               filename, kind, kind, size, NBDKIT_API_VERSION, NBDKIT_VERSION,
               ours, kind);
    return -1;
  }
  if (size < least) {
    log_error (s,
               "%s: %s struct of %" PRIu64 " bytes is too short: API 3"
               " structs hold at least %zu bytes (this server's: %zu)",
               filename, kind, size, least, ours);
    return -1;
  }
  if (size == ours) {
    *impl = p;
    return 0;
  }
  full = calloc (1, ours);
  if (full == NULL) {
    log_error (s, "calloc: %m");
    return -1;
  }
  memcpy (full, p, size);
  *impl = *copy = full;
  return 0;
}

/* ---- the API 3 layer ---- */

static void
v3_load (struct backend *b)
{
  if (P (b)->load)
    P (b)->load ();
}

static void
v3_unload (struct backend *b)
{
  if (P (b)->unload)
    P (b)->unload ();
}

static const struct nbdkit_param *
v3_params (struct backend *b)
{
  return P (b)->params;
}

static int
v3_config (struct backend *b, const char *key, const char *value)
{
  if (P (b)->config)
    return P (b)->config (key, value);
  return 0;
}

static int
v3_config_complete (struct backend *b)
{
  return P (b)->config_complete ? P (b)->config_complete () : 0;
}

static const char *
v3_config_help (struct backend *b)
{
  return P (b)->config_help ? P (b)->config_help () : NULL;
}

static void
v3_dump_plugin (struct backend *b, FILE *fp)
{
  if (P (b)->dump_plugin) {
    fflush (fp);
    P (b)->dump_plugin ();
    fflush (stdout);
  }
}

static int
v3_thread_model (struct backend *b)
{
  return P (b)->thread_model ? P (b)->thread_model () : TM_PARALLEL;
}

static int
v3_get_ready (struct backend *b, int thread_model)
{
  return P (b)->get_ready ? P (b)->get_ready (thread_model) : 0;
}

static int
v3_after_fork (struct backend *b)
{
  return P (b)->after_fork ? P (b)->after_fork () : 0;
}

static void
v3_cleanup (struct backend *b)
{
  if (P (b)->cleanup)
    P (b)->cleanup ();
}

static int
v3_preconnect (struct backend *b, int readonly)
{
  return P (b)->preconnect ? P (b)->preconnect (readonly) : 0;
}

static int
v3_list_exports (struct backend *b, int readonly, int is_tls,
                 struct nbdkit_exports *x)
{
  if (P (b)->list_exports)
    return P (b)->list_exports (readonly, is_tls, x);
  return nbdkit_use_default_export (x);
}

static const char *
v3_default_export (struct backend *b, int readonly, int is_tls)
{
  if (P (b)->default_export)
    return P (b)->default_export (readonly, is_tls);
  return "";
}

static void *
v3_open (struct context *c, int readonly, const char *name, int is_tls)
{
  /* A plugin without open still needs a non-NULL handle. */
  if (PC (c)->open == NULL)
    return c;
  return PC (c)->open (readonly, name, is_tls);
}

static void
v3_close (struct context *c)
{
  if (PC (c)->close)
    PC (c)->close (c->handle);
}

static int64_t
v3_get_size (struct context *c)
{
  return PC (c)->get_size (c->handle);
}

static const char *
v3_export_description (struct context *c)
{
  if (PC (c)->export_description)
    return PC (c)->export_description (c->handle);
  return NULL;
}

static int
v3_block_size (struct context *c, struct nbdkit_block_size *bs)
{
  if (PC (c)->block_size)
    return PC (c)->block_size (c->handle, bs);
  return 0;
}

static int
fast_zero_default (struct context *c)
{
  int z = backend_can_zero (c);

  return z == -1 ? -1 : z != NBDKIT_ZERO_NATIVE;
}

/* Capabilities: an absent callback answers from whether the matching
 * data callback exists.
 */
#define CAN(fn, dflt)                                                          \
  static int v3_##fn (struct context *c)                                       \
  {                                                                            \
    return PC (c)->fn ? PC (c)->fn (c->handle) : (dflt);                       \
  }
CAN (can_write, PC (c)->pwrite || ASYNC_C (c, async_pwrite))
CAN (can_flush, PC (c)->flush || ASYNC_C (c, async_flush))
CAN (is_rotational, 0)
CAN (can_trim, PC (c)->trim || ASYNC_C (c, async_trim))
CAN (can_zero, PC (c)->zero || ASYNC_C (c, async_zero) ? NBDKIT_ZERO_NATIVE
                                                       : NBDKIT_ZERO_EMULATE)
/* As nbdkit documents: fast zeroes are offered unless the plugin
 * zeroes natively (then only it could say whether it is fast): where
 * zeroing is emulated by writes, the server fails them fast itself.
 */
CAN (can_fast_zero, fast_zero_default (c))
CAN (can_fua, PC (c)->flush || ASYNC_C (c, async_flush) ? NBDKIT_FUA_EMULATE
                                                        : NBDKIT_FUA_NONE)
CAN (can_multi_conn, 0)
CAN (can_extents, PC (c)->extents || ASYNC_C (c, async_extents)
                      ? NBDKIT_EXTENTS_NATIVE
                      : NBDKIT_EXTENTS_EMULATE)
CAN (can_cache, PC (c)->cache ? NBDKIT_CACHE_NATIVE : NBDKIT_CACHE_NONE)
#undef CAN

/* A data callback the plugin has only in its async form: start it and
 * wait for its completion.
 */
#define WAIT_FOR(fn, ...)                                                      \
  do {                                                                         \
    struct waiter w_;                                                          \
    struct nbdkit_completion *h_;                                              \
    if (ASYNC_C (c, fn) == NULL) {                                             \
      nbdkit_error ("plugin has neither %s nor %s", &#fn[6], #fn);             \
      *err = EIO;                                                              \
      return -1;                                                               \
    }                                                                          \
    h_ = waiter_begin (&w_);                                                   \
    if (h_ == NULL) {                                                          \
      *err = ENOMEM;                                                           \
      return -1;                                                               \
    }                                                                          \
    return waiter_end (&w_, h_, ASYNC_C (c, fn) (c->handle, __VA_ARGS__, h_),  \
                       err);                                                   \
  } while (0)

static int
v3_pread (struct context *c, void *buf, uint64_t count, uint64_t offset,
          uint32_t flags, struct nbdkit_read *rd, int *err)
{
  if (PC (c)->pread == NULL)
    WAIT_FOR (async_pread, buf, count, offset, flags, rd);
  if (PC (c)->pread (c->handle, buf, count, offset, flags, rd) == -1) {
    *err = callback_errno ();
    return -1;
  }
  return 0;
}

static int
v3_pwrite (struct context *c, const void *buf, uint64_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  if (PC (c)->pwrite == NULL) {
    if (ASYNC_C (c, async_pwrite))
      WAIT_FOR (async_pwrite, buf, count, offset, flags);
    *err = EROFS;
    return -1;
  }
  if (PC (c)->pwrite (c->handle, buf, count, offset, flags) == -1) {
    *err = callback_errno ();
    return -1;
  }
  return 0;
}

static int
v3_flush (struct context *c, uint32_t flags, int *err)
{
  if (PC (c)->flush == NULL && ASYNC_C (c, async_flush))
    WAIT_FOR (async_flush, flags);
  if (PC (c)->flush && PC (c)->flush (c->handle, flags) == -1) {
    *err = callback_errno ();
    return -1;
  }
  return 0;
}

#define RANGE_OP(fn, missing)                                                  \
  static int v3_##fn (struct context *c, uint64_t count, uint64_t offset,      \
                      uint32_t flags, int *err)                                \
  {                                                                            \
    if (PC (c)->fn == NULL) {                                                  \
      if (ASYNC_C (c, async_##fn))                                             \
        WAIT_FOR (async_##fn, count, offset, flags);                           \
      *err = (missing);                                                        \
      return -1;                                                               \
    }                                                                          \
    if (PC (c)->fn (c->handle, count, offset, flags) == -1) {                  \
      *err = callback_errno ();                                                \
      return -1;                                                               \
    }                                                                          \
    return 0;                                                                  \
  }
RANGE_OP (trim, EOPNOTSUPP)
RANGE_OP (zero, EOPNOTSUPP)
#undef RANGE_OP

static int
v3_cache (struct context *c, uint64_t count, uint64_t offset, uint32_t flags,
          int *err)
{
  if (PC (c)->cache == NULL) {
    *err = EOPNOTSUPP;
    return -1;
  }
  if (PC (c)->cache (c->handle, count, offset, flags) == -1) {
    *err = callback_errno ();
    return -1;
  }
  return 0;
}

static int
v3_extents (struct context *c, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *e, int *err)
{
  if (PC (c)->extents == NULL)
    WAIT_FOR (async_extents, count, offset, flags, e);
  if (PC (c)->extents (c->handle, count, offset, flags, e) == -1) {
    *err = callback_errno ();
    return -1;
  }
  return 0;
}

static bool
v3_can_start (struct backend *b, uint16_t type)
{
  switch (type) {
    case NBD_CMD_READ:
      return ASYNC (b, async_pread) != NULL;
    case NBD_CMD_WRITE:
      return ASYNC (b, async_pwrite) != NULL;
    case NBD_CMD_FLUSH:
      return ASYNC (b, async_flush) != NULL;
    case NBD_CMD_TRIM:
      return ASYNC (b, async_trim) != NULL;
    case NBD_CMD_WRITE_ZEROES:
      return ASYNC (b, async_zero) != NULL;
    case NBD_CMD_BLOCK_STATUS:
      return ASYNC (b, async_extents) != NULL;
    default:
      return false;
  }
}

static int
v3_start (struct context *c, const struct async_op *o,
          struct nbdkit_completion *h, int *err)
{
  void *hd = c->handle;
  int r = -1;

  switch (o->type) {
    case NBD_CMD_READ:
      r = ASYNC_C (c, async_pread) (hd, o->buf, o->count, o->offset, o->flags,
                                    o->rd, h);
      break;
    case NBD_CMD_WRITE:
      r = ASYNC_C (c, async_pwrite) (hd, o->buf, o->count, o->offset, o->flags,
                                     h);
      break;
    case NBD_CMD_FLUSH:
      r = ASYNC_C (c, async_flush) (hd, o->flags, h);
      break;
    case NBD_CMD_TRIM:
      r = ASYNC_C (c, async_trim) (hd, o->count, o->offset, o->flags, h);
      break;
    case NBD_CMD_WRITE_ZEROES:
      r = ASYNC_C (c, async_zero) (hd, o->count, o->offset, o->flags, h);
      break;
    case NBD_CMD_BLOCK_STATUS:
      r = ASYNC_C (c, async_extents) (hd, o->count, o->offset, o->flags, o->e,
                                      h);
      break;
  }
  if (r == -1)
    *err = callback_errno ();
  return r;
}

static int
v3_reload (struct backend *b)
{
  if (P (b)->reload == NULL)
    return 0;
  return P (b)->reload () == -1 ? -1 : 1;
}

static const struct backend_ops v3_ops = {
  .load = v3_load,
  .unload = v3_unload,
  .params = v3_params,
  .config = v3_config,
  .config_complete = v3_config_complete,
  .config_help = v3_config_help,
  .dump_plugin = v3_dump_plugin,
  .thread_model = v3_thread_model,
  .get_ready = v3_get_ready,
  .after_fork = v3_after_fork,
  .cleanup = v3_cleanup,
  .preconnect = v3_preconnect,
  .list_exports = v3_list_exports,
  .default_export = v3_default_export,
  .open = v3_open,
  .close = v3_close,
  .get_size = v3_get_size,
  .export_description = v3_export_description,
  .block_size = v3_block_size,
  .can_write = v3_can_write,
  .can_flush = v3_can_flush,
  .is_rotational = v3_is_rotational,
  .can_trim = v3_can_trim,
  .can_zero = v3_can_zero,
  .can_fast_zero = v3_can_fast_zero,
  .can_fua = v3_can_fua,
  .can_multi_conn = v3_can_multi_conn,
  .can_extents = v3_can_extents,
  .can_cache = v3_can_cache,
  .pread = v3_pread,
  .pwrite = v3_pwrite,
  .flush = v3_flush,
  .trim = v3_trim,
  .zero = v3_zero,
  .extents = v3_extents,
  .cache = v3_cache,
  .can_start = v3_can_start,
  .start = v3_start,
  .reload = v3_reload,
};

int
plugin_v3_init (struct backend *b, void *pv)
{
  struct nbdkit_plugin *p = pv;

  if (struct_grow (b->server, b->filename, "plugin", p, p->_struct_size,
                   sizeof *p, &b->impl, &b->impl_copy)
      == -1)
    return -1;
  p = b->impl;
  b->pread_fills = p->pread_fills_buffer;
  if (p->name == NULL || !is_short_name (p->name)) {
    log_error (b->server, "%s: plugin has no valid name", b->filename);
    return -1;
  }
  b->ops = &v3_ops; /* for ASYNC () */
  b->impl = p;
  if ((p->pread == NULL && ASYNC (b, async_pread) == NULL)
      || p->get_size == NULL) {
    log_error (b->server,
               "%s: plugin '%s' lacks the required %s callback (name,"
               " get_size and pread are required)",
               b->filename, p->name, p->pread == NULL ? "pread" : "get_size");
    return -1;
  }
  b->ops = &v3_ops;
  b->name = p->name;
  b->version = p->version;
  b->longname = p->longname;
  b->description = p->description;
  b->magic_config_key = p->magic_config_key;
  b->params = p->params;
  return 0;
}
