/* testplug.c: a RAM disk for the integration tests, with parameters
 * that inject the behaviour a normal plugin cannot be made to show:
 * delays, errors, holes, lent memory, partial reads, every capability
 * answer and block sizes.  Loaded by path; never installed.
 *
 *   nbdkit build/tests/plugins/nbdkit-testplug-plugin.so size=1M \
 *          [delay-read=MS] [delay-write=MS] [delay-at=OFFSET:MS ...] \
 *          [thread-model=parallel|serialize_retirement|...] \
 *          [holes=yes] [lend=yes] [lend-chunk=SIZE] [fail-read-at=OFFSET] \
 *          [zero=native|eopnotsupp|none] [fua=none|emulate|native] \
 *          [cache=none|emulate|native] [extents=none|emulate|native] \
 *          [block-size=MIN:PREF:MAX[:MAXVIRTUAL]] [errno-write=ENOSPC] \
 *          [readonly-plugin=yes] [trace=FILE] [stats=FILE] \
 *          [tls-log=FILE]
 *
 * trace=FILE gets one line per callback, in the order they ran:
 *   "pwrite OFFSET COUNT FLAGS", "pread OFFSET COUNT", "zero OFFSET
 *   COUNT FLAGS", "trim OFFSET COUNT FLAGS", "cache OFFSET COUNT",
 *   "extents OFFSET COUNT FLAGS", "flush", "open", "close", "unload"
 * where FLAGS is "-" or names joined by ',' (fua, may_trim, fast_zero,
 * req_one).
 *
 * tls-log=FILE gets one line per open, for the TLS tests:
 *   "open export=NAME is_tls=0|1 nbdkit_is_tls=0|1"
 * (open's is_tls argument, and what nbdkit_is_tls says inside open).
 *
 * stats=FILE is rewritten at each close and at unload with key=value
 * lines: max_inflight (the most data callbacks running at once),
 * thread_model (as chosen by the server), lends, releases,
 * lend_violations, limit_violations, client_requested_bs, unloaded.
 *
 * Delays sleep without waking on shutdown, so a request in flight when
 * the server is asked to quit really is in flight until it ends.
 *
 * lend=yes: loans point into the disk itself, so a test must not write
 * a range while a read of it is in flight.  Every loan carries a token;
 * releasing one twice, on another thread, or not at all by unload is an
 * error and aborts the server, so a test sees it in the exit status.
 *
 * Every data callback checks its request against the block sizes the
 * plugin announced (block-size=): a request the server should never
 * have passed on fails with EIO and counts as a limit violation.
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

/* -D testplug.say-pread=1: a debug message at each read. */
NBDKIT_DLL_PUBLIC int testplug_debug_say_pread = 0;

/* holes=yes: the granularity of "written" tracking. */
#define BLOCK 65536

#define MAX_DELAY_AT 64

static int64_t size = 1024 * 1024;
static int64_t delay_read, delay_write;
static struct {
  uint64_t offset;
  int64_t ms;
} delay_at[MAX_DELAY_AT];
static size_t n_delay_at;
static const char *stats_file, *trace_file, *tls_log_file;
static const char *thread_model_name = "parallel";
static bool holes, lend, readonly_plugin;
static int64_t lend_chunk;
static int64_t fail_read_at = -1;
static const char *zero_mode = "native", *fua_mode = "native";
static const char *cache_mode = "none", *extents_mode = "native";
static const char *block_size_str, *errno_write_str;
static struct nbdkit_block_size bs;
static int errno_write;

