/* retry.c: the retry filter, which reopens the layer below when a
 * request fails and tries the request again.
 *
 *   nbdkit --filter=retry PLUGIN [retries=5] [retry-delay=2]
 *          [retry-exponential=true] [retry-readonly=false]
 *
 * A request that fails below is retried up to RETRIES times: wait
 * RETRY-DELAY seconds (doubling each time with retry-exponential),
 * close the connection below, open it again (read-only with
 * retry-readonly, from then on for this client) and repeat the
 * request.  Opening the client's connection is retried the same way.
 * Only when every try failed does the client see the error.  A fast
 * zero refused with ENOTSUP is an answer, not a failure; writes on a
 * connection that became read-only fail at once with EROFS.
 *
 * The filter opens its layer below itself (nbdkit_next_context_open)
 * so that it can replace it, and answers every call from it.  Requests
 * of one connection are serialized: none may be running on the old
 * connection below while it is replaced.
 */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

#include "range.h"

static int64_t retries = 5;
static const char *delay_text = "2";
static bool exponential = true;
static bool force_readonly = false;
static double delay; /* seconds */

static const struct nbdkit_param params[]
    = { { .name = "retries",
          .type = NBDKIT_PARAM_INT,
          .default_value = "5",
          .doc = "how many times a failed request is retried (default 5)",
          .dest = &retries },
        { .name = "retry-delay",
          .type = NBDKIT_PARAM_STRING,
          .default_value = "2",
          .doc = "seconds to wait before the first retry, e.g. 2 or 500ms",
          .dest = &delay_text },
        { .name = "retry-exponential",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "true",
          .doc = "double the wait at each retry (default true)",
          .dest = &exponential },
        { .name = "retry-readonly",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "false",
          .doc = "after a failure, reopen the plugin read-only for the "
                 "rest of the connection",
          .dest = &force_readonly },
        { .name = NULL } };

static int
retry_config_complete (void)
{
  char *end;

  if (retries < 0 || retries > 1000) {
    nbdkit_error ("retries=%" PRIi64 ": expected 0 to 1000", retries);
    return -1;
  }
  errno = 0;
  delay = strtod (delay_text, &end);
  if (strcmp (end, "ms") == 0)
    delay /= 1000;
  else if (*end != '\0' && strcmp (end, "s") != 0)
    delay = -1;
  if (errno || delay < 0 || !isfinite (delay) || delay > 86400) {
    nbdkit_error ("retry-delay=%s: expected seconds (e.g. 2 or 0.5) or "
                  "milliseconds (500ms)",
                  delay_text);
    return -1;
  }
  return 0;
}

static int
retry_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
}

struct handle {
  nbdkit_backend *backend;
  char *exportname;
  bool readonly;     /* as the client opened it, or forced */
  nbdkit_next *next; /* NULL after a reopen failed */
  unsigned reopens;
};

static void
wait_for (double seconds)
{
  unsigned sec = (unsigned)seconds;
  nbdkit_nanosleep (sec, (unsigned)((seconds - sec) * 1e9));
}

/* Replace the connection below.  -1 if it could not be opened. */
static int
reopen (struct handle *h)
{
  if (h->next) {
    nbdkit_next_context_close (h->next);
    h->next = NULL;
  }
  if (force_readonly)
    h->readonly = true;
  h->reopens++;
  nbdkit_debug ("retry %u: reopening the connection below%s", h->reopens,
                h->readonly ? " read-only" : "");
  h->next = nbdkit_next_context_open (h->backend, h->readonly, h->exportname);
  return h->next ? 0 : -1;
}

static void *
retry_open (nbdkit_context *ctx, int readonly, const char *exportname,
            int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);
  double wait = delay;

  if (h == NULL || (h->exportname = strdup (exportname)) == NULL) {
    nbdkit_error ("malloc: %m");
    free (h);
    return NULL;
  }
  h->backend = nbdkit_context_get_backend (ctx);
  h->readonly = readonly;
  nbdkit_next_open_none (ctx);
  for (int64_t try = 0;; try++) {
    h->next = nbdkit_next_context_open (h->backend, readonly, exportname);
    if (h->next || try >= retries)
      break;
    nbdkit_debug ("open failed, retry %" PRIi64 " in %gs", try + 1, wait);
    wait_for (wait);
    if (exponential)
      wait *= 2;
  }
  if (h->next == NULL) {
    free (h->exportname);
    free (h);
    return NULL;
  }
  return h;
}

