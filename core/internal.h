/* internal.h: the server's own types and the functions its files share.
 *
 * The server is a struct server, created by server_new and run by
 * server_run; nothing here is global except signal handling.  The
 * thread calling into a plugin carries a thread-local pointer to its
 * server and connection, which is how nbdkit_error and friends know
 * where they are.
 */

#ifndef NBDKIT_INTERNAL_H
#define NBDKIT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

/* plugin_v2.c sees the API 2 layout of struct nbdkit_plugin; every
 * other file sees API 3.
 */
#ifndef NBDKIT_API_VERSION
#define NBDKIT_API_VERSION 3
#endif
#include "nbdkit-plugin.h"

#include "server.h"

#ifndef __GNUC__
#define __attribute__(x)
#endif

struct server;
struct connection;
struct backend;
struct context;
struct nbdkit_completion;

/* Thread models, in API 3 numbering. */
#define TM_SERIALIZE_CONNECTIONS 1000
#define TM_SERIALIZE_ALL_REQUESTS 2000
#define TM_SERIALIZE_REQUESTS 3000
#define TM_SERIALIZE_RETIREMENT 3500
#define TM_PARALLEL 4000

/* Largest data request (read, write), and the default maximum for
 * other requests when the backend gives none.
 */
#define MAX_REQUEST_SIZE (64 * 1024 * 1024)
#define MAX_OPTION_LENGTH (64 * 1024)
/* The protocol's limit on names and descriptions (NBD_MAX_STRING in
 * protocol.h, which not every file includes).
 */
#define MAX_STRING 4096

/* ---- log.c ---- */

enum log_to { LOG_TO_DEFAULT = -1, LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_NULL };