static const struct nbdkit_param params[] = {
  { .name = "size",
    .type = NBDKIT_PARAM_SIZE,
    .default_value = "1M",
    .doc = "size of the disk",
    .dest = &size },
  { .name = "delay-read",
    .type = NBDKIT_PARAM_INT,
    .default_value = "0",
    .doc = "milliseconds every pread sleeps",
    .dest = &delay_read },
  { .name = "delay-write",
    .type = NBDKIT_PARAM_INT,
    .default_value = "0",
    .doc = "milliseconds every pwrite sleeps",
    .dest = &delay_write },
  { .name = "delay-at",
    .type = NBDKIT_PARAM_LIST,
    .flags = NBDKIT_PARAM_MULTIPLE,
    .doc = "OFFSET:MS: a pread or pwrite covering OFFSET sleeps MS more" },
  { .name = "stats",
    .type = NBDKIT_PARAM_STRING,
    .doc = "file written with counters at close and unload",
    .dest = &stats_file },
  { .name = "trace",
    .type = NBDKIT_PARAM_STRING,
    .doc = "file that gets one line per callback",
    .dest = &trace_file },
  { .name = "tls-log",
    .type = NBDKIT_PARAM_STRING,
    .doc = "file that gets is_tls and nbdkit_is_tls () at each open",
    .dest = &tls_log_file },
  { .name = "thread-model",
    .type = NBDKIT_PARAM_ENUM,
    .default_value = "parallel",
    .choices = "serialize_connections|serialize_all_requests|"
               "serialize_requests|serialize_retirement|parallel",
    .doc = "the thread model the plugin asks for",
    .dest = &thread_model_name },
  { .name = "holes",
    .type = NBDKIT_PARAM_BOOL,
    .default_value = "false",
    .doc = "reads report never written 64K blocks as holes",
    .dest = &holes },
  { .name = "lend",
    .type = NBDKIT_PARAM_BOOL,
    .default_value = "false",
    .doc = "reads lend the disk's memory",
    .dest = &lend },
  { .name = "lend-chunk",
    .type = NBDKIT_PARAM_SIZE,
    .default_value = "0",
    .doc = "lend in pieces of this size (0: whole ranges)",
    .dest = &lend_chunk },
  { .name = "fail-read-at",
    .type = NBDKIT_PARAM_INT,
    .default_value = "-1",
    .doc = "a pread covering this offset fails there with EIO",
    .dest = &fail_read_at },
  { .name = "zero",
    .type = NBDKIT_PARAM_ENUM,
    .default_value = "native",
    .choices = "native|eopnotsupp|none",
    .doc = "native zero, a zero that always fails with EOPNOTSUPP, or none",
    .dest = &zero_mode },
  { .name = "fua",
    .type = NBDKIT_PARAM_ENUM,
    .default_value = "native",
    .choices = "none|emulate|native",
    .doc = "can_fua answer",
    .dest = &fua_mode },
  { .name = "cache",
    .type = NBDKIT_PARAM_ENUM,
    .default_value = "none",
    .choices = "none|emulate|native",
    .doc = "can_cache answer",
    .dest = &cache_mode },
  { .name = "extents",
    .type = NBDKIT_PARAM_ENUM,
    .default_value = "native",
    .choices = "none|emulate|native",
    .doc = "can_extents answer",
    .dest = &extents_mode },
  { .name = "block-size",
    .type = NBDKIT_PARAM_STRING,
    .doc = "MIN:PREF:MAX[:MAXVIRTUAL] announced by block_size",
    .dest = &block_size_str },
  { .name = "errno-write",
    .type = NBDKIT_PARAM_STRING,
    .doc = "every pwrite fails with this errno (ENOSPC, EPERM, ...)",
    .dest = &errno_write_str },
  { .name = "readonly-plugin",
    .type = NBDKIT_PARAM_BOOL,
    .default_value = "false",
    .doc = "can_write answers 0",
    .dest = &readonly_plugin },
  { .name = NULL }
};

/* The disk, and which BLOCKs were ever written. */
static unsigned char *disk;
static unsigned char *written;
static pthread_mutex_t disk_lock = PTHREAD_MUTEX_INITIALIZER;

static atomic_int inflight, max_inflight;
static atomic_long lends, releases, lend_violations, limit_violations;
static atomic_int client_requested_bs = -1;
static int chosen_model;

static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *trace_fp;

/* Loans not yet released on this thread. */
static __thread long thread_loans;

