/* nbdkit-filter.h: the filter ABI (API 3).
 *
 * A filter sits between the server and the plugin (or the next
 * filter): `nbdkit --filter=F plugin`.  It fills in a struct
 * nbdkit_filter and registers it with NBDKIT_REGISTER_FILTER.  Every
 * callback is optional: a missing one passes the call through to the
 * layer below unchanged, so a filter only writes what it changes.
 *
 * Three handles name the layers below:
 *   nbdkit_backend  the layer below, server-wide (exports, preconnect)
 *   nbdkit_next     an open context of the layer below, per connection
 *   nbdkit_context  this filter's own context while it is being opened
 * Data callbacks get NEXT and call the nbdkit_next_* functions on it.
 * They return -1 with *ERR set to an errno on failure.
 *
 * Parameters: a filter declares its keys in PARAMS (see
 * nbdkit-common.h); only those keys reach its config, every other key
 * goes on to the layers below.
 */

#ifndef NBDKIT_FILTER_H
#define NBDKIT_FILTER_H

#ifndef NBDKIT_API_VERSION
#define NBDKIT_API_VERSION 3
#endif
#if NBDKIT_API_VERSION != 3
#error "filters are written against API 3: #define NBDKIT_API_VERSION 3"
#endif

#include <nbdkit-common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nbdkit_backend nbdkit_backend;
typedef struct nbdkit_next nbdkit_next;
typedef struct nbdkit_context nbdkit_context;

struct nbdkit_filter {
  /* Filled in by NBDKIT_REGISTER_FILTER. */
  uint64_t _struct_size;
  int _api_version;
  int _unused;

  const char *name;
  const char *longname;
  const char *version;
  const char *description;

  /* Configuration: only the keys declared in PARAMS come here. */
  const struct nbdkit_param *params;
  int (*config) (const char *key, const char *value);
  int (*config_complete) (void);
  const char *(*config_help) (void);

  /* Life cycle of the server. */
  void (*load) (void);
  void (*unload) (void);
  void (*dump_plugin) (void);
  int (*thread_model) (void); /* default: PARALLEL */
  int (*get_ready) (int thread_model);
  int (*after_fork) (nbdkit_backend *next);
  void (*cleanup) (nbdkit_backend *next);

  /* Before and during the handshake.  The server calls every layer's
   * preconnect in turn: a filter's need not pass it on.
   */
  int (*preconnect) (nbdkit_backend *next, int readonly);
  int (*list_exports) (nbdkit_backend *next, int readonly, int is_tls,
                       struct nbdkit_exports *exports);
  const char *(*default_export) (nbdkit_backend *next, int readonly,
                                 int is_tls);

  /* Per connection.  open may call nbdkit_next_open to open the layer
   * below with another export name or read-only; if it does not, the
   * server opens it with the same arguments after open returns.
   * prepare runs once every layer is open (bottom up), finalize before
   * any is closed (top down).
   */
  void *(*open) (nbdkit_context *ctx, int readonly, const char *exportname,
                 int is_tls);
  void (*close) (void *handle);
  int (*prepare) (nbdkit_next *next, void *handle, int readonly);
  int (*finalize) (nbdkit_next *next, void *handle);

  int64_t (*get_size) (nbdkit_next *next, void *handle);
  const char *(*export_description) (nbdkit_next *next, void *handle);
  int (*block_size) (nbdkit_next *next, void *handle,
                     struct nbdkit_block_size *bs);
  int (*can_write) (nbdkit_next *next, void *handle);
  int (*can_flush) (nbdkit_next *next, void *handle);
  int (*is_rotational) (nbdkit_next *next, void *handle);
  int (*can_trim) (nbdkit_next *next, void *handle);
  int (*can_zero) (nbdkit_next *next, void *handle);
  int (*can_fast_zero) (nbdkit_next *next, void *handle);
  int (*can_fua) (nbdkit_next *next, void *handle);
  int (*can_multi_conn) (nbdkit_next *next, void *handle);
  int (*can_extents) (nbdkit_next *next, void *handle);
  int (*can_cache) (nbdkit_next *next, void *handle);

  int (*pread) (nbdkit_next *next, void *handle, void *buf, uint64_t count,
                uint64_t offset, uint32_t flags, struct nbdkit_read *rd,
                int *err);
  int (*pwrite) (nbdkit_next *next, void *handle, const void *buf,
                 uint64_t count, uint64_t offset, uint32_t flags, int *err);
  int (*flush) (nbdkit_next *next, void *handle, uint32_t flags, int *err);
  int (*trim) (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
               uint32_t flags, int *err);
  int (*zero) (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
               uint32_t flags, int *err);
  int (*extents) (nbdkit_next *next, void *handle, uint64_t count,
                  uint64_t offset, uint32_t flags,
                  struct nbdkit_extents *extents, int *err);
  int (*cache) (nbdkit_next *next, void *handle, uint64_t count,
                uint64_t offset, uint32_t flags, int *err);

  /* A metadata context of the filter's own beside base:allocation,
   * e.g. "qemu:dirty-bitmap:NAME", or NULL; asked once after
   * configuration.  Clients that select it get block status for it
   * from meta_extents, with extent types in the context's own bits
   * (for a dirty bitmap: 1 = dirty).
   */
  const char *(*meta_context) (void);
  int (*meta_extents) (nbdkit_next *next, void *handle, uint64_t count,
                       uint64_t offset, uint32_t flags,
                       struct nbdkit_extents *extents, int *err);

