/* s3.c: the S3 plugin, a disk kept in an S3 bucket (Amazon S3, Ceph
 * radosgw, MinIO...).
 *
 *   nbdkit S3 [endpoint-url=URL] [access-key=K secret-key=S]
 *             [session-token=T] [size=SIZE object-size=SIZE]
 *             bucket=BUCKET key=KEY
 *
 * Without size=, KEY is one object served read-only.  With size= and
 * object-size=, the disk is the objects KEY/%016x (the object number in
 * 16 lowercase hex digits, as nbdkit's Python S3 plugin names them, so
 * the two plugins read each other's disks), each object-size bytes.  A
 * missing object reads as zeroes; trimming or zeroing a whole object
 * deletes it, and so does writing zeroes over all of it.  Block status
 * comes from listing the bucket.
 *
 * Each NBD request becomes one HTTP request per object it touches,
 * all sent at once (transfer.c).  A write that covers part of an
 * object reads the object, merges and writes it back while holding
 * the lock of that object's range (ranges.c keeps the locked ranges),
 * so two partial writes to one object do not lose each other's bytes.
 * Each operation is one function (s3_read, s3_write, s3_zero,
 * s3_trim) that builds its requests and waits for them in xfer_run.
 * Reads are also asynchronous (s3_async_pread): their requests are
 * submitted and the read completes when they finish, without a
 * thread waiting.  Writes stay synchronous: the read-modify-write of
 * a partial object holds a range lock that a waiting thread takes.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "config.h"
#include "ranges.h"
#include "transfer.h"
#include "xml.h"

/* Reads of one object are split into pieces this big, sent in parallel. */
#define READ_PIECE (4 * 1024 * 1024)

/* Trims of more objects than this list the bucket first, and delete
 * only the objects there are.
 */
#define BLIND_DELETE_MAX 64

static struct ranges locks;

/* The name (and its escaped form for URLs) of object I, or of the one
 * object in single-object mode (I == UINT64_MAX).
 */
static char *
object_name (uint64_t i)
{
  char *s;

  if (i == UINT64_MAX)
    return strdup (cfg.key);
  if (asprintf (&s, "%s/%016" PRIx64, cfg.key, i) == -1)
    return NULL;
  return s;
}

/* Append S to the URL being built, percent-encoding all but S3's
 * unreserved characters (and '/' if KEEP_SLASH), as SigV4 wants.
 */
static char *
url_encode (const char *s, bool keep_slash)
{
  char *out = malloc (strlen (s) * 3 + 1), *p = out;

  if (out == NULL)
    return NULL;
  for (; *s; s++) {
    unsigned char c = *s;
    if (isalnum (c) || c == '-' || c == '_' || c == '.' || c == '~'
        || (c == '/' && keep_slash))
      *p++ = c;
    else
      p += sprintf (p, "%%%02X", c);
  }
  *p = '\0';
  return out;
}

/* Fill X for METHOD on the object named NAME (taken). */
static int
set_object (struct xfer *x, enum xfer_method method, char *name)
{
  char *enc = name ? url_encode (name, true) : NULL;

  memset (x, 0, sizeof *x);
  x->method = method;
  if (enc == NULL
      || asprintf (&x->url, "%s/%s/%s", cfg.endpoint, cfg.bucket, enc) == -1
      || asprintf (&x->what, "object '%s' in bucket '%s'", name, cfg.bucket)
             == -1) {
    nbdkit_error ("S3: out of memory");
    free (enc);
    free (name);
    x->url = x->what = NULL;
    return -1;
  }
  free (enc);
  free (name);
  return 0;
}

static void
clear_all (struct xfer *xs, size_t n)
{
  for (size_t i = 0; i < n; i++)
    xfer_clear (&xs[i]);
  free (xs);
}

/* Whether X failed because the object does not exist (not because the
 * bucket does not: that is an error).
 */