struct loan {
  struct loan *next;
  pthread_t thread;
  int released;
};
static pthread_mutex_t loans_lock = PTHREAD_MUTEX_INITIALIZER;
static struct loan *loans;

static const struct {
  const char *name;
  int err;
} errnos[] = {
  { "EPERM", EPERM },           { "EIO", EIO },
  { "ENOMEM", ENOMEM },         { "EINVAL", EINVAL },
  { "ENOSPC", ENOSPC },         { "EFBIG", EFBIG },
  { "EDQUOT", EDQUOT },         { "EROFS", EROFS },
  { "EOVERFLOW", EOVERFLOW },   { "ENOTSUP", ENOTSUP },
  { "EOPNOTSUPP", EOPNOTSUPP }, { "ESHUTDOWN", ESHUTDOWN },
  { "ENOENT", ENOENT },         { "EBADF", EBADF },
  { "EACCES", EACCES },         { "ETIMEDOUT", ETIMEDOUT },
  { "ECONNRESET", ECONNRESET }, { "EPIPE", EPIPE },
  { "EAGAIN", EAGAIN },
};

static void trace (const char *fmt, ...) NBDKIT_ATTRIBUTE_FORMAT_PRINTF (1, 2);

static void
trace (const char *fmt, ...)
{
  va_list ap;

  if (trace_fp == NULL)
    return;
  pthread_mutex_lock (&trace_lock);
  va_start (ap, fmt);
  vfprintf (trace_fp, fmt, ap);
  va_end (ap);
  fputc ('\n', trace_fp);
  fflush (trace_fp);
  pthread_mutex_unlock (&trace_lock);
}

static const char *
flag_names (uint32_t flags, char *buf, size_t len)
{
  static const struct {
    uint32_t f;
    const char *n;
  } names[] = {
    { NBDKIT_FLAG_MAY_TRIM, "may_trim" },
    { NBDKIT_FLAG_FUA, "fua" },
    { NBDKIT_FLAG_REQ_ONE, "req_one" },
    { NBDKIT_FLAG_FAST_ZERO, "fast_zero" },
  };
  size_t used = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (flags & names[i].f)
      used += snprintf (buf + used, len - used, "%s%s", used ? "," : "",
                        names[i].n);
  if (used == 0)
    snprintf (buf, len, "-");
  return buf;
}

static void
write_stats (bool unloaded)
{
  FILE *fp;

  if (stats_file == NULL)
    return;
  fp = fopen (stats_file, "w");
  if (fp == NULL) {
    nbdkit_error ("stats: %s: %m", stats_file);
    return;
  }
  fprintf (fp,
           "max_inflight=%d\nthread_model=%d\nlends=%ld\nreleases=%ld\n"
           "lend_violations=%ld\nlimit_violations=%ld\n"
           "client_requested_bs=%d\nunloaded=%d\n",
           atomic_load (&max_inflight), chosen_model, atomic_load (&lends),
           atomic_load (&releases), atomic_load (&lend_violations),
           atomic_load (&limit_violations), atomic_load (&client_requested_bs),
           unloaded ? 1 : 0);
  fclose (fp);
}

