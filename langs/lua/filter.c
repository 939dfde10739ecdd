/* filter.c: the lua filter, which runs a filter written in Lua.
 *
 *   nbdkit --filter=./myfilter.lua PLUGIN ...
 *
 * The server loads this object as the filter "lua" and gives it the
 * script as script=PATH before anything else.  Each callback of the
 * filter ABI calls the script's global function of the same name with
 * a `next` object first (methods calling the layer below); a function
 * the script lacks is taken out of the filter struct, so that call
 * passes through untouched and costs nothing.  The capabilities, the
 * description and the block sizes, asked once per connection, stay:
 * a script that lacks them and opened nothing below (open_none)
 * answers as a plugin would.  Only the parameters the
 * script declares reach it.  See README.md.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callbacks.h"
#include "host.h"
#include "values.h"

#include <nbdkit-filter.h>

#include "next.h"

/* clang-format off */
/* The filter ABI's callbacks, with the meta-context pair. */
#define CALLBACKS(X)                                                    \
  FILTER_CALLBACKS (X) X (meta_context) X (meta_extents)

enum {
#define E(n) CB_##n,
  CALLBACKS (E)
#undef E
  CB_COUNT
};
static const char *const cb_names[] = {
#define N(n) #n,
  CALLBACKS (N)
#undef N
};
/* clang-format on */

/* The server calls filter_init once per --filter=X.lua: each gets a
 * layer of its own, with its own struct (the callbacks its script
 * lacks taken out) and its own Lua state and script.  Callbacks
 * without a handle reach their layer through per-layer trampolines
 * (LAYER below), the others through the handle.
 */
#define MAX_LAYERS 16
struct layer {
  struct nbdkit_filter filter;
  struct lhost *host; /* the newest script's */
  int init_failed;
};
static struct layer layers[MAX_LAYERS];
static int nlayers;

/* A connection's handle: the script's value, and the `next` object
 * made for it (made again if the server's next pointer changes).
 */
struct handle {
  struct layer *layer;
  struct lhost *host; /* the layer's interpreter when it opened */
  int ref;
  int next_ref;
  nbdkit_next *next;
};

/* In each callback of a connection: its layer's interpreter. */
#define USE_HANDLE(hd) HOST_USE (((struct handle *)(hd))->host)

/* Push the `next` object for N, made again if the server's next
 * pointer changed, then the handle's value.
 */
static void
push_next_handle (lua_State *L, nbdkit_next *n, void *handle)
{
  struct handle *h = handle;

  if (h->next_ref == LUA_NOREF || h->next != n) {
    next_push (L, n);
    luaL_unref (L, LUA_REGISTRYINDEX, h->next_ref);
    lua_pushvalue (L, -1);
    h->next_ref = luaL_ref (L, LUA_REGISTRYINDEX);
    h->next = n;
  } else
    lua_rawgeti (L, LUA_REGISTRYINDEX, h->next_ref);
  lua_rawgeti (L, LUA_REGISTRYINDEX, h->ref);
}

/* Start a call of callback CB on a connection: the function, `next`
 * and the handle's value pushed.  The caller ends with host_leave.
 */
static lua_State *
begin (size_t cb, nbdkit_next *n, void *handle)
{
  lua_State *L = host_enter ();

  host_push_cb (L, cb);
  push_next_handle (L, n, handle);
  return L;
}

/* ---- the filter's callbacks ---- */

static void
lf_load (struct layer *l)
{
  host_init_hook = next_open_classes;
  l->init_failed = host_init () == -1;
}

static void
lf_unload (struct layer *l)
{
  call_unload (CB_unload);
}

/* The callbacks kept even when the script lacks them (see the top). */
static int
asked_once (size_t cb)
{
  return cb == CB_export_description || cb == CB_block_size
         || (cb >= CB_can_write && cb <= CB_can_cache);
}

static void
drop_missing (struct layer *l)
{
  /* clang-format off */
  int (*get_ready) (int) = l->filter.get_ready;
#define DROP(n) if (!host_has (CB_##n) && !asked_once (CB_##n)) l->filter.n = NULL;
  FILTER_OPTIONAL_CALLBACKS (DROP) DROP (meta_context) DROP (meta_extents)
#undef DROP
  /* Always: it records the thread model for reloads. */
  l->filter.get_ready = get_ready;
  /* clang-format on */
}

