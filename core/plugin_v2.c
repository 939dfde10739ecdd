/* plugin_v2.c: the layer that calls plugins built for API 1 and 2 (the
 * nbdkit plugin ABI), translating to API 3: 32-bit counts (larger
 * requests are split), v2 capability answers, old thread model values.
 */

#define NBDKIT_API_VERSION 2
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define P(b) ((struct nbdkit_plugin *)(b)->impl)
#define PC(c) P ((c)->b)

/* Largest piece of a split request: a power of 2 that fits in 32 bits,
 * so pieces stay aligned to any block size the plugin may announce.
 */
#define CHUNK (UINT64_C (1) << 31)

/* The errno of a failed callback.  Unless the plugin says errno is
 * preserved, only nbdkit_set_error counts and the fallback is EIO.
 */
static int
v2_errno (struct context *c)
{
  int saved = errno;

  if (thread_ctx ()->error == 0 && !PC (c)->errno_is_preserved)
    saved = EIO;
  errno = saved;
  return callback_errno ();
}

static void
v2_load (struct backend *b)
{
  if (P (b)->load)
    P (b)->load ();
}

static void
v2_unload (struct backend *b)
{
  if (P (b)->unload)
    P (b)->unload ();
}

static const struct nbdkit_param *
v2_params (struct backend *b)
{
  return NULL;
}

static int
v2_config (struct backend *b, const char *key, const char *value)
{
  if (P (b)->config)
    return P (b)->config (key, value);
  log_error (b->server,
             "%s: this plugin takes no parameters, but was"
             " given %s=%s",
             b->name, key, value);
  return -1;
}

static int
v2_config_complete (struct backend *b)
{
  return P (b)->config_complete ? P (b)->config_complete () : 0;
}

static const char *
v2_config_help (struct backend *b)
{
  return P (b)->config_help;
}

static void
v2_dump_plugin (struct backend *b, FILE *fp)
{
  if (P (b)->dump_plugin) {
    fflush (fp);
    P (b)->dump_plugin ();
    fflush (stdout);
  }
}

/* Map the old numbering 0-3 onto API 3's. */
static int
map_model (int m)
{
  static const int map[] = {
    TM_SERIALIZE_CONNECTIONS,
    TM_SERIALIZE_ALL_REQUESTS,
    TM_SERIALIZE_REQUESTS,
    TM_PARALLEL,
  };
  if (m >= 0 && m <= 3)
    return map[m];
  return TM_SERIALIZE_CONNECTIONS;
}

static int
v2_thread_model (struct backend *b)
{
  int m = map_model (P (b)->_thread_model);

  if (P (b)->thread_model) {
    int r = P (b)->thread_model ();
    if (r == -1)
      return -1;
    if (map_model (r) < m)
      m = map_model (r);
  }
  return m;
}

static int
v2_get_ready (struct backend *b, int thread_model)
{
  return P (b)->get_ready ? P (b)->get_ready () : 0;
}

static int
v2_after_fork (struct backend *b)
{
  return P (b)->after_fork ? P (b)->after_fork () : 0;
}

static void
v2_cleanup (struct backend *b)
{
  if (P (b)->cleanup)
    P (b)->cleanup ();
}

static int
v2_preconnect (struct backend *b, int readonly)
{
  return P (b)->preconnect ? P (b)->preconnect (readonly) : 0;
}

static int
v2_list_exports (struct backend *b, int readonly, int is_tls,
                 struct nbdkit_exports *x)
{
  if (P (b)->list_exports)
    return P (b)->list_exports (readonly, is_tls, x);
  return nbdkit_use_default_export (x);
}

static const char *
v2_default_export (struct backend *b, int readonly, int is_tls)
{
  if (P (b)->default_export)
    return P (b)->default_export (readonly, is_tls);
  return "";
}

static void *
v2_open (struct context *c, int readonly, const char *name, int is_tls)
{
  if (PC (c)->open == NULL)
    return c;
  return PC (c)->open (readonly);
}

static void
v2_close (struct context *c)
{
  if (PC (c)->close)
    PC (c)->close (c->handle);
}

static int64_t
v2_get_size (struct context *c)
{
  return PC (c)->get_size (c->handle);
}

static const char *
v2_export_description (struct context *c)
{
  if (PC (c)->export_description)
    return PC (c)->export_description (c->handle);
  return NULL;
}

static int
v2_block_size (struct context *c, struct nbdkit_block_size *bs)
{
  uint32_t min = 0, pref = 0, max = 0;

  if (PC (c)->block_size == NULL)
    return 0;
  if (PC (c)->block_size (c->handle, &min, &pref, &max) == -1)
    return -1;
  bs->minimum = min;
  bs->preferred = pref;
  bs->maximum = max;
  bs->maximum_virtual = 0;
  return 0;
}

static bool
has_pwrite (struct context *c)
{
  return c->b->api_version == 1 ? PC (c)->_pwrite_v1 != NULL
                                : PC (c)->pwrite != NULL;
}

