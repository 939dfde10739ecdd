/* plugin.c: the lua plugin, which runs a plugin written in Lua.
 *
 *   nbdkit lua SCRIPT.lua [key=value ...]     (or: nbdkit SCRIPT.lua ...)
 *
 * Each callback of the plugin ABI calls the script's global function
 * of the same name, looked up once when the script is loaded; for a
 * function the script lacks, the callback is taken out of the plugin
 * struct, so the server answers as it does for a C plugin without it.
 * See README.md for what a script sees.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callbacks.h"
#include "host.h"
#include "script.h"
#include "values.h"

#include <nbdkit-plugin.h>

/* clang-format off */
enum {
#define E(n) CB_##n,
  PLUGIN_CALLBACKS (E)
#undef E
  CB_COUNT
};
static const char *const cb_names[] = {
#define N(n) #n,
  PLUGIN_CALLBACKS (N)
#undef N
};
/* clang-format on */

/* Before the script is loaded, "script" is the only parameter; it
 * stays first afterwards, so the server counts it.
 */
static const struct nbdkit_param script_param[] = {
  { .name = "script",
    .type = NBDKIT_PARAM_FILE,
    .flags = NBDKIT_PARAM_REQUIRED,
    .doc = "the Lua script to run" },
  { 0 },
};

static struct nbdkit_plugin plugin;
static int init_failed;

/* A connection's handle: the value the script's open returned, in
 * the registry of the one Lua state, or copied (DATA) when each
 * thread has its own state.
 */
struct handle {
  struct lhost *host; /* the interpreter it was opened on */
  int ref;
  char *data;
  size_t len;
};

/* In each callback of a connection: the interpreter it opened on,
 * which a reload (SIGHUP) does not change.
 */
#define USE_HANDLE(hd) HOST_USE (((struct handle *)(hd))->host)

static void
push_handle (lua_State *L, struct handle *h)
{
  if (h->data)
    handle_push (L, h->data, h->len);
  else
    lua_rawgeti (L, LUA_REGISTRYINDEX, h->ref);
}

/* Start a call of callback CB on a connection: the function and the
 * handle's value pushed.  The caller ends with host_leave.
 */
static lua_State *
begin (size_t cb, void *handle)
{
  lua_State *L = host_enter ();

  host_push_cb (L, cb);
  push_handle (L, handle);
  return L;
}

static void
lp_load (void)
{
  init_failed = host_init () == -1;
}

static void
lp_unload (void)
{
  call_unload (CB_unload);
}

/* Callbacks the script lacks leave the struct: the server's defaults
 * apply (e.g. can_write is true only with a pwrite).
 */
static int lp_get_ready (int model);

static void
drop_missing (void)
{
  /* clang-format off */
#define DROP(n) if (!host_has (CB_##n)) plugin.n = NULL;
  PLUGIN_OPTIONAL_CALLBACKS (DROP)
#undef DROP
  /* Always: it turns on a state per thread (parallel) and reloading. */
  plugin.get_ready = lp_get_ready;
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
  if (!host_has (CB_get_size) || !host_has (CB_pread)) {
    nbdkit_error ("%s: the script does not define %s(): a plugin needs at"
                  " least get_size and pread",
                  host_script_path (),
                  host_has (CB_get_size) ? "pread" : "get_size");
    return -1;
  }
  /* From now on the server checks the script's parameters; without
   * declarations every key goes to its config as a string.
   */
  p = host_params (script_param, 1, &bad);
  if (bad)
    return -1;
  plugin.params = p;
  drop_missing ();
  return host_has (CB_load) ? call0 (CB_load, "load") : 0;
}

static int
lp_config (const char *key, const char *value)
{
  if (!host_loaded ()) {
    if (strcmp (key, "script") != 0) {
      nbdkit_error ("the first parameter must be the Lua script"
                    " (script=FILE.lua), not %s=%s",
                    key, value);
      return -1;
    }
    return load_script (value);
  }
  /* Lua scripts declare no magic_config_key: see script.h. */
  return host_config (script_key_after_load (key, NULL), value, CB_config);
}