static int
load_script (struct layer *l, const char *path)
{
  const struct nbdkit_param *p;
  int bad;

  if (l->init_failed)
    return -1;
  if (host_load_script (path, cb_names, CB_COUNT) == -1)
    return -1;
  p = host_params (NULL, 0, &bad);
  if (bad)
    return -1;
  l->filter.params = p;
  drop_missing (l);
  host_set_answers_alone (host_has (CB_get_size) && host_has (CB_pread));
  return host_has (CB_load) ? call0 (CB_load, "load") : 0;
}

static int
lf_config (struct layer *l, const char *key, const char *value)
{
  if (!host_loaded ()) {
    if (strcmp (key, "script") != 0) {
      nbdkit_error ("the lua filter takes its script first (script=FILE.lua),"
                    " not %s=%s: use --filter=./FILE.lua",
                    key, value);
      return -1;
    }
    return load_script (l, value);
  }
  return host_config (key, value, CB_config);
}

static int
lf_config_complete (struct layer *l)
{
  if (!host_loaded ()) {
    nbdkit_error ("the lua filter was given no script: use"
                  " --filter=./FILE.lua");
    return -1;
  }
  if (!host_has (CB_config_complete))
    return 0;
  return call0 (CB_config_complete, "config_complete");
}

static const char *
lf_config_help (struct layer *l)
{
  const char *h = host_help ();

  if (h)
    return h;
  return "Runs a filter written in Lua: nbdkit --filter=./FILE.lua PLUGIN ...\n"
         "See langs/lua/README.md for how to write one.";
}

static void
lf_dump_plugin (struct layer *l)
{
  lua_State *L = host_enter ();
  host_push_cb (L, CB_dump_plugin);
  host_call (L, 0, 0, "dump_plugin", NULL);
  host_leave ();
  fflush (stdout);
}

static int
lf_thread_model (struct layer *l)
{
  return host_thread_model (CB_thread_model,
                            NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS);
}

static int
lf_get_ready (struct layer *l, int model)
{
  host_set_model (model, CB_load, CB_config, CB_config_complete, CB_get_ready);
  return host_has (CB_get_ready) ? call_get_ready (CB_get_ready, model) : 0;
}

/* Reloading (the server calls it on SIGHUP, see "reload" in
 * abi/README.md): each layer's script read again into a new
 * interpreter (host_reload), at once; if it loads, connections opened
 * afterwards use it, while open ones keep theirs until they close.  A
 * script that fails is reported (its file and line) and changes
 * nothing.
 */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
/* Taken to pick a layer's interpreter and count a user of it, and to
 * replace it, so that it is not closed in between.
 */
static pthread_mutex_t publish_lock = PTHREAD_MUTEX_INITIALIZER;

/* L's current interpreter, with one more user (host_use_count -1 when
 * done).
 */
static struct lhost *
take_host (struct layer *l)
{
  struct lhost *h;

  pthread_mutex_lock (&publish_lock);
  h = l->host;
  host_use_count (h, 1);
  pthread_mutex_unlock (&publish_lock);
  return h;
}

static int
lf_reload (struct layer *l)
{
  struct lhost *n, *old;

  pthread_mutex_lock (&reload_lock);
  old = l->host;
  {
    HOST_USE (old);
    nbdkit_debug ("%s: reloading", host_script_path ());
    n = host_reload (NULL, 0);
  }
  if (n) {
    {
      HOST_USE (n);
      host_set_answers_alone (host_has (CB_get_size) && host_has (CB_pread));
      nbdkit_debug ("%s: reloaded", host_script_path ());
    }
    pthread_mutex_lock (&publish_lock);
    l->host = n;
    pthread_mutex_unlock (&publish_lock);
    host_retire (old);
  }
  pthread_mutex_unlock (&reload_lock);
  return n ? 0 : -1;
}

static int
lf_after_fork (struct layer *l, nbdkit_backend *b)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_after_fork);
  next_push_backend (L, b);
  r = host_call (L, 1, 0, "after_fork", NULL);
  host_leave ();
  return r;
}

static void
lf_cleanup (struct layer *l, nbdkit_backend *b)
{
  lua_State *L = host_enter ();

  host_push_cb (L, CB_cleanup);
  next_push_backend (L, b);
  host_call (L, 1, 0, "cleanup", NULL);
  host_leave ();
}

static int
lf_preconnect (struct layer *l, nbdkit_backend *b, int readonly)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_preconnect);
  next_push_backend (L, b);
  lua_pushboolean (L, readonly);
  r = host_call (L, 2, 0, "preconnect", NULL);
  host_leave ();
  return r;
}

