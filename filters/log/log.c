/* log.c: one line per request in logfile=FILE (logappend=true appends),
 * written when the request completes:
 *
 *   2024-05-01 10:00:00.123456 connection=1 Read id=3 offset=0x0
 *     count=0x200 flags=- return=0 duration=0.000012
 *
 * (one line in the file).  A failed request ends "return=-1 error=EIO
 * duration=...".  Besides requests: "Ready", and per connection
 * "Connect" (export, size and capabilities) and "Disconnect".  Lines
 * are written whole, so those of parallel requests never mix; id=N
 * counts the requests of a connection.  Placed first, the filter shows
 * what clients send; placed after another filter, what that filter
 * sends on.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <nbdkit-filter.h>

static const char *logfile;
static bool logappend;
static FILE *fp;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_conn_id;

struct handle {
  uint64_t id;
  atomic_uint_fast64_t requests;
  char *exportname;
};

static const struct nbdkit_param params[]
    = { { .name = "logfile",
          .type = NBDKIT_PARAM_STRING,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "file that gets one line per request",
          .dest = &logfile },
        { .name = "logappend",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "false",
          .doc = "append to the file instead of replacing it",
          .dest = &logappend },
        { .name = NULL } };

static const char *
log_config_help (void)
{
  return "logfile=FILE     (required) The file that gets one line per"
         " request.\nlogappend=BOOL   Append instead of replacing (default"
         " false).";
}

static int
log_get_ready (int thread_model)
{
  fp = fopen (logfile, logappend ? "a" : "w");
  if (fp == NULL) {
    nbdkit_error ("logfile=%s: %m", logfile);
    return -1;
  }
  return 0;
}

static void
log_unload (void)
{
  if (fp)
    fclose (fp);
}

static void
log_line (const char *fmt, ...)
{
  struct timeval tv;
  struct tm tm;
  char ts[32];
  va_list ap;

  gettimeofday (&tv, NULL);
  localtime_r (&tv.tv_sec, &tm);
  strftime (ts, sizeof ts, "%F %T", &tm);
  pthread_mutex_lock (&lock);
  fprintf (fp, "%s.%06ld ", ts, (long)tv.tv_usec);
  va_start (ap, fmt);
  vfprintf (fp, fmt, ap);
  va_end (ap);
  fputc ('\n', fp);
  fflush (fp);
  pthread_mutex_unlock (&lock);
}

static int
log_after_fork (nbdkit_backend *next)
{
  log_line ("Ready");
  return 0;
}

static void *
log_open (nbdkit_context *ctx, int readonly, const char *exportname, int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL || (h->exportname = strdup (exportname)) == NULL) {
    nbdkit_error ("malloc: %m");
    free (h);
    return NULL;
  }
  pthread_mutex_lock (&lock);
  h->id = ++next_conn_id;
  pthread_mutex_unlock (&lock);
  return h;
}

static void
log_close (void *handle)
{
  struct handle *h = handle;
  free (h->exportname);
  free (h);
}

static int
log_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;

  log_line ("connection=%" PRIu64 " Connect export=\"%s\" size=0x%" PRIx64
            " write=%d flush=%d rotational=%d trim=%d zero=%d fua=%d"
            " extents=%d cache=%d fast_zero=%d multi_conn=%d",
            h->id, h->exportname, nbdkit_next_get_size (next),
            nbdkit_next_can_write (next), nbdkit_next_can_flush (next),
            nbdkit_next_is_rotational (next), nbdkit_next_can_trim (next),
            nbdkit_next_can_zero (next), nbdkit_next_can_fua (next),
            nbdkit_next_can_extents (next), nbdkit_next_can_cache (next),
            nbdkit_next_can_fast_zero (next),
            nbdkit_next_can_multi_conn (next));
  return 0;
}

static int
log_finalize (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;

  log_line ("connection=%" PRIu64 " Disconnect transactions=%" PRIu64, h->id,
            (uint64_t)atomic_load (&h->requests));
  return 0;
}

static const char *
errno_name (int err)
{
  switch (err) {
    case EPERM:
      return "EPERM";
    case EIO:
      return "EIO";
    case ENOMEM:
      return "ENOMEM";
    case EINVAL:
      return "EINVAL";
    case ENOSPC:
      return "ENOSPC";
    case EDQUOT:
      return "EDQUOT";
    case EFBIG:
      return "EFBIG";
    case EROFS:
      return "EROFS";
    case EOVERFLOW:
      return "EOVERFLOW";
    case ENOTSUP:
      return "ENOTSUP";
    case ESHUTDOWN:
      return "ESHUTDOWN";
    default:
      return "errno";
  }
}

static const char *
flag_names (uint32_t flags, char *buf, size_t len)
{
  static const struct {
    uint32_t f;
    const char *name;
  } names[] = {
    { NBDKIT_FLAG_FUA, "fua" },
    { NBDKIT_FLAG_MAY_TRIM, "may_trim" },
    { NBDKIT_FLAG_FAST_ZERO, "fast_zero" },
    { NBDKIT_FLAG_REQ_ONE, "req_one" },
  };
  size_t used = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (flags & names[i].f)
      used += snprintf (buf + used, len - used, "%s%s", used ? "," : "",
                        names[i].name);
  return used ? buf : "-";
}

struct req {
  struct handle *h;
  const char *what;
  uint64_t id, count, offset;
  uint32_t flags;
  struct timespec start;
};

static void
req_start (struct req *q, void *handle, const char *what, uint64_t count,
           uint64_t offset, uint32_t flags)
{
  q->h = handle;
  q->what = what;
  q->id = atomic_fetch_add (&q->h->requests, 1) + 1;
  q->count = count;
  q->offset = offset;
  q->flags = flags;
  clock_gettime (CLOCK_MONOTONIC, &q->start);
}

static int
req_end (struct req *q, int r, int *err)
{
  struct timespec end;
  char fl[64], res[32];
  double d;

  clock_gettime (CLOCK_MONOTONIC, &end);
  d = (end.tv_sec - q->start.tv_sec) + (end.tv_nsec - q->start.tv_nsec) / 1e9;
  if (r == -1)
    snprintf (res, sizeof res, "-1 error=%s", errno_name (*err));
  else
    snprintf (res, sizeof res, "%d", r);
  log_line ("connection=%" PRIu64 " %s id=%" PRIu64 " offset=0x%" PRIx64
            " count=0x%" PRIx64 " flags=%s return=%s duration=%.6f",
            q->h->id, q->what, q->id, q->offset, q->count,
            flag_names (q->flags, fl, sizeof fl), res, d);
  return r;
}

static int
log_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
           uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct req q;
  req_start (&q, handle, "Read", count, offset, flags);
  return req_end (
      &q, nbdkit_next_pread (next, buf, count, offset, flags, rd, err), err);
}

static int
log_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
            uint64_t offset, uint32_t flags, int *err)
{
  struct req q;
  req_start (&q, handle, "Write", count, offset, flags);
  return req_end (&q, nbdkit_next_pwrite (next, buf, count, offset, flags, err),
                  err);
}

static int
log_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  struct req q;
  req_start (&q, handle, "Trim", count, offset, flags);
  return req_end (&q, nbdkit_next_trim (next, count, offset, flags, err), err);
}

static int
log_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  struct req q;
  req_start (&q, handle, "Zero", count, offset, flags);
  return req_end (&q, nbdkit_next_zero (next, count, offset, flags, err), err);
}

static int
log_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
             uint32_t flags, struct nbdkit_extents *e, int *err)
{
  struct req q;
  req_start (&q, handle, "Extents", count, offset, flags);
  return req_end (&q, nbdkit_next_extents (next, count, offset, flags, e, err),
                  err);
}

static int
log_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  struct req q;
  req_start (&q, handle, "Cache", count, offset, flags);
  return req_end (&q, nbdkit_next_cache (next, count, offset, flags, err), err);
}

static int
log_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  struct req q;
  req_start (&q, handle, "Flush", 0, 0, flags);
  return req_end (&q, nbdkit_next_flush (next, flags, err), err);
}

static struct nbdkit_filter filter = {
  .name = "log",
  .longname = "nbdkit log filter",
  .description = "log every request to a file",
  .params = params,
  .config_help = log_config_help,
  .get_ready = log_get_ready,
  .after_fork = log_after_fork,
  .unload = log_unload,
  .open = log_open,
  .close = log_close,
  .prepare = log_prepare,
  .finalize = log_finalize,
  .pread = log_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = log_pwrite,
  .trim = log_trim,
  .zero = log_zero,
  .extents = log_extents,
  .cache = log_cache,
  .flush = log_flush,
};

NBDKIT_REGISTER_FILTER (filter)
