/* filter.c: the lua filter, which runs a filter written in Lua.
 *
 *   nbdkit --filter=./myfilter.lua PLUGIN ...
 *
 * The server loads this object as the filter "lua" and gives it the
 * script as script=PATH before anything else.  Each callback of the
 * filter ABI calls the script's global function of the same name with
 * a `next` object first (methods calling the layer below); a function
 * the script lacks is taken out of the filter struct, so that call
 * passes through untouched and costs nothing.  Only the parameters the
 * script declares reach it.  See README.md.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#include <nbdkit-filter.h>

/* clang-format off */
#define CALLBACKS(X)                                                    \
  X (load) X (unload) X (dump_plugin) X (config) X (config_complete)    \
  X (thread_model) X (get_ready) X (after_fork) X (cleanup)             \
  X (preconnect) X (list_exports) X (default_export)                    \
  X (open) X (close) X (prepare) X (finalize)                           \
  X (get_size) X (export_description) X (block_size)                    \
  X (can_write) X (can_flush) X (is_rotational) X (can_trim)            \
  X (can_zero) X (can_fast_zero) X (can_fua) X (can_multi_conn)         \
  X (can_extents) X (can_cache)                                         \
  X (pread) X (pwrite) X (flush) X (trim) X (zero) X (extents) X (cache) \
  X (meta_context) X (meta_extents)

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

#define NEXT_MT "nbdkit.next"
#define BACKEND_MT "nbdkit.backend"
#define CONTEXT_MT "nbdkit.context"

static struct nbdkit_filter filter;
static int init_failed;

/* A connection's handle: the script's value, and the `next` object
 * made for it (made again if the server's next pointer changes).
 */
struct handle {
  int ref;
  int next_ref;
  nbdkit_next *next;
};

struct ud_next {
  nbdkit_next *next;
};
struct ud_backend {
  nbdkit_backend *backend;
};
struct ud_context {
  nbdkit_context *ctx;
};

/* ---- the objects scripts call the layer below with ---- */

/* Raise the errno the layer below failed with.  It logged its own
 * error: ours is only a debug message (see host_call).
 */
static int
raise_below (lua_State *L, int err, const char *fn)
{
  if (err == 0)
    err = EIO;
  module_push_error (L, err, NULL);
  lua_pushfstring (L, "next:%s: the layer below failed with %s", fn,
                   module_errno_name (err));
  lua_setfield (L, -2, "message");
  lua_pushboolean (L, 1);
  lua_setfield (L, -2, "below");
  return lua_error (L);
}

static nbdkit_next *
check_next (lua_State *L)
{
  struct ud_next *u = luaL_checkudata (L, 1, NEXT_MT);
  if (u->next == NULL)
    luaL_error (L, "next: nothing is open below (open_none, or the"
                   " connection is closed)");
  return u->next;
}

/* The wait for the layer below runs without the lock. */
#define BELOW(call)                                                            \
  ({                                                                           \
    int saved_ = host_suspend ();                                              \
    __typeof__ (call) r_ = (call);                                             \
    host_resume (saved_);                                                      \
    r_;                                                                        \
  })

static int
n_get_size (lua_State *L)
{
  nbdkit_next *n = check_next (L);
  int64_t r = BELOW (nbdkit_next_get_size (n));
  if (r == -1)
    return raise_below (L, EIO, "get_size");
  lua_pushinteger (L, r);
  return 1;
}

static int
n_export_description (lua_State *L)
{
  nbdkit_next *n = check_next (L);
  const char *r = BELOW (nbdkit_next_export_description (n));
  if (r)
    lua_pushstring (L, r);
  else
    lua_pushnil (L);
  return 1;
}

static int
n_block_size (lua_State *L)
{
  nbdkit_next *n = check_next (L);
  struct nbdkit_block_size bs = { 0 };
  if (BELOW (nbdkit_next_block_size (n, &bs)) == -1)
    return raise_below (L, EIO, "block_size");
  lua_createtable (L, 0, 4);
  lua_pushinteger (L, bs.minimum);
  lua_setfield (L, -2, "minimum");
  lua_pushinteger (L, bs.preferred);
  lua_setfield (L, -2, "preferred");
  lua_pushinteger (L, bs.maximum);
  lua_setfield (L, -2, "maximum");
  lua_pushinteger (L, bs.maximum_virtual);
  lua_setfield (L, -2, "maximum_virtual");
  return 1;
}