static void
retry_close (void *handle)
{
  struct handle *h = handle;

  if (h->next)
    nbdkit_next_context_close (h->next);
  free (h->exportname);
  free (h);
}

/* The layer below, reopened first if the last reopen failed. */
static nbdkit_next *
below (struct handle *h)
{
  if (h->next == NULL && reopen (h) == -1)
    nbdkit_error ("the connection below could not be reopened");
  return h->next;
}

/* Capabilities and size: from the current connection below. */
#define ASK(fn, type, fail)                                                    \
  static type retry_##fn (nbdkit_next *next, void *handle)                     \
  {                                                                            \
    nbdkit_next *n = below (handle);                                           \
    return n ? nbdkit_next_##fn (n) : (fail);                                  \
  }
ASK (get_size, int64_t, -1)
ASK (export_description, const char *, NULL)
ASK (can_flush, int, -1)
ASK (is_rotational, int, -1)
ASK (can_trim, int, -1)
ASK (can_zero, int, -1)
ASK (can_fast_zero, int, -1)
ASK (can_fua, int, -1)
ASK (can_multi_conn, int, -1)
ASK (can_extents, int, -1)
ASK (can_cache, int, -1)
#undef ASK

static int
retry_can_write (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;
  nbdkit_next *n = below (h);

  if (n == NULL)
    return -1;
  return h->readonly ? 0 : nbdkit_next_can_write (n);
}

static int
retry_block_size (nbdkit_next *next, void *handle, struct nbdkit_block_size *bs)
{
  nbdkit_next *n = below (handle);
  return n ? nbdkit_next_block_size (n, bs) : -1;
}

/* One request, retried.  The arguments of every data call. */
struct req {
  const char *what;
  bool writes;
  void *buf;
  const void *cbuf;
  uint64_t count, offset;
  uint32_t flags;
  struct nbdkit_read *rd;
  struct nbdkit_extents *extents;
};

static int
call (nbdkit_next *n, struct req *r, int *err)
{
  switch (r->what[0]) {
    case 'r': /* read */
      return nbdkit_next_pread (n, r->buf, r->count, r->offset, r->flags, r->rd,
                                err);
    case 'w':
      return nbdkit_next_pwrite (n, r->cbuf, r->count, r->offset, r->flags,
                                 err);
    case 'f':
      return nbdkit_next_flush (n, r->flags, err);
    case 't':
      return nbdkit_next_trim (n, r->count, r->offset, r->flags, err);
    case 'z':
      return nbdkit_next_zero (n, r->count, r->offset, r->flags, err);
    case 'e':
      /* A try that failed half way must leave nothing in the client's
       * list.
       */
      return extents_all_or_nothing (n, r->count, r->offset, r->flags,
                                     r->extents, err);
    default: /* cache */
      return nbdkit_next_cache (n, r->count, r->offset, r->flags, err);
  }
}

/* Whether the connection below, perhaps just reopened, can do R as
 * asked: 1 yes; 0 not now (a failure, retried: e.g. FUA asked and the
 * reopened plugin lacks it); -1 never (a fast zero it cannot do fails
 * at once with ENOTSUP, as the client allows).
 */
static int
usable (nbdkit_next *n, struct req *r, int *err)
{
  *err = EIO;
  if ((r->flags & NBDKIT_FLAG_FUA) && r->what[0] != 'f'
      && nbdkit_next_can_fua (n) <= NBDKIT_FUA_NONE)
    return 0;
  switch (r->what[0]) {
    case 'w':
      return nbdkit_next_can_write (n) == 1;
    case 'f':
      return nbdkit_next_can_flush (n) == 1;
    case 't':
      return nbdkit_next_can_trim (n) == 1;
    case 'z':
      if ((r->flags & NBDKIT_FLAG_FAST_ZERO)
          && nbdkit_next_can_fast_zero (n) != 1) {
        *err = ENOTSUP;
        return -1;
      }
      return nbdkit_next_can_zero (n) > NBDKIT_ZERO_NONE;
    case 'e':
      return nbdkit_next_can_extents (n) > NBDKIT_EXTENTS_NONE;
    case 'c':
      return nbdkit_next_can_cache (n) > NBDKIT_CACHE_NONE;
    default:
      return 1;
  }
}