static int
lf_list_exports (struct layer *l, nbdkit_backend *b, int readonly, int is_tls,
                 struct nbdkit_exports *x)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_list_exports);
  next_push_backend (L, b);
  lua_pushboolean (L, readonly);
  lua_pushboolean (L, is_tls);
  r = call_exports (L, 3, x);
  host_leave ();
  return r;
}

static const char *
lf_default_export (struct layer *l, nbdkit_backend *b, int readonly, int is_tls)
{
  lua_State *L = host_enter ();
  const char *r = NULL;
  int bad = 0, below = 0;

  host_push_cb (L, CB_default_export);
  next_push_backend (L, b);
  lua_pushboolean (L, readonly);
  lua_pushboolean (L, is_tls);
  /* nil: the layer below's, as in the Python host. */
  if (host_call (L, 3, 1, "default_export", NULL) == 0) {
    below = lua_isnil (L, -1);
    if (!below)
      r = host_to_interned (L, -1, "default_export", &bad);
    lua_pop (L, 1);
  }
  host_leave ();
  if (below)
    r = nbdkit_backend_default_export (b, readonly, is_tls);
  return r;
}

static void *
lf_open (struct layer *l, nbdkit_context *ctx, int readonly,
         const char *exportname, int is_tls)
{
  struct handle *h = malloc (sizeof *h);
  nbdkit_context **slot;
  lua_State *L;
  int r;

  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  h->layer = l;
  h->host = host_current ();
  host_use_count (h->host, 1);
  h->ref = LUA_REFNIL;
  h->next_ref = LUA_NOREF;
  h->next = NULL;
  if (!host_has (CB_open))
    return h;
  L = host_enter ();
  host_push_cb (L, CB_open);
  slot = next_push_context (L, ctx);
  /* The context is usable during open only. */
  lua_pushvalue (L, -1);
  lua_insert (L, -3);
  lua_pushboolean (L, readonly);
  lua_pushstring (L, exportname);
  lua_pushboolean (L, is_tls);
  r = host_call (L, 4, 1, "open", NULL);
  if (r == 0)
    h->ref = luaL_ref (L, LUA_REGISTRYINDEX);
  *slot = NULL;
  lua_pop (L, 1);
  host_leave ();
  if (r == -1) {
    host_use_count (h->host, -1);
    free (h);
    return NULL;
  }
  return h;
}

static void
lf_close (void *handle)
{
  USE_HANDLE (handle);
  struct handle *h = handle;
  lua_State *L = host_enter ();

  if (host_has (CB_close)) {
    host_push_cb (L, CB_close);
    lua_rawgeti (L, LUA_REGISTRYINDEX, h->ref);
    host_call (L, 1, 0, "close", NULL);
  }
  /* A `next` the script kept must not reach a closed context. */
  if (h->next_ref != LUA_NOREF) {
    lua_rawgeti (L, LUA_REGISTRYINDEX, h->next_ref);
    next_detach (L, -1);
    lua_pop (L, 1);
    luaL_unref (L, LUA_REGISTRYINDEX, h->next_ref);
  }
  luaL_unref (L, LUA_REGISTRYINDEX, h->ref);
  host_leave ();
  /* The last connection on a replaced script closes it. */
  host_use_count (h->host, -1);
  free (h);
}

static int
lf_prepare (nbdkit_next *n, void *handle, int readonly)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_prepare, n, handle);
  int r;

  lua_pushboolean (L, readonly);
  r = host_call (L, 3, 0, "prepare", NULL);
  host_leave ();
  return r;
}

static int
lf_finalize (nbdkit_next *n, void *handle)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_finalize, n, handle);
  int r = host_call (L, 2, 0, "finalize", NULL);

  host_leave ();
  return r;
}

static int64_t
lf_get_size (nbdkit_next *n, void *handle)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_get_size, n, handle);
  int64_t r = call_size (L, 2, "get_size");

  host_leave ();
  return r;
}

/* nil: the layer below's description, or none if nothing is below. */
static const char *
lf_export_description (nbdkit_next *n, void *handle)
{
  USE_HANDLE (handle);
  lua_State *L;
  const char *r = NULL;
  int bad = 0, below = 0;

  if (!host_has (CB_export_description))
    return n ? nbdkit_next_export_description (n) : NULL;
  L = begin (CB_export_description, n, handle);
  if (host_call (L, 2, 1, "export_description", NULL) == 0) {
    below = lua_isnil (L, -1);
    if (!below)
      r = host_description (
          host_to_interned (L, -1, "export_description", &bad));
    lua_pop (L, 1);
  }
  host_leave ();
  if (below && n)
    r = nbdkit_next_export_description (n);
  return r;
}