static bool
is_missing (const struct xfer *x)
{
  char code[64];

  if (x->curl_code != CURLE_OK || x->status != 404)
    return false;
  xfer_error_code (x, code, sizeof code);
  return strcmp (code, "NoSuchKey") == 0
         || (code[0] == '\0' && x->method == XFER_HEAD);
}

/* A listing of the bucket under PREFIX after START_AFTER: one page.
 * The keys are appended to *KEYS; *TOKEN is the continuation (freed
 * and replaced; NULL at the end).
 */
static int
list_page (const char *prefix, const char *start_after, char **token,
           char ***keys, size_t *nkeys, unsigned max_keys)
{
  struct xfer x = { .method = XFER_GET };
  char *p = url_encode (prefix, false);
  char *sa = start_after ? url_encode (start_after, false) : NULL;
  char *tk = *token ? url_encode (*token, false) : NULL;
  char mk[32] = "";
  int r = -1;

  if (max_keys)
    snprintf (mk, sizeof mk, "&max-keys=%u", max_keys);
  /* SigV4 wants the query sorted by name: libcurl sends it as given. */
  if (p == NULL
      || asprintf (&x.url, "%s/%s?%s%s%slist-type=2%s&prefix=%s%s%s",
                   cfg.endpoint, cfg.bucket, tk ? "continuation-token=" : "",
                   tk ? tk : "", tk ? "&" : "", mk, p,
                   sa ? "&start-after=" : "", sa ? sa : "")
             == -1
      || asprintf (&x.what, "bucket '%s' (listing '%s')", cfg.bucket, prefix)
             == -1) {
    nbdkit_error ("S3: out of memory");
    goto out;
  }
  if (xfer_run (&x, 1) == -1)
    goto out;
  if (!xfer_ok (&x)) {
    nbdkit_set_error (xfer_report (&x));
    goto out;
  }

  const char *pos = x.body ? x.body : "";
  char name[1100], truncated[16] = "";
  while (xml_next (&pos, "Key", name, sizeof name)) {
    char **k = realloc (*keys, (*nkeys + 1) * sizeof *k);
    if (k == NULL || (k[*nkeys] = strdup (name)) == NULL) {
      if (k)
        *keys = k;
      nbdkit_error ("S3: out of memory");
      goto out;
    }
    *keys = k;
    (*nkeys)++;
  }
  free (*token);
  *token = NULL;
  if (x.body)
    xml_text (x.body, "IsTruncated", truncated, sizeof truncated);
  if (strcmp (truncated, "true") == 0) {
    char next[1100];
    if (!xml_text (x.body, "NextContinuationToken", next, sizeof next)
        || (*token = strdup (next)) == NULL) {
      nbdkit_error ("S3: listing bucket '%s': truncated without a token",
                    cfg.bucket);
      goto out;
    }
  }
  r = 0;
out:
  free (p);
  free (sa);
  free (tk);
  xfer_clear (&x);
  return r;
}

/* The requests reading [OFFSET, OFFSET+COUNT) into BUF, in *XS (*N of
 * them).  In single-object mode the object is read in pieces;
 * otherwise one piece per object touched.
 */
static int
read_prepare (void *buf, uint64_t count, uint64_t offset, struct xfer **xsp,
              size_t *np)
{
  uint64_t osz = cfg.single ? READ_PIECE : cfg.object_size;
  uint64_t first = offset / osz, last = (offset + count - 1) / osz;
  size_t n = last - first + 1;
  struct xfer *xs;

  xs = calloc (n, sizeof *xs);
  if (xs == NULL) {
    nbdkit_error ("S3: out of memory");
    return -1;
  }
  for (size_t k = 0; k < n; k++) {
    uint64_t i = first + k;
    uint64_t lo = i == first ? offset - i * osz : 0;
    uint64_t hi = i == last ? offset + count - i * osz : osz;
    struct xfer *x = &xs[k];

    if (set_object (x, XFER_GET, object_name (cfg.single ? UINT64_MAX : i))
        == -1) {
      clear_all (xs, n);
      return -1;
    }
    x->range_start = cfg.single ? i * osz + lo : lo;
    x->range_len = hi - lo;
    x->dst = (char *)buf + (i * osz + lo - offset);
    x->dst_len = hi - lo;
  }
  *xsp = xs;
  *np = n;
  return 0;
}

