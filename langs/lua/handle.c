/* handle.c: a connection's handle copied from one Lua state to
 * another, for plugins with one state per thread (see host.c): open
 * runs in one thread's state, the connection's other callbacks in
 * whichever thread serves them.  Only plain data travels: nil,
 * booleans, numbers, strings and tables of them (no cycles, at most
 * 32 deep); each call gets a fresh copy, so changes a callback makes
 * to it are not kept.
 */

#include <stdlib.h>
#include <string.h>

#include "host.h"

#include <nbdkit-plugin.h>

struct buf {
  char *p;
  size_t len, alloc;
};

static int
put (struct buf *b, const void *data, size_t n)
{
  if (b->len + n > b->alloc) {
    size_t na = (b->alloc + n) * 2 + 64;
    char *np = realloc (b->p, na);
    if (np == NULL)
      return -1;
    b->p = np;
    b->alloc = na;
  }
  memcpy (b->p + b->len, data, n);
  b->len += n;
  return 0;
}

static int
save (lua_State *L, int idx, struct buf *b, int depth)
{
  char tag;
  size_t len;
  const char *s;

  idx = lua_absindex (L, idx);
  switch (lua_type (L, idx)) {
    case LUA_TNIL:
      return put (b, "n", 1);
    case LUA_TBOOLEAN:
      return put (b, lua_toboolean (L, idx) ? "t" : "f", 1);
    case LUA_TNUMBER:
      if (lua_isinteger (L, idx)) {
        lua_Integer i = lua_tointeger (L, idx);
        tag = 'i';
        return put (b, &tag, 1) || put (b, &i, sizeof i) ? -1 : 0;
      } else {
        lua_Number d = lua_tonumber (L, idx);
        tag = 'd';
        return put (b, &tag, 1) || put (b, &d, sizeof d) ? -1 : 0;
      }
    case LUA_TSTRING:
      s = lua_tolstring (L, idx, &len);
      tag = 's';
      return put (b, &tag, 1) || put (b, &len, sizeof len) || put (b, s, len)
                 ? -1
                 : 0;
    case LUA_TTABLE:
      if (depth >= 32 || !lua_checkstack (L, 4))
        return -1;
      if (put (b, "T", 1) == -1)
        return -1;
      lua_pushnil (L);
      while (lua_next (L, idx)) {
        if (save (L, -2, b, depth + 1) == -1
            || save (L, -1, b, depth + 1) == -1) {
          lua_pop (L, 2);
          return -1;
        }
        lua_pop (L, 1);
      }
      return put (b, "e", 1);
    default:
      return -1;
  }
}

int
handle_save (lua_State *L, int idx, char **data, size_t *len)
{
  struct buf b = { 0 };

  if (save (L, idx, &b, 0) == -1) {
    free (b.p);
    return host_fail ("open", EINVAL,
                      "with one Lua state per thread (thread model"
                      " parallel), open must return plain data: nil,"
                      " booleans, numbers, strings and tables of them"
                      " (got a %s, or a table holding something else)",
                      luaL_typename (L, idx));
  }
  *data = b.p;
  *len = b.len;
  return 0;
}

/* Push the value at *P (advanced past it). */
static void
push (lua_State *L, const char **p)
{
  char tag = *(*p)++;
  lua_Integer i;
  lua_Number d;
  size_t len;

  luaL_checkstack (L, 4, "handle");
  switch (tag) {
    case 't':
    case 'f':
      lua_pushboolean (L, tag == 't');
      break;
    case 'i':
      memcpy (&i, *p, sizeof i);
      *p += sizeof i;
      lua_pushinteger (L, i);
      break;
    case 'd':
      memcpy (&d, *p, sizeof d);
      *p += sizeof d;
      lua_pushnumber (L, d);
      break;
    case 's':
      memcpy (&len, *p, sizeof len);
      *p += sizeof len;
      lua_pushlstring (L, *p, len);
      *p += len;
      break;
    case 'T':
      lua_newtable (L);
      while (**p != 'e') {
        push (L, p);
        push (L, p);
        lua_rawset (L, -3);
      }
      (*p)++;
      break;
    default:
      lua_pushnil (L);
  }
}

void
handle_push (lua_State *L, const char *data, size_t len)
{
  const char *p = data;

  if (data == NULL || len == 0)
    lua_pushnil (L);
  else
    push (L, &p);
}
