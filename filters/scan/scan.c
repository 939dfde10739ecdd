/* scan.c: the scan filter, which prefetches the whole disk in the
 * background while clients are connected.
 *
 *   nbdkit --filter=scan PLUGIN [scan-ahead=true] [scan-clock=true]
 *          [scan-forever=false] [scan-size=2M]
 *
 * One thread for the server walks the default export from start to
 * end, sending CACHE requests of SCAN-SIZE bytes on a context of its
 * own, so that a plugin (or a cache or cow filter below this one) has
 * the data at hand before the client asks.  It runs only while at
 * least one client is connected to the default export.
 *
 *   scan-ahead    a client read beyond the scan moves the scan forward
 *                 to just after it (the client would overtake it)
 *   scan-clock    the position survives all clients leaving: the next
 *                 client resumes there (false: start again at 0)
 *   scan-forever  start again at 0 after the end, as long as clients
 *                 are connected (false: one pass)
 *
 * Nothing is scanned when the server's thread model is not parallel
 * (the prefetches would queue behind the client's requests) or when the
 * layer below cannot cache: both are reported.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

static bool scan_ahead = true, scan_clock = true, scan_forever = false;
static int64_t scan_size = 2 * 1024 * 1024;

static const struct nbdkit_param params[]
    = { { .name = "scan-ahead",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "true",
          .doc = "skip forward past client reads (default true)",
          .dest = &scan_ahead },
        { .name = "scan-clock",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "true",
          .doc = "resume where the last client left (default true)",
          .dest = &scan_clock },
        { .name = "scan-forever",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "false",
          .doc = "scan again and again while clients are connected",
          .dest = &scan_forever },
        { .name = "scan-size",
          .type = NBDKIT_PARAM_SIZE,
          .default_value = "2M",
          .doc = "prefetch request size, a power of 2 (default 2M)",
          .dest = &scan_size },
        { .name = NULL } };

/* Shared with the scanning thread, under LOCK. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool enabled = true;   /* false: never scan (reported why) */
static bool running;          /* the thread exists */
static bool quit;             /* the server is ending */
static bool finished;         /* one pass done (not scan-forever) */
static unsigned clients;      /* connected to the default export */
static char *exportname;      /* the default export's name, once known */
static uint64_t position;     /* next offset to prefetch */
static uint64_t client_end;   /* the end of the furthest client read */
static nbdkit_backend *below; /* for the thread's own context */
static pthread_t thread;

static int
scan_config_complete (void)
{
  if (scan_size < 512 || scan_size > 1024 * 1024 * 1024
      || (scan_size & (scan_size - 1))) {
    nbdkit_error ("scan-size=%" PRIi64 ": expected a power of 2 from 512 "
                  "to 1G",
                  scan_size);
    return -1;
  }
  return 0;
}

static int
scan_get_ready (int thread_model)
{
  if (thread_model != NBDKIT_THREAD_MODEL_PARALLEL) {
    nbdkit_error ("warning: the thread model is not parallel: "
                  "the filter will not prefetch");
    enabled = false;
  }
  return 0;
}

/* Wait until there is something to do; true to go on, false to quit.
 * Called with the lock held.
 */
static bool
wait_for_work (nbdkit_next **ctx)
{
  while (!quit && (clients == 0 || !enabled || finished)) {
    if (*ctx) {
      /* Nobody left: let go of the layer below until someone comes. */
      nbdkit_next *c = *ctx;
      *ctx = NULL;
      pthread_mutex_unlock (&lock);
      nbdkit_next_context_close (c);
      pthread_mutex_lock (&lock);
      continue;
    }
    pthread_cond_wait (&cond, &lock);
  }
  return !quit;
}