/* After the requests of read_prepare: missing objects are holes.
 * Returns 0 or the errno of the first failure (logged).
 */
static int
read_finish (void *buf, uint64_t offset, struct nbdkit_read *rd,
             struct xfer *xs, size_t n)
{
  int err = 0;

  for (size_t k = 0; k < n; k++) {
    struct xfer *x = &xs[k];
    uint64_t at = (uint64_t)((char *)x->dst - (char *)buf) + offset;

    if (!cfg.single && is_missing (x)) {
      if (rd)
        nbdkit_read_hole (rd, at, x->dst_len);
      else
        memset (x->dst, 0, x->dst_len);
    } else if (!xfer_ok (x)) {
      if (!err)
        err = xfer_report (x);
    } else if (x->got != x->dst_len) {
      nbdkit_error ("S3: GET %s: %" PRIu64 " bytes at offset %" PRIu64
                    " of the object asked for, %" PRIu64
                    " received (is object-size right?)",
                    x->what, x->dst_len, x->range_start, x->got);
      if (!err)
        err = EIO;
    }
  }
  return err;
}

/* Read [OFFSET, OFFSET+COUNT) into BUF, waiting. */
static int
s3_read (void *buf, uint64_t count, uint64_t offset, struct nbdkit_read *rd)
{
  struct xfer *xs;
  size_t n;
  int r = -1, err;

  if (count == 0)
    return 0;
  if (read_prepare (buf, count, offset, &xs, &n) == -1)
    return -1;
  if (xfer_run (xs, n) == -1)
    goto out;
  err = read_finish (buf, offset, rd, xs, n);
  if (err) {
    nbdkit_set_error (err);
    goto out;
  }
  r = 0;
out:
  clear_all (xs, n);
  return r;
}

static bool
all_zero (const void *p, uint64_t len)
{
  const unsigned char *c = p;

  if (len == 0)
    return true;
  return c[0] == 0 && memcmp (c, c + 1, len - 1) == 0;
}

/* The part [LO, HI) of object I that a write, zero or trim changes. */
struct piece {
  uint64_t i, lo, hi;
  const char *data; /* NULL: zeroes */
  char *tmp;        /* the merged object for partial pieces */
  bool skip;
};

/* Fetch the objects of the partial pieces of P into their tmp buffers
 * (zeroes when missing; *MISSING set for those).
 */
static int
fetch_partial (struct piece *p, size_t n, bool *missing)
{
  struct xfer xs[2];
  size_t idx[2], m = 0;
  int err = 0;

  for (size_t k = 0; k < n; k++) {
    if (p[k].lo == 0 && p[k].hi == cfg.object_size)
      continue;
    if (set_object (&xs[m], XFER_GET, object_name (p[k].i)) == -1) {
      for (size_t j = 0; j < m; j++)
        xfer_clear (&xs[j]);
      return -1;
    }
    xs[m].dst = p[k].tmp;
    xs[m].dst_len = cfg.object_size;
    idx[m++] = k;
  }
  if (xfer_run (xs, m) == -1)
    err = EIO;
  for (size_t j = 0; j < m && !err; j++) {
    struct xfer *x = &xs[j];
    missing[idx[j]] = false;
    if (is_missing (x)) {
      memset (p[idx[j]].tmp, 0, cfg.object_size);
      missing[idx[j]] = true;
    } else if (!xfer_ok (x))
      err = xfer_report (x);
    else if (x->got != cfg.object_size) {
      nbdkit_error ("S3: GET %s: the object has %" PRIu64
                    " bytes, not object-size %" PRIu64,
                    x->what, x->got, cfg.object_size);
      err = EIO;
    }
  }
  for (size_t j = 0; j < m; j++)
    xfer_clear (&xs[j]);
  if (err) {
    nbdkit_set_error (err);
    return -1;
  }
  return 0;
}

