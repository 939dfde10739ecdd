/* readahead.c: the readahead filter, which reads ahead of sequential
 * clients.
 *
 *   nbdkit --filter=readahead PLUGIN
 *
 * Each connection gets a background thread with its own context on the
 * plugin (nbdkit_next_context_open).  When the client reads where its
 * last read ended, the thread is asked to fetch the window after it
 * into a buffer; the window doubles with each sequential read, from
 * 64K up to 8M, and falls back to 64K on a random one.  Reads that the
 * buffer holds are answered from it; a read that falls inside the
 * fetch in progress waits for it.  A new request overlapping one not
 * yet started is merged with it, and the part already buffered or
 * being fetched is never asked for again.
 *
 * Writes, trims and zeroes, on any connection, bump a generation
 * counter before and after they run: a buffer or a fetch from another
 * generation is never used, so no client reads stale data.
 *
 * A plugin (or the layers below) that can cache natively is not read
 * ahead of but asked to prefetch instead, as nbdkit's filter does:
 * every read goes through, and the thread then sends a cache request
 * for the window after it.  The window starts at 32K, doubles while
 * the client reads past what was prefetched, stays while it moves
 * forward, and starts again at 32K when it does not.
 *
 * Serializing plugins: the server serializes the client's requests,
 * but the background context is not one of them.  When the thread
 * model is serialize_requests or stricter, every call this filter
 * makes to the plugin holds one filter-wide mutex, so the plugin still
 * never sees two at once.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

#define MIN_WINDOW (64 * 1024)
#define MAX_WINDOW (8 * 1024 * 1024)
/* The buffer keeps at most this much already read behind the client. */
#define MAX_BUFFER (2 * MAX_WINDOW)
#define MIN_PREFETCH (32 * 1024)
#define MAX_PREFETCH (4 * 1024 * 1024)
/* Prefetches asked for and not yet sent; the oldest go when full. */
#define PREFETCH_QUEUE 16

static atomic_uint_fast64_t generation;
static bool serialize;
static pthread_mutex_t plugin_lock = PTHREAD_MUTEX_INITIALIZER;

#define PLUGIN_CALL(expr)                                                      \
  ({                                                                           \
    if (serialize)                                                             \
      pthread_mutex_lock (&plugin_lock);                                       \
    int r_ = (expr);                                                           \
    if (serialize)                                                             \
      pthread_mutex_unlock (&plugin_lock);                                     \
    r_;                                                                        \
  })

struct handle {
  pthread_mutex_t m;
  pthread_cond_t cv; /* work for the thread, or a fetch done */
  pthread_t thread;
  bool started, quit;
  nbdkit_backend *backend;
  char *exportname;
  nbdkit_next *bg; /* the thread's own context */
  uint64_t size;

  char *buf;                 /* data of [boff, boff+blen) ... */
  uint64_t boff, blen, bgen; /* ... as of generation bgen */
  bool want;                 /* a fetch asked for, not started */
  uint64_t woff, wlen;
  bool busy; /* the fetch in progress */
  uint64_t foff, flen;
  uint64_t last_end, window; /* the client's pattern */

  bool prefetch; /* the layer below caches: send it cache */
  struct {
    uint64_t off, len;
  } queue[PREFETCH_QUEUE];
  size_t qhead, qlen;
  uint64_t last_off, ra_end; /* the last read, the end of its prefetch */
};

static const char *
readahead_config_help (void)
{
  return "Reads ahead of sequential clients in a background thread.";
}

static int
readahead_get_ready (int thread_model)
{
  serialize = thread_model <= NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
  return 0;
}

static void *
readahead_open (nbdkit_context *ctx, int readonly, const char *exportname,
                int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL || (h->exportname = strdup (exportname)) == NULL) {
    nbdkit_error ("malloc: %m");
    free (h);
    return NULL;
  }
  h->backend = nbdkit_context_get_backend (ctx);
  h->window = MIN_WINDOW;
  pthread_mutex_init (&h->m, NULL);
  pthread_cond_init (&h->cv, NULL);
  return h;
}

/* Install fetched data [OFF, OFF+LEN) in TMP as the buffer, keeping
 * what the old buffer holds from the client's position on when the
 * two join up.  Called with the mutex held.
 */
