/* log.c: the log filter, in nbdkit's log format.
 *
 *   nbdkit --filter=log PLUGIN ... logfile=FILE [logappend=true]
 *                                  [logscript=SCRIPT]
 *
 * Each event is one line in FILE, a timestamp then the action:
 *
 *   2024-05-01 10:00:00.123456 connection=1 Read id=3 offset=0x0 count=0x200
 * ... 2024-05-01 10:00:00.123470 connection=1 ...Read id=3 return=0
 *
 * Requests are logged twice, when they enter the filter (ending "...")
 * and when they leave it ("...Act", with return= and, on failure,
 * error=ENAME); id=N, counted per connection, pairs the two lines.
 * Other events are single lines: Ready, Fork, Connect (the export and
 * its capabilities), Disconnect; Preconnect and ListExports are
 * enter/leave pairs too, with ids counted server-wide.  Strings are
 * shell-quoted.
 *
 * SCRIPT, if given, is run by bash for every line, synchronously, with
 * the line's fields as shell variables ($act, $type = ENTER, LEAVE or
 * PRINT, $connection, $id, $offset, $return, $error, ..., and
 * $extents as an array); its output goes to stderr and its exit status
 * is ignored.  Without logfile= nor logscript= the filter logs nothing.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, strerrorname_np */
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nbdkit-filter.h>

static const char *logfile;
static const char *logscript;
static bool logappend;
static FILE *fp;
/* Serializes lines and script runs, so that they keep their order. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint_fast64_t next_conn_id;
static atomic_uint_fast64_t next_preconnect_id;
static atomic_uint_fast64_t next_list_id;

struct handle {
  uint64_t conn;
  atomic_uint_fast64_t requests;
  char *exportname;
  int is_tls;
};

static const struct nbdkit_param params[]
    = { { .name = "logfile",
          .type = NBDKIT_PARAM_STRING,
          .doc = "file that gets one line per event",
          .dest = &logfile },
        { .name = "logappend",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "false",
          .doc = "append to the file instead of replacing it",
          .dest = &logappend },
        { .name = "logscript",
          .type = NBDKIT_PARAM_STRING,
          .doc = "shell script run for every event, fields as variables",
          .dest = &logscript },
        { .name = NULL } };

static const char *
log_config_help (void)
{
  return "logfile=FILE     The file that gets one line per event.\n"
         "logappend=BOOL   Append instead of replacing (default false).\n"
         "logscript=SCRIPT Run SCRIPT (bash) for every event.";
}

static bool
active (void)
{
  return fp != NULL || logscript != NULL;
}

/* ---- building a line ----
 *
 * A line is a list of fields, each "key=value" with the value already
 * shell-quoted, kept in one buffer for the file and turned into shell
 * assignments for the script.
 */

struct line {
  char *buf;
  size_t len, alloc;
  bool failed;
};

static void
add (struct line *l, const char *fmt, ...)
{
  va_list ap;
  int n;

  if (l->failed)
    return;
  for (;;) {
    size_t room = l->alloc - l->len;
    va_start (ap, fmt);
    n = vsnprintf (l->buf ? l->buf + l->len : NULL, room, fmt, ap);
    va_end (ap);
    if (n < 0) {
      l->failed = true;
      return;
    }
    if ((size_t)n < room) {
      l->len += n;
      return;
    }
    size_t want = l->alloc * 2 + n + 64;
    char *p = realloc (l->buf, want);
    if (p == NULL) {
      l->failed = true;
      return;
    }
    l->buf = p;
    l->alloc = want;
  }
}

/* " KEY=" then S double-quoted for the shell. */
static void
add_string (struct line *l, const char *key, const char *s)
{
  if (key)
    add (l, " %s=", key);
  add (l, "\"");
  for (; s && *s; s++) {
    if (strchr ("\"\\$`", *s))
      add (l, "\\");
    add (l, "%c", *s);
  }
  add (l, "\"");
}