/* Write DATA (NULL: zeroes) over [OFFSET, OFFSET+COUNT): whole objects
 * are stored or, all zero, deleted; partial ones are merged.  With
 * WHOLE_ONLY (trim) partial objects are left alone.
 */
static int
update (const char *data, uint64_t count, uint64_t offset, bool whole_only)
{
  uint64_t osz = cfg.object_size;
  uint64_t first = offset / osz, last = (offset + count - 1) / osz;
  size_t n = last - first + 1, m = 0;
  struct piece *p;
  bool *missing;
  struct xfer *xs;
  struct range_lock held;
  bool partial = false;
  int r = -1, err = 0;

  if (count == 0)
    return 0;
  p = calloc (n, sizeof *p);
  missing = calloc (n, sizeof *missing);
  xs = calloc (n, sizeof *xs);
  if (p == NULL || missing == NULL || xs == NULL) {
    nbdkit_error ("S3: out of memory");
    goto out_free;
  }
  for (size_t k = 0; k < n; k++) {
    uint64_t i = first + k;
    p[k].i = i;
    p[k].lo = i == first ? offset - i * osz : 0;
    p[k].hi = i == last ? offset + count - i * osz : osz;
    p[k].data = data ? data + (i * osz + p[k].lo - offset) : NULL;
    if (p[k].lo != 0 || p[k].hi != osz) {
      if (whole_only) {
        p[k].skip = true;
        continue;
      }
      partial = true;
      if ((p[k].tmp = malloc (osz)) == NULL) {
        nbdkit_error ("S3: out of memory");
        goto out_free;
      }
    }
  }

  ranges_lock (&locks, &held, first, last + 1);
  if (partial && fetch_partial (p, n, missing) == -1)
    goto out;

  for (size_t k = 0; k < n; k++) {
    const char *body;
    if (p[k].skip)
      continue;
    if (p[k].tmp) {
      /* Zeroes over part of a missing object change nothing. */
      if (missing[k] && data == NULL)
        continue;
      if (data)
        memcpy (p[k].tmp + p[k].lo, p[k].data, p[k].hi - p[k].lo);
      else
        memset (p[k].tmp + p[k].lo, 0, p[k].hi - p[k].lo);
      body = p[k].tmp;
    } else
      body = data ? p[k].data : NULL;

    if (body == NULL || all_zero (body, osz)) {
      if (set_object (&xs[m], XFER_DELETE, object_name (p[k].i)) == -1)
        goto out;
    } else {
      if (set_object (&xs[m], XFER_PUT, object_name (p[k].i)) == -1)
        goto out;
      xs[m].src = body;
      xs[m].src_len = osz;
    }
    m++;
  }
  if (xfer_run (xs, m) == -1)
    goto out;
  for (size_t j = 0; j < m; j++)
    if (!xfer_ok (&xs[j])
        && !(xs[j].method == XFER_DELETE && is_missing (&xs[j])) && !err)
      err = xfer_report (&xs[j]);
  if (err) {
    nbdkit_set_error (err);
    goto out;
  }
  r = 0;
out:
  ranges_unlock (&locks, &held);
out_free:
  if (p)
    for (size_t k = 0; k < n; k++)
      free (p[k].tmp);
  free (p);
  free (missing);
  if (xs)
    clear_all (xs, n);
  return r;
}