static int
lp_config_complete (void)
{
  if (!host_loaded ()) {
    nbdkit_error ("no script given: nbdkit lua SCRIPT.lua [key=value ...]");
    return -1;
  }
  return call0 (CB_config_complete, "config_complete");
}

static const char *
lp_config_help (void)
{
  const char *h = host_help ();

  if (h)
    return h;
  return "Runs a plugin written in Lua: nbdkit lua SCRIPT.lua [key=value ...]\n"
         "(or nbdkit SCRIPT.lua ...).  'nbdkit SCRIPT.lua --help' describes\n"
         "the script.  See langs/lua/README.md for how to write one.";
}

static void
lp_dump_plugin (void)
{
  printf ("lua_version=%s\n", LUA_RELEASE);
  if (host_loaded ())
    printf ("lua_script=%s\n", host_script_path ());
  fflush (stdout);
  if (host_loaded () && host_has (CB_dump_plugin)) {
    lua_State *L = host_enter ();
    host_push_cb (L, CB_dump_plugin);
    /* A returned table is printed as key=value lines. */
    if (host_call (L, 0, 1, "dump_plugin", NULL) == 0) {
      if (lua_istable (L, -1)) {
        lua_pushnil (L);
        while (lua_next (L, -2)) {
          lua_pushvalue (L, -2);
          const char *k = lua_tostring (L, -1);
          const char *v = luaL_tolstring (L, -2, NULL);
          printf ("%s=%s\n", k, v);
          lua_pop (L, 3);
        }
      }
      lua_pop (L, 1);
    }
    host_leave ();
    fflush (stdout);
  }
}

static int
lp_thread_model (void)
{
  return host_thread_model (CB_thread_model,
                            NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS);
}

/* Reloading (the server calls it on SIGHUP, see "reload" in
 * abi/README.md): a new interpreter from the script read again
 * (host_reload), at once; if it loads, connections opened afterwards
 * use it, while those already open stay on the interpreter they opened
 * on, which closes with the last of them.  A script that fails to load
 * is reported (its file and line) and changes nothing.
 */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
/* Taken to pick the current interpreter and count a user of it, and
 * to replace it, so that it is not closed in between.
 */
static pthread_mutex_t publish_lock = PTHREAD_MUTEX_INITIALIZER;

/* The current interpreter, with one more user (host_use_count -1 when
 * done).
 */
static struct lhost *
take_host (void)
{
  struct lhost *h;

  pthread_mutex_lock (&publish_lock);
  h = host_current ();
  host_use_count (h, 1);
  pthread_mutex_unlock (&publish_lock);
  return h;
}

static int
lp_reload (void)
{
  struct lhost *old, *n;

  pthread_mutex_lock (&reload_lock);
  old = host_current ();
  nbdkit_debug ("%s: reloading", host_script_path ());
  n = host_reload (script_param, 1);
  if (n) {
    pthread_mutex_lock (&publish_lock);
    host_set_default (n);
    pthread_mutex_unlock (&publish_lock);
    host_retire (old);
    nbdkit_debug ("%s: reloaded", host_script_path ());
  }
  pthread_mutex_unlock (&reload_lock);
  return n ? 0 : -1;
}

static int
lp_get_ready (int model)
{
  int r = host_has (CB_get_ready) ? call_get_ready (CB_get_ready, model) : 0;

  host_set_model (model, CB_load, CB_config, CB_config_complete, CB_get_ready);
  /* Parallel: a Lua state per thread, so requests run at once. */
  if (r == 0 && model == NBDKIT_THREAD_MODEL_PARALLEL)
    host_per_thread (model, CB_load, CB_config, CB_config_complete,
                     CB_get_ready);
  return r;
}

static int
lp_after_fork (void)
{
  return call0 (CB_after_fork, "after_fork");
}