static const char *
errno_name (int err)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
  const char *n = strerrorname_np (err);
  if (n)
    return n;
#endif
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
    default:
      return "EIO";
  }
}

/* Run the script with the fields of L (from FIELDS on) as variables. */
static void
run_script (const char *type, const char *act, const char *fields)
{
  char *text = NULL;
  pid_t pid;

  if (asprintf (&text, "type=%s act=%s\n%s\n%s", type, act, fields, logscript)
      == -1) {
    nbdkit_error ("logscript: malloc: %m");
    return;
  }
  /* The fields are separated by spaces and each is KEY=VALUE: as one
   * line of shell they are assignments.  The script's stdout goes to
   * stderr: stdout may be the client's socket (-s).
   */
  pid = fork ();
  if (pid == -1) {
    nbdkit_error ("logscript: fork: %m");
    free (text);
    return;
  }
  if (pid == 0) {
    int null = open ("/dev/null", O_RDONLY);
    if (null >= 0)
      dup2 (null, 0);
    dup2 (2, 1);
    execl ("/bin/bash", "bash", "-c", text, (char *)NULL);
    execl ("/bin/sh", "sh", "-c", text, (char *)NULL);
    _exit (127);
  }
  free (text);
  while (waitpid (pid, NULL, 0) == -1 && errno == EINTR)
    ;
}

/* Emit one event.  CONN is 0 for events outside a connection; TYPE is
 * ENTER, LEAVE or PRINT; FIELDS starts with a space or is empty.
 */
static void
emit (uint64_t conn, const char *type, const char *act, uint64_t id,
      const char *fields)
{
  struct line vars = { 0 };

  if (!active ())
    return;
  if (conn)
    add (&vars, "connection=%" PRIu64 " ", conn);
  if (id)
    add (&vars, "id=%" PRIu64 " ", id);
  add (&vars, "%s", fields[0] == ' ' ? fields + 1 : fields);
  if (vars.failed) {
    nbdkit_error ("log: malloc: %m");
    free (vars.buf);
    return;
  }

  pthread_mutex_lock (&lock);
  if (fp) {
    struct timeval tv;
    struct tm tm;
    char ts[32];

    gettimeofday (&tv, NULL);
    localtime_r (&tv.tv_sec, &tm);
    strftime (ts, sizeof ts, "%F %T", &tm);
    fprintf (fp, "%s.%06ld ", ts, (long)tv.tv_usec);
    if (conn)
      fprintf (fp, "connection=%" PRIu64 " ", conn);
    fprintf (fp, "%s%s", strcmp (type, "LEAVE") == 0 ? "..." : "", act);
    if (id)
      fprintf (fp, " id=%" PRIu64, id);
    fprintf (fp, "%s%s\n", fields, strcmp (type, "ENTER") == 0 ? " ..." : "");
    fflush (fp);
  }
  if (logscript)
    run_script (type, act, vars.buf ? vars.buf : "");
  pthread_mutex_unlock (&lock);
  free (vars.buf);
}

/* ---- server-wide events ---- */

static int
log_get_ready (int thread_model)
{
  char f[32];
  int model;

  if (logfile) {
    fp = fopen (logfile, logappend ? "ae" : "we");
    if (fp == NULL) {
      nbdkit_error ("logfile=%s: %m", logfile);
      return -1;
    }
  }
  /* nbdkit's numbers: 0 serialize_connections ... 3 parallel. */
  switch (thread_model) {
    case NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS:
      model = 0;
      break;
    case NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS:
      model = 1;
      break;
    case NBDKIT_THREAD_MODEL_PARALLEL:
      model = 3;
      break;
    default:
      model = 2;
      break;
  }
  snprintf (f, sizeof f, " thread_model=%d", model);
  emit (0, "PRINT", "Ready", 0, f);
  return 0;
}

static int
log_after_fork (nbdkit_backend *next)
{
  emit (0, "PRINT", "Fork", 0, "");
  return 0;
}