/* Booleans for yes/no capabilities, numbers for the tri-states. */
#define NCAN(fn, boolean)                                                      \
  static int n_##fn (lua_State *L)                                             \
  {                                                                            \
    nbdkit_next *n = check_next (L);                                           \
    int r = BELOW (nbdkit_next_##fn (n));                                      \
    if (r == -1)                                                               \
      return raise_below (L, EIO, #fn);                                        \
    if (boolean)                                                               \
      lua_pushboolean (L, r);                                                  \
    else                                                                       \
      lua_pushinteger (L, r);                                                  \
    return 1;                                                                  \
  }
NCAN (can_write, 1)
NCAN (can_flush, 1)
NCAN (is_rotational, 1)
NCAN (can_trim, 1)
NCAN (can_zero, 0)
NCAN (can_fast_zero, 1)
NCAN (can_fua, 0)
NCAN (can_multi_conn, 1)
NCAN (can_extents, 0)
NCAN (can_cache, 0)
#undef NCAN

/* next:pread(count, offset [, flags]): the data as a string.  It is
 * read into a Lua buffer and copied once into the string.
 */
static int
n_pread (lua_State *L)
{
  nbdkit_next *n = check_next (L);
  lua_Integer count = luaL_checkinteger (L, 2);
  lua_Integer offset = luaL_checkinteger (L, 3);
  uint32_t flags = luaL_optinteger (L, 4, 0);
  luaL_Buffer b;
  char *p;
  int err = 0;

  luaL_argcheck (L, count >= 0, 2, "count must not be negative");
  luaL_argcheck (L, offset >= 0, 3, "offset must not be negative");
  p = luaL_buffinitsize (L, &b, count);
  if (BELOW (nbdkit_next_pread (n, p, count, offset, flags, NULL, &err)) == -1)
    return raise_below (L, err, "pread");
  luaL_pushresultsize (&b, count);
  return 1;
}

/* next:pwrite(buf, offset [, flags]): BUF is passed without a copy. */
static int
n_pwrite (lua_State *L)
{
  nbdkit_next *n = check_next (L);
  size_t len;
  const char *buf = luaL_checklstring (L, 2, &len);
  lua_Integer offset = luaL_checkinteger (L, 3);
  uint32_t flags = luaL_optinteger (L, 4, 0);
  int err = 0;

  luaL_argcheck (L, offset >= 0, 3, "offset must not be negative");
  if (BELOW (nbdkit_next_pwrite (n, buf, len, offset, flags, &err)) == -1)
    return raise_below (L, err, "pwrite");
  return 0;
}

static int
n_flush (lua_State *L)
{
  nbdkit_next *n = check_next (L);
  uint32_t flags = luaL_optinteger (L, 2, 0);
  int err = 0;

  if (BELOW (nbdkit_next_flush (n, flags, &err)) == -1)
    return raise_below (L, err, "flush");
  return 0;
}

#define NRANGE(fn)                                                             \
  static int n_##fn (lua_State *L)                                             \
  {                                                                            \
    nbdkit_next *n = check_next (L);                                           \
    lua_Integer count = luaL_checkinteger (L, 2);                              \
    lua_Integer offset = luaL_checkinteger (L, 3);                             \
    uint32_t flags = luaL_optinteger (L, 4, 0);                                \
    int err = 0;                                                               \
    luaL_argcheck (L, count >= 0 && offset >= 0, 2,                            \
                   "count and offset must not be negative");                   \
    if (BELOW (nbdkit_next_##fn (n, count, offset, flags, &err)) == -1)        \
      return raise_below (L, err, #fn);                                        \
    return 0;                                                                  \
  }
NRANGE (trim)
NRANGE (zero)
NRANGE (cache)
#undef NRANGE

static void
push_extents (lua_State *L, struct nbdkit_extents *e)
{
  size_t n = nbdkit_extents_count (e);

  lua_createtable (L, n, 0);
  for (size_t i = 0; i < n; i++) {
    struct nbdkit_extent x = nbdkit_get_extent (e, i);
    lua_createtable (L, 0, 3);
    lua_pushinteger (L, x.offset);
    lua_setfield (L, -2, "offset");
    lua_pushinteger (L, x.length);
    lua_setfield (L, -2, "length");
    lua_pushinteger (L, x.type);
    lua_setfield (L, -2, "type");
    lua_seti (L, -2, i + 1);
  }
}

/* next:extents(count, offset [, flags]) and next:extents_full(...):
 * a list of {offset=, length=, type=}.
 */
static int
extents_common (lua_State *L, int full)
{
  nbdkit_next *n = check_next (L);
  lua_Integer count = luaL_checkinteger (L, 2);
  lua_Integer offset = luaL_checkinteger (L, 3);
  uint32_t flags = luaL_optinteger (L, 4, 0);
  struct nbdkit_extents *e;
  int err = 0, r;

  luaL_argcheck (L, count >= 0 && offset >= 0, 2,
                 "count and offset must not be negative");
  e = nbdkit_extents_new (offset, offset + count);
  if (e == NULL)
    return module_raise (L, ENOMEM, "extents: out of memory");
  r = full ? BELOW (nbdkit_extents_full (n, count, offset, flags, e, &err))
           : BELOW (nbdkit_next_extents (n, count, offset, flags, e, &err));
  if (r == -1) {
    nbdkit_extents_free (e);
    return raise_below (L, err, "extents");
  }
  push_extents (L, e);
  nbdkit_extents_free (e);
  return 1;
}

static int
n_extents (lua_State *L)
{
  return extents_common (L, 0);
}

static int
n_extents_full (lua_State *L)
{
  return extents_common (L, 1);
}

static const luaL_Reg next_methods[] = {
  { "get_size", n_get_size },
  { "export_description", n_export_description },
  { "block_size", n_block_size },
  { "can_write", n_can_write },
  { "can_flush", n_can_flush },
  { "is_rotational", n_is_rotational },
  { "can_trim", n_can_trim },
  { "can_zero", n_can_zero },
  { "can_fast_zero", n_can_fast_zero },
  { "can_fua", n_can_fua },
  { "can_multi_conn", n_can_multi_conn },
  { "can_extents", n_can_extents },
  { "can_cache", n_can_cache },
  { "pread", n_pread },
  { "pwrite", n_pwrite },
  { "flush", n_flush },
  { "trim", n_trim },
  { "zero", n_zero },
  { "cache", n_cache },
  { "extents", n_extents },
  { "extents_full", n_extents_full },
  { NULL, NULL },
};

static nbdkit_backend *
check_backend (lua_State *L)
{
  struct ud_backend *u = luaL_checkudata (L, 1, BACKEND_MT);
  if (u->backend == NULL)
    luaL_error (L, "backend: there is no layer below");
  return u->backend;
}

/* backend:list_exports(readonly, is_tls): {{name=, description=}...} */
static int
b_list_exports (lua_State *L)
{
  nbdkit_backend *b = check_backend (L);
  int ro = lua_toboolean (L, 2), tls = lua_toboolean (L, 3);
  struct nbdkit_exports *x = nbdkit_exports_new ();
  size_t n;

  if (x == NULL)
    return module_raise (L, ENOMEM, "list_exports: out of memory");
  if (BELOW (nbdkit_backend_list_exports (b, ro, tls, x)) == -1) {
    nbdkit_exports_free (x);
    return raise_below (L, EIO, "list_exports");
  }
  n = nbdkit_exports_count (x);
  lua_createtable (L, n, 0);
  for (size_t i = 0; i < n; i++) {
    struct nbdkit_export e = nbdkit_get_export (x, i);
    lua_createtable (L, 0, 2);
    lua_pushstring (L, e.name);
    lua_setfield (L, -2, "name");
    if (e.description) {
      lua_pushstring (L, e.description);
      lua_setfield (L, -2, "description");
    }
    lua_seti (L, -2, i + 1);
  }
  nbdkit_exports_free (x);
  return 1;
}

static int
b_default_export (lua_State *L)
{
  nbdkit_backend *b = check_backend (L);
  int ro = lua_toboolean (L, 2), tls = lua_toboolean (L, 3);
  const char *r = BELOW (nbdkit_backend_default_export (b, ro, tls));

  if (r == NULL)
    return raise_below (L, EINVAL, "default_export");
  lua_pushstring (L, r);
  return 1;
}

static const luaL_Reg backend_methods[] = {
  { "list_exports", b_list_exports },
  { "default_export", b_default_export },
  { NULL, NULL },
};

static nbdkit_context *
check_context (lua_State *L)
{
  struct ud_context *u = luaL_checkudata (L, 1, CONTEXT_MT);
  if (u->ctx == NULL)
    luaL_error (L, "ctx: only usable during open");
  return u->ctx;
}

/* ctx:next_open(readonly, exportname): open the layer below now. */
static int
c_next_open (lua_State *L)
{
  nbdkit_context *ctx = check_context (L);
  int ro = lua_toboolean (L, 2);
  const char *name = luaL_checkstring (L, 3);

  if (BELOW (nbdkit_next_open (ctx, ro, name)) == -1)
    return raise_below (L, EIO, "next_open");
  return 0;
}

static int
c_open_none (lua_State *L)
{
  nbdkit_next_open_none (check_context (L));
  return 0;
}

static void push_backend (lua_State *L, nbdkit_backend *b);

static int
c_backend (lua_State *L)
{
  push_backend (L, nbdkit_context_get_backend (check_context (L)));
  return 1;
}

static const luaL_Reg context_methods[] = {
  { "next_open", c_next_open },
  { "open_none", c_open_none },
  { "backend", c_backend },
  { NULL, NULL },
};

static void
new_class (lua_State *L, const char *name, const luaL_Reg *methods)
{
  luaL_newmetatable (L, name);
  lua_newtable (L);
  luaL_setfuncs (L, methods, 0);
  lua_setfield (L, -2, "__index");
  lua_pushstring (L, name);
  lua_setfield (L, -2, "__name");
  lua_pop (L, 1);
}

static void
push_backend (lua_State *L, nbdkit_backend *b)
{
  struct ud_backend *u = lua_newuserdatauv (L, sizeof *u, 0);
  u->backend = b;
  luaL_setmetatable (L, BACKEND_MT);
}

/* The handle's value and its `next` object. */
static void
push_next (lua_State *L, struct handle *h, nbdkit_next *n)
{
  if (h->next_ref == LUA_NOREF || h->next != n) {
    struct ud_next *u = lua_newuserdatauv (L, sizeof *u, 0);
    u->next = n;
    luaL_setmetatable (L, NEXT_MT);
    luaL_unref (L, LUA_REGISTRYINDEX, h->next_ref);
    lua_pushvalue (L, -1);
    h->next_ref = luaL_ref (L, LUA_REGISTRYINDEX);
    h->next = n;
  } else
    lua_rawgeti (L, LUA_REGISTRYINDEX, h->next_ref);
}

static void
push_next_handle (lua_State *L, nbdkit_next *n, void *handle)
{
  push_next (L, handle, n);
  lua_rawgeti (L, LUA_REGISTRYINDEX, ((struct handle *)handle)->ref);
}

/* ---- the filter's callbacks ---- */

static void
lf_load (void)
{
  static int loads;

  /* The server loads this object once however many --filter=X.lua
   * there are, and our callbacks cannot tell the instances apart.
   */
  if (loads++ > 0) {
    nbdkit_error ("only one Lua filter script per server: %s is already"
                  " loaded (combine the scripts into one)",
                  host_loaded () ? host_script_path () : "another");
    init_failed = 1;
    return;
  }
  init_failed = host_init () == -1;
  if (!init_failed) {
    lua_State *L = host_enter ();
    new_class (L, NEXT_MT, next_methods);
    new_class (L, BACKEND_MT, backend_methods);
    new_class (L, CONTEXT_MT, context_methods);
    host_leave ();
  }
}

static void
lf_unload (void)
{
  if (host_loaded () && host_has (CB_unload)) {
    lua_State *L = host_enter ();
    host_push_cb (L, CB_unload);
    host_call (L, 0, 0, "unload", NULL);
    host_leave ();
  }
  host_fini ();
}

static void
drop_missing (void)
{
  /* clang-format off */
#define DROP(n) if (!host_has (CB_##n)) filter.n = NULL;
  DROP (dump_plugin) DROP (get_ready) DROP (after_fork) DROP (cleanup)
  DROP (preconnect) DROP (list_exports) DROP (default_export)
  DROP (prepare) DROP (finalize) DROP (get_size) DROP (export_description)
  DROP (block_size) DROP (can_write) DROP (can_flush) DROP (is_rotational)
  DROP (can_trim) DROP (can_zero) DROP (can_fast_zero) DROP (can_fua)
  DROP (can_multi_conn) DROP (can_extents) DROP (can_cache) DROP (pread)
  DROP (pwrite) DROP (flush) DROP (trim) DROP (zero) DROP (extents)
  DROP (cache) DROP (meta_context) DROP (meta_extents)
#undef DROP
  /* clang-format on */
}

static int
load_script (const char *path)
{
  const struct nbdkit_param *p;
  int bad;

  if (init_failed)
    return -1;
  if (host_load_script (path, cb_names, CB_COUNT) == -1)
    return -1;
  p = host_params (NULL, 0, &bad);
  if (bad)
    return -1;
  filter.params = p;
  drop_missing ();
  if (host_has (CB_load)) {
    lua_State *L = host_enter ();
    host_push_cb (L, CB_load);
    int r = host_call (L, 0, 0, "load", NULL);
    host_leave ();
    return r;
  }
  return 0;
}

static int
lf_config (const char *key, const char *value)
{
  if (!host_loaded ()) {
    if (strcmp (key, "script") != 0) {
      nbdkit_error ("the lua filter takes its script first (script=FILE.lua),"
                    " not %s=%s: use --filter=./FILE.lua",
                    key, value);
      return -1;
    }
    return load_script (value);
  }
  return host_config (key, value, CB_config);
}

static int
call0 (size_t cb, const char *what)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, cb);
  r = host_call (L, 0, 0, what, NULL);
  host_leave ();
  return r;
}

static int
lf_config_complete (void)
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
lf_config_help (void)
{
  const char *h = host_help ();

  if (h)
    return h;
  return "Runs a filter written in Lua: nbdkit --filter=./FILE.lua PLUGIN ...\n"
         "See langs/lua/README.md for how to write one.";
}

static void
lf_dump_plugin (void)
{
  lua_State *L = host_enter ();
  host_push_cb (L, CB_dump_plugin);
  host_call (L, 0, 0, "dump_plugin", NULL);
  host_leave ();
  fflush (stdout);
}

static int
lf_thread_model (void)
{
  return host_thread_model (CB_thread_model,
                            NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS);
}

static int
lf_get_ready (int model)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_get_ready);
  lua_pushstring (L, host_thread_model_name (model));
  r = host_call (L, 1, 0, "get_ready", NULL);
  host_leave ();
  return r;
}

static int
lf_after_fork (nbdkit_backend *b)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_after_fork);
  push_backend (L, b);
  r = host_call (L, 1, 0, "after_fork", NULL);
  host_leave ();
  return r;
}

