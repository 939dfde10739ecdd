/* asyncplug.c: a RAM disk whose data callbacks complete asynchronously,
 * for the tests of asynchronous completion.  Each request is queued
 * with a random delay and carried out, then completed, by the plugin's
 * own threads: out of order, and from threads the server does not
 * know.  Loaded by path; never installed.
 *
 *   nbdkit build/tests/plugins/nbdkit-asyncplug-plugin.so [size=1M]
 *          [delay=MS] [threads=N] [sync=yes] [inline=yes] [double=yes]
 *          [fail-read-at=OFFSET] [fail-write-at=OFFSET]
 *          [fail-start-at=OFFSET] [zero=native|eopnotsupp]
 *          [holes=yes|no] [lend=yes]
 *          [thread-model=parallel|serialize_retirement|...] [stats=FILE]
 *
 * delay=MS: each request waits a random 0..MS ms (default 0).
 * threads=N: completing threads (default 2).
 * sync=yes: the plugin also has the synchronous callbacks (counted as
 *   sync_calls); without it, it has only the async ones.
 * inline=yes: every other request is completed inside its callback.
 * double=yes: each request is completed twice; the second call must
 *   be refused (counted as double_refused, else double_accepted).
 * fail-read-at=OFFSET: a read covering OFFSET returns the data before
 *   it, then EIO at OFFSET (nbdkit_read_error_at).
 * fail-write-at=OFFSET: a write covering OFFSET fails with ENOSPC.
 * fail-start-at=OFFSET: a request starting at OFFSET fails at once
 *   (the callback returns -1) with EPERM.
 * zero=eopnotsupp: zero completes with EOPNOTSUPP (the server then
 *   writes zeroes).
 * Blocks of 4 KiB never written read as holes and are reported so by
 * extents (hole|zero); written ones as data.  holes=no: a read leaves
 * the buffer alone there instead (the server must send zeroes).
 * lend=yes: written blocks are lent (nbdkit_read_lend) from the disk
 * rather than copied; counted as lends and releases (a test must not
 * write a block while a read of it is in flight).
 *
 * stats=FILE is rewritten at each close and at unload: max_outstanding
 * (requests started and not completed, at most at once),
 * close_outstanding (requests outstanding on a handle when it was
 * closed: must be 0), async_calls, sync_calls, double_refused,
 * double_accepted, thread_model, closes, lends, releases.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#define BLOCK 4096
#define NONE UINT64_MAX

static int64_t size = 1024 * 1024;
static int64_t delay_ms, nthreads = 2;
static bool want_sync, want_inline, want_double, zero_eopnotsupp;
static bool holes = true, lend;
static uint64_t fail_read_at = NONE, fail_write_at = NONE;
static uint64_t fail_start_at = NONE;
static const char *model_name, *stats_file;
static int chosen_model;

static char *disk;
static bool *written; /* per block */
static pthread_mutex_t disk_lock = PTHREAD_MUTEX_INITIALIZER;

static atomic_long outstanding, max_outstanding, close_outstanding, closes;
static atomic_long async_calls, sync_calls, double_refused, double_accepted;
static atomic_long lends, releases;

/* A queued request. */
struct job {
  struct job *next;
  uint64_t due; /* monotonic ns */
  int type;     /* 'r', 'w', 'f', 't', 'z', 'e' */
  struct handle *h;
  void *buf;
  uint64_t count, offset;
  uint32_t flags;
  struct nbdkit_read *rd;
  struct nbdkit_extents *e;
  struct nbdkit_completion *c;
};

struct handle {
  atomic_long outstanding;
};

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static struct job *queue; /* by due time */
static bool stopping;
static pthread_t *threads;
static int started;
static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static unsigned seed = 1;

static uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
parse_offset (const char *key, const char *value, uint64_t *dest)
{
  int64_t v = nbdkit_parse_size (value);
  if (v == -1)
    return -1;
  *dest = v;
  return 0;
}

static int
parse_bool (const char *value, bool *dest)
{
  int r = nbdkit_parse_bool (value);
  if (r == -1)
    return -1;
  *dest = r;
  return 0;
}