static void
sleep_ms (int64_t ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

  if (ms <= 0)
    return;
  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

/* Count a data callback in; sleep for BASE plus every delay-at inside
 * the request.
 */
static void
enter (int64_t base, uint64_t count, uint64_t offset)
{
  int64_t ms = base;
  int now = atomic_fetch_add (&inflight, 1) + 1;
  int max = atomic_load (&max_inflight);

  while (now > max && !atomic_compare_exchange_weak (&max_inflight, &max, now))
    ;
  nbdkit_debug ("inflight=%d", now);
  for (size_t i = 0; i < n_delay_at; i++)
    if (delay_at[i].offset >= offset && delay_at[i].offset - offset < count)
      ms += delay_at[i].ms;
  sleep_ms (ms);
}

static void
leave (void)
{
  atomic_fetch_sub (&inflight, 1);
}

/* A request the server should not have passed on: count it, say why
 * and fail with EIO.
 */
static int
check_limits (const char *what, uint64_t count, uint64_t offset, uint64_t max)
{
  const char *why = NULL;

  if (offset > (uint64_t)size || count > (uint64_t)size - offset)
    why = "is beyond the end of the disk";
  else if (bs.minimum > 1 && ((offset | count) % bs.minimum) != 0)
    why = "is not aligned to the minimum block size";
  else if (max && count > max)
    why = "is larger than the maximum announced";
  if (why == NULL)
    return 0;
  atomic_fetch_add (&limit_violations, 1);
  nbdkit_error ("%s: request %" PRIu64 "+%" PRIu64 " %s (block sizes %" PRIu32
                ":%" PRIu32 ":%" PRIu32 ":%" PRIu64 ")",
                what, offset, count, why, bs.minimum, bs.preferred, bs.maximum,
                bs.maximum_virtual);
  nbdkit_set_error (EIO);
  return -1;
}

static int
parse_errno (const char *name, int *err)
{
  for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
    if (strcmp (errnos[i].name, name) == 0) {
      *err = errnos[i].err;
      return 0;
    }
  nbdkit_error ("errno-write=%s: not an errno name this plugin knows"
                " (EPERM, EIO, ENOSPC, ENOENT, ...)",
                name);
  return -1;
}

static int
testplug_config (const char *key, const char *value)
{
  if (strcmp (key, "delay-at") == 0) {
    uint64_t off;
    int64_t ms;
    char *end;

    if (n_delay_at == MAX_DELAY_AT) {
      nbdkit_error ("delay-at: at most %d may be given", MAX_DELAY_AT);
      return -1;
    }
    errno = 0;
    off = strtoull (value, &end, 0);
    if (errno || *end != ':') {
      nbdkit_error ("delay-at=%s: expected OFFSET:MS", value);
      return -1;
    }
    ms = strtoll (end + 1, &end, 0);
    if (errno || *end || ms < 0) {
      nbdkit_error ("delay-at=%s: expected OFFSET:MS", value);
      return -1;
    }
    delay_at[n_delay_at].offset = off;
    delay_at[n_delay_at].ms = ms;
    n_delay_at++;
  }
  return 0;
}

static int
testplug_config_complete (void)
{
  if (size <= 0 || (uint64_t)size > (UINT64_C (1) << 32)) {
    nbdkit_error ("size: must be between 1 and 4G for a RAM disk");
    return -1;
  }
  if (block_size_str) {
    unsigned long long v[4] = { 0, 0, 0, 0 };
    int n = sscanf (block_size_str, "%llu:%llu:%llu:%llu", &v[0], &v[1], &v[2],
                    &v[3]);
    if (n < 3) {
      nbdkit_error ("block-size=%s: expected MIN:PREF:MAX[:MAXVIRTUAL]",
                    block_size_str);
      return -1;
    }
    bs.minimum = v[0];
    bs.preferred = v[1];
    bs.maximum = v[2];
    bs.maximum_virtual = v[3];
  }
  if (errno_write_str && parse_errno (errno_write_str, &errno_write) == -1)
    return -1;
  if (fail_read_at >= size) {
    nbdkit_error ("fail-read-at: must be inside the disk");
    return -1;
  }
  disk = calloc (1, size);
  written = calloc (1, (size + BLOCK - 1) / BLOCK);
  if (disk == NULL || written == NULL) {
    nbdkit_error ("calloc: %m");
    return -1;
  }
  if (trace_file) {
    trace_fp = fopen (trace_file, "a");
    if (trace_fp == NULL) {
      nbdkit_error ("trace: %s: %m", trace_file);
      return -1;
    }
  }
  return 0;
}

static int
testplug_thread_model (void)
{
  if (strcmp (thread_model_name, "serialize_connections") == 0)
    return NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS;
  if (strcmp (thread_model_name, "serialize_all_requests") == 0)
    return NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;
  if (strcmp (thread_model_name, "serialize_requests") == 0)
    return NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
  if (strcmp (thread_model_name, "serialize_retirement") == 0)
    return NBDKIT_THREAD_MODEL_SERIALIZE_RETIREMENT;
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static int
testplug_get_ready (int model)
{
  chosen_model = model;
  return 0;
}

static void
testplug_unload (void)
{
  long outstanding = 0;

  trace ("unload");
  pthread_mutex_lock (&loans_lock);
  while (loans) {
    struct loan *l = loans;
    loans = l->next;
    if (!l->released)
      outstanding++;
    free (l);
  }
  pthread_mutex_unlock (&loans_lock);
  write_stats (true);
  if (trace_fp)
    fclose (trace_fp);
  free (disk);
  free (written);
  if (outstanding || atomic_load (&lends) != atomic_load (&releases)
      || atomic_load (&lend_violations)) {
    nbdkit_error ("lend check failed: %ld lends, %ld releases, %ld never"
                  " released, %ld released twice or on another thread",
                  atomic_load (&lends), atomic_load (&releases), outstanding,
                  atomic_load (&lend_violations));
    abort ();
  }
}

static void *
testplug_open (int readonly, const char *exportname, int is_tls)
{
  trace ("open");
  if (tls_log_file) {
    FILE *fp;
    pthread_mutex_lock (&trace_lock);
    fp = fopen (tls_log_file, "a");
    if (fp) {
      fprintf (fp, "open export=%s is_tls=%d nbdkit_is_tls=%d\n", exportname,
               is_tls, nbdkit_is_tls ());
      fclose (fp);
    }
    pthread_mutex_unlock (&trace_lock);
  }
  return disk;
}

static void
testplug_close (void *handle)
{
  trace ("close");
  write_stats (false);
}

static int64_t
testplug_get_size (void *handle)
{
  return size;
}

static int
testplug_block_size (void *handle, struct nbdkit_block_size *b)
{
  atomic_store (&client_requested_bs, b->client_requested);
  b->minimum = bs.minimum;
  b->preferred = bs.preferred;
  b->maximum = bs.maximum;
  b->maximum_virtual = bs.maximum_virtual;
  return 0;
}

static int
testplug_can_write (void *handle)
{
  return !readonly_plugin;
}

static int
testplug_can_flush (void *handle)
{
  return 1;
}

static int
testplug_can_trim (void *handle)
{
  return 1;
}

static int
testplug_can_zero (void *handle)
{
  return strcmp (zero_mode, "none") == 0 ? NBDKIT_ZERO_EMULATE
                                         : NBDKIT_ZERO_NATIVE;
}

/* Its zero fails fast when asked (with zero=eopnotsupp always): say
 * so, as the server's default for a native zero is not to.
 */
static int
testplug_can_fast_zero (void *handle)
{
  return 1;
}

static int
tri_state (const char *mode, int none, int emulate, int native)
{
  return strcmp (mode, "none") == 0      ? none
         : strcmp (mode, "emulate") == 0 ? emulate
                                         : native;
}

static int
testplug_can_fua (void *handle)
{
  return tri_state (fua_mode, NBDKIT_FUA_NONE, NBDKIT_FUA_EMULATE,
                    NBDKIT_FUA_NATIVE);
}

static int
testplug_can_cache (void *handle)
{
  return tri_state (cache_mode, NBDKIT_CACHE_NONE, NBDKIT_CACHE_EMULATE,
                    NBDKIT_CACHE_NATIVE);
}

static int
testplug_can_extents (void *handle)
{
  return tri_state (extents_mode, NBDKIT_EXTENTS_NONE, NBDKIT_EXTENTS_EMULATE,
                    NBDKIT_EXTENTS_NATIVE);
}

static int
testplug_can_multi_conn (void *handle)
{
  return 1;
}

/* A loan's release: exactly once, on the thread that lent it. */
static void
release_loan (void *opaque)
{
  struct loan *l = opaque;

  pthread_mutex_lock (&loans_lock);
  if (l->released || !pthread_equal (l->thread, pthread_self ()))
    atomic_fetch_add (&lend_violations, 1);
  l->released++;
  pthread_mutex_unlock (&loans_lock);
  atomic_fetch_add (&releases, 1);
  thread_loans--;
}

/* Lend [OFF, OFF+LEN) of the disk, in lend-chunk pieces. */
static int
lend_range (struct nbdkit_read *rd, uint64_t off, uint64_t len)
{
  while (len > 0) {
    uint64_t n = len;
    if (lend_chunk > 0 && (uint64_t)lend_chunk < len)
      n = lend_chunk;
    struct loan *l = calloc (1, sizeof *l);

    if (l == NULL) {
      nbdkit_error ("calloc: %m");
      return -1;
    }
    l->thread = pthread_self ();
    pthread_mutex_lock (&loans_lock);
    l->next = loans;
    loans = l;
    pthread_mutex_unlock (&loans_lock);
    atomic_fetch_add (&lends, 1);
    thread_loans++;
    if (nbdkit_read_lend (rd, off, disk + off, n, release_loan, l) == -1)
      return -1;
    off += n;
    len -= n;
  }
  return 0;
}

/* Fill [OFF, OFF+LEN) of the request (BUF is the request's start). */
static int
read_range (void *buf, uint64_t req_off, uint64_t off, uint64_t len,
            struct nbdkit_read *rd)
{
  while (len > 0) {
    uint64_t blk_end = (off / BLOCK + 1) * BLOCK;
    uint64_t n = blk_end - off < len ? blk_end - off : len;
    bool hole = holes && !written[off / BLOCK];
    uint64_t m = n;

    /* Runs of the same kind go in one call. */
    while (m < len) {
      uint64_t b = (off + m) / BLOCK;
      uint64_t k = len - m < BLOCK ? len - m : BLOCK;
      if ((holes && !written[b]) != hole)
        break;
      m += k;
    }
    if (hole) {
      if (nbdkit_read_hole (rd, off, m) == -1)
        return -1;
    } else if (lend) {
      if (lend_range (rd, off, m) == -1)
        return -1;
    } else
      memcpy ((char *)buf + (off - req_off), disk + off, m);
    off += m;
    len -= m;
  }
  return 0;
}

static int
testplug_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
                uint32_t flags, struct nbdkit_read *rd)
{
  uint64_t upto = count;
  int r = 0;

  trace ("pread %" PRIu64 " %" PRIu64, offset, count);
  if (testplug_debug_say_pread)
    nbdkit_debug ("say-pread: offset %" PRIu64, offset);
  if (thread_loans != 0) {
    /* The server called us again before returning this thread's loans. */
    atomic_fetch_add (&lend_violations, 1);
    nbdkit_error ("pread: called with %ld loans still out on this thread",
                  thread_loans);
  }
  enter (delay_read, count, offset);
  if (check_limits ("pread", count, offset, bs.maximum) == -1) {
    leave ();
    return -1;
  }
  if (fail_read_at >= 0 && (uint64_t)fail_read_at >= offset
      && (uint64_t)fail_read_at - offset < count)
    upto = fail_read_at - offset;
  pthread_mutex_lock (&disk_lock);
  r = read_range (buf, offset, offset, upto, rd);
  pthread_mutex_unlock (&disk_lock);
  leave ();
  if (r == -1)
    return -1;
  if (upto < count) {
    if (nbdkit_read_error_at (rd, offset + upto) == -1)
      return -1;
    nbdkit_error ("pread: injected error at offset %" PRId64, fail_read_at);
    nbdkit_set_error (EIO);
    return -1;
  }
  return 0;
}

static void
mark_written (uint64_t offset, uint64_t count)
{
  for (uint64_t b = offset / BLOCK; b * BLOCK < offset + count; b++)
    written[b] = 1;
}

static int
testplug_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
                 uint32_t flags)
{
  char f[64];

  trace ("pwrite %" PRIu64 " %" PRIu64 " %s", offset, count,
         flag_names (flags, f, sizeof f));
  enter (delay_write, count, offset);
  if (check_limits ("pwrite", count, offset, bs.maximum) == -1) {
    leave ();
    return -1;
  }
  if (errno_write) {
    leave ();
    nbdkit_error ("pwrite: injected error %s", errno_write_str);
    nbdkit_set_error (errno_write);
    errno = errno_write;
    return -1;
  }
  pthread_mutex_lock (&disk_lock);
  memcpy (disk + offset, buf, count);
  if (count)
    mark_written (offset, count);
  pthread_mutex_unlock (&disk_lock);
  leave ();
  return 0;
}