static void
log_unload (void)
{
  if (fp)
    fclose (fp);
}

static int
log_preconnect (nbdkit_backend *next, int readonly)
{
  uint64_t id = atomic_fetch_add (&next_preconnect_id, 1) + 1;
  char f[32];

  snprintf (f, sizeof f, " readonly=%d", readonly);
  emit (0, "ENTER", "Preconnect", id, f);
  emit (0, "LEAVE", "Preconnect", id, " return=0");
  return 0;
}

static int
log_list_exports (nbdkit_backend *next, int readonly, int is_tls,
                  struct nbdkit_exports *exports)
{
  uint64_t id = atomic_fetch_add (&next_list_id, 1) + 1;
  struct line l = { 0 };
  char f[64];
  int r, err;

  snprintf (f, sizeof f, " readonly=%d tls=%d", readonly, is_tls);
  emit (0, "ENTER", "ListExports", id, f);
  r = nbdkit_backend_list_exports (next, readonly, is_tls, exports);
  err = errno;
  if (r == 0) {
    add (&l, " exports=(");
    for (size_t i = 0; i < nbdkit_exports_count (exports); i++) {
      if (i)
        add (&l, " ");
      add_string (&l, NULL, nbdkit_get_export (exports, i).name);
    }
    add (&l, ") return=0");
  } else
    add (&l, " return=-1 error=%s", errno_name (err));
  emit (0, "LEAVE", "ListExports", id, l.failed ? "" : l.buf);
  free (l.buf);
  return r;
}

/* ---- per connection ---- */

static void *
log_open (nbdkit_context *ctx, int readonly, const char *exportname, int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL || (h->exportname = strdup (exportname)) == NULL) {
    nbdkit_error ("malloc: %m");
    free (h);
    return NULL;
  }
  h->conn = atomic_fetch_add (&next_conn_id, 1) + 1;
  h->is_tls = is_tls;
  return h;
}

static void
log_close (void *handle)
{
  struct handle *h = handle;
  char f[64];

  snprintf (f, sizeof f, " transactions=%" PRIu64,
            (uint64_t)atomic_load (&h->requests));
  emit (h->conn, "PRINT", "Disconnect", 0, f);
  free (h->exportname);
  free (h);
}

static int
log_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  struct nbdkit_block_size bs = { 0 };
  struct line l = { 0 };

  if (!active ())
    return 0;
  nbdkit_next_block_size (next, &bs);
  add_string (&l, "export", h->exportname);
  add (&l,
       " tls=%d size=0x%" PRIx64 " minsize=0x%" PRIx32 " prefsize=0x%" PRIx32
       " maxsize=0x%" PRIx32 " write=%d flush=%d rotational=%d trim=%d"
       " zero=%d fua=%d extents=%d cache=%d fast_zero=%d",
       h->is_tls, nbdkit_next_get_size (next), bs.minimum, bs.preferred,
       bs.maximum, nbdkit_next_can_write (next), nbdkit_next_can_flush (next),
       nbdkit_next_is_rotational (next), nbdkit_next_can_trim (next),
       nbdkit_next_can_zero (next), nbdkit_next_can_fua (next),
       nbdkit_next_can_extents (next), nbdkit_next_can_cache (next),
       nbdkit_next_can_fast_zero (next));
  emit (h->conn, "PRINT", "Connect", 0, l.failed ? "" : l.buf);
  free (l.buf);
  return 0;
}

/* ---- requests ---- */

static uint64_t
enter (struct handle *h, const char *act, const char *fmt, ...)
{
  uint64_t id = atomic_fetch_add (&h->requests, 1) + 1;
  char f[256];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (f, sizeof f, fmt, ap);
  va_end (ap);
  emit (h->conn, "ENTER", act, id, f);
  return id;
}