static int
asyncplug_config (const char *key, const char *value)
{
  if (strcmp (key, "size") == 0)
    return (size = nbdkit_parse_size (value)) == -1 ? -1 : 0;
  if (strcmp (key, "delay") == 0)
    return nbdkit_parse_int64_t ("delay", value, &delay_ms);
  if (strcmp (key, "threads") == 0)
    return nbdkit_parse_int64_t ("threads", value, &nthreads);
  if (strcmp (key, "sync") == 0)
    return parse_bool (value, &want_sync);
  if (strcmp (key, "inline") == 0)
    return parse_bool (value, &want_inline);
  if (strcmp (key, "double") == 0)
    return parse_bool (value, &want_double);
  if (strcmp (key, "holes") == 0)
    return parse_bool (value, &holes);
  if (strcmp (key, "lend") == 0)
    return parse_bool (value, &lend);
  if (strcmp (key, "fail-read-at") == 0)
    return parse_offset (key, value, &fail_read_at);
  if (strcmp (key, "fail-write-at") == 0)
    return parse_offset (key, value, &fail_write_at);
  if (strcmp (key, "fail-start-at") == 0)
    return parse_offset (key, value, &fail_start_at);
  if (strcmp (key, "zero") == 0) {
    zero_eopnotsupp = strcmp (value, "eopnotsupp") == 0;
    return 0;
  }
  if (strcmp (key, "thread-model") == 0) {
    model_name = value;
    return 0;
  }
  if (strcmp (key, "stats") == 0) {
    stats_file = value;
    return 0;
  }
  nbdkit_error ("unknown parameter %s", key);
  return -1;
}

static void
write_stats (void)
{
  FILE *fp;

  if (stats_file == NULL || (fp = fopen (stats_file, "w")) == NULL)
    return;
  fprintf (fp,
           "max_outstanding=%ld\nclose_outstanding=%ld\nasync_calls=%ld\n"
           "sync_calls=%ld\ndouble_refused=%ld\ndouble_accepted=%ld\n"
           "thread_model=%d\ncloses=%ld\nlends=%ld\nreleases=%ld\n",
           atomic_load (&max_outstanding), atomic_load (&close_outstanding),
           atomic_load (&async_calls), atomic_load (&sync_calls),
           atomic_load (&double_refused), atomic_load (&double_accepted),
           chosen_model, atomic_load (&closes), atomic_load (&lends),
           atomic_load (&releases));
  fclose (fp);
}

static int asyncplug_pread (void *, void *, uint64_t, uint64_t, uint32_t,
                            struct nbdkit_read *);
static int asyncplug_pwrite (void *, const void *, uint64_t, uint64_t,
                             uint32_t);
static int asyncplug_flush (void *, uint32_t);
static int asyncplug_trim (void *, uint64_t, uint64_t, uint32_t);
static int asyncplug_zero (void *, uint64_t, uint64_t, uint32_t);
static int asyncplug_extents (void *, uint64_t, uint64_t, uint32_t,
                              struct nbdkit_extents *);
static struct nbdkit_plugin plugin;

static int
asyncplug_config_complete (void)
{
  disk = calloc (1, size);
  written = calloc (size / BLOCK + 1, sizeof *written);
  if (disk == NULL || written == NULL) {
    nbdkit_error ("calloc: %m");
    return -1;
  }
  if (nthreads < 1)
    nthreads = 1;
  if (want_sync) {
    plugin.pread = asyncplug_pread;
    plugin.pwrite = asyncplug_pwrite;
    plugin.flush = asyncplug_flush;
    plugin.trim = asyncplug_trim;
    plugin.zero = asyncplug_zero;
    plugin.extents = asyncplug_extents;
  }
  return 0;
}