static int
with_retries (struct handle *h, struct req *r, int *err)
{
  double wait = delay;

  for (int64_t try = 0;; try++) {
    if (r->writes && h->readonly) {
      nbdkit_error ("%s: the connection below is read-only after a failure "
                    "(retry-readonly)",
                    r->what);
      *err = EROFS;
      return -1;
    }
    if (h->next) {
      /* A read into the client's buffer may be retried, but holes or
       * loans from a failed try must not stay: read plainly then.
       */
      if (try > 0)
        r->rd = NULL;
      int ok = usable (h->next, r, err);
      if (ok == -1)
        return -1;
      if (ok == 1 && call (h->next, r, err) == 0)
        return 0;
      if (*err == ESHUTDOWN
          || (*err == ENOTSUP && (r->flags & NBDKIT_FLAG_FAST_ZERO)))
        return -1;
    } else
      *err = EIO;
    if (try >= retries) {
      nbdkit_debug ("%s failed %" PRIi64 " times, giving up", r->what, try + 1);
      return -1;
    }
    nbdkit_debug ("%s failed (errno %d): retry %" PRIi64 " in %gs", r->what,
                  *err, try + 1, wait);
    wait_for (wait);
    if (exponential)
      wait *= 2;
    reopen (h);
  }
}

static int
retry_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
             uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct req r = { .what = "read",
                   .buf = buf,
                   .count = count,
                   .offset = offset,
                   .flags = flags,
                   .rd = rd };
  return with_retries (handle, &r, err);
}

static int
retry_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
              uint64_t offset, uint32_t flags, int *err)
{
  struct req r = { .what = "write",
                   .writes = true,
                   .cbuf = buf,
                   .count = count,
                   .offset = offset,
                   .flags = flags };
  return with_retries (handle, &r, err);
}

static int
retry_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  struct req r = { .what = "flush", .flags = flags };
  return with_retries (handle, &r, err);
}

static int
retry_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  struct req r = { .what = "trim",
                   .writes = true,
                   .count = count,
                   .offset = offset,
                   .flags = flags };
  return with_retries (handle, &r, err);
}

static int
retry_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  struct req r = { .what = "zero",
                   .writes = true,
                   .count = count,
                   .offset = offset,
                   .flags = flags };
  return with_retries (handle, &r, err);
}

static int
retry_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
               uint32_t flags, struct nbdkit_extents *extents, int *err)
{
  struct req r = { .what = "extents",
                   .count = count,
                   .offset = offset,
                   .flags = flags,
                   .extents = extents };
  return with_retries (handle, &r, err);
}

static int
retry_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
             uint32_t flags, int *err)
{
  struct req r
      = { .what = "cache", .count = count, .offset = offset, .flags = flags };
  return with_retries (handle, &r, err);
}

static struct nbdkit_filter filter = {
  .name = "retry",
  .longname = "nbdkit retry filter",
  .description = "reopen the layer below and retry failed requests",
  .params = params,
  .config_complete = retry_config_complete,
  .thread_model = retry_thread_model,
  .open = retry_open,
  .close = retry_close,
  .get_size = retry_get_size,
  .export_description = retry_export_description,
  .block_size = retry_block_size,
  .can_write = retry_can_write,
  .can_flush = retry_can_flush,
  .is_rotational = retry_is_rotational,
  .can_trim = retry_can_trim,
  .can_zero = retry_can_zero,
  .can_fast_zero = retry_can_fast_zero,
  .can_fua = retry_can_fua,
  .can_multi_conn = retry_can_multi_conn,
  .can_extents = retry_can_extents,
  .can_cache = retry_can_cache,
  .pread = retry_pread,
  .pwrite = retry_pwrite,
  .flush = retry_flush,
  .trim = retry_trim,
  .zero = retry_zero,
  .extents = retry_extents,
  .cache = retry_cache,
};

NBDKIT_REGISTER_FILTER (filter)
