/* retry-request.c: the retry-request filter, which tries a failed
 * request again on the same connection.
 *
 *   nbdkit --filter=retry-request PLUGIN [retry-request-retries=2]
 *          [retry-request-delay=2] [retry-request-open=true]
 *
 * A request that fails below is repeated up to RETRIES more times,
 * RETRY-REQUEST-DELAY seconds apart, before the client sees the error.
 * Unlike the retry filter nothing is reopened: this suits plugins whose
 * failures are passing (a flaky server behind them), not ones whose
 * connection breaks.  Opening the layer below is retried the same way
 * unless retry-request-open=false.  Not retried: ESHUTDOWN (the server
 * or client is going away) and a fast zero refused with ENOTSUP (an
 * answer the client asked for).
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

static int64_t retries = 2;
static const char *delay_text = "2";
static bool retry_open = true;
static double delay; /* seconds */

static const struct nbdkit_param params[]
    = { { .name = "retry-request-retries",
          .type = NBDKIT_PARAM_INT,
          .default_value = "2",
          .doc = "how many times a failed request is tried again (default 2)",
          .dest = &retries },
        { .name = "retry-request-delay",
          .type = NBDKIT_PARAM_STRING,
          .default_value = "2",
          .doc = "seconds between tries, e.g. 2, 0.5 or 500ms (default 2)",
          .dest = &delay_text },
        { .name = "retry-request-open",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "true",
          .doc = "retry opening the plugin too (default true)",
          .dest = &retry_open },
        { .name = NULL } };

static int
rr_config_complete (void)
{
  char *end;

  if (retries < 0 || retries > 1000) {
    nbdkit_error ("retry-request-retries=%" PRIi64 ": expected 0 to 1000",
                  retries);
    return -1;
  }
  errno = 0;
  delay = strtod (delay_text, &end);
  if (end == delay_text)
    delay = -1;
  else if (strcmp (end, "ms") == 0)
    delay /= 1000;
  else if (*end != '\0' && strcmp (end, "s") != 0)
    delay = -1;
  if (errno || delay < 0 || !isfinite (delay) || delay > 86400) {
    nbdkit_error ("retry-request-delay=%s: expected seconds (e.g. 2 or 0.5) "
                  "or milliseconds (500ms)",
                  delay_text);
    return -1;
  }
  return 0;
}

/* Wait before the next try: -1 if the server is shutting down. */
static int
wait_delay (void)
{
  unsigned sec = (unsigned)delay;
  return nbdkit_nanosleep (sec, (unsigned)((delay - sec) * 1e9));
}

static void *
rr_open (nbdkit_context *ctx, int readonly, const char *exportname, int is_tls)
{
  for (int64_t try = 0;; try++) {
    if (nbdkit_next_open (ctx, readonly, exportname) == 0)
      return NBDKIT_HANDLE_NOT_NEEDED;
    if (!retry_open || try >= retries)
      return NULL;
    nbdkit_debug ("retry-request: open failed, try %" PRIi64 " of %" PRIi64
                  " in %gs",
                  try + 2, retries + 1, delay);
    if (wait_delay () == -1)
      return NULL;
  }
}

/* One request: its kind and arguments. */
enum kind { READ, WRITE, FLUSH, TRIM, ZERO, EXTENTS, CACHE };
static const char *const kind_name[]
    = { "pread", "pwrite", "flush", "trim", "zero", "extents", "cache" };

struct req {
  enum kind kind;
  void *buf;
  const void *cbuf;
  uint64_t count, offset;
  uint32_t flags;
  struct nbdkit_read *rd;
  struct nbdkit_extents *extents;
};

static int
call (nbdkit_next *next, struct req *r, int *err)
{
  switch (r->kind) {
    case READ:
      return nbdkit_next_pread (next, r->buf, r->count, r->offset, r->flags,
                                r->rd, err);
    case WRITE:
      return nbdkit_next_pwrite (next, r->cbuf, r->count, r->offset, r->flags,
                                 err);
    case FLUSH:
      return nbdkit_next_flush (next, r->flags, err);
    case TRIM:
      return nbdkit_next_trim (next, r->count, r->offset, r->flags, err);
    case ZERO:
      return nbdkit_next_zero (next, r->count, r->offset, r->flags, err);
    case CACHE:
      return nbdkit_next_cache (next, r->count, r->offset, r->flags, err);
    case EXTENTS:
      break;
  }

  /* A try that failed half way must leave nothing in the client's list. */
  return extents_all_or_nothing (next, r->count, r->offset, r->flags,
                                 r->extents, err);
}

static int
with_retries (nbdkit_next *next, struct req *r, int *err)
{
  for (int64_t try = 0;; try++) {
    if (call (next, r, err) == 0)
      return 0;
    if (*err == ESHUTDOWN
        || (*err == ENOTSUP && (r->flags & NBDKIT_FLAG_FAST_ZERO)))
      return -1;
    if (try >= retries) {
      nbdkit_debug ("retry-request: %s failed %" PRIi64 " times, giving up",
                    kind_name[r->kind], try + 1);
      return -1;
    }
    nbdkit_debug ("retry-request: %s failed (errno %d), try %" PRIi64
                  " of %" PRIi64 " in %gs",
                  kind_name[r->kind], *err, try + 2, retries + 1, delay);
    if (wait_delay () == -1)
      return -1;
    /* Holes or loans a failed read left must not stay: read plainly. */
    r->rd = NULL;
  }
}

static int
rr_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
          uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct req r = { .kind = READ,
                   .buf = buf,
                   .count = count,
                   .offset = offset,
                   .flags = flags,
                   .rd = rd };
  return with_retries (next, &r, err);
}

static int
rr_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
           uint64_t offset, uint32_t flags, int *err)
{
  struct req r = {
    .kind = WRITE, .cbuf = buf, .count = count, .offset = offset, .flags = flags
  };
  return with_retries (next, &r, err);
}

static int
rr_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  struct req r = { .kind = FLUSH, .flags = flags };
  return with_retries (next, &r, err);
}

static int
rr_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
         uint32_t flags, int *err)
{
  struct req r
      = { .kind = TRIM, .count = count, .offset = offset, .flags = flags };
  return with_retries (next, &r, err);
}

static int
rr_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
         uint32_t flags, int *err)
{
  struct req r
      = { .kind = ZERO, .count = count, .offset = offset, .flags = flags };
  return with_retries (next, &r, err);
}

static int
rr_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
            uint32_t flags, struct nbdkit_extents *extents, int *err)
{
  struct req r = { .kind = EXTENTS,
                   .count = count,
                   .offset = offset,
                   .flags = flags,
                   .extents = extents };
  return with_retries (next, &r, err);
}

static int
rr_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  struct req r
      = { .kind = CACHE, .count = count, .offset = offset, .flags = flags };
  return with_retries (next, &r, err);
}

static struct nbdkit_filter filter = {
  .name = "retry-request",
  .longname = "nbdkit retry-request filter",
  .description = "try failed requests again",
  .params = params,
  .config_complete = rr_config_complete,
  .open = rr_open,
  .pread = rr_pread,
  .pread_fills_buffer = 1, /* reads into BUF from below */
  .pwrite = rr_pwrite,
  .flush = rr_flush,
  .trim = rr_trim,
  .zero = rr_zero,
  .extents = rr_extents,
  .cache = rr_cache,
};

NBDKIT_REGISTER_FILTER (filter)
