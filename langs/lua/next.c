/* next.c: the objects through which a Lua filter calls the layer
 * below: `next` (one per connection, passed first to the data
 * callbacks), `backend` (after_fork, cleanup, preconnect, exports) and
 * `ctx` (open).  Each method that waits for the layer below lets go
 * of the Lua lock meanwhile; a failure below is raised as an nbdkit
 * error with `below` set.
 */

#include <errno.h>
#include <stdint.h>

#include "host.h"

#include <nbdkit-filter.h>

#include "next.h"

#define NEXT_MT "nbdkit.next"
#define BACKEND_MT "nbdkit.backend"
#define CONTEXT_MT "nbdkit.context"

struct ud_next {
  nbdkit_next *next;
  int owned; /* from backend:next_context_open: next:close() closes it */
};
struct ud_backend {
  nbdkit_backend *backend;
};
struct ud_context {
  nbdkit_context *ctx;
};

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
  int64_t size;

  luaL_argcheck (L, count >= 0, 2, "count must not be negative");
  luaL_argcheck (L, offset >= 0, 3, "offset must not be negative");
  /* Past the end it would fail below anyway: refuse before allocating. */
  size = BELOW (nbdkit_next_get_size (n));
  if (size == -1)
    return raise_below (L, EIO, "get_size");
  if (offset > size || count > size - offset)
    return luaL_error (L,
                       "next:pread: %I bytes at offset %I are beyond the"
                       " end of the layer below (%I bytes)",
                       count, offset, (lua_Integer)size);
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

/* next:close(): close a context the script opened itself. */
static int
n_close (lua_State *L)
{
  struct ud_next *u = luaL_checkudata (L, 1, NEXT_MT);
  nbdkit_next *n = u->next;

  if (!u->owned)
    return luaL_error (L, "next:close(): only contexts from"
                          " backend:next_context_open are closed by the"
                          " script");
  u->next = NULL;
  if (n)
    BELOW ((nbdkit_next_context_close (n), 0));
  return 0;
}

static const luaL_Reg next_methods[] = {
  { "close", n_close },
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

/* backend:next_context_open([readonly [, exportname]]): a `next` of
 * the filter's own on the layer below, independent of any client and
 * usable from any callback until next:close().
 */
static int
b_next_context_open (lua_State *L)
{
  nbdkit_backend *b = check_backend (L);
  int ro = lua_toboolean (L, 2);
  const char *name = luaL_optstring (L, 3, "");
  nbdkit_next *n = BELOW (nbdkit_next_context_open (b, ro, name));
  struct ud_next *u;

  if (n == NULL)
    return raise_below (L, EIO, "next_context_open");
  u = lua_newuserdatauv (L, sizeof *u, 0);
  u->next = n;
  u->owned = 1;
  luaL_setmetatable (L, NEXT_MT);
  return 1;
}

static const luaL_Reg backend_methods[] = {
  { "next_context_open", b_next_context_open },
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
  nbdkit_context *ctx = check_context (L);

  /* Nothing below could answer these for the filter. */
  if (!host_answers_alone ())
    luaL_error (L, "ctx:open_none(): the filter must then define get_size"
                   " and pread itself");
  nbdkit_next_open_none (ctx);
  return 0;
}

static int
c_backend (lua_State *L)
{
  next_push_backend (L, nbdkit_context_get_backend (check_context (L)));
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

void
next_open_classes (lua_State *L)
{
  new_class (L, NEXT_MT, next_methods);
  new_class (L, BACKEND_MT, backend_methods);
  new_class (L, CONTEXT_MT, context_methods);
}

void
next_push (lua_State *L, nbdkit_next *n)
{
  struct ud_next *u = lua_newuserdatauv (L, sizeof *u, 0);
  u->next = n;
  u->owned = 0;
  luaL_setmetatable (L, NEXT_MT);
}

void
next_detach (lua_State *L, int idx)
{
  struct ud_next *u = luaL_testudata (L, idx, NEXT_MT);
  if (u)
    u->next = NULL;
}

void
next_push_backend (lua_State *L, nbdkit_backend *b)
{
  struct ud_backend *u = lua_newuserdatauv (L, sizeof *u, 0);
  u->backend = b;
  luaL_setmetatable (L, BACKEND_MT);
}

nbdkit_context **
next_push_context (lua_State *L, nbdkit_context *ctx)
{
  struct ud_context *u = lua_newuserdatauv (L, sizeof *u, 0);
  u->ctx = ctx;
  luaL_setmetatable (L, CONTEXT_MT);
  return &u->ctx;
}