static void
install (struct handle *h, char *tmp, uint64_t off, uint64_t len, uint64_t gen)
{
  if (h->buf && h->bgen == gen && h->boff + h->blen == off) {
    uint64_t keep_from = h->last_end > h->boff ? h->last_end : h->boff;
    if (keep_from > h->boff + h->blen)
      keep_from = h->boff + h->blen;
    if (off + len - keep_from > MAX_BUFFER)
      keep_from = off + len - MAX_BUFFER < off ? off + len - MAX_BUFFER : off;
    uint64_t old = off - keep_from;
    char *nb = malloc (old + len);
    if (nb) {
      memcpy (nb, h->buf + (keep_from - h->boff), old);
      memcpy (nb + old, tmp, len);
      free (tmp);
      free (h->buf);
      h->buf = nb;
      h->boff = keep_from;
      h->blen = old + len;
      return;
    }
  }
  free (h->buf);
  h->buf = tmp;
  h->boff = off;
  h->blen = len;
  h->bgen = gen;
}

/* The thread in prefetch mode: send the queued cache requests. */
static void
prefetcher (struct handle *h)
{
  pthread_mutex_lock (&h->m);
  for (;;) {
    while (!h->quit && h->qlen == 0)
      pthread_cond_wait (&h->cv, &h->m);
    if (h->quit)
      break;
    uint64_t off = h->queue[h->qhead].off, len = h->queue[h->qhead].len;
    h->qhead = (h->qhead + 1) % PREFETCH_QUEUE;
    h->qlen--;
    pthread_mutex_unlock (&h->m);

    int err = 0;
    if (h->bg == NULL)
      h->bg = nbdkit_next_context_open (h->backend, 1, h->exportname);
    /* A failed prefetch only costs the speed-up. */
    if (h->bg)
      PLUGIN_CALL (nbdkit_next_cache (h->bg, len, off, 0, &err));

    pthread_mutex_lock (&h->m);
  }
  pthread_mutex_unlock (&h->m);
}

static void *
fetcher (void *arg)
{
  struct handle *h = arg;

  if (h->prefetch) {
    prefetcher (h);
    return NULL;
  }
  pthread_mutex_lock (&h->m);
  for (;;) {
    while (!h->quit && !h->want)
      pthread_cond_wait (&h->cv, &h->m);
    if (h->quit)
      break;
    uint64_t off = h->woff, len = h->wlen;
    uint64_t gen = atomic_load (&generation);
    h->want = false;
    h->busy = true;
    h->foff = off;
    h->flen = len;
    pthread_mutex_unlock (&h->m);

    char *tmp = malloc (len);
    int err = 0, r = -1;
    if (h->bg == NULL)
      h->bg = nbdkit_next_context_open (h->backend, 1, h->exportname);
    if (tmp && h->bg)
      r = PLUGIN_CALL (nbdkit_next_pread (h->bg, tmp, len, off, 0, NULL, &err));

    pthread_mutex_lock (&h->m);
    h->busy = false;
    if (r == 0 && gen == atomic_load (&generation))
      install (h, tmp, off, len, gen);
    else
      free (tmp);
    pthread_cond_broadcast (&h->cv);
  }
  pthread_mutex_unlock (&h->m);
  return NULL;
}

static int
readahead_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  int64_t size = nbdkit_next_get_size (next);
  int e;

  if (size == -1)
    return -1;
  h->size = size;
  h->prefetch = nbdkit_next_can_cache (next) == NBDKIT_CACHE_NATIVE;
  if (h->prefetch)
    h->window = MIN_PREFETCH;
  e = pthread_create (&h->thread, NULL, fetcher, h);
  if (e) {
    errno = e;
    nbdkit_error ("pthread_create: %m");
    return -1;
  }
  h->started = true;
  return 0;
}

static void
readahead_close (void *handle)
{
  struct handle *h = handle;

  if (h->started) {
    pthread_mutex_lock (&h->m);
    h->quit = true;
    pthread_cond_broadcast (&h->cv);
    pthread_mutex_unlock (&h->m);
    pthread_join (h->thread, NULL);
  }
  if (h->bg)
    nbdkit_next_context_close (h->bg);
  pthread_mutex_destroy (&h->m);
  pthread_cond_destroy (&h->cv);
  free (h->buf);
  free (h->exportname);
  free (h);
}

/* Ask for [START, END) minus what is buffered or being fetched,
 * merged with a request not yet started.  Mutex held.
 */
static void
schedule (struct handle *h, uint64_t start, uint64_t end)
{
  uint64_t gen = atomic_load (&generation);

  if (end > h->size)
    end = h->size;
  if (h->buf && h->bgen == gen && h->boff <= start && start < h->boff + h->blen)
    start = h->boff + h->blen;
  if (h->busy && h->foff <= start && start < h->foff + h->flen)
    start = h->foff + h->flen;
  if (start >= end)
    return;
  if (h->want && start <= h->woff + h->wlen && h->woff <= end) {
    uint64_t s = h->woff < start ? h->woff : start;
    uint64_t e = h->woff + h->wlen > end ? h->woff + h->wlen : end;
    start = s;
    end = e;
  }
  h->want = true;
  h->woff = start;
  h->wlen = end - start;
  pthread_cond_broadcast (&h->cv);
}