  /* Fields added later.  As with struct nbdkit_plugin, the struct only
   * grows here, at the end: a filter built against an older, shorter
   * struct loads with the fields it lacks absent (NULL or 0); one built
   * against a newer, longer struct is refused, naming both sizes.
   */

  /* Set to 1 if pread, whenever it succeeds, writes every byte of BUF
   * or reads it from the layer below (nbdkit_next_pread into BUF): the
   * server then clears nothing for this layer (see pread_fills_buffer
   * in <nbdkit-plugin.h>).  Leave it 0 if unsure: bytes left alone
   * reach the client as zeroes.
   */
  int pread_fills_buffer;

  /* As reload in <nbdkit-plugin.h>: load the filter's code again on
   * SIGHUP, for connections opened afterwards.
   */
  int (*reload) (void);
};

/* The server calls filter_init once for each --filter naming this
 * object, even the same one twice: a language host may return a
 * different struct each time, one per script.
 */
#define NBDKIT_REGISTER_FILTER(filter)                                         \
  NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_filter *filter_init (void);  \
  NBDKIT_EXTERN_C NBDKIT_DLL_PUBLIC struct nbdkit_filter *filter_init (void)   \
  {                                                                            \
    (filter)._struct_size = sizeof (filter);                                   \
    (filter)._api_version = NBDKIT_API_VERSION;                                \
    (filter)._unused = 0;                                                      \
    return &(filter);                                                          \
  }

/* ---- calls to the layer below, per connection ----
 *
 * Capabilities are cached per connection.  Requests are checked
 * against the size of the layer below (EINVAL, logged, if outside).
 *
 * nbdkit_next_pread: pass RD (the one your pread got) only when BUF,
 * COUNT and OFFSET are the ones you got too; then holes and lent
 * memory travel up without copies.  Otherwise pass NULL and the data
 * arrives in BUF.
 */
extern int64_t nbdkit_next_get_size (nbdkit_next *next);
extern const char *nbdkit_next_export_description (nbdkit_next *next);
extern int nbdkit_next_block_size (nbdkit_next *next,
                                   struct nbdkit_block_size *bs);
extern int nbdkit_next_can_write (nbdkit_next *next);
extern int nbdkit_next_can_flush (nbdkit_next *next);
extern int nbdkit_next_is_rotational (nbdkit_next *next);
extern int nbdkit_next_can_trim (nbdkit_next *next);
extern int nbdkit_next_can_zero (nbdkit_next *next);
extern int nbdkit_next_can_fast_zero (nbdkit_next *next);
extern int nbdkit_next_can_fua (nbdkit_next *next);
extern int nbdkit_next_can_multi_conn (nbdkit_next *next);
extern int nbdkit_next_can_extents (nbdkit_next *next);
extern int nbdkit_next_can_cache (nbdkit_next *next);
extern int nbdkit_next_pread (nbdkit_next *next, void *buf, uint64_t count,
                              uint64_t offset, uint32_t flags,
                              struct nbdkit_read *rd, int *err);
extern int nbdkit_next_pwrite (nbdkit_next *next, const void *buf,
                               uint64_t count, uint64_t offset, uint32_t flags,
                               int *err);
extern int nbdkit_next_flush (nbdkit_next *next, uint32_t flags, int *err);
extern int nbdkit_next_trim (nbdkit_next *next, uint64_t count, uint64_t offset,
                             uint32_t flags, int *err);
extern int nbdkit_next_zero (nbdkit_next *next, uint64_t count, uint64_t offset,
                             uint32_t flags, int *err);
extern int nbdkit_next_extents (nbdkit_next *next, uint64_t count,
                                uint64_t offset, uint32_t flags,
                                struct nbdkit_extents *extents, int *err);
extern int nbdkit_next_cache (nbdkit_next *next, uint64_t count,
                              uint64_t offset, uint32_t flags, int *err);

/* Extents covering the whole of [OFFSET, OFFSET+COUNT), asking the
 * layer below as many times as needed.
 */
extern int nbdkit_extents_full (nbdkit_next *next, uint64_t count,
                                uint64_t offset, uint32_t flags,
                                struct nbdkit_extents *extents, int *err);

/* ---- opening ---- */

/* From open: open the layer below now. */
extern int nbdkit_next_open (nbdkit_context *ctx, int readonly,
                             const char *exportname);
/* From open: open nothing below for this client.  The filter then
 * answers every call itself (e.g. from a context of its own).
 */
extern void nbdkit_next_open_none (nbdkit_context *ctx);
/* The layer below this filter, server-wide. */
extern nbdkit_backend *nbdkit_context_get_backend (nbdkit_context *ctx);

/* An extra context of its own on the layer below, independent of the
 * client's: for filters that read ahead in the background or share
 * one context between clients.  It may be used from any thread, and
 * outlives the connection that opened it until closed.
 */
extern nbdkit_next *nbdkit_next_context_open (nbdkit_backend *backend,
                                              int readonly,
                                              const char *exportname);
extern void nbdkit_next_context_close (nbdkit_next *next);

/* ---- server-wide calls to the layer below ---- */
extern int nbdkit_backend_list_exports (nbdkit_backend *backend, int readonly,
                                        int is_tls,
                                        struct nbdkit_exports *exports);
extern const char *nbdkit_backend_default_export (nbdkit_backend *backend,
                                                  int readonly, int is_tls);

#ifdef __cplusplus
}
#endif

#endif /* NBDKIT_FILTER_H */
