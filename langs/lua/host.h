/* host.h: what the Lua host's files share.
 *
 * host.c runs the interpreter and loads the script, module.c is the
 * `nbdkit` module the script sees, plugin.c and filter.c map the
 * plugin and filter ABIs onto the script's functions, with call.c for
 * what they do alike, and next.c holds the objects a filter script
 * calls the layer below with.  The plugin
 * (nbdkit-lua-plugin.so) and the filter (nbdkit-lua-filter.so) are
 * separate objects, each with its own copy of this state: the plugin
 * has one script and Lua state, the filter one per --filter=X.lua
 * (struct lhost).
 *
 * Threads: a Lua state is not thread-safe, so a lock guards each (as
 * Python's GIL does).  Each server thread runs its calls on a Lua
 * thread (lua_newthread) of its own, made the first time it calls in,
 * so a call that waits (nbdkit.nanosleep, a call to the layer below
 * in a filter) can let go of the lock, and another server thread runs
 * script code meanwhile on its own Lua stack.  Script code itself
 * never runs on two threads at once.  Calls nest (a module function
 * may call back into the server): only the outermost host_enter and
 * host_leave touch the lock.
 */

#ifndef LUA_HOST_H
#define LUA_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#ifndef NBDKIT_API_VERSION
#define NBDKIT_API_VERSION 3
#endif

/* The plugin ABI's struct and the filter's both include this. */
struct nbdkit_param;
struct nbdkit_read;
struct nbdkit_extents;
struct nbdkit_exports;

/* ---- host.c: the interpreter ---- */

/* One script and its Lua state.  The plugin object has one; the
 * filter object one per --filter=X.lua, so that any number of Lua
 * filters stack, each with its own globals and parameters.  Every
 * host_* function below acts on the current one: the object's only
 * one (the first made, or the one given to host_set_default), or the
 * one an entry point chose with HOST_USE for the length of the call.
 */
struct lhost;
extern struct lhost *host_new (void);
extern void host_set_default (struct lhost *h);
extern struct lhost *host_current (void);
/* Make H current on this thread; returns the one it replaces. */
extern struct lhost *host_switch (struct lhost *h);
extern void host_switch_back (struct lhost **prev);
/* Make H current until the enclosing block ends (on any return):
 * calls nest, e.g. a filter's list_exports calling the one below.
 */
#define HOST_USE(h)                                                            \
  struct lhost *host_prev_                                                     \
      __attribute__ ((cleanup (host_switch_back), unused))                     \
      = host_switch (h)

/* From get_ready of a plugin in the parallel model: from now on each
 * server thread but this one runs the script in a Lua state of its
 * own (see host.c), made with the callbacks of these numbers.
 */
extern void host_per_thread (int model, size_t cb_load, size_t cb_config,
                             size_t cb_config_complete, size_t cb_get_ready);
extern int host_is_per_thread (void);
/* What get_ready was told, and the numbers of the callbacks that make
 * an interpreter (for host_per_thread and host_reload).
 */
extern void host_set_model (int model, size_t cb_load, size_t cb_config,
                            size_t cb_config_complete, size_t cb_get_ready);
/* A new interpreter made as the current one was, from its script read
 * again (see host.c), or NULL (logged) if the script fails anywhere.
 */
extern struct lhost *host_reload (const struct nbdkit_param *first,
                                  size_t nfirst);
/* Connections on H: counted so that a retired (replaced) interpreter
 * closes once the last goes.
 */
extern void host_use_count (struct lhost *h, int delta);
extern void host_retire (struct lhost *h);
/* A connection's handle copied between states: only plain data (nil,
 * booleans, numbers, strings, tables of them).  handle_save stores the
 * value at IDX (malloc'd, *LEN bytes), or fails (-1, logged);
 * handle_push pushes a new copy.
 */
extern int handle_save (lua_State *L, int idx, char **data, size_t *len);
extern void handle_push (lua_State *L, const char *data, size_t len);

/* After ctx:open_none() the filter script answers alone: whether it
 * defines get_size and pread (set once it is loaded).
 */
extern int host_answers_alone (void);
extern void host_set_answers_alone (int yes);

/* What the object adds to each new interpreter (the filter's classes). */
extern void (*host_init_hook) (lua_State *L);
/* Start and stop the interpreter; HOSTNAME is "lua" in messages. */
extern int host_init (void);
extern void host_fini (void);
/* True once a script is loaded. */
extern int host_loaded (void);

/* Take the lock (unless this thread holds it) and return this
 * thread's Lua thread; host_leave gives the lock back.
 */
extern lua_State *host_enter (void);
extern void host_leave (void);
/* Let go of the lock around a wait inside a module function (the
 * caller must not touch Lua until host_resume), and take it back.
 */
extern int host_suspend (void);
extern void host_resume (int saved);

/* The script: loaded from PATH, run once.  NAMES[0..N) are the
 * callbacks looked up afterwards; host_has (i) tells whether the
 * script defines NAMES[i], host_push_cb pushes it.
 */
extern int host_load_script (const char *path, const char *const *names,
                             size_t n);
extern const char *host_script_path (void);
extern int host_has (size_t i);
extern void host_push_cb (lua_State *L, size_t i);

/* Call the function below NARGS arguments on L's stack, leaving
 * NRESULTS results.  On error: logs (the message for an nbdkit errno
 * error, the traceback for any other), sets the errno the client gets
 * (*ERR too if not NULL), leaves nothing on the stack and returns -1.
 */
extern int host_call (lua_State *L, int nargs, int nresults, const char *what,
                      int *err);