/* Thread-local context: who is logging, and for which connection. */
struct thread_ctx {
  struct server *server;
  struct connection *conn;
  const char *name; /* plugin or filter name, or NULL */
  int error;        /* from nbdkit_set_error, 0 if none */
  /* In a call into the plugin, holding its thread model's lock (a
   * capability callback may ask another of the same context).
   */
  bool in_plugin;
};
extern struct thread_ctx *thread_ctx (void);
extern void log_error (struct server *s, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
extern void log_warning (struct server *s, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
extern void log_debug (struct server *s, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* ---- parse.c: the nbdkit_parse_* family lives there ---- */

/* ---- params.c: typed parameters ---- */

/* Check and convert one KEY=VALUE against PARAMS (owned by OWNER, a
 * plugin or filter name, used in messages).  SEEN counts how often
 * each entry was given (parallel to PARAMS).  On success stores the
 * parsed value into the entry's dest and sets *CANONICAL to a malloc'd
 * canonical text (see nbdkit-common.h).  Returns 0 on success, -1 on a
 * bad value (error logged: names the key and the expected form), -2 if
 * KEY is not declared (nothing logged).
 */
extern int param_parse (const char *owner, const struct nbdkit_param *params,
                        unsigned *seen, const char *key, const char *value,
                        char **canonical);

/* After all keys: for each entry not seen with a default, parse the
 * default and call APPLY(OPAQUE, key, canonical); log an error and
 * return -1 if a required entry was not seen.
 */
extern int param_finish (const char *owner, const struct nbdkit_param *params,
                         unsigned *seen,
                         int (*apply) (void *opaque, const char *key,
                                       const char *canonical),
                         void *opaque);

/* Print PARAMS as --help lines ("key=<SIZE> (required) doc"). */
extern void param_help (FILE *fp, const struct nbdkit_param *params);

/* Print PARAMS as --dump-plugin lines, each prefixed with PREFIX. */
extern void param_dump (FILE *fp, const char *prefix,
                        const struct nbdkit_param *params);

/* Number of entries before the terminator. */
extern size_t param_count (const struct nbdkit_param *params);

/* ---- backend.c: the chain of filters and the plugin ---- */

/* A data request started asynchronously (async.c), as given to a
 * plugin's async_* callback.
 */
struct async_op {
  uint16_t type; /* NBD_CMD_READ, _WRITE, _FLUSH, _TRIM, _WRITE_ZEROES,
                    _BLOCK_STATUS */
  void *buf;
  uint64_t count, offset;
  uint32_t flags;
  struct nbdkit_read *rd;
  struct nbdkit_extents *e;
};

/* What one layer (a filter or the plugin) can do.  Each function gets
 * its layer and, per connection, the handle its open returned.  Data
 * functions return 0 or -1 with *ERR set to an errno.
 */
struct backend_ops {
  void (*load) (struct backend *b);
  void (*unload) (struct backend *b);
  /* The typed parameters, asked again after each config call: a
   * language host learns its script's parameters from the script.
   */
  const struct nbdkit_param *(*params) (struct backend *b);
  /* Load the layer's code again (SIGHUP): 1 done, 0 nothing to
   * reload, -1 failed (the old code goes on serving).  May be NULL.
   */
  int (*reload) (struct backend *b);
  int (*config) (struct backend *b, const char *key, const char *value);
  int (*config_complete) (struct backend *b);
  const char *(*config_help) (struct backend *b);
  void (*dump_plugin) (struct backend *b, FILE *fp);
  int (*thread_model) (struct backend *b);
  int (*get_ready) (struct backend *b, int thread_model);
  int (*after_fork) (struct backend *b);
  void (*cleanup) (struct backend *b);
  int (*preconnect) (struct backend *b, int readonly);
  int (*list_exports) (struct backend *b, int readonly, int is_tls,
                       struct nbdkit_exports *exports);
  const char *(*default_export) (struct backend *b, int readonly, int is_tls);

  void *(*open) (struct context *c, int readonly, const char *exportname,
                 int is_tls);
  void (*close) (struct context *c);
  int (*prepare) (struct context *c); /* filters only; may be NULL */
  int (*finalize) (struct context *c);
  int64_t (*get_size) (struct context *c);
  const char *(*export_description) (struct context *c);
  int (*block_size) (struct context *c, struct nbdkit_block_size *bs);
  int (*can_write) (struct context *c);
  int (*can_flush) (struct context *c);
  int (*is_rotational) (struct context *c);
  int (*can_trim) (struct context *c);
  int (*can_zero) (struct context *c);
  int (*can_fast_zero) (struct context *c);
  int (*can_fua) (struct context *c);
  int (*can_multi_conn) (struct context *c);
  int (*can_extents) (struct context *c);
  int (*can_cache) (struct context *c);

  int (*pread) (struct context *c, void *buf, uint64_t count, uint64_t offset,
                uint32_t flags, struct nbdkit_read *rd, int *err);
  int (*pwrite) (struct context *c, const void *buf, uint64_t count,
                 uint64_t offset, uint32_t flags, int *err);
  int (*flush) (struct context *c, uint32_t flags, int *err);
  int (*trim) (struct context *c, uint64_t count, uint64_t offset,
               uint32_t flags, int *err);
  int (*zero) (struct context *c, uint64_t count, uint64_t offset,
               uint32_t flags, int *err);
  int (*extents) (struct context *c, uint64_t count, uint64_t offset,
                  uint32_t flags, struct nbdkit_extents *e, int *err);
  int (*cache) (struct context *c, uint64_t count, uint64_t offset,
                uint32_t flags, int *err);

  /* Asynchronous requests (async.c).  can_start: for a filter, whether
   * it passes requests of TYPE (NBD_CMD_*) through untouched; for a
   * plugin, whether it has the async callback.  start (plugins only):
   * start OP, to be ended by nbdkit_complete (H); 0, or -1 with *ERR
   * if it failed at once (H is then not completed by the plugin).
   */
  bool (*can_start) (struct backend *b, uint16_t type);
  int (*start) (struct context *c, const struct async_op *op,
                struct nbdkit_completion *h, int *err);

  /* A filter's own metadata context (NULL for plugins). */
  const char *(*meta_context) (struct backend *b);
  int (*meta_extents) (struct context *c, uint64_t count, uint64_t offset,
                       uint32_t flags, struct nbdkit_extents *e, int *err);
};

struct backend {
  struct server *server;
  struct backend *next; /* towards the plugin; NULL for the plugin */
  int is_filter;
  const char *name;  /* short name, e.g. "memory" */
  const char *given; /* as named on the command line */
  char *filename;    /* the .so it came from */
  void *dl;          /* dlopen handle */
  const struct backend_ops *ops;
  void *impl; /* the plugin's or filter's own struct */
  /* A zero-padded copy of a struct built against an older, shorter
   * header (struct_grow), freed on unload; NULL when IMPL is the
   * plugin's own.
   */
  void *impl_copy;
  int api_version;
  const char *version;
  const char *longname;
  const char *description;
  const char *magic_config_key;
  const struct nbdkit_param *params;
  unsigned *params_seen;
  int thread_model; /* this layer's own model */
  /* pread writes every byte it does not answer with holes or loans
   * (filters: or reads it from below): its buffer need not be cleared.
   */
  bool pread_fills;
  /* The plugin's config_complete is running; what it asked to be
   * served in its place (handover.c).
   */
  bool completing;
  struct handover *handover;
};

/* One layer's state for one connection: its handle and the capability
 * answers, asked once and cached (-1 = not asked yet).
 */
struct context {
  struct backend *b;
  struct connection *conn;
  struct context *next; /* the layer below, NULL for the plugin */
  void *handle;
  int64_t size;
  int can_write, can_flush, is_rotational, can_trim, can_zero;
  int can_fast_zero, can_fua, can_multi_conn, can_extents, can_cache;
  int bs_known;
  struct nbdkit_block_size bs;
  int readonly, is_tls; /* as opened */
  int prepared;
  int no_next; /* the filter opens nothing below */
  /* serialize_requests: one call at a time into the plugin's handle
   * (backend.c).
   */
  pthread_mutex_t lock;
};

/* Whether the layer's pread writes (or reads from below) every byte it
 * does not answer with holes or loans, so its buffer need not be
 * cleared (filter.c).
 */
extern bool layer_pread_fills (const struct backend *b);

/* Loading (plugin.c, plugin_v2.c, filter.c). */
extern struct backend *filter_load (struct server *s, const char *name);
extern struct backend *plugin_load (struct server *s, const char *name);
extern int plugin_v3_init (struct backend *b, void *p);
extern int plugin_v2_init (struct backend *b, void *p);

/* dlopen.c: open FILENAME for server S: the object itself, or a
 * private copy if another server in the process holds it.  NULL on
 * failure: *WHY is dlerror's message (not logged), or NULL with the
 * error logged.
 */
extern void *layer_dlopen (struct server *s, const char *filename,
                           const char **why);
extern void layer_dlclose (void *dl);

/* The growth rule of the v3 structs: they only grow at the end.  P is
 * a layer's struct of SIZE bytes (its _struct_size); OURS is the size
 * this server was built with; KIND is "plugin" or "filter".  A struct
 * as long as ours is used as it is (*IMPL = P); a shorter one is
 * copied into a zeroed struct of our size, so the fields it lacks read
 * as NULL/0 (*IMPL and *COPY = the copy, freed by the caller); a longer
 * one comes from a newer header and is refused, as is one too short to
 * hold its name.  Returns 0 or -1 (error logged).
 */
extern int struct_grow (struct server *s, const char *filename,
                        const char *kind, void *p, uint64_t size, size_t ours,
                        void **impl, void **copy);

/* Configuration (cmdline.c): apply one key=value to a layer, checked
 * against its declared parameters; pick up its declarations again;
 * give a parameter its default (param_finish's APPLY).
 */
extern int config_one (struct backend *b, const char *key, const char *value);
extern int refresh_params (struct backend *b);
extern int config_apply_default (void *opaque, const char *key,
                                 const char *canonical);

/* Complete the configuration of the layer *LP; if it is a plugin that
 * handed over (nbdkit_hand_over), *LP becomes the plugin it named
 * (handover.c).
 */
extern int layer_config_complete (struct backend **lp);

/* Unload one layer and free it (server.c). */
extern void backend_free (struct server *s, struct backend *b);

/* The chain (backend.c): open every layer from the top for one
 * connection; close them all.
 */
extern struct context *backend_open (struct backend *top,
                                     struct connection *conn, int readonly,
                                     const char *exportname, int is_tls);
extern void backend_close (struct context *c);
extern struct context *context_new (struct backend *b, struct connection *conn);
extern int backend_open_next (struct context *c, int readonly,
                              const char *exportname);

/* Calls through a context, with capability caching, request checks
 * (asserted: the caller validated them) and emulation of what the
 * layer lacks (FUA by flush, zero by writes, cache by reads, extents
 * as all data).
 */
extern int64_t backend_get_size (struct context *c);
/* Check a request a filter sends below (filter.c) or the server sends
 * past the filters (async.c): COUNT bytes at OFFSET within C's size,
 * and C writable if WRITE.  0, or -1 with an error logged and *ERR
 * set (EINVAL, EROFS, or EIO if C could not say).
 */
extern int backend_check (struct context *c, const char *what, uint64_t count,
                          uint64_t offset, bool write, int *err);
extern int backend_block_size (struct context *c, struct nbdkit_block_size *bs);
extern int backend_can_write (struct context *c);
extern int backend_can_flush (struct context *c);
extern int backend_is_rotational (struct context *c);
extern int backend_can_trim (struct context *c);
extern int backend_can_zero (struct context *c);
extern int backend_can_fast_zero (struct context *c);
extern int backend_can_fua (struct context *c);
extern int backend_can_multi_conn (struct context *c);
extern int backend_can_extents (struct context *c);
extern int backend_can_cache (struct context *c);
extern const char *backend_export_description (struct context *c);
extern int backend_pread (struct context *c, void *buf, uint64_t count,
                          uint64_t offset, uint32_t flags,
                          struct nbdkit_read *rd, int *err);
extern int backend_pwrite (struct context *c, const void *buf, uint64_t count,
                           uint64_t offset, uint32_t flags, int *err);
extern int backend_flush (struct context *c, uint32_t flags, int *err);
extern int backend_trim (struct context *c, uint64_t count, uint64_t offset,
                         uint32_t flags, int *err);
extern int backend_zero (struct context *c, uint64_t count, uint64_t offset,
                         uint32_t flags, int *err);
extern int backend_extents (struct context *c, uint64_t count, uint64_t offset,
                            uint32_t flags, struct nbdkit_extents *e, int *err);
extern int backend_cache (struct context *c, uint64_t count, uint64_t offset,
                          uint32_t flags, int *err);
/* Start OP on the plugin's context C (async.c decided it may go
 * there): the checks and buffer clearing of the calls above, then the
 * plugin's async callback.  0, or -1 with *ERR (H not completed).
 */
extern int backend_start (struct context *c, const struct async_op *op,
                          struct nbdkit_completion *h, int *err);
/* What backend_zero does when a native zero answered EOPNOTSUPP:
 * ENOTSUP for a fast zero, else zeroes written (and FUA by a flush).
 */
extern int backend_zero_fallback (struct context *c, uint64_t count,
                                  uint64_t offset, uint32_t flags, int *err);

/* Every layer's preconnect, top down. */
extern int backend_preconnect (struct backend *top, int readonly);

/* The errno of a failed callback: nbdkit_set_error's, else errno,
 * else EIO.  Resets the thread's error.
 */
extern int callback_errno (void);

/* ---- async.c: completion handles ---- */

/* A thread waiting for the completion of a request it started itself
 * (a plugin with only async callbacks, called where the server needs
 * the answer at once).
 */
struct completion_target {
  void (*done) (struct completion_target *t, int err);
};
struct waiter {
  struct completion_target t;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int err;
};
/* A handle completing W, or NULL (out of memory). */
extern struct nbdkit_completion *waiter_begin (struct waiter *w);
/* After the async callback returned R: wait for the completion; 0, or
 * -1 with *ERR.
 */
extern int waiter_end (struct waiter *w, struct nbdkit_completion *h, int r,
                       int *err);
/* A handle for T, or NULL; and taking T back (NULL if H is unknown or
 * was completed already).
 */
extern struct nbdkit_completion *handle_new (struct completion_target *t);
extern struct completion_target *handle_take (struct nbdkit_completion *h);

/* ---- extents.c ---- */

#define extents_new nbdkit_extents_new
#define extents_free nbdkit_extents_free
#define extents_count nbdkit_extents_count
#define extents_get nbdkit_get_extent

/* ---- exports.c ---- */

#define exports_new nbdkit_exports_new
#define exports_free nbdkit_exports_free
#define exports_count nbdkit_exports_count
#define exports_get nbdkit_get_export
extern int exports_use_default (const struct nbdkit_exports *x);
/* Layer B's default export name, asked once per connection (for the
 * same readonly and is_tls) and then answered from the cache, as nbdkit
 * does; outside a connection, asked every time.
 */
extern const char *exports_default (struct backend *b, int readonly,
                                    int is_tls);
struct connection;
extern void exports_default_forget (struct connection *c);
extern int exports_resolve_default (struct nbdkit_exports *x, struct backend *b,
                                    int readonly, int is_tls);

/* ---- read.c: the result of a read beyond plain data ---- */

/* A lent or hole segment of a read reply, in request order. */
struct read_seg {
  uint64_t offset, length; /* relative to the request */
  const void *data;        /* lent data, or NULL for a hole */
  void (*release) (void *opaque);
  void *opaque;
};
struct nbdkit_read {
  uint64_t offset, count; /* the request */
  void *buf;
  bool zero_copy; /* lending and holes kept as segments */
  struct read_seg *segs;
  size_t nsegs, segs_alloc;
  uint64_t error_at; /* relative; UINT64_MAX if not given */
  /* BUF holds zeroes for the whole request (or what it holds is never
   * sent): a layer need not clear it.  Cleared once a layer ran.
   */
  bool buf_zero;
};
extern void read_init (struct nbdkit_read *rd, void *buf, uint64_t count,
                       uint64_t offset, bool zero_copy);
/* Release every loan and forget the segments. */
extern void read_release (struct nbdkit_read *rd);
/* Copy lent data into the buffer and zero the holes, releasing loans. */
extern void read_flatten (struct nbdkit_read *rd);
/* Whether loans and holes answered the whole read (nothing was
 * written into the buffer).
 */
extern bool read_all_segments (const struct nbdkit_read *rd);

#endif /* NBDKIT_INTERNAL_H */
