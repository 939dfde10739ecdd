/* nbdkit-plugin.h: the plugin ABI.
 *
 * A plugin is a shared object that fills in a struct nbdkit_plugin and
 * registers it with NBDKIT_REGISTER_PLUGIN.  New plugins use API 3:
 *
 *   #define NBDKIT_API_VERSION 3
 *   #include <nbdkit-plugin.h>
 *
 * Plugins written for API 1 and 2 compile unchanged (the layout below
 * the #else is theirs), and their binaries load.  See abi/README.md
 * for the whole story and a complete example.
 *
 * A file that does not define NBDKIT_API_VERSION gets API 1, as with
 * nbdkit (<nbdkit-filter.h> defaults to 3, the only filter API).
 *
 * Conventions for callbacks: int callbacks return -1 on error, having
 * called nbdkit_error (and optionally nbdkit_set_error); can_* return
 * 0 (false), 1 (true) or a tri-state constant.  Required: name,
 * get_size and pread; the server refuses a plugin without them.  Every
 * other callback is optional, and its absence has a defined meaning
 * (abi/README.md, "Capabilities").
 */

#ifndef NBDKIT_PLUGIN_H
#define NBDKIT_PLUGIN_H

#include <nbdkit-common.h>

#ifdef __cplusplus
extern "C" {
#endif

#if NBDKIT_API_VERSION >= 3

/* A request started by an async_* callback, to be completed once. */
struct nbdkit_completion;

struct nbdkit_plugin {
  /* Filled in by NBDKIT_REGISTER_PLUGIN. */
  uint64_t _struct_size;
  int _api_version;
  int _unused;

  /* Identity.  NAME is short (letters, digits, '-', '_') and unique. */
  const char *name;
  const char *longname;
  const char *version;
  const char *description;

  /* Configuration.  PARAMS declares the keys (may be NULL: then every
   * key goes to config unchecked).  MAGIC_CONFIG_KEY names the key a
   * bare argument (without '=') is given to.
   */
  const struct nbdkit_param *params;
  const char *magic_config_key;
  int (*config) (const char *key, const char *value);
  int (*config_complete) (void);
  const char *(*config_help) (void); /* appended to the generated help */

  /* Life cycle of the server. */
  void (*load) (void);
  void (*unload) (void);
  void (*dump_plugin) (void);          /* extra key=value lines */
  int (*thread_model) (void);          /* default: PARALLEL */
  int (*get_ready) (int thread_model); /* the model finally chosen */
  int (*after_fork) (void);            /* after daemonizing */
  void (*cleanup) (void);              /* before unload, after the last close */

  /* Before and during the handshake. */
  int (*preconnect) (int readonly);
  int (*list_exports) (int readonly, int is_tls,
                       struct nbdkit_exports *exports);
  const char *(*default_export) (int readonly, int is_tls);

  /* Per connection. */
  void *(*open) (int readonly, const char *exportname, int is_tls);
  void (*close) (void *handle);
  int64_t (*get_size) (void *handle);
  const char *(*export_description) (void *handle);
  int (*block_size) (void *handle, struct nbdkit_block_size *bs);

  /* Capabilities, asked once per connection and cached. */
  int (*can_write) (void *handle);
  int (*can_flush) (void *handle);
  int (*is_rotational) (void *handle);
  int (*can_trim) (void *handle);
  int (*can_zero) (void *handle); /* NBDKIT_ZERO_* */
  int (*can_fast_zero) (void *handle);
  int (*can_fua) (void *handle); /* NBDKIT_FUA_* */
  int (*can_multi_conn) (void *handle);
  int (*can_extents) (void *handle); /* NBDKIT_EXTENTS_* */
  int (*can_cache) (void *handle);   /* NBDKIT_CACHE_* */

  /* Data.  Requests are checked (bounds, alignment, sizes) before they
   * arrive here.  RD may be used with the nbdkit_read_* functions.
   */
  int (*pread) (void *handle, void *buf, uint64_t count, uint64_t offset,
                uint32_t flags, struct nbdkit_read *rd);
  int (*pwrite) (void *handle, const void *buf, uint64_t count, uint64_t offset,
                 uint32_t flags);
  int (*flush) (void *handle, uint32_t flags);
  int (*trim) (void *handle, uint64_t count, uint64_t offset, uint32_t flags);
  int (*zero) (void *handle, uint64_t count, uint64_t offset, uint32_t flags);
  int (*extents) (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
                  struct nbdkit_extents *extents);
  int (*cache) (void *handle, uint64_t count, uint64_t offset, uint32_t flags);

  /* Fields added later.  The struct only ever grows here, at the end,
   * and NBDKIT_REGISTER_PLUGIN records its size in _struct_size: a
   * plugin built against an older, shorter struct loads, and the
   * fields it lacks are absent (NULL or 0); one built against a newer,
   * longer struct is refused, with a message naming both sizes.
   */

  /* Bytes of the read buffer that pread does not write reach the client
   * as zeroes, whatever pread does.  Set this to 1 if pread, whenever
   * it succeeds, writes every byte of BUF that it does not answer with
   * nbdkit_read_hole or nbdkit_read_lend: the server then does not
   * clear the buffer first.  Leave it 0 if unsure.
   */
  int pread_fills_buffer;

  /* Asynchronous data callbacks (optional; see "Asynchronous
   * completion" in abi/README.md).  Each is the matching callback
   * above with a completion handle H as its last argument.  It may
   * return at once, having started the request, and end it later, from
   * any thread, with nbdkit_complete (H, ERR).  It returns 0 when it
   * took the request (then it must complete H exactly once, perhaps
   * before returning), or -1 when it failed at once, like the callback
   * above (nbdkit_error, nbdkit_set_error); then H must not be
   * completed.  BUF, RD and EXTENTS stay valid until H is completed,
   * and must not be touched after.  A plugin may have both kinds: the
   * server uses these where the thread model and the filters allow
   * (below), the others elsewhere; with only these, the server waits
   * for the completion where it needs an answer at once.
   */
  int (*async_pread) (void *handle, void *buf, uint64_t count, uint64_t offset,
                      uint32_t flags, struct nbdkit_read *rd,
                      struct nbdkit_completion *h);
  int (*async_pwrite) (void *handle, const void *buf, uint64_t count,
                       uint64_t offset, uint32_t flags,
                       struct nbdkit_completion *h);
  int (*async_flush) (void *handle, uint32_t flags,
                      struct nbdkit_completion *h);
  int (*async_trim) (void *handle, uint64_t count, uint64_t offset,
                     uint32_t flags, struct nbdkit_completion *h);
  int (*async_zero) (void *handle, uint64_t count, uint64_t offset,
                     uint32_t flags, struct nbdkit_completion *h);
  int (*async_extents) (void *handle, uint64_t count, uint64_t offset,
                        uint32_t flags, struct nbdkit_extents *extents,
                        struct nbdkit_completion *h);

  /* Load the plugin's code again (a language host: its script), when
   * the server gets SIGHUP.  Connections opened afterwards use the new
   * code; those already open go on with the old one until they close.
   * Return 0, or -1 after nbdkit_error to go on serving the code
   * loaded before.  Called from the server's main thread while
   * connections are served.
   */
  int (*reload) (void);
};

/* End the request of handle H, from any thread: ERR is 0 for success
 * or an errno (a failed pread may first call nbdkit_read_error_at).
 * The reply may be sent, and lent memory released, on the calling
 * thread before this returns.  Returns 0, or -1 (with a message
 * logged, and no other effect) when H is unknown or already
 * completed: handles are never reused, so a second call is harmless.
 */
extern int nbdkit_complete (struct nbdkit_completion *h, int err);

#define NBDKIT_REGISTER_PLUGIN(plugin)                                         \
  NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_plugin *plugin_init (void);  \
  NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_plugin *plugin_init (void)   \
  {                                                                            \
    (plugin)._struct_size = sizeof (plugin);                                   \
    (plugin)._api_version = NBDKIT_API_VERSION;                                \
    (plugin)._unused = 0;                                                      \
    return &(plugin);                                                          \
  }

#else /* API 1 and 2: the layout nbdkit plugins are built against */

/* NBDKIT_REGISTER_PLUGIN records THREAD_MODEL, which the plugin may
 * #define before or after including this header, as with nbdkit.  A
 * plugin that never defines it gets PARALLEL from this constant; an
 * enum, not a macro, so that the plugin's own #define replaces it
 * without a redefinition warning.
 */
#ifndef THREAD_MODEL
enum { THREAD_MODEL = NBDKIT_THREAD_MODEL_PARALLEL };
#endif

struct nbdkit_plugin {
  uint64_t _struct_size;
  int _api_version;
  int _thread_model;

  const char *name;
  const char *longname;
  const char *version;
  const char *description;

  void (*load) (void);
  void (*unload) (void);

  int (*config) (const char *key, const char *value);
  int (*config_complete) (void);
  const char *config_help;

  void *(*open) (int readonly);
  void (*close) (void *handle);

  int64_t (*get_size) (void *handle);

  int (*can_write) (void *handle);
  int (*can_flush) (void *handle);
  int (*is_rotational) (void *handle);
  int (*can_trim) (void *handle);

#if NBDKIT_API_VERSION == 1
  int (*pread) (void *handle, void *buf, uint32_t count, uint64_t offset);
  int (*pwrite) (void *handle, const void *buf, uint32_t count,
                 uint64_t offset);
  int (*flush) (void *handle);
  int (*trim) (void *handle, uint32_t count, uint64_t offset);
  int (*zero) (void *handle, uint32_t count, uint64_t offset, int may_trim);
#else
  int (*_pread_v1) (void *, void *, uint32_t, uint64_t);
  int (*_pwrite_v1) (void *, const void *, uint32_t, uint64_t);
  int (*_flush_v1) (void *);
  int (*_trim_v1) (void *, uint32_t, uint64_t);
  int (*_zero_v1) (void *, uint32_t, uint64_t, int);
#endif

  int errno_is_preserved;

  void (*dump_plugin) (void);

  int (*can_zero) (void *handle);
  int (*can_fua) (void *handle);

#if NBDKIT_API_VERSION == 1
  int (*_pread_v2) (void *, void *, uint32_t, uint64_t, uint32_t);
  int (*_pwrite_v2) (void *, const void *, uint32_t, uint64_t, uint32_t);
  int (*_flush_v2) (void *, uint32_t);
  int (*_trim_v2) (void *, uint32_t, uint64_t, uint32_t);
  int (*_zero_v2) (void *, uint32_t, uint64_t, uint32_t);
#else
  int (*pread) (void *handle, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags);
  int (*pwrite) (void *handle, const void *buf, uint32_t count, uint64_t offset,
                 uint32_t flags);
  int (*flush) (void *handle, uint32_t flags);
  int (*trim) (void *handle, uint32_t count, uint64_t offset, uint32_t flags);
  int (*zero) (void *handle, uint32_t count, uint64_t offset, uint32_t flags);
#endif

  const char *magic_config_key;

  int (*can_multi_conn) (void *handle);

  int (*can_extents) (void *handle);
  int (*extents) (void *handle, uint32_t count, uint64_t offset, uint32_t flags,
                  struct nbdkit_extents *extents);

  int (*can_cache) (void *handle);
  int (*cache) (void *handle, uint32_t count, uint64_t offset, uint32_t flags);

  int (*thread_model) (void);

  int (*can_fast_zero) (void *handle);

  int (*preconnect) (int readonly);

  int (*get_ready) (void);
  int (*after_fork) (void);

  int (*list_exports) (int readonly, int is_tls,
                       struct nbdkit_exports *exports);
  const char *(*default_export) (int readonly, int is_tls);
  const char *(*export_description) (void *handle);

  void (*cleanup) (void);

  int (*block_size) (void *handle, uint32_t *minimum, uint32_t *preferred,
                     uint32_t *maximum);
};

#define NBDKIT_REGISTER_PLUGIN(plugin)                                         \
  NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_plugin *plugin_init (void);  \
  NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_plugin *plugin_init (void)   \
  {                                                                            \
    (plugin)._struct_size = sizeof (plugin);                                   \
    (plugin)._api_version = NBDKIT_API_VERSION;                                \
    (plugin)._thread_model = THREAD_MODEL;                                     \
    return &(plugin);                                                          \
  }

#endif /* NBDKIT_API_VERSION */

/* Serve with another plugin in this one's place.  Called only from the
 * plugin's config_complete: once it returns 0, the server loads PLUGIN
 * (a short name, as on the command line, or a path to a .so of any API
 * version), applies the N parameters KEYS[i]=VALUES[i] to it in order
 * as if they had been typed, runs its config_complete, and unloads
 * this plugin.  The strings are copied.  Returns 0, or -1 after
 * nbdkit_error.  (The cc plugin uses this to serve what it compiled.)
 */
extern int nbdkit_hand_over (const char *plugin, size_t n,
                             const char *const *keys,
                             const char *const *values);

#ifdef __cplusplus
}
#endif

#endif /* NBDKIT_PLUGIN_H */