/* Delete the objects [A, B) that exist, found by listing the bucket. */
static int
delete_listed (uint64_t a, uint64_t b)
{
  char *start = a > 0 ? object_name (a - 1) : NULL;
  char *end = object_name (b);
  char *prefix = NULL, *token = NULL;
  int r = -1;

  if ((a > 0 && start == NULL) || end == NULL
      || asprintf (&prefix, "%s/", cfg.key) == -1) {
    nbdkit_error ("S3: out of memory");
    prefix = NULL;
    goto out;
  }
  do {
    char **keys = NULL;
    size_t nkeys = 0, m = 0;
    struct xfer *xs;
    bool done = false;
    int err = 0;

    if (list_page (prefix, start, &token, &keys, &nkeys, 1000) == -1) {
      for (size_t k = 0; k < nkeys; k++)
        free (keys[k]);
      free (keys);
      goto out;
    }
    xs = calloc (nkeys ? nkeys : 1, sizeof *xs);
    for (size_t k = 0; k < nkeys; k++) {
      if (strcmp (keys[k], end) >= 0)
        done = true;
      /* Only names of our objects: KEY/ and 16 hex digits. */
      if (done || strlen (keys[k]) != strlen (end) || xs == NULL) {
        free (keys[k]);
        continue;
      }
      if (set_object (&xs[m], XFER_DELETE, keys[k]) == 0)
        m++;
    }
    free (keys);
    if (xs == NULL) {
      nbdkit_error ("S3: out of memory");
      goto out;
    }
    if (xfer_run (xs, m) == 0)
      for (size_t j = 0; j < m; j++)
        if (!xfer_ok (&xs[j]) && !is_missing (&xs[j]) && !err)
          err = xfer_report (&xs[j]);
    clear_all (xs, m);
    if (err) {
      nbdkit_set_error (err);
      goto out;
    }
    if (done)
      break;
  } while (token);
  r = 0;
out:
  free (start);
  free (end);
  free (prefix);
  free (token);
  return r;
}

/* Make [OFFSET, OFFSET+COUNT) read as zeroes: whole objects are
 * deleted, partial ones merged with zeroes.
 */
static int
s3_zero (uint64_t count, uint64_t offset)
{
  uint64_t osz = cfg.object_size;
  uint64_t a = (offset + osz - 1) / osz, b = (offset + count) / osz;

  if (b > a + BLIND_DELETE_MAX) {
    struct range_lock held;
    int r;

    /* The partial ends first, then the whole objects between. */
    if (offset % osz && update (NULL, a * osz - offset, offset, false) == -1)
      return -1;
    if ((offset + count) % osz
        && update (NULL, (offset + count) % osz, b * osz, false) == -1)
      return -1;
    ranges_lock (&locks, &held, a, b);
    r = delete_listed (a, b);
    ranges_unlock (&locks, &held);
    return r;
  }
  return update (NULL, count, offset, false);
}

/* Delete the objects wholly inside [OFFSET, OFFSET+COUNT). */
static int
s3_trim (uint64_t count, uint64_t offset)
{
  uint64_t osz = cfg.object_size;
  uint64_t a = (offset + osz - 1) / osz, b = (offset + count) / osz;

  if (b <= a)
    return 0;
  if (b > a + BLIND_DELETE_MAX) {
    struct range_lock held;
    int r;

    ranges_lock (&locks, &held, a, b);
    r = delete_listed (a, b);
    ranges_unlock (&locks, &held);
    return r;
  }
  return update (NULL, (b - a) * osz, a * osz, true);
}

static int
s3_write (const void *buf, uint64_t count, uint64_t offset)
{
  return update (buf, count, offset, false);
}

/* Which objects of [OFFSET, OFFSET+COUNT) exist, from one page of a
 * listing (1000 objects): existing objects are data, the others holes.
 * A truncated listing answers up to the last object it names; the
 * client asks again for the rest.
 */