static bool
has_flush (struct context *c)
{
  return c->b->api_version == 1 ? PC (c)->_flush_v1 != NULL
                                : PC (c)->flush != NULL;
}

static bool
has_trim (struct context *c)
{
  return c->b->api_version == 1 ? PC (c)->_trim_v1 != NULL
                                : PC (c)->trim != NULL;
}

static bool
has_zero (struct context *c)
{
  return c->b->api_version == 1 ? PC (c)->_zero_v1 != NULL
                                : PC (c)->zero != NULL;
}

static int
v2_can_write (struct context *c)
{
  return PC (c)->can_write ? PC (c)->can_write (c->handle) : has_pwrite (c);
}

static int
v2_can_flush (struct context *c)
{
  return PC (c)->can_flush ? PC (c)->can_flush (c->handle) : has_flush (c);
}

static int
v2_is_rotational (struct context *c)
{
  return PC (c)->is_rotational ? PC (c)->is_rotational (c->handle) : 0;
}

static int
v2_can_trim (struct context *c)
{
  return PC (c)->can_trim ? PC (c)->can_trim (c->handle) : has_trim (c);
}

/* For v2 plugins can_zero is a boolean: false only means "do not call
 * my zero", and the server still offers zeroing by writes.
 */
static int
v2_can_zero (struct context *c)
{
  int r;

  if (!has_zero (c))
    return NBDKIT_ZERO_EMULATE;
  if (PC (c)->can_zero == NULL)
    return NBDKIT_ZERO_NATIVE;
  r = PC (c)->can_zero (c->handle);
  if (r == -1)
    return -1;
  return r ? NBDKIT_ZERO_NATIVE : NBDKIT_ZERO_EMULATE;
}

static int
v2_can_fast_zero (struct context *c)
{
  if (PC (c)->can_fast_zero)
    return PC (c)->can_fast_zero (c->handle);
  /* Emulated zeroing can always fail fast. */
  return v2_can_zero (c) == NBDKIT_ZERO_EMULATE;
}

static int
v2_can_fua (struct context *c)
{
  if (c->b->api_version == 2 && PC (c)->can_fua)
    return PC (c)->can_fua (c->handle);
  return has_flush (c) ? NBDKIT_FUA_EMULATE : NBDKIT_FUA_NONE;
}

static int
v2_can_multi_conn (struct context *c)
{
  return PC (c)->can_multi_conn ? PC (c)->can_multi_conn (c->handle) : 0;
}

static int
v2_can_extents (struct context *c)
{
  int r;

  if (PC (c)->extents == NULL)
    return NBDKIT_EXTENTS_EMULATE;
  if (PC (c)->can_extents == NULL)
    return NBDKIT_EXTENTS_NATIVE;
  r = PC (c)->can_extents (c->handle);
  if (r == -1)
    return -1;
  return r ? NBDKIT_EXTENTS_NATIVE : NBDKIT_EXTENTS_EMULATE;
}

static int
v2_can_cache (struct context *c)
{
  if (PC (c)->can_cache)
    return PC (c)->can_cache (c->handle);
  return PC (c)->cache ? NBDKIT_CACHE_NATIVE : NBDKIT_CACHE_NONE;
}

static int
v2_pread (struct context *c, void *buf, uint64_t count, uint64_t offset,
          uint32_t flags, struct nbdkit_read *rd, int *err)
{
  while (count > 0) {
    uint32_t n = count > CHUNK ? CHUNK : count;
    int r = c->b->api_version == 1
                ? PC (c)->_pread_v1 (c->handle, buf, n, offset)
                : PC (c)->pread (c->handle, buf, n, offset, 0);
    if (r == -1) {
      *err = v2_errno (c);
      return -1;
    }
    buf = (char *)buf + n;
    offset += n;
    count -= n;
  }
  return 0;
}

static int
v2_pwrite (struct context *c, const void *buf, uint64_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  while (count > 0) {
    uint32_t n = count > CHUNK ? CHUNK : count;
    uint32_t f = n == count ? flags : flags & ~NBDKIT_FLAG_FUA;
    int r = c->b->api_version == 1
                ? PC (c)->_pwrite_v1 (c->handle, buf, n, offset)
                : PC (c)->pwrite (c->handle, buf, n, offset, f);
    if (r == -1) {
      *err = v2_errno (c);
      return -1;
    }
    buf = (const char *)buf + n;
    offset += n;
    count -= n;
  }
  return 0;
}

static int
v2_flush (struct context *c, uint32_t flags, int *err)
{
  int r = c->b->api_version == 1 ? PC (c)->_flush_v1 (c->handle)
                                 : PC (c)->flush (c->handle, flags);
  if (r == -1) {
    *err = v2_errno (c);
    return -1;
  }
  return 0;
}