/* nil: the layer below's sizes, or none if nothing is below. */
static int
lf_block_size (nbdkit_next *n, void *handle, struct nbdkit_block_size *bs)
{
  USE_HANDLE (handle);
  lua_State *L;
  int r, below = 0;

  if (!host_has (CB_block_size))
    return n ? nbdkit_next_block_size (n, bs) : 0;
  L = begin (CB_block_size, n, handle);
  lua_pushboolean (L, bs->client_requested);
  r = host_call (L, 3, 4, "block_size", NULL);
  if (r == 0) {
    below = lua_isnil (L, -4);
    if (!below)
      r = host_to_block_size (L, -4, 4, "block_size", bs);
    lua_pop (L, 4);
  }
  host_leave ();
  if (below && n)
    r = nbdkit_next_block_size (n, bs);
  return r;
}

#define HAS(fn) host_has (CB_##fn)
#define HOST_CAN_ZERO lf_can_zero (NULL, handle)
#define CAN(fn, tri)                                                           \
  static int lf_##fn (nbdkit_next *n, void *handle)                            \
  {                                                                            \
    USE_HANDLE (handle);                                                       \
    lua_State *L;                                                              \
    int r;                                                                     \
    if (!HAS (fn))                                                             \
      return n ? nbdkit_next_##fn (n) : HOST_DEFAULT_##fn;                     \
    L = begin (CB_##fn, n, handle);                                            \
    r = call_can (L, 2, #fn, tri);                                             \
    host_leave ();                                                             \
    return r;                                                                  \
  }
CAN (can_write, 0)
CAN (can_flush, 0)
CAN (is_rotational, 0)
CAN (can_trim, 0)
CAN (can_zero, NBDKIT_ZERO_NATIVE)
CAN (can_fast_zero, 0)
CAN (can_fua, NBDKIT_FUA_NATIVE)
CAN (can_multi_conn, 0)
CAN (can_extents, NBDKIT_EXTENTS_NATIVE)
CAN (can_cache, NBDKIT_CACHE_NATIVE)
#undef CAN
#undef HOST_CAN_ZERO
#undef HAS

static int
lf_pread (nbdkit_next *n, void *handle, void *buf, uint64_t count,
          uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_pread, n, handle);
  struct module_read cur = { rd, buf, count, offset, 0 };
  int r;

  lua_pushinteger (L, count);
  lua_pushinteger (L, offset);
  lua_pushinteger (L, flags);
  r = call_pread (L, 5, &cur, err);
  host_leave ();
  return r;
}

static int
lf_pwrite (nbdkit_next *n, void *handle, const void *buf, uint64_t count,
           uint64_t offset, uint32_t flags, int *err)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_pwrite, n, handle);
  int r;

  /* The one copy: Lua 5.4 strings cannot point at foreign memory. */
  lua_pushlstring (L, buf, count);
  lua_pushinteger (L, offset);
  lua_pushinteger (L, flags);
  r = host_call (L, 5, 0, "pwrite", err);
  host_leave ();
  return r;
}

static int
lf_flush (nbdkit_next *n, void *handle, uint32_t flags, int *err)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_flush, n, handle);
  int r;

  lua_pushinteger (L, flags);
  r = host_call (L, 3, 0, "flush", err);
  host_leave ();
  return r;
}

