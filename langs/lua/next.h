/* next.h: what filter.c uses of next.c, the objects a Lua filter
 * script calls the layer below with.
 */

#ifndef LUA_NEXT_H
#define LUA_NEXT_H

#include <lua.h>

#include <nbdkit-filter.h>

/* Register the classes (once, after host_init). */
extern void next_open_classes (lua_State *L);

/* Push a new `next` object for N. */
extern void next_push (lua_State *L, nbdkit_next *n);
/* Cut the `next` object at IDX from its layer (the connection is
 * closed): a script that kept it gets an error, not a dangling call.
 */
extern void next_detach (lua_State *L, int idx);

/* Push a `backend` object for B. */
extern void next_push_backend (lua_State *L, nbdkit_backend *b);

/* Push a `ctx` object for CTX.  Returns its slot: set it to NULL when
 * open returns, as the context is usable during open only.
 */
extern nbdkit_context **next_push_context (lua_State *L, nbdkit_context *ctx);

#endif /* LUA_NEXT_H */