static int
s3_extents_op (uint64_t count, uint64_t offset, struct nbdkit_extents *ext)
{
  uint64_t osz = cfg.object_size, nobj = cfg.size / osz;
  uint64_t a = offset / osz, b = (offset + count + osz - 1) / osz, next = a;
  char *start = a > 0 ? object_name (a - 1) : NULL, *prefix = NULL;
  char *token = NULL;
  bool past = false, failed = false;
  int r = -1;

  if (b > nobj)
    b = nobj;
  if ((a > 0 && start == NULL) || asprintf (&prefix, "%s/", cfg.key) == -1) {
    nbdkit_error ("S3: out of memory");
    prefix = NULL;
    goto out;
  }
  do {
    char **keys = NULL;
    size_t nkeys = 0, plen = strlen (prefix);

    if (list_page (prefix, start, &token, &keys, &nkeys, 1000) == -1) {
      for (size_t k = 0; k < nkeys; k++)
        free (keys[k]);
      free (keys);
      goto out;
    }
    for (size_t k = 0; k < nkeys; k++) {
      const char *hex = keys[k] + plen;
      char *end;
      uint64_t i;

      if (past || failed || strlen (hex) != 16
          || !isxdigit ((unsigned char)hex[0]))
        continue;
      i = strtoull (hex, &end, 16);
      if (*end != '\0' || i < next)
        continue;
      if (i >= b) {
        past = true;
        continue;
      }
      if (i > next
          && nbdkit_add_extent (ext, next * osz, (i - next) * osz,
                                NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO)
                 == -1)
        failed = true;
      if (nbdkit_add_extent (ext, i * osz, osz, 0) == -1)
        failed = true;
      next = i + 1;
    }
    for (size_t k = 0; k < nkeys; k++)
      free (keys[k]);
    free (keys);
    if (failed)
      goto out;
    /* Stop at the end of the range, or once something is answered. */
    if (past || next > a)
      break;
  } while (token);
  /* Past the last object listed, up to B: holes, if the listing
   * reached B or ended.
   */
  if ((past || token == NULL) && next < b
      && nbdkit_add_extent (ext, next * osz, (b - next) * osz,
                            NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO)
             == -1)
    goto out;
  r = 0;
out:
  free (start);
  free (prefix);
  free (token);
  return r;
}

/* Check the bucket and the credentials with a one-key listing; in
 * single-object mode, find the object's size.
 */
static int
s3_probe (int64_t *size)
{
  char *prefix = NULL, *token = NULL, **keys = NULL;
  size_t nkeys = 0;
  int r;

  if (asprintf (&prefix, "%s%s", cfg.key, cfg.single ? "" : "/") == -1) {
    nbdkit_error ("S3: out of memory");
    return -1;
  }
  r = list_page (prefix, NULL, &token, &keys, &nkeys, 1);
  for (size_t k = 0; k < nkeys; k++)
    free (keys[k]);
  free (keys);
  free (token);
  free (prefix);
  if (r == -1)
    return -1;

  if (!cfg.single) {
    *size = cfg.size;
    return 0;
  }
  struct xfer x;
  if (set_object (&x, XFER_HEAD, object_name (UINT64_MAX)) == -1)
    return -1;
  r = -1;
  if (xfer_run (&x, 1) == 0) {
    if (!xfer_ok (&x))
      nbdkit_set_error (xfer_report (&x));
    else if (x.content_length < 0)
      nbdkit_error ("S3: HEAD %s: no Content-Length", x.what);
    else {
      *size = x.content_length;
      r = 0;
    }
  }
  xfer_clear (&x);
  return r;
}

/* The callbacks. */

/* Asynchronous reads.  Their transfers run on the transfer thread,
 * whose callback (read_done) only queues the finished read on its
 * connection's handle; the handle's own thread (completer) checks the
 * results and calls nbdkit_complete, which sends the reply.  Sending
 * may block on a client that does not read its replies: on the
 * transfer thread it would stall every connection's transfers, here it
 * stalls only that client's.
 */
struct aread {
  struct handle *h;
  struct xfer *xs;
  size_t n;
  void *buf;
  uint64_t offset;
  struct nbdkit_read *rd;
  struct nbdkit_completion *c;
  struct aread *next;
};