static void
lf_cleanup (nbdkit_backend *b)
{
  lua_State *L = host_enter ();

  host_push_cb (L, CB_cleanup);
  push_backend (L, b);
  host_call (L, 1, 0, "cleanup", NULL);
  host_leave ();
}

static int
lf_preconnect (nbdkit_backend *b, int readonly)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_preconnect);
  push_backend (L, b);
  lua_pushboolean (L, readonly);
  r = host_call (L, 2, 0, "preconnect", NULL);
  host_leave ();
  return r;
}

static int
lf_list_exports (nbdkit_backend *b, int readonly, int is_tls,
                 struct nbdkit_exports *x)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_list_exports);
  push_backend (L, b);
  lua_pushboolean (L, readonly);
  lua_pushboolean (L, is_tls);
  module_cur_exports = x;
  r = host_call (L, 3, 1, "list_exports", NULL);
  module_cur_exports = NULL;
  if (r == 0) {
    r = host_to_exports (L, -1, "list_exports", x);
    lua_pop (L, 1);
  }
  host_leave ();
  return r;
}

static const char *
lf_default_export (nbdkit_backend *b, int readonly, int is_tls)
{
  lua_State *L = host_enter ();
  const char *r = NULL;
  int bad;

  host_push_cb (L, CB_default_export);
  push_backend (L, b);
  lua_pushboolean (L, readonly);
  lua_pushboolean (L, is_tls);
  if (host_call (L, 3, 1, "default_export", NULL) == 0) {
    r = host_to_interned (L, -1, "default_export", &bad);
    if (r == NULL && !bad)
      host_fail ("default_export", EINVAL, "returned nil: expected a name");
    lua_pop (L, 1);
  }
  host_leave ();
  return r;
}