static int
readahead_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
                 uint64_t offset, uint32_t flags, struct nbdkit_read *rd,
                 int *err)
{
  struct handle *h = handle;
  uint64_t end = offset + count;
  bool hit = false;

  if (h->prefetch) {
    int r = PLUGIN_CALL (
        nbdkit_next_pread (next, buf, count, offset, flags, rd, err));
    pthread_mutex_lock (&h->m);
    if (offset > h->ra_end)
      h->window = h->window * 2 > MAX_PREFETCH ? MAX_PREFETCH : h->window * 2;
    else if (offset <= h->last_off)
      h->window = MIN_PREFETCH;
    h->last_off = offset;
    if (end < h->size) {
      uint64_t len = h->size - end < h->window ? h->size - end : h->window;
      size_t tail = (h->qhead + h->qlen) % PREFETCH_QUEUE;
      if (h->qlen == PREFETCH_QUEUE) {
        h->qhead = (h->qhead + 1) % PREFETCH_QUEUE;
        h->qlen--;
      }
      h->queue[tail].off = end;
      h->queue[tail].len = len;
      h->qlen++;
      h->ra_end = end + len;
      pthread_cond_broadcast (&h->cv);
    }
    pthread_mutex_unlock (&h->m);
    return r;
  }

  pthread_mutex_lock (&h->m);
  for (;;) {
    uint64_t gen = atomic_load (&generation);
    if (h->buf && h->bgen == gen && h->boff <= offset
        && end <= h->boff + h->blen) {
      memcpy (buf, h->buf + (offset - h->boff), count);
      hit = true;
      break;
    }
    /* The fetch in progress will have it: wait rather than read twice. */
    if (h->busy && h->foff <= offset && end <= h->foff + h->flen)
      pthread_cond_wait (&h->cv, &h->m);
    else
      break;
  }
  if (offset == h->last_end) {
    h->window *= 2;
    if (h->window > MAX_WINDOW)
      h->window = MAX_WINDOW;
    schedule (h, end, end + h->window);
  } else
    h->window = MIN_WINDOW;
  h->last_end = end;
  pthread_mutex_unlock (&h->m);

  if (hit)
    return 0;
  return PLUGIN_CALL (
      nbdkit_next_pread (next, buf, count, offset, flags, rd, err));
}

/* Anything that changes the disk makes every buffer stale. */
#define CHANGE(expr)                                                           \
  ({                                                                           \
    atomic_fetch_add (&generation, 1);                                         \
    int r_ = PLUGIN_CALL (expr);                                               \
    atomic_fetch_add (&generation, 1);                                         \
    r_;                                                                        \
  })

static int
readahead_pwrite (nbdkit_next *next, void *handle, const void *buf,
                  uint64_t count, uint64_t offset, uint32_t flags, int *err)
{
  return CHANGE (nbdkit_next_pwrite (next, buf, count, offset, flags, err));
}

static int
readahead_trim (nbdkit_next *next, void *handle, uint64_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  return CHANGE (nbdkit_next_trim (next, count, offset, flags, err));
}

static int
readahead_zero (nbdkit_next *next, void *handle, uint64_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  return CHANGE (nbdkit_next_zero (next, count, offset, flags, err));
}

static int
readahead_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  return PLUGIN_CALL (nbdkit_next_flush (next, flags, err));
}

static int
readahead_cache (nbdkit_next *next, void *handle, uint64_t count,
                 uint64_t offset, uint32_t flags, int *err)
{
  return PLUGIN_CALL (nbdkit_next_cache (next, count, offset, flags, err));
}

static int
readahead_extents (nbdkit_next *next, void *handle, uint64_t count,
                   uint64_t offset, uint32_t flags, struct nbdkit_extents *e,
                   int *err)
{
  return PLUGIN_CALL (nbdkit_next_extents (next, count, offset, flags, e, err));
}

static struct nbdkit_filter filter = {
  .name = "readahead",
  .longname = "nbdkit readahead filter",
  .description = "read ahead of sequential clients",
  .config_help = readahead_config_help,
  .get_ready = readahead_get_ready,
  .open = readahead_open,
  .close = readahead_close,
  .prepare = readahead_prepare,
  .pread = readahead_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = readahead_pwrite,
  .trim = readahead_trim,
  .zero = readahead_zero,
  .flush = readahead_flush,
  .cache = readahead_cache,
  .extents = readahead_extents,
};

NBDKIT_REGISTER_FILTER (filter)
