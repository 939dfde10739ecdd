/* nbdkit-common.h: what plugins and filters share.
 *
 * The helper functions the server exports to every plugin and filter,
 * the flags passed with requests, the capability answers and the
 * typed parameter declarations.  Include <nbdkit-plugin.h> or
 * <nbdkit-filter.h>, not this file.
 *
 * Every function here is safe to call from any thread the server calls
 * a plugin on.  Functions returning int return 0 on success and -1 on
 * error (having logged the error through nbdkit_error) unless said
 * otherwise.
 */

#ifndef NBDKIT_COMMON_H
#define NBDKIT_COMMON_H

#if !defined(NBDKIT_PLUGIN_H) && !defined(NBDKIT_FILTER_H)
#error "include <nbdkit-plugin.h> or <nbdkit-filter.h>, not nbdkit-common.h"
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <nbdkit-version.h>

#ifdef __cplusplus
#define NBDKIT_EXTERN_C extern "C"
extern "C" {
#else
#define NBDKIT_EXTERN_C
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NBDKIT_ATTRIBUTE_FORMAT_PRINTF(fmt, args)                              \
  __attribute__ ((__format__ (__printf__, fmt, args)))
#define NBDKIT_ATTRIBUTE_NONNULL(...)                                          \
  __attribute__ ((__nonnull__ (__VA_ARGS__)))
#define NBDKIT_DLL_PUBLIC __attribute__ ((__visibility__ ("default")))
#else
#define NBDKIT_DLL_PUBLIC
#define NBDKIT_ATTRIBUTE_FORMAT_PRINTF(fmt, args)
#define NBDKIT_ATTRIBUTE_NONNULL(...)
#endif

/* Source compatibility: a plugin that does not choose gets API 1, as
 * with nbdkit.  New plugins say '#define NBDKIT_API_VERSION 3'.
 */
#ifndef NBDKIT_API_VERSION
#define NBDKIT_API_VERSION 1
#endif
#if NBDKIT_API_VERSION < 1 || NBDKIT_API_VERSION > 3
#error "NBDKIT_API_VERSION must be 1, 2 or 3"
#endif

/* Thread models, from the most to the least serializing.  API 3
 * renumbers them so that a new model fits between two old ones; values
 * from API 1 and 2 are still understood by the server.
 */
#if NBDKIT_API_VERSION >= 3
#define NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS 1000
#define NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS 2000
#define NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS 3000
/* Requests run in parallel, replies leave in request order. */
#define NBDKIT_THREAD_MODEL_SERIALIZE_RETIREMENT 3500
#define NBDKIT_THREAD_MODEL_PARALLEL 4000
#else
#define NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS 0
#define NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS 1
#define NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS 2
#define NBDKIT_THREAD_MODEL_PARALLEL 3
#endif

/* Flags passed with requests. */
#define NBDKIT_FLAG_MAY_TRIM (1 << 0) /* zero: may punch a hole */
#define NBDKIT_FLAG_FUA (1 << 1)      /* write, trim, zero: force unit access */
#define NBDKIT_FLAG_REQ_ONE (1 << 2)  /* extents: one extent is enough */
#define NBDKIT_FLAG_FAST_ZERO (1 << 3) /* zero: fail with ENOTSUP if slow */

/* Answers of can_fua. */
#define NBDKIT_FUA_NONE 0
#define NBDKIT_FUA_EMULATE 1 /* the server flushes after the write */
#define NBDKIT_FUA_NATIVE 2  /* the plugin honours NBDKIT_FLAG_FUA */

/* Answers of can_cache. */
#define NBDKIT_CACHE_NONE 0
#define NBDKIT_CACHE_EMULATE 1 /* the server reads and discards */
#define NBDKIT_CACHE_NATIVE 2

/* Answers of can_zero. */
#define NBDKIT_ZERO_NONE 0
#define NBDKIT_ZERO_EMULATE 1 /* the server writes zeroes */
#define NBDKIT_ZERO_NATIVE 2

/* Answers of can_extents (API 3).  NONE: base:allocation is not
 * offered for this export.  EMULATE: offered, and the whole disk is
 * reported as data.  NATIVE: the plugin's extents callback answers.
 */
#define NBDKIT_EXTENTS_NONE 0
#define NBDKIT_EXTENTS_EMULATE 1
#define NBDKIT_EXTENTS_NATIVE 2

/* Extent types, as in the NBD base:allocation context. */
#define NBDKIT_EXTENT_HOLE (1 << 0) /* unallocated */
#define NBDKIT_EXTENT_ZERO (1 << 1) /* reads as zeroes */

/* Logging.  nbdkit_error prints "nbdkit: PLUGIN[CONN]: error: MSG",
 * adding a newline only if MSG lacks one.  "%m" is the current errno.
 * nbdkit_debug prints only with -v.  Neither changes errno.
 */
extern void nbdkit_error (const char *msg, ...)
    NBDKIT_ATTRIBUTE_FORMAT_PRINTF (1, 2);
extern void nbdkit_verror (const char *msg, va_list args)
    NBDKIT_ATTRIBUTE_FORMAT_PRINTF (1, 0);
extern void nbdkit_debug (const char *msg, ...)
    NBDKIT_ATTRIBUTE_FORMAT_PRINTF (1, 2);
extern void nbdkit_vdebug (const char *msg, va_list args)
    NBDKIT_ATTRIBUTE_FORMAT_PRINTF (1, 0);

/* The errno sent to the client when the current callback fails.
 * Without it, the server uses errno at the time the callback returned.
 */
extern void nbdkit_set_error (int err);

/* Parsing helpers.  On bad input each logs an error and returns -1.
 * Those taking WHAT begin the message with it, so pass the key or
 * option ("retries: could not parse number: abc");
 * nbdkit_parse_size and nbdkit_parse_bool have no WHAT, as in nbdkit,
 * and name only the value ("size parameter cannot be parsed as a
 * number: abc"): a caller that knows the key may log it too.  Typed
 * parameters (below) name the key and the expected form themselves.
 */
extern int64_t
nbdkit_parse_size (const char *str);            /* "1G", "512k": -1 on error */
extern int nbdkit_parse_bool (const char *str); /* 1, 0, or -1 on error */
extern int nbdkit_parse_probability (const char *what, const char *str,
                                     double *r); /* "10%", "1:8", "0.1" */
extern int nbdkit_parse_int (const char *what, const char *str, int *r);
extern int nbdkit_parse_unsigned (const char *what, const char *str,
                                  unsigned *r);
extern int nbdkit_parse_int8_t (const char *what, const char *str, int8_t *r);
extern int nbdkit_parse_uint8_t (const char *what, const char *str, uint8_t *r);
extern int nbdkit_parse_int16_t (const char *what, const char *str, int16_t *r);
extern int nbdkit_parse_uint16_t (const char *what, const char *str,
                                  uint16_t *r);
extern int nbdkit_parse_int32_t (const char *what, const char *str, int32_t *r);
extern int nbdkit_parse_uint32_t (const char *what, const char *str,
                                  uint32_t *r);
extern int nbdkit_parse_int64_t (const char *what, const char *str, int64_t *r);
extern int nbdkit_parse_uint64_t (const char *what, const char *str,
                                  uint64_t *r);

/* A password given as VALUE: the text itself, "-" (ask on the
 * terminal), "-FD" (read from a file descriptor) or "+FILE".  The
 * caller frees *PASSWORD.
 */
extern int nbdkit_read_password (const char *value, char **password);

/* Paths: absolute_path does not need the file to exist; realpath does.
 * The caller frees the result; NULL on error.
 */
extern char *nbdkit_absolute_path (const char *path);
extern char *nbdkit_realpath (const char *path);

/* Name a file the caller's code comes from (a script): with --watch,
 * the server reloads (as on SIGHUP) when it changes.  Call it again
 * after each reload; a file named twice is watched once.  -1 (logged)
 * if the file does not exist.
 */
extern int nbdkit_watch_file (const char *path);

/* Whether stdin and stdout belong to the plugin (not with -s). */
extern int nbdkit_stdio_safe (void);

/* Sleep; returns -1 with errno ESHUTDOWN early if the server or the
 * connection is shutting down.
 */
extern int nbdkit_nanosleep (unsigned sec, unsigned nsec);

/* The current connection.  Outside a connection these fail or return
 * NULL.  peer_pid/uid/gid work on Unix sockets only.
 */
extern const char *nbdkit_export_name (void);
extern int nbdkit_is_tls (void);
extern int nbdkit_peer_name (struct sockaddr *addr, socklen_t *addrlen);
extern int64_t nbdkit_peer_pid (void);
extern int64_t nbdkit_peer_uid (void);
extern int64_t nbdkit_peer_gid (void);

/* Ask the server to exit (as on SIGTERM), or to drop the current
 * client: with FORCE at once, without it after the requests in flight.
 */
extern void nbdkit_shutdown (void);
extern void nbdkit_disconnect (int force);

/* A file descriptor that becomes readable (and stays so) once the
 * server is stopping, for a plugin's own threads to poll so that work
 * it waits for elsewhere can be abandoned.  Call it from a server
 * thread (config_complete, after_fork, open...); -1 outside a server.
 * Never read from or close it.  It lives until the plugin is unloaded.
 */
extern int nbdkit_shutdown_fd (void);

/* Strings that live until the end of the connection (or of the server
 * when called outside a connection).  NULL on error.
 */
extern const char *nbdkit_strdup_intern (const char *str);
extern const char *nbdkit_strndup_intern (const char *str, size_t n);
extern const char *nbdkit_printf_intern (const char *fmt, ...)
    NBDKIT_ATTRIBUTE_FORMAT_PRINTF (1, 2);
extern const char *nbdkit_vprintf_intern (const char *fmt, va_list ap)
    NBDKIT_ATTRIBUTE_FORMAT_PRINTF (1, 0);

/* Extents: called from the extents callback, in ascending order,
 * starting at or before the requested offset.  Zero-length extents
 * are ignored.
 */
struct nbdkit_extents;
extern int nbdkit_add_extent (struct nbdkit_extents *, uint64_t offset,
                              uint64_t length, uint32_t type);

/* A list of one's own, e.g. to ask another layer or to merge: only
 * extents inside [START, END) are kept.
 */
struct nbdkit_extent {
  uint64_t offset;
  uint64_t length;
  uint32_t type;
};
extern struct nbdkit_extents *nbdkit_extents_new (uint64_t start, uint64_t end);
extern void nbdkit_extents_free (struct nbdkit_extents *);
extern size_t nbdkit_extents_count (const struct nbdkit_extents *);
extern struct nbdkit_extent nbdkit_get_extent (const struct nbdkit_extents *,
                                               size_t i);

/* Exports: called from list_exports. */
struct nbdkit_exports;
extern int nbdkit_add_export (struct nbdkit_exports *, const char *name,
                              const char *description);
extern int nbdkit_use_default_export (struct nbdkit_exports *);

/* A non-NULL handle for open to return when the plugin keeps no state
 * per connection (any static address would do; this is nbdkit's).
 */
#define NBDKIT_HANDLE_NOT_NEEDED (&errno)

/* A list of one's own (e.g. a filter asking its plugin). */
struct nbdkit_export {
  char *name;
  char *description;
};
extern struct nbdkit_exports *nbdkit_exports_new (void);
extern void nbdkit_exports_free (struct nbdkit_exports *);
extern size_t nbdkit_exports_count (const struct nbdkit_exports *);
extern struct nbdkit_export nbdkit_get_export (const struct nbdkit_exports *,
                                               size_t i);

/* Typed parameters (API 3; declared for every API so servers and hosts
 * can share them).  A plugin (or filter) declares the keys it takes
 * in an array ended by a zeroed entry.  The server checks and converts
 * each key=value before the plugin sees it, refuses unknown keys and
 * missing required ones with a message naming the key, and builds
 * --help and --dump-plugin from the declarations.
 *
 * For each value given, the parsed value is stored in DEST (if not
 * NULL), then config(key, canonical_value) is called (if defined).
 * Any key may be given more than once, as with nbdkit: config sees
 * every value, and DEST keeps the last.  NBDKIT_PARAM_MULTIPLE changes
 * no parsing: it says that repeating the key means something (config
 * collects the values), for --help ("repeatable") and --dump-plugin
 * (",multiple").  NBDKIT_PARAM_LIST is a STRING that is MULTIPLE by
 * nature and has no DEST: each value goes only to config.
 * KEY and VALUE passed to config live only until it returns: copy
 * what you keep.  The canonical value is: for size and int, decimal
 * digits; for bool,
 * "1" or "0"; for file and directory, an absolute path; for password,
 * the password itself; otherwise the text as given.
 */
enum nbdkit_param_type {
  NBDKIT_PARAM_STRING = 1, /* DEST: const char ** */
  NBDKIT_PARAM_BOOL,       /* DEST: bool * */
  NBDKIT_PARAM_INT,        /* DEST: int64_t * */
  NBDKIT_PARAM_SIZE,       /* DEST: int64_t *; "1G", "512k" */
  NBDKIT_PARAM_ENUM,       /* DEST: const char **; one of CHOICES */
  NBDKIT_PARAM_FILE,       /* DEST: const char **; must exist */
  NBDKIT_PARAM_DIRECTORY,  /* DEST: const char **; must be a directory */
  NBDKIT_PARAM_PASSWORD,   /* DEST: const char **; as nbdkit_read_password */
  NBDKIT_PARAM_LIST,       /* DEST: NULL; repeatable, each value to config */
};

#define NBDKIT_PARAM_REQUIRED (1 << 0) /* must be given */
#define NBDKIT_PARAM_MULTIPLE (1 << 1) /* may be given more than once */

struct nbdkit_param {
  const char *name; /* NULL ends the array */
  enum nbdkit_param_type type;
  unsigned flags;            /* NBDKIT_PARAM_REQUIRED, ..._MULTIPLE */
  const char *default_value; /* applied when not given; NULL: none */
  const char *doc;           /* one line for --help */
  const char *choices;       /* enum: "a|b|c" */
  void *dest;                /* see the types above; may be NULL */
};

/* Block sizes (API 3).  All zero means no constraint.  The server
 * rejects requests that break them before the plugin sees them.
 */
struct nbdkit_block_size {
  uint32_t minimum;         /* power of 2, 1 .. 64K */
  uint32_t preferred;       /* power of 2, >= minimum, 512 .. 32M */
  uint32_t maximum;         /* largest read or write, multiple of minimum */
  uint64_t maximum_virtual; /* largest trim, zero, cache or block status */
  int client_requested;     /* input: the client asked for block sizes */
  /* Set to announce the sizes without the server refusing requests
   * that break them (they reach the layer, which copes).
   */
  int advisory;
};

/* Read results beyond plain data (API 3), given to pread.
 *
 * nbdkit_read_hole: the range [OFFSET, OFFSET+LENGTH) of the request
 * reads as zeroes; the plugin need not fill the buffer there.  With
 * structured replies the server sends it as a hole.
 *
 * nbdkit_read_lend: the data of [OFFSET, OFFSET+LENGTH) is at DATA
 * rather than in the buffer.  The server sends straight from DATA and
 * then calls RELEASE(OPAQUE) (if not NULL) on the same thread, before
 * that thread calls the plugin again.  The plugin must keep DATA
 * unchanged until then.  The server may instead copy DATA into the
 * buffer at once and release it immediately.
 *
 * nbdkit_read_error_at: pread failed (returns -1) at OFFSET; the bytes
 * before OFFSET are valid and are sent to the client before the error.
 *
 * A pread that answers the whole request with holes and loans should
 * leave BUF alone: the server counts on finding it as it was.
 *
 * OFFSET is an offset in the disk, inside the request.
 */
struct nbdkit_read;
extern int nbdkit_read_hole (struct nbdkit_read *rd, uint64_t offset,
                             uint64_t length);
extern int nbdkit_read_lend (struct nbdkit_read *rd, uint64_t offset,
                             const void *data, uint64_t length,
                             void (*release) (void *opaque), void *opaque);
extern int nbdkit_read_error_at (struct nbdkit_read *rd, uint64_t offset);

/* For a filter that passed RD down to nbdkit_next_pread and decides
 * only afterwards whether to answer with what came up (a language
 * host, whose script may still read BUF or change it):
 * nbdkit_read_fill writes into BUF the bytes that the holes and loans
 * recorded in RD so far stand for, keeping them, so the reply still
 * sends them as holes and from the loans; nbdkit_read_forget drops
 * them (returning the loans), so that BUF alone answers.
 */
extern void nbdkit_read_fill (struct nbdkit_read *rd);
extern void nbdkit_read_forget (struct nbdkit_read *rd);

#ifdef __cplusplus
}
#endif

#endif /* NBDKIT_COMMON_H */