static void *
lf_open (nbdkit_context *ctx, int readonly, const char *exportname, int is_tls)
{
  struct handle *h = malloc (sizeof *h);
  struct ud_context *u;
  lua_State *L;
  int r;

  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  h->ref = LUA_REFNIL;
  h->next_ref = LUA_NOREF;
  h->next = NULL;
  if (!host_has (CB_open))
    return h;
  L = host_enter ();
  host_push_cb (L, CB_open);
  u = lua_newuserdatauv (L, sizeof *u, 0);
  u->ctx = ctx;
  luaL_setmetatable (L, CONTEXT_MT);
  /* The context is usable during open only. */
  lua_pushvalue (L, -1);
  lua_insert (L, -3);
  lua_pushboolean (L, readonly);
  lua_pushstring (L, exportname);
  lua_pushboolean (L, is_tls);
  r = host_call (L, 4, 1, "open", NULL);
  if (r == 0)
    h->ref = luaL_ref (L, LUA_REGISTRYINDEX);
  u->ctx = NULL;
  lua_pop (L, 1);
  host_leave ();
  if (r == -1) {
    free (h);
    return NULL;
  }
  return h;
}

static void
lf_close (void *handle)
{
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
    struct ud_next *u = lua_touserdata (L, -1);
    if (u)
      u->next = NULL;
    lua_pop (L, 1);
    luaL_unref (L, LUA_REGISTRYINDEX, h->next_ref);
  }
  luaL_unref (L, LUA_REGISTRYINDEX, h->ref);
  host_leave ();
  free (h);
}