static int
v2_trim (struct context *c, uint64_t count, uint64_t offset, uint32_t flags,
         int *err)
{
  while (count > 0) {
    uint32_t n = count > CHUNK ? CHUNK : count;
    uint32_t f = n == count ? flags : flags & ~NBDKIT_FLAG_FUA;
    int r = c->b->api_version == 1 ? PC (c)->_trim_v1 (c->handle, n, offset)
                                   : PC (c)->trim (c->handle, n, offset, f);
    if (r == -1) {
      *err = v2_errno (c);
      return -1;
    }
    offset += n;
    count -= n;
  }
  return 0;
}

static int
v2_zero (struct context *c, uint64_t count, uint64_t offset, uint32_t flags,
         int *err)
{
  while (count > 0) {
    uint32_t n = count > CHUNK ? CHUNK : count;
    uint32_t f = n == count ? flags : flags & ~NBDKIT_FLAG_FUA;
    int r = c->b->api_version == 1 ? PC (c)->_zero_v1 (
                c->handle, n, offset, flags & NBDKIT_FLAG_MAY_TRIM)
                                   : PC (c)->zero (c->handle, n, offset, f);
    if (r == -1) {
      *err = v2_errno (c);
      return -1;
    }
    offset += n;
    count -= n;
  }
  return 0;
}

static int
v2_extents (struct context *c, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *e, int *err)
{
  uint32_t n = count > CHUNK ? CHUNK : count;

  /* One piece is enough: a block status reply may be short. */
  if (PC (c)->extents (c->handle, n, offset, flags, e) == -1) {
    *err = v2_errno (c);
    return -1;
  }
  return 0;
}

static int
v2_cache (struct context *c, uint64_t count, uint64_t offset, uint32_t flags,
          int *err)
{
  /* A plugin may claim native caching without a cache callback. */
  if (PC (c)->cache == NULL)
    return 0;
  while (count > 0) {
    uint32_t n = count > CHUNK ? CHUNK : count;
    if (PC (c)->cache (c->handle, n, offset, flags) == -1) {
      *err = v2_errno (c);
      return -1;
    }
    offset += n;
    count -= n;
  }
  return 0;
}

static const struct backend_ops v2_ops = {
  .load = v2_load,
  .unload = v2_unload,
  .params = v2_params,
  .config = v2_config,
  .config_complete = v2_config_complete,
  .config_help = v2_config_help,
  .dump_plugin = v2_dump_plugin,
  .thread_model = v2_thread_model,
  .get_ready = v2_get_ready,
  .after_fork = v2_after_fork,
  .cleanup = v2_cleanup,
  .preconnect = v2_preconnect,
  .list_exports = v2_list_exports,
  .default_export = v2_default_export,
  .open = v2_open,
  .close = v2_close,
  .get_size = v2_get_size,
  .export_description = v2_export_description,
  .block_size = v2_block_size,
  .can_write = v2_can_write,
  .can_flush = v2_can_flush,
  .is_rotational = v2_is_rotational,
  .can_trim = v2_can_trim,
  .can_zero = v2_can_zero,
  .can_fast_zero = v2_can_fast_zero,
  .can_fua = v2_can_fua,
  .can_multi_conn = v2_can_multi_conn,
  .can_extents = v2_can_extents,
  .can_cache = v2_can_cache,
  .pread = v2_pread,
  .pwrite = v2_pwrite,
  .flush = v2_flush,
  .trim = v2_trim,
  .zero = v2_zero,
  .extents = v2_extents,
  .cache = v2_cache,
};

int
plugin_v2_init (struct backend *b, void *pv)
{
  struct nbdkit_plugin *p = pv;
  /* The fields up to block_size, the last one in nbdkit 1.32; older
   * plugins have a shorter struct, so check each optional field's
   * presence against _struct_size.
   */
  size_t need = offsetof (struct nbdkit_plugin, magic_config_key);

  if (p->_struct_size < need) {
    log_error (b->server, "%s: plugin struct too small (%" PRIu64 " bytes)",
               b->filename, p->_struct_size);
    return -1;
  }
  if (p->_struct_size < sizeof *p) {
    /* Copy into a zeroed struct of the full size so absent fields read
     * as NULL; freed when the plugin is unloaded.
     */
    struct nbdkit_plugin *full = calloc (1, sizeof *full);
    if (full == NULL) {
      log_error (b->server, "calloc: %m");
      return -1;
    }
    memcpy (full, p, p->_struct_size);
    b->impl = b->impl_copy = p = full;
  }
  if (p->name == NULL) {
    log_error (b->server, "%s: plugin has no name", b->filename);
    return -1;
  }
  if ((b->api_version == 1 ? p->_pread_v1 == NULL : p->pread == NULL)
      || p->get_size == NULL) {
    log_error (b->server,
               "%s: plugin '%s' lacks a pread or get_size"
               " callback",
               b->filename, p->name);
    return -1;
  }
  b->ops = &v2_ops;
  b->name = p->name;
  b->version = p->version;
  b->longname = p->longname;
  b->description = p->description;
  b->magic_config_key = p->magic_config_key;
  b->params = NULL;
  return 0;
}
