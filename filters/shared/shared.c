/* shared.c: serve every client from one context of the plugin.
 *
 * The first client to connect opens the shared context (with its
 * export name and read-only flag); every later client's requests go to
 * that same context, until the server exits.  A plugin that keeps
 * state per context (one remote session, one decompressor, one
 * socket) then has one of them however many clients there are, and all
 * clients see each other's writes at once (multi-conn is offered).
 *
 * Calls into the shared context are serialized by a mutex here unless
 * the server runs every layer in parallel, so a plugin asking for
 * serialize_requests sees one request at a time on its one context
 * while clients, each on its own connection, run side by side.
 *
 * Limits, from the server (see filters/README.md): the server still
 * opens the layers below once per client, beside the shared context,
 * though this filter never uses those; and since the server runs with
 * the most serializing thread model of all layers, a plugin asking for
 * serialize_connections still keeps clients waiting for each other.
 */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-filter.h>

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER;
static nbdkit_next *shared;
static char *shared_export;
static bool serialize = true;

static int
shared_get_ready (int thread_model)
{
  /* Parallel means every layer below is parallel too. */
  serialize = thread_model != NBDKIT_THREAD_MODEL_PARALLEL;
  return 0;
}

static void
shared_cleanup (nbdkit_backend *next)
{
  if (shared)
    nbdkit_next_context_close (shared);
  shared = NULL;
  free (shared_export);
  shared_export = NULL;
}

static void *
shared_open (nbdkit_context *ctx, int readonly, const char *exportname,
             int is_tls)
{
  static int token;
  void *h = &token;

  pthread_mutex_lock (&open_lock);
  if (shared == NULL) {
    shared = nbdkit_next_context_open (nbdkit_context_get_backend (ctx),
                                       readonly, exportname);
    if (shared == NULL || (shared_export = strdup (exportname)) == NULL) {
      nbdkit_error ("shared: cannot open the shared context");
      if (shared)
        nbdkit_next_context_close (shared);
      shared = NULL;
      h = NULL;
    }
  } else if (strcmp (exportname, shared_export) != 0) {
    nbdkit_error ("shared: export \"%s\" is shared by every client; \"%s\""
                  " cannot be opened too",
                  shared_export, exportname);
    h = NULL;
  }
  pthread_mutex_unlock (&open_lock);
  return h;
}

#define LOCK()                                                                 \
  if (serialize)                                                               \
  pthread_mutex_lock (&call_lock)
#define UNLOCK()                                                               \
  if (serialize)                                                               \
  pthread_mutex_unlock (&call_lock)

/* Capabilities are the shared context's: it is the one that serves. */
#define CAP(fn)                                                                \
  static int shared_##fn (nbdkit_next *next, void *handle)                     \
  {                                                                            \
    int r;                                                                     \
    LOCK ();                                                                   \
    r = nbdkit_next_##fn (shared);                                             \
    UNLOCK ();                                                                 \
    return r;                                                                  \
  }
CAP (can_write)
CAP (can_flush)
CAP (is_rotational)
CAP (can_trim)
CAP (can_zero)
CAP (can_fast_zero)
CAP (can_fua)
CAP (can_extents)
CAP (can_cache)
#undef CAP

static int64_t
shared_get_size (nbdkit_next *next, void *handle)
{
  int64_t r;
  LOCK ();
  r = nbdkit_next_get_size (shared);
  UNLOCK ();
  return r;
}

static int
shared_block_size (nbdkit_next *next, void *handle,
                   struct nbdkit_block_size *bs)
{
  int r;
  LOCK ();
  r = nbdkit_next_block_size (shared, bs);
  UNLOCK ();
  return r;
}

/* One context: a write is seen by every client at once. */
static int
shared_can_multi_conn (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
shared_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
              uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  int r;
  LOCK ();
  /* No RD: a loan from the shared context must not outlive the lock. */
  r = nbdkit_next_pread (shared, buf, count, offset, flags,
                         serialize ? NULL : rd, err);
  UNLOCK ();
  return r;
}

static int
shared_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  int r;
  LOCK ();
  r = nbdkit_next_pwrite (shared, buf, count, offset, flags, err);
  UNLOCK ();
  return r;
}

static int
shared_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  int r;
  LOCK ();
  r = nbdkit_next_flush (shared, flags, err);
  UNLOCK ();
  return r;
}

#define RANGE(fn)                                                              \
  static int shared_##fn (nbdkit_next *next, void *handle, uint64_t count,     \
                          uint64_t offset, uint32_t flags, int *err)           \
  {                                                                            \
    int r;                                                                     \
    LOCK ();                                                                   \
    r = nbdkit_next_##fn (shared, count, offset, flags, err);                  \
    UNLOCK ();                                                                 \
    return r;                                                                  \
  }
RANGE (trim)
RANGE (zero)
RANGE (cache)
#undef RANGE

static int
shared_extents (nbdkit_next *next, void *handle, uint64_t count,
                uint64_t offset, uint32_t flags, struct nbdkit_extents *e,
                int *err)
{
  int r;
  LOCK ();
  r = nbdkit_next_extents (shared, count, offset, flags, e, err);
  UNLOCK ();
  return r;
}

static struct nbdkit_filter filter = {
  .name = "shared",
  .longname = "nbdkit shared filter",
  .description = "serve every client from one shared plugin context",
  .get_ready = shared_get_ready,
  .cleanup = shared_cleanup,
  .open = shared_open,
  .get_size = shared_get_size,
  .block_size = shared_block_size,
  .can_write = shared_can_write,
  .can_flush = shared_can_flush,
  .is_rotational = shared_is_rotational,
  .can_trim = shared_can_trim,
  .can_zero = shared_can_zero,
  .can_fast_zero = shared_can_fast_zero,
  .can_fua = shared_can_fua,
  .can_multi_conn = shared_can_multi_conn,
  .can_extents = shared_can_extents,
  .can_cache = shared_can_cache,
  .pread = shared_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = shared_pwrite,
  .flush = shared_flush,
  .trim = shared_trim,
  .zero = shared_zero,
  .extents = shared_extents,
  .cache = shared_cache,
};

NBDKIT_REGISTER_FILTER (filter)