static int
lf_prepare (nbdkit_next *n, void *handle, int readonly)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_prepare);
  push_next_handle (L, n, handle);
  lua_pushboolean (L, readonly);
  r = host_call (L, 3, 0, "prepare", NULL);
  host_leave ();
  return r;
}

static int
lf_finalize (nbdkit_next *n, void *handle)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_finalize);
  push_next_handle (L, n, handle);
  r = host_call (L, 2, 0, "finalize", NULL);
  host_leave ();
  return r;
}

static int64_t
lf_get_size (nbdkit_next *n, void *handle)
{
  lua_State *L = host_enter ();
  int64_t size = -1;

  host_push_cb (L, CB_get_size);
  push_next_handle (L, n, handle);
  if (host_call (L, 2, 1, "get_size", NULL) == 0) {
    if (host_to_int64 (L, -1, "get_size", &size) == -1)
      size = -1;
    lua_pop (L, 1);
  }
  host_leave ();
  return size;
}

static const char *
lf_export_description (nbdkit_next *n, void *handle)
{
  lua_State *L = host_enter ();
  const char *r = NULL;
  int bad;

  host_push_cb (L, CB_export_description);
  push_next_handle (L, n, handle);
  if (host_call (L, 2, 1, "export_description", NULL) == 0) {
    r = host_to_interned (L, -1, "export_description", &bad);
    lua_pop (L, 1);
  }
  host_leave ();
  return r;
}