static int
asyncplug_thread_model (void)
{
  static const struct {
    const char *name;
    int model;
  } models[] = {
    { "serialize_connections", NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS },
    { "serialize_all_requests", NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS },
    { "serialize_requests", NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS },
    { "serialize_retirement", NBDKIT_THREAD_MODEL_SERIALIZE_RETIREMENT },
    { "parallel", NBDKIT_THREAD_MODEL_PARALLEL },
  };
  for (size_t i = 0; model_name && i < sizeof models / sizeof models[0]; i++)
    if (strcmp (model_name, models[i].name) == 0)
      return models[i].model;
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static int
asyncplug_get_ready (int model)
{
  chosen_model = model;
  return 0;
}

static void
released (void *opaque)
{
  atomic_fetch_add (&releases, 1);
}

/* Carry out J on the disk; its errno, or 0. */
static int
run (struct job *j)
{
  int err = 0;
  uint64_t end = j->offset + j->count;

  pthread_mutex_lock (&disk_lock);
  switch (j->type) {
    case 'r':
      if (fail_read_at != NONE && fail_read_at >= j->offset
          && fail_read_at < end) {
        memcpy (j->buf, disk + j->offset, fail_read_at - j->offset);
        nbdkit_read_error_at (j->rd, fail_read_at);
        err = EIO;
        break;
      }
      /* Holes where nothing was ever written, data elsewhere. */
      for (uint64_t off = j->offset; off < end;) {
        uint64_t next = (off / BLOCK + 1) * BLOCK;
        if (next > end)
          next = end;
        if (!written[off / BLOCK]) {
          if (holes && j->rd)
            nbdkit_read_hole (j->rd, off, next - off);
        } else if (lend && j->rd) {
          atomic_fetch_add (&lends, 1);
          nbdkit_read_lend (j->rd, off, disk + off, next - off, released, NULL);
        } else
          memcpy ((char *)j->buf + (off - j->offset), disk + off, next - off);
        off = next;
      }
      break;
    case 'w':
      if (fail_write_at != NONE && fail_write_at >= j->offset
          && fail_write_at < end) {
        err = ENOSPC;
        break;
      }
      memcpy (disk + j->offset, j->buf, j->count);
      for (uint64_t b = j->offset / BLOCK; b * BLOCK < end; b++)
        written[b] = true;
      break;
    case 'z':
      if (zero_eopnotsupp) {
        err = EOPNOTSUPP;
        break;
      }
      /* fall through */
    case 't':
      memset (disk + j->offset, 0, j->count);
      break;
    case 'f':
      break;
    case 'e':
      for (uint64_t off = j->offset; off < end;) {
        uint64_t next = (off / BLOCK + 1) * BLOCK;
        uint32_t type = written[off / BLOCK]
                            ? 0
                            : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
        if (next > end)
          next = end;
        if (nbdkit_add_extent (j->e, off, next - off, type) == -1) {
          err = EIO;
          break;
        }
        off = next;
      }
      break;
  }
  pthread_mutex_unlock (&disk_lock);
  return err;
}

static void
complete (struct job *j, int err)
{
  atomic_fetch_sub (&j->h->outstanding, 1);
  atomic_fetch_sub (&outstanding, 1);
  if (nbdkit_complete (j->c, err) == -1)
    abort (); /* the first completion must be taken */
  if (want_double) {
    if (nbdkit_complete (j->c, 0) == -1)
      atomic_fetch_add (&double_refused, 1);
    else
      atomic_fetch_add (&double_accepted, 1);
  }
  free (j);
}

static void *
completer (void *arg)
{
  pthread_mutex_lock (&q_lock);
  for (;;) {
    while (queue == NULL && !stopping)
      pthread_cond_wait (&q_cond, &q_lock);
    if (queue == NULL)
      break;
    uint64_t now = now_ns ();
    if (queue->due > now) {
      struct timespec ts;
      clock_gettime (CLOCK_REALTIME, &ts);
      uint64_t d = queue->due - now;
      ts.tv_sec += d / 1000000000;
      ts.tv_nsec += d % 1000000000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      pthread_cond_timedwait (&q_cond, &q_lock, &ts);
      continue;
    }
    struct job *j = queue;
    queue = j->next;
    pthread_mutex_unlock (&q_lock);
    complete (j, run (j));
    pthread_mutex_lock (&q_lock);
  }
  pthread_mutex_unlock (&q_lock);
  return NULL;
}

static void
start_threads (void)
{
  threads = calloc (nthreads, sizeof *threads);
  for (int i = 0; threads && i < nthreads; i++)
    if (pthread_create (&threads[i], NULL, completer, NULL) == 0)
      started++;
}

static void
asyncplug_unload (void)
{
  pthread_mutex_lock (&q_lock);
  stopping = true;
  pthread_cond_broadcast (&q_cond);
  pthread_mutex_unlock (&q_lock);
  for (int i = 0; i < started; i++)
    pthread_join (threads[i], NULL);
  write_stats ();
  free (threads);
  free (disk);
  free (written);
}

static void *
asyncplug_open (int readonly, const char *exportname, int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  pthread_once (&start_once, start_threads);
  return h;
}

static void
asyncplug_close (void *handle)
{
  struct handle *h = handle;

  atomic_fetch_add (&close_outstanding, atomic_load (&h->outstanding));
  atomic_fetch_add (&closes, 1);
  write_stats ();
  free (h);
}

static int64_t
asyncplug_get_size (void *handle)
{
  return size;
}

static int
asyncplug_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

/* Queue a request, or complete it here (inline=yes). */
static int
start (void *handle, int type, void *buf, uint64_t count, uint64_t offset,
       uint32_t flags, struct nbdkit_read *rd, struct nbdkit_extents *e,
       struct nbdkit_completion *c)
{
  struct handle *h = handle;
  struct job *j, **p;
  long n;

  atomic_fetch_add (&async_calls, 1);
  if (fail_start_at != NONE && offset == fail_start_at && type != 'f') {
    nbdkit_error ("refusing the request at %" PRIu64, offset);
    nbdkit_set_error (EPERM);
    return -1;
  }
  j = calloc (1, sizeof *j);
  if (j == NULL) {
    nbdkit_error ("calloc: %m");
    return -1;
  }
  *j = (struct job){ .type = type,
                     .h = h,
                     .buf = buf,
                     .count = count,
                     .offset = offset,
                     .flags = flags,
                     .rd = rd,
                     .e = e,
                     .c = c };
  atomic_fetch_add (&h->outstanding, 1);
  n = atomic_fetch_add (&outstanding, 1) + 1;
  for (long m = atomic_load (&max_outstanding); n > m;)
    if (atomic_compare_exchange_weak (&max_outstanding, &m, n))
      break;

  pthread_mutex_lock (&q_lock);
  unsigned r = rand_r (&seed);
  bool now = want_inline && (r & 1);
  if (!now) {
    j->due
        = now_ns () + (delay_ms ? (uint64_t)(r % (delay_ms * 1000)) * 1000 : 0);
    for (p = &queue; *p && (*p)->due <= j->due; p = &(*p)->next)
      ;
    j->next = *p;
    *p = j;
    pthread_cond_signal (&q_cond);
  }
  pthread_mutex_unlock (&q_lock);
  if (now)
    complete (j, run (j));
  return 0;
}

static int
async_pread (void *h, void *buf, uint64_t count, uint64_t offset,
             uint32_t flags, struct nbdkit_read *rd,
             struct nbdkit_completion *c)
{
  return start (h, 'r', buf, count, offset, flags, rd, NULL, c);
}

static int
async_pwrite (void *h, const void *buf, uint64_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_completion *c)
{
  return start (h, 'w', (void *)buf, count, offset, flags, NULL, NULL, c);
}

static int
async_flush (void *h, uint32_t flags, struct nbdkit_completion *c)
{
  return start (h, 'f', NULL, 0, 0, flags, NULL, NULL, c);
}

static int
async_trim (void *h, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_completion *c)
{
  return start (h, 't', NULL, count, offset, flags, NULL, NULL, c);
}

static int
async_zero (void *h, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_completion *c)
{
  return start (h, 'z', NULL, count, offset, flags, NULL, NULL, c);
}

static int
async_extents (void *h, uint64_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_extents *e, struct nbdkit_completion *c)
{
  return start (h, 'e', NULL, count, offset, flags, NULL, e, c);
}

/* The synchronous callbacks (sync=yes): the same, at once. */
static int
sync_run (struct job j)
{
  int err;

  atomic_fetch_add (&sync_calls, 1);
  err = run (&j);
  if (err) {
    nbdkit_error ("request at %" PRIu64 " failed", j.offset);
    nbdkit_set_error (err);
    return -1;
  }
  return 0;
}

static int
asyncplug_pread (void *h, void *buf, uint64_t count, uint64_t offset,
                 uint32_t flags, struct nbdkit_read *rd)
{
  return sync_run ((struct job){
      .type = 'r', .buf = buf, .count = count, .offset = offset, .rd = rd });
}

static int
asyncplug_pwrite (void *h, const void *buf, uint64_t count, uint64_t offset,
                  uint32_t flags)
{
  return sync_run ((struct job){
      .type = 'w', .buf = (void *)buf, .count = count, .offset = offset });
}

static int
asyncplug_flush (void *h, uint32_t flags)
{
  return sync_run ((struct job){ .type = 'f' });
}

static int
asyncplug_trim (void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  return sync_run (
      (struct job){ .type = 't', .count = count, .offset = offset });
}

static int
asyncplug_zero (void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  return sync_run (
      (struct job){ .type = 'z', .count = count, .offset = offset });
}

static int
asyncplug_extents (void *h, uint64_t count, uint64_t offset, uint32_t flags,
                   struct nbdkit_extents *e)
{
  return sync_run (
      (struct job){ .type = 'e', .count = count, .offset = offset, .e = e });
}

static struct nbdkit_plugin plugin = {
  .name = "asyncplug",
  .version = "1.0",
  .config = asyncplug_config,
  .config_complete = asyncplug_config_complete,
  .thread_model = asyncplug_thread_model,
  .get_ready = asyncplug_get_ready,
  .unload = asyncplug_unload,
  .open = asyncplug_open,
  .close = asyncplug_close,
  .get_size = asyncplug_get_size,
  .can_fua = asyncplug_can_fua,
  .async_pread = async_pread,
  .async_pwrite = async_pwrite,
  .async_flush = async_flush,
  .async_trim = async_trim,
  .async_zero = async_zero,
  .async_extents = async_extents,
};

NBDKIT_REGISTER_PLUGIN (plugin)