struct handle {
  int64_t size;
  bool have_completer;
  pthread_t completer;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct aread *done, **done_tail; /* under lock */
  bool stop;
};

/* On the transfer thread: the last transfer of A finished. */
static void
read_done (void *opaque)
{
  struct aread *a = opaque;
  struct handle *h = a->h;

  pthread_mutex_lock (&h->lock);
  a->next = NULL;
  *h->done_tail = a;
  h->done_tail = &a->next;
  pthread_cond_signal (&h->cond);
  pthread_mutex_unlock (&h->lock);
}

static void *
completer (void *arg)
{
  struct handle *h = arg;

  pthread_mutex_lock (&h->lock);
  for (;;) {
    struct aread *list = h->done;

    if (list == NULL) {
      if (h->stop)
        break;
      pthread_cond_wait (&h->cond, &h->lock);
      continue;
    }
    h->done = NULL;
    h->done_tail = &h->done;
    pthread_mutex_unlock (&h->lock);
    while (list) {
      struct aread *a = list;
      int err;

      list = a->next;
      err = read_finish (a->buf, a->offset, a->rd, a->xs, a->n);
      clear_all (a->xs, a->n);
      nbdkit_complete (a->c, err);
      free (a);
    }
    pthread_mutex_lock (&h->lock);
  }
  pthread_mutex_unlock (&h->lock);
  return NULL;
}

static void
s3_load (void)
{
  curl_global_init (CURL_GLOBAL_DEFAULT);
}

static void
s3_unload (void)
{
  config_free ();
  curl_global_cleanup ();
}

static int
s3_after_fork (void)
{
  ranges_init (&locks);
  return xfer_start (&cfg.xfer);
}

static void
s3_cleanup (void)
{
  xfer_stop ();
}

static void *
s3_open (int readonly, const char *exportname, int is_tls)
{
  struct handle *h = malloc (sizeof *h);

  (void)readonly;
  (void)exportname;
  (void)is_tls;
  if (h == NULL) {
    nbdkit_error ("S3: out of memory");
    return NULL;
  }
  memset (h, 0, sizeof *h);
  if (s3_probe (&h->size) == -1) {
    free (h);
    return NULL;
  }
  pthread_mutex_init (&h->lock, NULL);
  pthread_cond_init (&h->cond, NULL);
  h->done_tail = &h->done;
  if (cfg.async) {
    int err = pthread_create (&h->completer, NULL, completer, h);
    if (err) {
      errno = err;
      nbdkit_error ("S3: pthread_create: %m");
      pthread_cond_destroy (&h->cond);
      pthread_mutex_destroy (&h->lock);
      free (h);
      return NULL;
    }
    h->have_completer = true;
  }
  return h;
}

/* The server calls close once every read of the handle completed. */
static void
s3_close (void *handle)
{
  struct handle *h = handle;

  if (h->have_completer) {
    pthread_mutex_lock (&h->lock);
    h->stop = true;
    pthread_cond_signal (&h->cond);
    pthread_mutex_unlock (&h->lock);
    pthread_join (h->completer, NULL);
  }
  pthread_cond_destroy (&h->cond);
  pthread_mutex_destroy (&h->lock);
  free (h);
}

static int64_t
s3_get_size (void *handle)
{
  return ((struct handle *)handle)->size;
}

static int
s3_block_size (void *handle, struct nbdkit_block_size *bs)
{
  uint64_t pref = 512;

  (void)handle;
  if (!cfg.single)
    while (pref * 2 <= cfg.object_size && pref < 32 * 1024 * 1024)
      pref *= 2;
  else
    pref = 64 * 1024;
  bs->minimum = 1;
  bs->preferred = pref;
  bs->maximum = 64 * 1024 * 1024;
  return 0;
}

static int
s3_can_write (void *handle)
{
  (void)handle;
  return !cfg.single;
}

