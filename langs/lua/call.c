/* call.c: what plugin.c and filter.c do alike around a script's
 * callback: the calls outside any connection, and the reading of
 * what a callback returns, checked the same for a plugin and a
 * filter.
 */

#include <errno.h>
#include <inttypes.h>

#include "host.h"

#include <nbdkit-plugin.h>

int
call0 (size_t cb, const char *what)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, cb);
  r = host_call (L, 0, 0, what, NULL);
  host_leave ();
  return r;
}

void
call_unload (size_t cb)
{
  if (host_loaded () && host_has (cb))
    call0 (cb, "unload");
  host_fini ();
}

int
call_get_ready (size_t cb, int model)
{
  lua_State *L = host_enter ();
  int r;

  host_push_cb (L, cb);
  lua_pushstring (L, host_thread_model_name (model));
  r = host_call (L, 1, 0, "get_ready", NULL);
  host_leave ();
  return r;
}

int64_t
call_size (lua_State *L, int nargs, const char *what)
{
  int64_t size = -1;

  if (host_call (L, nargs, 1, what, NULL) == 0) {
    if (host_to_int64 (L, -1, what, &size) == -1)
      size = -1;
    else if (size < 0) {
      host_fail (what, EIO, "returned %" PRId64 ", expected a size >= 0", size);
      size = -1;
    }
    lua_pop (L, 1);
  }
  return size;
}

const char *
call_string (lua_State *L, int nargs, const char *what)
{
  const char *r = NULL;
  int bad;

  if (host_call (L, nargs, 1, what, NULL) == 0) {
    r = host_to_interned (L, -1, what, &bad);
    lua_pop (L, 1);
  }
  return r;
}

const char *
call_export_name (lua_State *L, int nargs)
{
  const char *r = NULL;
  int bad;

  if (host_call (L, nargs, 1, "default_export", NULL) == 0) {
    r = host_to_interned (L, -1, "default_export", &bad);
    if (r == NULL && !bad)
      host_fail ("default_export", EINVAL, "returned nil: expected a name");
    lua_pop (L, 1);
  }
  return r;
}

int
call_exports (lua_State *L, int nargs, struct nbdkit_exports *x)
{
  size_t before = nbdkit_exports_count (x);
  struct nbdkit_exports *saved = module_cur_exports;
  int r;

  module_cur_exports = x;
  r = host_call (L, nargs, 1, "list_exports", NULL);
  module_cur_exports = saved;
  if (r == 0) {
    /* Nothing returned and nothing added: the default export alone,
     * as in the Python host.
     */
    if (lua_isnil (L, -1) && nbdkit_exports_count (x) == before)
      r = nbdkit_use_default_export (x);
    else
      r = host_to_exports (L, -1, "list_exports", x);
    lua_pop (L, 1);
  }
  return r;
}

int
call_block_size (lua_State *L, int nargs, struct nbdkit_block_size *bs)
{
  int r = host_call (L, nargs, 4, "block_size", NULL);

  if (r == 0) {
    r = host_to_block_size (L, -4, 4, "block_size", bs);
    lua_pop (L, 4);
  }
  return r;
}

int
call_can (lua_State *L, int nargs, const char *what, int tri)
{
  int r = host_call (L, nargs, 1, what, NULL);

  if (r == 0) {
    r = host_to_can (L, -1, what, tri);
    lua_pop (L, 1);
  }
  return r;
}

/* pread returns the data, or describes it with nbdkit.read_hole /
 * nbdkit.read_data and returns nothing: never both.
 */
int
call_pread (lua_State *L, int nargs, struct module_read *cur, int *err)
{
  struct module_read *saved = module_cur_read;
  int r;

  module_cur_read = cur;
  r = host_call (L, nargs, 1, "pread", err);
  module_cur_read = saved;
  if (r == 0) {
    if (lua_type (L, -1) == LUA_TSTRING) {
      size_t len = lua_rawlen (L, -1);
      if (cur->covered)
        r = host_fail ("pread", EIO,
                       "returned data after describing it"
                       " with nbdkit.read_hole/read_data: do one or the"
                       " other");
      else if (len != cur->count)
        r = host_fail ("pread", EIO, "returned %zu bytes, expected %" PRIu64,
                       len, cur->count);
      else if (module_read_data (L, cur, cur->offset, -1) == -1)
        r = -1;
    } else if (lua_isnil (L, -1)) {
      if (cur->covered != cur->count)
        r = host_fail ("pread", EIO,
                       "returned nothing, and read_hole and"
                       " read_data gave %" PRIu64 " of the %" PRIu64 " bytes",
                       cur->covered, cur->count);
    } else
      r = host_fail ("pread", EIO, "expected a string, got a %s",
                     luaL_typename (L, -1));
    if (r == -1 && err)
      *err = errno ? errno : EIO;
    lua_pop (L, 1);
  }
  return r;
}

int
call_extents (lua_State *L, int nargs, const char *what,
              struct nbdkit_extents *e, int *err)
{
  struct nbdkit_extents *saved = module_cur_extents;
  int r;

  module_cur_extents = e;
  r = host_call (L, nargs, 1, what, err);
  module_cur_extents = saved;
  if (r == 0) {
    r = host_to_extents (L, -1, what, e);
    if (r == -1 && err)
      *err = errno ? errno : EIO;
    lua_pop (L, 1);
  }
  return r;
}