/* Log a failure found by the host itself in callback WHAT (a bad
 * return value), with errno ERR.  Returns -1.
 */
extern int host_fail (const char *what, int err, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* The script's typed parameters translated for the server: the
 * entries of FIRST[0..NFIRST) then the script's, ended by a zeroed
 * entry; NULL (without an error) when the script declares none.
 * *ERROR is set on a bad declaration (already logged).
 */
extern const struct nbdkit_param *host_params (const struct nbdkit_param *first,
                                               size_t nfirst, int *error);
/* A parameter's canonical VALUE given to the script: stored in its
 * declaration's `value` (appended for a list), then config(key, value)
 * is called if the script has one.  Returns 0 or -1.
 */
extern int host_config (const char *key, const char *value, size_t cb_config);
/* The help text: the script's `help` string, else its leading comment
 * block.  NULL before a script is loaded.
 */
extern const char *host_help (void);
/* The script's thread_model() (number or name), or DFLT. */
extern int host_thread_model (size_t cb, int dflt);
/* The name of a thread model ("parallel", ...). */
extern const char *host_thread_model_name (int model);

/* Conversions of results; each reports through host_fail. */
extern int host_to_int64 (lua_State *L, int idx, const char *what, int64_t *r);
/* A can_* answer: booleans are 0/1, or TRI (the native answer) for
 * true when TRI is not 0; numbers are a truth value, or for a
 * tri-state (TRI not 0) must be 0, 1 or 2.
 */
extern int host_to_can (lua_State *L, int idx, const char *what, int tri);
/* A string result kept by the server (nbdkit_strdup_intern); NULL
 * for nil.  *ERROR set on failure, and for strings that cannot reach
 * a client as they are (values.h).
 */
extern const char *host_to_interned (lua_State *L, int idx, const char *what,
                                     int *error);
/* A block_size result (a table or up to four numbers at IDX). */
struct nbdkit_block_size;
extern int host_to_block_size (lua_State *L, int idx, int n, const char *what,
                               struct nbdkit_block_size *bs);
/* An extents result: a list of {offset, length, type} (by position
 * or by name) at IDX, added to E; nil adds nothing.
 */
extern int host_to_extents (lua_State *L, int idx, const char *what,
                            struct nbdkit_extents *e);
/* A list_exports result: a list of names or of {name, description}. */
extern int host_to_exports (lua_State *L, int idx, const char *what,
                            struct nbdkit_exports *x);

/* ---- module.c: the nbdkit module ---- */

/* Create the module (global `nbdkit`, and require "nbdkit"). */
extern void module_open (lua_State *L);
/* Push an nbdkit errno error object: {errno=, name=, message=}. */
extern void module_push_error (lua_State *L, int err, const char *msg);
/* The errno of error object or table at IDX (errno= a number or a
 * name), 0 if it is not one.
 */
extern int module_error_errno (lua_State *L, int idx);
/* errno numbers and names. */
extern int module_errno_by_name (const char *name);
extern const char *module_errno_name (int err);
/* Raise an nbdkit error with ERR and a message (does not return). */
extern int module_raise (lua_State *L, int err, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* What the module functions act on during a callback: the current
 * read (pread), extents list and exports list, and the last errno a
 * script gave nbdkit.set_error.
 */
struct module_read {
  struct nbdkit_read *rd; /* NULL when the data goes to BUF only */
  char *buf;
  uint64_t count, offset;
  uint64_t covered; /* bytes given by read_hole / read_data */
};
extern __thread struct module_read *module_cur_read;
extern __thread struct nbdkit_extents *module_cur_extents;
extern __thread struct nbdkit_exports *module_cur_exports;
extern __thread int module_last_error;

/* Give the data of a pread: lend S (kept alive until the server is
 * done with it) or copy it, at OFFSET of the current read.
 */
extern int module_read_data (lua_State *L, struct module_read *r,
                             uint64_t offset, int idx);

/* Stop the threads started by nbdkit.listen_unix. */
extern void module_stop (void);

/* ---- call.c: what plugin.c and filter.c call alike ---- */

/* Callback CB, with no argument and no result, from host_enter to
 * host_leave.
 */
extern int call0 (size_t cb, const char *what);
/* The script's unload (callback CB) if it has one, then host_fini. */
extern void call_unload (size_t cb);
/* get_ready (callback CB) with the name of thread model MODEL. */
extern int call_get_ready (size_t cb, int model);

/* Each of these calls the function below NARGS arguments on L, as
 * host_call does, and reads what callback WHAT returns, leaving L as
 * it was before the function was pushed.  ERR is a filter's (*ERR set
 * on any failure), NULL for a plugin.
 */
extern int64_t call_size (lua_State *L, int nargs, const char *what);
/* A string kept by the server, or NULL for nil or on error. */
extern const char *call_string (lua_State *L, int nargs, const char *what);
/* default_export: nil is an error too. */
extern const char *call_export_name (lua_State *L, int nargs);
extern int call_exports (lua_State *L, int nargs, struct nbdkit_exports *x);
extern int call_block_size (lua_State *L, int nargs,
                            struct nbdkit_block_size *bs);
/* A can_* answer; TRI as for host_to_can. */
extern int call_can (lua_State *L, int nargs, const char *what, int tri);
/* pread into CUR, which the script's module functions see meanwhile. */
extern int call_pread (lua_State *L, int nargs, struct module_read *cur,
                       int *err);
extern int call_extents (lua_State *L, int nargs, const char *what,
                         struct nbdkit_extents *e, int *err);

#endif /* LUA_HOST_H */