static int
leave (struct handle *h, const char *act, uint64_t id, int r, int *err)
{
  char f[64];

  if (r == -1)
    snprintf (f, sizeof f, " return=-1 error=%s", errno_name (*err));
  else
    snprintf (f, sizeof f, " return=%d", r);
  emit (h->conn, "LEAVE", act, id, f);
  return r;
}

#define FLAG(f) ((flags & NBDKIT_FLAG_##f) != 0)

static int
log_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
           uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  uint64_t id = enter (handle, "Read", " offset=0x%" PRIx64 " count=0x%" PRIx64,
                       offset, count);
  return leave (handle, "Read", id,
                nbdkit_next_pread (next, buf, count, offset, flags, rd, err),
                err);
}

static int
log_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
            uint64_t offset, uint32_t flags, int *err)
{
  uint64_t id = enter (handle, "Write",
                       " offset=0x%" PRIx64 " count=0x%" PRIx64 " fua=%d",
                       offset, count, FLAG (FUA));
  return leave (handle, "Write", id,
                nbdkit_next_pwrite (next, buf, count, offset, flags, err), err);
}

static int
log_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  uint64_t id = enter (handle, "Trim",
                       " offset=0x%" PRIx64 " count=0x%" PRIx64 " fua=%d",
                       offset, count, FLAG (FUA));
  return leave (handle, "Trim", id,
                nbdkit_next_trim (next, count, offset, flags, err), err);
}

static int
log_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  uint64_t id = enter (
      handle, "Zero",
      " offset=0x%" PRIx64 " count=0x%" PRIx64 " trim=%d fua=%d fast=%d",
      offset, count, FLAG (MAY_TRIM), FLAG (FUA), FLAG (FAST_ZERO));
  return leave (handle, "Zero", id,
                nbdkit_next_zero (next, count, offset, flags, err), err);
}

static int
log_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
             uint32_t flags, struct nbdkit_extents *e, int *err)
{
  struct handle *h = handle;
  uint64_t id = enter (h, "Extents",
                       " offset=0x%" PRIx64 " count=0x%" PRIx64 " req_one=%d",
                       offset, count, FLAG (REQ_ONE));
  int r = nbdkit_next_extents (next, count, offset, flags, e, err);
  struct line l = { 0 };

  if (r == -1)
    return leave (h, "Extents", id, r, err);
  add (&l, " extents=(");
  for (size_t i = 0; i < nbdkit_extents_count (e); i++) {
    struct nbdkit_extent x = nbdkit_get_extent (e, i);
    const char *type = "";

    switch (x.type & (NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO)) {
      case NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO:
        type = "hole,zero";
        break;
      case NBDKIT_EXTENT_HOLE:
        type = "hole";
        break;
      case NBDKIT_EXTENT_ZERO:
        type = "zero";
        break;
    }
    add (&l, "%s0x%" PRIx64 " 0x%" PRIx64 " \"%s\"", i ? " " : "", x.offset,
         x.length, type);
  }
  add (&l, ") return=0");
  emit (h->conn, "LEAVE", "Extents", id, l.failed ? " return=0" : l.buf);
  free (l.buf);
  return r;
}

static int
log_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  uint64_t id = enter (handle, "Cache",
                       " offset=0x%" PRIx64 " count=0x%" PRIx64, offset, count);
  return leave (handle, "Cache", id,
                nbdkit_next_cache (next, count, offset, flags, err), err);
}

static int
log_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  uint64_t id = enter (handle, "Flush", "%s", "");
  return leave (handle, "Flush", id, nbdkit_next_flush (next, flags, err), err);
}

static struct nbdkit_filter filter = {
  .name = "log",
  .longname = "nbdkit log filter",
  .description = "log every request to a file or a script",
  .params = params,
  .config_help = log_config_help,
  .get_ready = log_get_ready,
  .after_fork = log_after_fork,
  .unload = log_unload,
  .preconnect = log_preconnect,
  .list_exports = log_list_exports,
  .open = log_open,
  .close = log_close,
  .prepare = log_prepare,
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