static int
testplug_flush (void *handle, uint32_t flags)
{
  trace ("flush");
  return 0;
}

static int
testplug_trim (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  char f[64];

  trace ("trim %" PRIu64 " %" PRIu64 " %s", offset, count,
         flag_names (flags, f, sizeof f));
  enter (0, 0, 0);
  if (check_limits ("trim", count, offset, bs.maximum_virtual) == -1) {
    leave ();
    return -1;
  }
  pthread_mutex_lock (&disk_lock);
  memset (disk + offset, 0, count);
  pthread_mutex_unlock (&disk_lock);
  leave ();
  return 0;
}

static int
testplug_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  char f[64];

  trace ("zero %" PRIu64 " %" PRIu64 " %s", offset, count,
         flag_names (flags, f, sizeof f));
  if (strcmp (zero_mode, "eopnotsupp") == 0) {
    nbdkit_set_error (EOPNOTSUPP);
    return -1;
  }
  enter (0, 0, 0);
  if (check_limits ("zero", count, offset, bs.maximum_virtual) == -1) {
    leave ();
    return -1;
  }
  pthread_mutex_lock (&disk_lock);
  memset (disk + offset, 0, count);
  pthread_mutex_unlock (&disk_lock);
  leave ();
  return 0;
}

static int
testplug_cache (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  trace ("cache %" PRIu64 " %" PRIu64, offset, count);
  enter (0, 0, 0);
  if (check_limits ("cache", count, offset, bs.maximum_virtual) == -1) {
    leave ();
    return -1;
  }
  leave ();
  return 0;
}