static void *
scanner (void *arg)
{
  nbdkit_next *ctx = NULL;
  uint64_t size = 0;

  pthread_mutex_lock (&lock);
  while (wait_for_work (&ctx)) {
    if (ctx == NULL) {
      char *name = strdup (exportname ? exportname : "");
      int64_t sz = -1;
      int cache = NBDKIT_CACHE_NONE;

      pthread_mutex_unlock (&lock);
      if (name)
        ctx = nbdkit_next_context_open (below, 1, name);
      free (name);
      if (ctx) {
        sz = nbdkit_next_get_size (ctx);
        cache = nbdkit_next_can_cache (ctx);
      }
      pthread_mutex_lock (&lock);
      if (ctx == NULL || sz == -1 || cache <= NBDKIT_CACHE_NONE) {
        nbdkit_error ("scan: warning: %s: the filter will not prefetch",
                      ctx == NULL || sz == -1
                          ? "cannot open the layer below"
                          : "the layer below cannot cache (put "
                            "--filter=cache after --filter=scan)");
        enabled = false;
        if (ctx) {
          pthread_mutex_unlock (&lock);
          nbdkit_next_context_close (ctx);
          pthread_mutex_lock (&lock);
          ctx = NULL;
        }
        continue;
      }
      size = sz;
    }

    if (scan_ahead && client_end > position) {
      /* Skip to the block after the client's furthest read. */
      uint64_t s = (uint64_t)scan_size;
      position = (client_end + s - 1) / s * s;
    }
    if (position >= size) {
      if (!scan_forever) {
        nbdkit_debug ("scan: the whole disk was prefetched");
        finished = true;
        continue;
      }
      position = 0;
      client_end = 0;
    }

    uint64_t offset = position;
    uint64_t n = size - offset < (uint64_t)scan_size ? size - offset
                                                     : (uint64_t)scan_size;
    int err = 0;
    position += n;
    pthread_mutex_unlock (&lock);
    if (nbdkit_next_cache (ctx, n, offset, 0, &err) == -1)
      nbdkit_debug ("scan: prefetch at %" PRIu64 " failed: %s", offset,
                    strerror (err));
    pthread_mutex_lock (&lock);
  }
  pthread_mutex_unlock (&lock);
  if (ctx)
    nbdkit_next_context_close (ctx);
  return NULL;
}

static int
scan_after_fork (nbdkit_backend *next)
{
  int e;

  below = next;
  if (!enabled)
    return 0;
  e = pthread_create (&thread, NULL, scanner, NULL);
  if (e) {
    errno = e;
    nbdkit_error ("scan: pthread_create: %m");
    return -1;
  }
  running = true;
  return 0;
}

static void
scan_cleanup (nbdkit_backend *next)
{
  pthread_mutex_lock (&lock);
  quit = true;
  pthread_cond_broadcast (&cond);
  pthread_mutex_unlock (&lock);
  if (running)
    pthread_join (thread, NULL);
  running = false;
}

static void
scan_unload (void)
{
  free (exportname);
}

struct handle {
  bool is_default; /* counted in CLIENTS once prepared */
  bool counted;
};

static void *
scan_open (nbdkit_context *ctx, int readonly, const char *name, int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);
  const char *def;

  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  def = nbdkit_backend_default_export (nbdkit_context_get_backend (ctx),
                                       readonly, is_tls);
  h->is_default = def && strcmp (def, name) == 0;
  if (h->is_default) {
    pthread_mutex_lock (&lock);
    if (exportname == NULL)
      exportname = strdup (name);
    pthread_mutex_unlock (&lock);
  } else
    nbdkit_debug ("scan: export \"%s\" is not the default: not scanned", name);
  return h;
}

static int
scan_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;

  if (!h->is_default)
    return 0;
  pthread_mutex_lock (&lock);
  h->counted = true;
  clients++;
  pthread_cond_broadcast (&cond);
  pthread_mutex_unlock (&lock);
  return 0;
}

static void
scan_close (void *handle)
{
  struct handle *h = handle;

  if (h->counted) {
    pthread_mutex_lock (&lock);
    if (--clients == 0 && !scan_clock) {
      /* The next client starts the scan again from the beginning. */
      position = 0;
      client_end = 0;
      finished = false;
    }
    pthread_cond_broadcast (&cond);
    pthread_mutex_unlock (&lock);
  }
  free (h);
}

static int
scan_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
            uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct handle *h = handle;

  if (h->counted && scan_ahead) {
    pthread_mutex_lock (&lock);
    if (offset + count > client_end)
      client_end = offset + count;
    pthread_mutex_unlock (&lock);
  }
  return nbdkit_next_pread (next, buf, count, offset, flags, rd, err);
}

static struct nbdkit_filter filter = {
  .name = "scan",
  .longname = "nbdkit scan filter",
  .description = "prefetch the whole disk in the background",
  .params = params,
  .config_complete = scan_config_complete,
  .get_ready = scan_get_ready,
  .after_fork = scan_after_fork,
  .cleanup = scan_cleanup,
  .unload = scan_unload,
  .open = scan_open,
  .prepare = scan_prepare,
  .close = scan_close,
  .pread = scan_pread,
  .pread_fills_buffer = 1, /* pread passes through */
};

NBDKIT_REGISTER_FILTER (filter)