static int
lf_block_size (nbdkit_next *n, void *handle, struct nbdkit_block_size *bs)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_block_size);
  push_next_handle (L, n, handle);
  lua_pushboolean (L, bs->client_requested);
  r = host_call (L, 3, 4, "block_size", NULL);
  if (r == 0) {
    r = host_to_block_size (L, -4, 4, "block_size", bs);
    lua_pop (L, 4);
  }
  host_leave ();
  return r;
}

#define CAN(fn, tri)                                                           \
  static int lf_##fn (nbdkit_next *n, void *handle)                            \
  {                                                                            \
    lua_State *L = host_enter ();                                              \
    int r;                                                                     \
    host_push_cb (L, CB_##fn);                                                 \
    push_next_handle (L, n, handle);                                           \
    r = host_call (L, 2, 1, #fn, NULL);                                        \
    if (r == 0) {                                                              \
      r = host_to_can (L, -1, #fn, tri);                                       \
      lua_pop (L, 1);                                                          \
    }                                                                          \
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

static int
lf_pread (nbdkit_next *n, void *handle, void *buf, uint64_t count,
          uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  lua_State *L = host_enter ();
  struct module_read cur = { rd, buf, count, offset, 0 };
  struct module_read *saved = module_cur_read;
  int r;

  host_push_cb (L, CB_pread);
  push_next_handle (L, n, handle);
  lua_pushinteger (L, count);
  lua_pushinteger (L, offset);
  lua_pushinteger (L, flags);
  module_cur_read = &cur;
  r = host_call (L, 5, 1, "pread", err);
  module_cur_read = saved;
  if (r == 0) {
    if (lua_type (L, -1) == LUA_TSTRING) {
      size_t len = lua_rawlen (L, -1);
      if (cur.covered)
        r = host_fail ("pread", EIO,
                       "returned data after describing it"
                       " with nbdkit.read_hole/read_data: do one or the"
                       " other");
      else if (len != count)
        r = host_fail ("pread", EIO, "returned %zu bytes, expected %" PRIu64,
                       len, count);
      else if (module_read_data (L, &cur, offset, -1) == -1)
        r = -1;
    } else if (lua_isnil (L, -1)) {
      if (cur.covered != count)
        r = host_fail ("pread", EIO,
                       "returned nothing, and read_hole and"
                       " read_data gave %" PRIu64 " of the %" PRIu64 " bytes",
                       cur.covered, count);
    } else
      r = host_fail ("pread", EIO, "expected a string, got a %s",
                     luaL_typename (L, -1));
    if (r == -1)
      *err = errno ? errno : EIO;
    lua_pop (L, 1);
  }
  host_leave ();
  return r;
}

static int
lf_pwrite (nbdkit_next *n, void *handle, const void *buf, uint64_t count,
           uint64_t offset, uint32_t flags, int *err)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_pwrite);
  push_next_handle (L, n, handle);
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
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, CB_flush);
  push_next_handle (L, n, handle);
  lua_pushinteger (L, flags);
  r = host_call (L, 3, 0, "flush", err);
  host_leave ();
  return r;
}

#define RANGE(fn)                                                              \
  static int lf_##fn (nbdkit_next *n, void *handle, uint64_t count,            \
                      uint64_t offset, uint32_t flags, int *err)               \
  {                                                                            \
    lua_State *L = host_enter ();                                              \
    int r;                                                                     \
    host_push_cb (L, CB_##fn);                                                 \
    push_next_handle (L, n, handle);                                           \
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
  lua_State *L = host_enter ();
  struct nbdkit_extents *saved = module_cur_extents;
  int r;

  host_push_cb (L, cb);
  push_next_handle (L, n, handle);
  lua_pushinteger (L, count);
  lua_pushinteger (L, offset);
  lua_pushinteger (L, flags);
  module_cur_extents = e;
  r = host_call (L, 5, 1, what, err);
  module_cur_extents = saved;
  if (r == 0) {
    r = host_to_extents (L, -1, what, e);
    if (r == -1)
      *err = errno ? errno : EIO;
    lua_pop (L, 1);
  }
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
lf_meta_context (void)
{
  lua_State *L = host_enter ();
  const char *r = NULL;
  int bad;

  host_push_cb (L, CB_meta_context);
  if (host_call (L, 0, 1, "meta_context", NULL) == 0) {
    r = host_to_interned (L, -1, "meta_context", &bad);
    lua_pop (L, 1);
  }
  host_leave ();
  return r;
}

static struct nbdkit_filter filter = {
  .name = "lua",
  .longname = "nbdkit Lua filter",
  .version = NBDKIT_VERSION,
  .description = "Runs a filter written in Lua 5.4.",
  .load = lf_load,
  .unload = lf_unload,
  .config = lf_config,
  .config_complete = lf_config_complete,
  .config_help = lf_config_help,
  .dump_plugin = lf_dump_plugin,
  .thread_model = lf_thread_model,
  .get_ready = lf_get_ready,
  .after_fork = lf_after_fork,
  .cleanup = lf_cleanup,
  .preconnect = lf_preconnect,
  .list_exports = lf_list_exports,
  .default_export = lf_default_export,
  .open = lf_open,
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
  .meta_context = lf_meta_context,
  .meta_extents = lf_meta_extents,
};

NBDKIT_REGISTER_FILTER (filter)