/* Written blocks are data, others holes that read as zeroes. */
static int
testplug_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
                  struct nbdkit_extents *e)
{
  uint64_t b = offset / BLOCK, nblocks = (size + BLOCK - 1) / BLOCK;
  uint64_t end = offset + count;
  char f[64];

  trace ("extents %" PRIu64 " %" PRIu64 " %s", offset, count,
         flag_names (flags, f, sizeof f));
  enter (0, 0, 0);
  for (; b < nblocks && b * BLOCK < end; b++) {
    uint64_t len = b == nblocks - 1 ? (uint64_t)size - b * BLOCK : BLOCK;
    uint32_t type = written[b] ? 0 : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    if (nbdkit_add_extent (e, b * BLOCK, len, type) == -1) {
      leave ();
      return -1;
    }
  }
  leave ();
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "testplug",
  .longname = "test plugin injecting behaviour",
  .version = "1.0",
  .description = "a RAM disk for the integration tests",
  .params = params,
  .config = testplug_config,
  .config_complete = testplug_config_complete,
  .thread_model = testplug_thread_model,
  .get_ready = testplug_get_ready,
  .unload = testplug_unload,
  .open = testplug_open,
  .close = testplug_close,
  .get_size = testplug_get_size,
  .block_size = testplug_block_size,
  .can_write = testplug_can_write,
  .can_flush = testplug_can_flush,
  .can_trim = testplug_can_trim,
  .can_zero = testplug_can_zero,
  .can_fast_zero = testplug_can_fast_zero,
  .can_fua = testplug_can_fua,
  .can_multi_conn = testplug_can_multi_conn,
  .can_extents = testplug_can_extents,
  .can_cache = testplug_can_cache,
  .pread = testplug_pread,
  .pwrite = testplug_pwrite,
  .flush = testplug_flush,
  .trim = testplug_trim,
  .zero = testplug_zero,
  .extents = testplug_extents,
  .cache = testplug_cache,
};

NBDKIT_REGISTER_PLUGIN (plugin)