#define RANGE(fn)                                                              \
  static int lf_##fn (nbdkit_next *n, void *handle, uint64_t count,            \
                      uint64_t offset, uint32_t flags, int *err)               \
  {                                                                            \
    USE_HANDLE (handle);                                                       \
    lua_State *L = begin (CB_##fn, n, handle);                                 \
    int r;                                                                     \
    lua_pushinteger (L, count);                                                \
    lua_pushinteger (L, offset);                                               \
    lua_pushinteger (L, flags);                                                \
    r = host_call (L, 5, 0, #fn, err);                                         \
    host_leave ();                                                             \
    return r;                                                                  \
  }
RANGE (trim)
RANGE (zero)
RANGE (cache)
#undef RANGE

static int
extents_cb (size_t cb, const char *what, nbdkit_next *n, void *handle,
            uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *e, int *err)
{
  USE_HANDLE (handle);
  lua_State *L = begin (cb, n, handle);
  int r;

  lua_pushinteger (L, count);
  lua_pushinteger (L, offset);
  lua_pushinteger (L, flags);
  r = call_extents (L, 5, what, e, err);
  host_leave ();
  return r;
}

static int
lf_extents (nbdkit_next *n, void *handle, uint64_t count, uint64_t offset,
            uint32_t flags, struct nbdkit_extents *e, int *err)
{
  return extents_cb (CB_extents, "extents", n, handle, count, offset, flags, e,
                     err);
}

static int
lf_meta_extents (nbdkit_next *n, void *handle, uint64_t count, uint64_t offset,
                 uint32_t flags, struct nbdkit_extents *e, int *err)
{
  return extents_cb (CB_meta_extents, "meta_extents", n, handle, count, offset,
                     flags, e, err);
}

static const char *
lf_meta_context (struct layer *l)
{
  lua_State *L = host_enter ();
  const char *r;

  host_push_cb (L, CB_meta_context);
  r = call_string (L, 0, "meta_context");
  host_leave ();
  return r;
}

/* What every layer starts from; its trampolines replace the callbacks
 * that have no handle.
 */
static const struct nbdkit_filter template = {
  .name = "lua",
  .longname = "nbdkit Lua filter",
  .version = NBDKIT_VERSION,
  .description = "Runs a filter written in Lua 5.4.",
  .close = lf_close,
  .prepare = lf_prepare,
  .finalize = lf_finalize,
  .get_size = lf_get_size,
  .export_description = lf_export_description,
  .block_size = lf_block_size,
  .can_write = lf_can_write,
  .can_flush = lf_can_flush,
  .is_rotational = lf_is_rotational,
  .can_trim = lf_can_trim,
  .can_zero = lf_can_zero,
  .can_fast_zero = lf_can_fast_zero,
  .can_fua = lf_can_fua,
  .can_multi_conn = lf_can_multi_conn,
  .can_extents = lf_can_extents,
  .can_cache = lf_can_cache,
  .pread = lf_pread,
  .pwrite = lf_pwrite,
  .flush = lf_flush,
  .trim = lf_trim,
  .zero = lf_zero,
  .extents = lf_extents,
  .cache = lf_cache,
  .meta_extents = lf_meta_extents,
};

/* Each layer's callbacks that get no handle, bound to it. */
#define LAYER(i)                                                               \
  static void load_##i (void)                                                  \
  {                                                                            \
    HOST_USE (layers[i].host);                                                 \
    lf_load (&layers[i]);                                                      \
  }                                                                            \
  static void unload_##i (void)                                                \
  {                                                                            \
    HOST_USE (layers[i].host);                                                 \
    lf_unload (&layers[i]);                                                    \
  }                                                                            \
  static int config_##i (const char *k, const char *v)                         \
  {                                                                            \
    HOST_USE (layers[i].host);                                                 \
    return lf_config (&layers[i], k, v);                                       \
  }                                                                            \
  static int config_complete_##i (void)                                        \
  {                                                                            \
    HOST_USE (layers[i].host);                                                 \
    return lf_config_complete (&layers[i]);                                    \
  }                                                                            \
  static const char *config_help_##i (void)                                    \
  {                                                                            \
    HOST_USE (layers[i].host);                                                 \
    return lf_config_help (&layers[i]);                                        \
  }                                                                            \
  static void dump_plugin_##i (void)                                           \
  {                                                                            \
    HOST_USE (layers[i].host);                                                 \
    lf_dump_plugin (&layers[i]);                                               \
  }                                                                            \
  static int thread_model_##i (void)                                           \
  {                                                                            \
    HOST_USE (layers[i].host);                                                 \
    return lf_thread_model (&layers[i]);                                       \
  }                                                                            \
  static int get_ready_##i (int m)                                             \
  {                                                                            \
    HOST_USE (layers[i].host);                                                 \
    return lf_get_ready (&layers[i], m);                                       \
  }                                                                            \
  static int after_fork_##i (nbdkit_backend *b)                                \
  {                                                                            \
    HOST_USE (layers[i].host);                                                 \
    return lf_after_fork (&layers[i], b);                                      \
  }                                                                            \
  static void cleanup_##i (nbdkit_backend *b)                                  \
  {                                                                            \
    HOST_USE (layers[i].host);                                                 \
    lf_cleanup (&layers[i], b);                                                \
  }                                                                            \
  static int preconnect_##i (nbdkit_backend *b, int ro)                        \
  {                                                                            \
    struct lhost *h_ = take_host (&layers[i]);                                 \
    int r_;                                                                    \
    {                                                                          \
      HOST_USE (h_);                                                           \
      r_ = lf_preconnect (&layers[i], b, ro);                                  \
    }                                                                          \
    host_use_count (h_, -1);                                                   \
    return r_;                                                                 \
  }                                                                            \
  static int list_exports_##i (nbdkit_backend *b, int ro, int tls,             \
                               struct nbdkit_exports *e)                       \
  {                                                                            \
    struct lhost *h_ = take_host (&layers[i]);                                 \
    int r_;                                                                    \
    {                                                                          \
      HOST_USE (h_);                                                           \
      r_ = lf_list_exports (&layers[i], b, ro, tls, e);                        \
    }                                                                          \
    host_use_count (h_, -1);                                                   \
    return r_;                                                                 \
  }                                                                            \
  static const char *default_export_##i (nbdkit_backend *b, int ro, int tls)   \
  {                                                                            \
    struct lhost *h_ = take_host (&layers[i]);                                 \
    const char *r_;                                                            \
    {                                                                          \
      HOST_USE (h_);                                                           \
      r_ = lf_default_export (&layers[i], b, ro, tls);                         \
    }                                                                          \
    host_use_count (h_, -1);                                                   \
    return r_;                                                                 \
  }                                                                            \
  static void *open_##i (nbdkit_context *c, int ro, const char *n, int tls)    \
  {                                                                            \
    struct lhost *h_ = take_host (&layers[i]);                                 \
    void *r_;                                                                  \
    {                                                                          \
      HOST_USE (h_);                                                           \
      r_ = lf_open (&layers[i], c, ro, n, tls);                                \
    }                                                                          \
    host_use_count (h_, -1);                                                   \
    return r_;                                                                 \
  }                                                                            \
  static const char *meta_context_##i (void)                                   \
  {                                                                            \
    HOST_USE (layers[i].host);                                                 \
    return lf_meta_context (&layers[i]);                                       \
  }                                                                            \
  static int reload_##i (void)                                                 \
  {                                                                            \
    return lf_reload (&layers[i]);                                             \
  }                                                                            \
  static void bind_##i (struct nbdkit_filter *f)                               \
  {                                                                            \
    f->load = load_##i;                                                        \
    f->unload = unload_##i;                                                    \
    f->config = config_##i;                                                    \
    f->config_complete = config_complete_##i;                                  \
    f->config_help = config_help_##i;                                          \
    f->dump_plugin = dump_plugin_##i;                                          \
    f->thread_model = thread_model_##i;                                        \
    f->get_ready = get_ready_##i;                                              \
    f->after_fork = after_fork_##i;                                            \
    f->cleanup = cleanup_##i;                                                  \
    f->preconnect = preconnect_##i;                                            \
    f->list_exports = list_exports_##i;                                        \
    f->default_export = default_export_##i;                                    \
    f->open = open_##i;                                                        \
    f->meta_context = meta_context_##i;                                        \
    f->reload = reload_##i;                                                    \
  }
/* clang-format off */
#define LAYERS(X)                                                       \
  X (0) X (1) X (2) X (3) X (4) X (5) X (6) X (7)                       \
  X (8) X (9) X (10) X (11) X (12) X (13) X (14) X (15)
/* clang-format on */
LAYERS (LAYER)
#undef LAYER

static void (*const binders[MAX_LAYERS]) (struct nbdkit_filter *) = {
#define B(i) bind_##i,
  LAYERS (B)
#undef B
};

NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_filter *filter_init (void);

/* Called once per --filter=X.lua: the next free layer. */
NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_filter *
filter_init (void)
{
  struct layer *l;

  if (nlayers >= MAX_LAYERS) {
    fprintf (stderr, "nbdkit: lua: at most %d Lua filters can be stacked\n",
             MAX_LAYERS);
    return NULL;
  }
  l = &layers[nlayers];
  l->host = host_new ();
  if (l->host == NULL) {
    fprintf (stderr, "nbdkit: lua: out of memory\n");
    return NULL;
  }
  l->filter = template;
  binders[nlayers](&l->filter);
  nlayers++;
  l->filter._struct_size = sizeof l->filter;
  l->filter._api_version = NBDKIT_API_VERSION;
  l->filter._unused = 0;
  return &l->filter;
}