static void
lp_cleanup (void)
{
  call0 (CB_cleanup, "cleanup");
}

static int
lp_preconnect (int readonly)
{
  struct lhost *h = take_host ();
  int r;
  HOST_USE (h);
  lua_State *L = host_enter ();

  host_push_cb (L, CB_preconnect);
  lua_pushboolean (L, readonly);
  r = host_call (L, 1, 0, "preconnect", NULL);
  host_leave ();
  host_use_count (h, -1);
  return r;
}

static int
lp_list_exports (int readonly, int is_tls, struct nbdkit_exports *x)
{
  struct lhost *h = take_host ();
  int r;
  HOST_USE (h);
  lua_State *L = host_enter ();

  host_push_cb (L, CB_list_exports);
  lua_pushboolean (L, readonly);
  lua_pushboolean (L, is_tls);
  r = call_exports (L, 2, x);
  host_leave ();
  host_use_count (h, -1);
  return r;
}

static const char *
lp_default_export (int readonly, int is_tls)
{
  struct lhost *h = take_host ();
  const char *r;
  HOST_USE (h);
  lua_State *L = host_enter ();

  host_push_cb (L, CB_default_export);
  lua_pushboolean (L, readonly);
  lua_pushboolean (L, is_tls);
  r = call_export_name (L, 2);
  host_leave ();
  host_use_count (h, -1);
  return r;
}

static void *
lp_open (int readonly, const char *exportname, int is_tls)
{
  struct handle *h = malloc (sizeof *h);
  lua_State *L;

  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  h->host = take_host ();
  h->ref = LUA_REFNIL;
  h->data = NULL;
  h->len = 0;
  USE_HANDLE (h);
  if (!host_has (CB_open))
    return h;
  L = host_enter ();
  host_push_cb (L, CB_open);
  lua_pushboolean (L, readonly);
  lua_pushstring (L, exportname);
  lua_pushboolean (L, is_tls);
  if (host_call (L, 3, 1, "open", NULL) == -1) {
    host_leave ();
    host_use_count (h->host, -1);
    free (h);
    return NULL;
  }
  if (host_is_per_thread ()) {
    int bad = handle_save (L, -1, &h->data, &h->len);
    lua_pop (L, 1);
    if (bad) {
      host_leave ();
      host_use_count (h->host, -1);
      free (h);
      return NULL;
    }
  } else
    h->ref = luaL_ref (L, LUA_REGISTRYINDEX);
  host_leave ();
  return h;
}

static void
lp_close (void *handle)
{
  struct handle *h = handle;
  struct lhost *host = h->host;

  {
    USE_HANDLE (h);
    lua_State *L = host_enter ();

    if (host_has (CB_close)) {
      host_push_cb (L, CB_close);
      push_handle (L, h);
      host_call (L, 1, 0, "close", NULL);
    }
    if (h->data == NULL)
      luaL_unref (L, LUA_REGISTRYINDEX, h->ref);
    host_leave ();
  }
  free (h->data);
  free (h);
  /* The last connection on a replaced script closes it. */
  host_use_count (host, -1);
}

static int64_t
lp_get_size (void *handle)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_get_size, handle);
  int64_t r = call_size (L, 1, "get_size");

  host_leave ();
  return r;
}

static const char *
lp_export_description (void *handle)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_export_description, handle);
  const char *r = call_string (L, 1, "export_description");

  host_leave ();
  return host_description (r);
}

static int
lp_block_size (void *handle, struct nbdkit_block_size *bs)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_block_size, handle);
  int r;

  lua_pushboolean (L, bs->client_requested);
  r = call_block_size (L, 2, bs);
  host_leave ();
  return r;
}