static int
s3_true (void *handle)
{
  (void)handle;
  return 1;
}

static int
s3_false (void *handle)
{
  (void)handle;
  return 0;
}

static int
s3_can_zero (void *handle)
{
  (void)handle;
  return NBDKIT_ZERO_NATIVE;
}

/* A PUT or DELETE is stable when it returns. */
static int
s3_can_fua (void *handle)
{
  (void)handle;
  return NBDKIT_FUA_NATIVE;
}

static int
s3_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
          uint32_t flags, struct nbdkit_read *rd)
{
  (void)handle;
  (void)flags;
  return s3_read (buf, count, offset, rd);
}

/* Start the read; it completes in completer. */
static int
s3_async_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
                uint32_t flags, struct nbdkit_read *rd,
                struct nbdkit_completion *c)
{
  struct handle *h = handle;
  struct aread *a;

  (void)flags;
  if (count == 0 || !h->have_completer) {
    int r = s3_read (buf, count, offset, rd);
    if (r == 0)
      nbdkit_complete (c, 0);
    return r;
  }
  a = calloc (1, sizeof *a);
  if (a == NULL) {
    nbdkit_error ("S3: out of memory");
    return -1;
  }
  *a = (struct aread){ .h = h, .buf = buf, .offset = offset, .rd = rd, .c = c };
  if (read_prepare (buf, count, offset, &a->xs, &a->n) == -1) {
    free (a);
    return -1;
  }
  if (xfer_submit (a->xs, a->n, read_done, a) == -1) {
    clear_all (a->xs, a->n);
    free (a);
    return -1;
  }
  return 0;
}

static int
s3_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
           uint32_t flags)
{
  (void)handle;
  (void)flags;
  return s3_write (buf, count, offset);
}

static int
s3_can_extents (void *handle)
{
  (void)handle;
  return cfg.single ? NBDKIT_EXTENTS_NONE : NBDKIT_EXTENTS_NATIVE;
}

static int
s3_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *ext)
{
  (void)handle;
  (void)flags;
  return s3_extents_op (count, offset, ext);
}

static int
s3_flush (void *handle, uint32_t flags)
{
  (void)handle;
  (void)flags;
  return 0;
}

static int
s3_trim_cb (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  (void)handle;
  (void)flags;
  return s3_trim (count, offset);
}

static int
s3_zero_cb (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  (void)handle;
  (void)flags;
  return s3_zero (count, offset);
}

static int s3_config_complete (void);

static struct nbdkit_plugin plugin = {
  .name = "S3",
  .longname = "disk in an S3 bucket",
  .version = "1.0",
  .description = "a disk stored as objects in an S3 bucket, through libcurl",
  .params = config_params,
  .config_complete = s3_config_complete,
  .config_help = config_help,
  .load = s3_load,
  .unload = s3_unload,
  .after_fork = s3_after_fork,
  .cleanup = s3_cleanup,
  .open = s3_open,
  .close = s3_close,
  .get_size = s3_get_size,
  .block_size = s3_block_size,
  .can_write = s3_can_write,
  .can_flush = s3_true,
  .is_rotational = s3_false,
  .can_trim = s3_can_write,
  .can_zero = s3_can_zero,
  .can_fast_zero = s3_true,
  .can_fua = s3_can_fua,
  .can_multi_conn = s3_true,
  .pread = s3_pread,
  .pwrite = s3_pwrite,
  .flush = s3_flush,
  .trim = s3_trim_cb,
  .zero = s3_zero_cb,
  .can_extents = s3_can_extents,
  .extents = s3_extents,
  .pread_fills_buffer = 1,
  .async_pread = s3_async_pread,
};

/* async=false: a server thread waits for each read, to compare. */
static int
s3_config_complete (void)
{
  if (config_complete () == -1)
    return -1;
  if (!cfg.async)
    plugin.async_pread = NULL;
  return 0;
}

NBDKIT_REGISTER_PLUGIN (plugin)