/* can_*: TRI is what true means (the native answer of a tri-state). */
#define CAN(fn, tri)                                                           \
  static int lp_##fn (void *handle)                                            \
  {                                                                            \
    USE_HANDLE (handle);                                                       \
    lua_State *L = begin (CB_##fn, handle);                                    \
    int r = call_can (L, 1, #fn, tri);                                         \
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

/* pread(h, count, offset, flags) returns the data, or describes it
 * with nbdkit.read_hole / nbdkit.read_data and returns nothing.
 */
static int
lp_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
          uint32_t flags, struct nbdkit_read *rd)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_pread, handle);
  struct module_read cur = { rd, buf, count, offset, 0 };
  int r;

  lua_pushinteger (L, count);
  lua_pushinteger (L, offset);
  lua_pushinteger (L, flags);
  r = call_pread (L, 4, &cur, NULL);
  host_leave ();
  return r;
}

static int
lp_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
           uint32_t flags)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_pwrite, handle);
  int r;

  /* The one copy: Lua 5.4 strings cannot point at foreign memory. */
  lua_pushlstring (L, buf, count);
  lua_pushinteger (L, offset);
  lua_pushinteger (L, flags);
  r = host_call (L, 4, 0, "pwrite", NULL);
  host_leave ();
  return r;
}

static int
lp_flush (void *handle, uint32_t flags)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_flush, handle);
  int r;

  lua_pushinteger (L, flags);
  r = host_call (L, 2, 0, "flush", NULL);
  host_leave ();
  return r;
}

/* trim, zero, cache: (h, count, offset, flags). */
#define RANGE(fn)                                                              \
  static int lp_##fn (void *handle, uint64_t count, uint64_t offset,           \
                      uint32_t flags)                                          \
  {                                                                            \
    USE_HANDLE (handle);                                                       \
    lua_State *L = begin (CB_##fn, handle);                                    \
    int r;                                                                     \
    lua_pushinteger (L, count);                                                \
    lua_pushinteger (L, offset);                                               \
    lua_pushinteger (L, flags);                                                \
    r = host_call (L, 4, 0, #fn, NULL);                                        \
    host_leave ();                                                             \
    return r;                                                                  \
  }
RANGE (trim)
RANGE (zero)
RANGE (cache)
#undef RANGE

static int
lp_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *e)
{
  USE_HANDLE (handle);
  lua_State *L = begin (CB_extents, handle);
  int r;

  lua_pushinteger (L, count);
  lua_pushinteger (L, offset);
  lua_pushinteger (L, flags);
  r = call_extents (L, 4, "extents", e, NULL);
  host_leave ();
  return r;
}

static struct nbdkit_plugin plugin = {
  .name = "lua",
  .longname = "nbdkit Lua plugin",
  .version = NBDKIT_VERSION,
  .description = "Runs a plugin written in Lua 5.4.",
  .params = script_param,
  .magic_config_key = "script",
  .load = lp_load,
  .unload = lp_unload,
  .config = lp_config,
  .config_complete = lp_config_complete,
  .config_help = lp_config_help,
  .dump_plugin = lp_dump_plugin,
  .thread_model = lp_thread_model,
  .get_ready = lp_get_ready,
  .after_fork = lp_after_fork,
  .cleanup = lp_cleanup,
  .preconnect = lp_preconnect,
  .list_exports = lp_list_exports,
  .default_export = lp_default_export,
  .open = lp_open,
  .close = lp_close,
  .get_size = lp_get_size,
  .export_description = lp_export_description,
  .block_size = lp_block_size,
  .can_write = lp_can_write,
  .can_flush = lp_can_flush,
  .is_rotational = lp_is_rotational,
  .can_trim = lp_can_trim,
  .can_zero = lp_can_zero,
  .can_fast_zero = lp_can_fast_zero,
  .can_fua = lp_can_fua,
  .can_multi_conn = lp_can_multi_conn,
  .can_extents = lp_can_extents,
  .can_cache = lp_can_cache,
  .pread = lp_pread,
  .pwrite = lp_pwrite,
  .flush = lp_flush,
  .trim = lp_trim,
  .zero = lp_zero,
  .extents = lp_extents,
  .cache = lp_cache,
  .reload = lp_reload,
};

NBDKIT_REGISTER_PLUGIN (plugin)
