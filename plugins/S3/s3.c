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
 * Requests are asynchronous: reads (s3_async_pread) submit their
 * transfers and complete when they finish; writes, zeroes and trims
 * (struct wop) are chains of steps, each submitted when the previous
 * one's transfers finish, and a lock that is taken queues the request
 * until it is released.  No thread waits, except the caller of a
 * synchronous callback (async=false), which runs the same steps.
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

/* The request for one page of a listing of the bucket under PREFIX
 * after START_AFTER, continuing at TOKEN (NULL: the first page), at
 * most MAX_KEYS keys (0: the server's default).
 */
static int
list_prepare (struct xfer *x, const char *prefix, const char *start_after,
              const char *token, unsigned max_keys)
{
  char *p = url_encode (prefix, false);
  char *sa = start_after ? url_encode (start_after, false) : NULL;
  char *tk = token ? url_encode (token, false) : NULL;
  char mk[32] = "";
  int r = -1;

  memset (x, 0, sizeof *x);
  x->method = XFER_GET;
  if (max_keys)
    snprintf (mk, sizeof mk, "&max-keys=%u", max_keys);
  /* SigV4 wants the query sorted by name: libcurl sends it as given. */
  if (p == NULL || (start_after && sa == NULL) || (token && tk == NULL)
      || asprintf (&x->url, "%s/%s?%s%s%slist-type=2%s&prefix=%s%s%s",
                   cfg.endpoint, cfg.bucket, tk ? "continuation-token=" : "",
                   tk ? tk : "", tk ? "&" : "", mk, p,
                   sa ? "&start-after=" : "", sa ? sa : "")
             == -1
      || asprintf (&x->what, "bucket '%s' (listing '%s')", cfg.bucket, prefix)
             == -1) {
    nbdkit_error ("S3: out of memory");
    xfer_clear (x);
    goto out;
  }
  r = 0;
out:
  free (p);
  free (sa);
  free (tk);
  return r;
}

/* The outcome of the listing X: its keys appended to *KEYS (*NKEYS of
 * them), *TOKEN the continuation (freed and replaced; NULL at the
 * end).  Returns 0 or an errno (logged).
 */
static int
list_parse (const struct xfer *x, char **token, char ***keys, size_t *nkeys)
{
  if (!xfer_ok (x))
    return xfer_report (x);

  const char *pos = x->body ? x->body : "";
  char name[1100], truncated[16] = "";
  while (xml_next (&pos, "Key", name, sizeof name)) {
    char **k = realloc (*keys, (*nkeys + 1) * sizeof *k);
    if (k == NULL || (k[*nkeys] = strdup (name)) == NULL) {
      if (k)
        *keys = k;
      nbdkit_error ("S3: out of memory");
      return ENOMEM;
    }
    *keys = k;
    (*nkeys)++;
  }
  free (*token);
  *token = NULL;
  if (x->body)
    xml_text (x->body, "IsTruncated", truncated, sizeof truncated);
  if (strcmp (truncated, "true") == 0) {
    char next[1100];
    if (!xml_text (x->body, "NextContinuationToken", next, sizeof next)
        || (*token = strdup (next)) == NULL) {
      nbdkit_error ("S3: listing bucket '%s': truncated without a token",
                    cfg.bucket);
      return EIO;
    }
  }
  return 0;
}

static void
free_keys (char **keys, size_t nkeys)
{
  for (size_t k = 0; k < nkeys; k++)
    free (keys[k]);
  free (keys);
}

/* One page of a listing, waiting (see list_prepare, list_parse). */
static int
list_page (const char *prefix, const char *start_after, char **token,
           char ***keys, size_t *nkeys, unsigned max_keys)
{
  struct xfer x;
  int err;

  if (list_prepare (&x, prefix, start_after, *token, max_keys) == -1)
    return -1;
  if (xfer_run (&x, 1) == -1) {
    xfer_clear (&x);
    return -1;
  }
  err = list_parse (&x, token, keys, nkeys);
  xfer_clear (&x);
  if (err) {
    nbdkit_set_error (err);
    return -1;
  }
  return 0;
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

/* Requests finished on the transfer thread are completed on their
 * connection's own thread (completer): nbdkit_complete sends the
 * reply, which may block on a client that does not read its replies;
 * on the transfer thread it would stall every connection's transfers,
 * there it stalls only that client's.
 */
struct areq {
  struct areq *next;
  void (*finish) (struct areq *q); /* checks, completes and frees */
};

struct handle {
  int64_t size;
  bool have_completer;
  pthread_t completer;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct areq *done, **done_tail; /* under lock */
  bool stop;
};

/* From any thread: queue Q for H's completer. */
static void
queue_done (struct handle *h, struct areq *q)
{
  pthread_mutex_lock (&h->lock);
  q->next = NULL;
  *h->done_tail = q;
  h->done_tail = &q->next;
  pthread_cond_signal (&h->cond);
  pthread_mutex_unlock (&h->lock);
}

/* A thread waiting for a request run by steps on the transfer thread
 * (the synchronous callbacks: async=false, or when the server does
 * not use the async ones).
 */
struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool finished;
};

static void
waiter_init (struct waiter *w)
{
  pthread_mutex_init (&w->lock, NULL);
  pthread_cond_init (&w->cond, NULL);
  w->finished = false;
}

static void
waiter_wake (struct waiter *w)
{
  pthread_mutex_lock (&w->lock);
  w->finished = true;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
}

/* Wait for waiter_wake, then free W's mutex and condition. */
static void
waiter_wait (struct waiter *w)
{
  pthread_mutex_lock (&w->lock);
  while (!w->finished)
    pthread_cond_wait (&w->cond, &w->lock);
  pthread_mutex_unlock (&w->lock);
  pthread_cond_destroy (&w->cond);
  pthread_mutex_destroy (&w->lock);
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
  bool missing;     /* the partial object did not exist */
};

/* A write, zero or trim, as a chain of steps each started by the
 * completion of the previous one's transfers, so no thread waits:
 *
 *   op_start     request the lock of the objects touched (ranges.c)
 *   op_locked    (lock granted) GET the objects written in part
 *   op_fetched   merge; PUT each object, or DELETE it if all zero
 *   op_stored    then, for big zeroes and trims, the objects between
 *   op_list      are found by listing the bucket (a page at a time)
 *   op_listed    and deleted
 *   op_end       release the lock; complete the request
 *
 * Full-object writes go straight to PUT.  A request whose caller waits
 * (the synchronous callbacks, async=false) runs the same steps and
 * waits for op_end (op_run).
 */
struct wop {
  struct areq q;
  struct handle *h;
  struct nbdkit_completion *c; /* NULL: a thread waits in op_run */
  const char *data;            /* NULL: zeroes */
  struct piece *p;
  size_t n;
  struct xfer *xs; /* the transfers of the current step */
  size_t m;
  uint64_t lock_a, lock_b; /* the objects locked */
  struct range_lock held;
  bool locked;
  /* Objects [la, lb) deleted by listing the bucket (la == lb: none). */
  uint64_t la, lb;
  char *prefix, *start, *end, *token;
  bool list_done;
  int err;
  struct waiter w; /* op_run */
};

enum op_kind { OP_WRITE, OP_ZERO, OP_TRIM };

static void op_end (struct wop *op);

static void
op_free (struct wop *op)
{
  if (op->p)
    for (size_t k = 0; k < op->n; k++)
      free (op->p[k].tmp);
  free (op->p);
  if (op->xs)
    clear_all (op->xs, op->m);
  free (op->prefix);
  free (op->start);
  free (op->end);
  free (op->token);
  free (op);
}

/* Replace the transfers of the last step by M empty ones. */
static int
op_xfers (struct wop *op, size_t m)
{
  if (op->xs)
    clear_all (op->xs, op->m);
  op->m = 0;
  op->xs = calloc (m ? m : 1, sizeof *op->xs);
  if (op->xs == NULL) {
    nbdkit_error ("S3: out of memory");
    op->err = ENOMEM;
    return -1;
  }
  return 0;
}

/* Submit the first M transfers; NEXT runs when they completed. */
static void
op_submit (struct wop *op, size_t m, void (*next) (void *opaque))
{
  op->m = m;
  if (xfer_submit (op->xs, m, next, op) == -1) {
    op->err = EIO;
    op_end (op);
  }
}

/* The first failure of the transfers of the step, logged; missing
 * objects are not failures for DELETE.
 */
static void
op_check (struct wop *op)
{
  for (size_t j = 0; j < op->m && !op->err; j++)
    if (!xfer_ok (&op->xs[j])
        && !(op->xs[j].method == XFER_DELETE && is_missing (&op->xs[j])))
      op->err = xfer_report (&op->xs[j]);
}

static void op_list (struct wop *op);

static void
op_deleted (void *opaque)
{
  struct wop *op = opaque;

  op_check (op);
  if (op->err || op->list_done || op->token == NULL)
    op_end (op);
  else
    op_list (op);
}

/* One page of the listing: DELETE the objects of [la, lb) it names. */
static void
op_listed (void *opaque)
{
  struct wop *op = opaque;
  char **keys = NULL;
  size_t nkeys = 0, m = 0;

  op->err = list_parse (&op->xs[0], &op->token, &keys, &nkeys);
  if (op->err || op_xfers (op, nkeys) == -1) {
    free_keys (keys, nkeys);
    op_end (op);
    return;
  }
  for (size_t k = 0; k < nkeys; k++) {
    if (strcmp (keys[k], op->end) >= 0)
      op->list_done = true;
    /* Only names of our objects: KEY/ and 16 hex digits. */
    if (op->list_done || strlen (keys[k]) != strlen (op->end)) {
      free (keys[k]);
      continue;
    }
    if (set_object (&op->xs[m], XFER_DELETE, keys[k]) == -1) {
      op->err = ENOMEM;
      for (k++; k < nkeys; k++)
        free (keys[k]);
      break;
    }
    m++;
  }
  free (keys);
  op->m = m;
  if (op->err)
    op_end (op);
  else
    op_submit (op, m, op_deleted);
}

static void
op_list (struct wop *op)
{
  if (op_xfers (op, 1) == -1
      || list_prepare (&op->xs[0], op->prefix, op->start, op->token, 1000)
             == -1) {
    op->err = op->err ? op->err : ENOMEM;
    op_end (op);
    return;
  }
  op_submit (op, 1, op_listed);
}

static void
op_stored (void *opaque)
{
  struct wop *op = opaque;

  op_check (op);
  if (op->err || op->la == op->lb)
    op_end (op);
  else
    op_list (op);
}

/* Merge the partial pieces; PUT or DELETE every piece. */
static void
op_fetched (void *opaque)
{
  struct wop *op = opaque;
  uint64_t osz = cfg.object_size;
  size_t j = 0, m = 0;

  /* The GETs, in the order of the partial pieces. */
  for (size_t k = 0; k < op->n && !op->err; k++) {
    struct xfer *x;
    if (op->p[k].tmp == NULL)
      continue;
    x = &op->xs[j++];
    if (is_missing (x)) {
      memset (op->p[k].tmp, 0, osz);
      op->p[k].missing = true;
    } else if (!xfer_ok (x))
      op->err = xfer_report (x);
    else if (x->got != osz) {
      nbdkit_error ("S3: GET %s: the object has %" PRIu64
                    " bytes, not object-size %" PRIu64,
                    x->what, x->got, osz);
      op->err = EIO;
    }
  }
  if (op->err || op_xfers (op, op->n) == -1) {
    op_end (op);
    return;
  }

  for (size_t k = 0; k < op->n; k++) {
    struct piece *p = &op->p[k];
    const char *body;

    if (p->tmp) {
      /* Zeroes over part of a missing object change nothing. */
      if (p->missing && p->data == NULL)
        continue;
      if (p->data)
        memcpy (p->tmp + p->lo, p->data, p->hi - p->lo);
      else
        memset (p->tmp + p->lo, 0, p->hi - p->lo);
      body = p->tmp;
    } else
      body = p->data;

    if (body == NULL || all_zero (body, osz)) {
      if (set_object (&op->xs[m], XFER_DELETE, object_name (p->i)) == -1)
        goto nomem;
    } else {
      if (set_object (&op->xs[m], XFER_PUT, object_name (p->i)) == -1)
        goto nomem;
      op->xs[m].src = body;
      op->xs[m].src_len = osz;
    }
    m++;
  }
  op_submit (op, m, op_stored);
  return;

nomem:
  op->m = m;
  op->err = ENOMEM;
  op_end (op);
}

/* The lock is held: GET the objects written in part. */
static void
op_locked (void *opaque)
{
  struct wop *op = opaque;
  uint64_t osz = cfg.object_size;
  size_t m = 0;

  op->locked = true;
  if (op_xfers (op, op->n) == -1) {
    op_end (op);
    return;
  }
  for (size_t k = 0; k < op->n; k++) {
    struct piece *p = &op->p[k];
    if (p->lo == 0 && p->hi == osz)
      continue;
    if ((p->tmp = malloc (osz)) == NULL) {
      nbdkit_error ("S3: out of memory");
      goto nomem;
    }
    if (set_object (&op->xs[m], XFER_GET, object_name (p->i)) == -1)
      goto nomem;
    op->xs[m].dst = p->tmp;
    op->xs[m].dst_len = osz;
    m++;
  }
  op_submit (op, m, op_fetched);
  return;

nomem:
  op->m = m;
  op->err = ENOMEM;
  op_end (op);
}

/* On the completer: the request is done. */
static void
op_finish (struct areq *q)
{
  struct wop *op = (struct wop *)q;

  nbdkit_complete (op->c, op->err);
  op_free (op);
}

static void
op_end (struct wop *op)
{
  if (op->locked) {
    op->locked = false;
    ranges_unlock (&locks, &op->held);
  }
  if (op->c) {
    op->q.finish = op_finish;
    queue_done (op->h, &op->q);
    return;
  }
  waiter_wake (&op->w);
}

/* Add the piece [LO, HI) of object I, written from DATA (NULL: zeroes)
 * which holds the request's bytes from OFFSET.
 */
static void
add_piece (struct wop *op, uint64_t i, uint64_t lo, uint64_t hi,
           const char *data, uint64_t offset)
{
  uint64_t osz = cfg.object_size;

  op->p[op->n++] = (struct piece){
    .i = i,
    .lo = lo,
    .hi = hi,
    .data = data ? data + (i * osz + lo - offset) : NULL,
  };
}

/* A new operation for KIND over [OFFSET, OFFSET+COUNT) (COUNT > 0),
 * completing C (NULL: op_run waits).
 */
static struct wop *
op_new (struct handle *h, struct nbdkit_completion *c, enum op_kind kind,
        const char *data, uint64_t count, uint64_t offset)
{
  uint64_t osz = cfg.object_size, end = offset + count;
  uint64_t first = offset / osz, last = (end - 1) / osz;
  /* The objects wholly inside. */
  uint64_t a = (offset + osz - 1) / osz, b = end / osz;
  bool listed = kind != OP_WRITE && b > a + BLIND_DELETE_MAX;
  struct wop *op = calloc (1, sizeof *op);

  if (op == NULL)
    goto nomem;
  op->h = h;
  op->c = c;
  op->data = data;
  if (c == NULL)
    waiter_init (&op->w);
  op->p = calloc (listed ? 2 : last - first + 1, sizeof *op->p);
  if (op->p == NULL)
    goto nomem;

  if (kind == OP_TRIM) {
    /* Trims leave the objects touched in part alone. */
    op->lock_a = a;
    op->lock_b = b > a ? b : a;
    if (!listed)
      for (uint64_t i = a; i < b; i++)
        add_piece (op, i, 0, osz, NULL, offset);
  } else {
    op->lock_a = first;
    op->lock_b = last + 1;
    for (uint64_t i = first; i <= last; i++) {
      uint64_t lo = i == first ? offset - i * osz : 0;
      uint64_t hi = i == last ? end - i * osz : osz;
      /* Between the partial ends of a big zero: listed. */
      if (listed && i >= a && i < b) {
        i = b - 1;
        continue;
      }
      add_piece (op, i, lo, hi, data, offset);
    }
  }
  if (listed) {
    op->la = a;
    op->lb = b;
    if ((a > 0 && (op->start = object_name (a - 1)) == NULL)
        || (op->end = object_name (b)) == NULL
        || asprintf (&op->prefix, "%s/", cfg.key) == -1) {
      op->prefix = NULL;
      goto nomem;
    }
  }
  return op;

nomem:
  nbdkit_error ("S3: out of memory");
  if (op)
    op_free (op);
  return NULL;
}

/* Take the lock; the steps go on in op_locked once it is granted. */
static void
op_start (struct wop *op)
{
  if (op->lock_a == op->lock_b) {
    op_end (op);
    return;
  }
  if (ranges_lock_async (&locks, &op->held, op->lock_a, op->lock_b, op_locked,
                         op))
    op_locked (op);
}

/* Run KIND over [OFFSET, OFFSET+COUNT) and wait for it. */
static int
op_run (struct handle *h, enum op_kind kind, const char *data, uint64_t count,
        uint64_t offset)
{
  struct wop *op;
  int err;

  if (count == 0)
    return 0;
  op = op_new (h, NULL, kind, data, count, offset);
  if (op == NULL)
    return -1;
  op_start (op);
  waiter_wait (&op->w);
  err = op->err;
  op_free (op);
  if (err) {
    nbdkit_set_error (err);
    return -1;
  }
  return 0;
}

/* Start KIND over [OFFSET, OFFSET+COUNT), completing C when done. */
static int
op_async (struct handle *h, struct nbdkit_completion *c, enum op_kind kind,
          const char *data, uint64_t count, uint64_t offset)
{
  struct wop *op;

  if (count == 0 || !h->have_completer) {
    int r = op_run (h, kind, data, count, offset);
    if (r == 0)
      nbdkit_complete (c, 0);
    return r;
  }
  op = op_new (h, c, kind, data, count, offset);
  if (op == NULL)
    return -1;
  op_start (op);
  return 0;
}

/* Block status: which objects of [OFFSET, OFFSET+COUNT) exist, from
 * listing the bucket after the object before the range: existing
 * objects are data, the others holes.  A page (1000 objects) that
 * names an object in the range answers up to the last one it names
 * (the client asks again for the rest); pages before the range are
 * followed.  Each page is submitted from the previous one's completion,
 * as the steps of a write are (struct wop).
 */
struct aext {
  struct areq q;
  struct handle *h;
  struct nbdkit_completion *c; /* NULL: a thread waits in extents_run */
  struct nbdkit_extents *ext;
  uint64_t a, b, next; /* objects [a, b) asked; next: the first not answered */
  char *start, *prefix, *token;
  struct xfer x;
  int err;
  struct waiter w;
};

static void
extents_free (struct aext *e)
{
  xfer_clear (&e->x);
  free (e->start);
  free (e->prefix);
  free (e->token);
  free (e);
}

static void
extents_finish (struct areq *q)
{
  struct aext *e = (struct aext *)q;

  nbdkit_complete (e->c, e->err);
  extents_free (e);
}

static void
extents_end (struct aext *e)
{
  if (e->c) {
    e->q.finish = extents_finish;
    queue_done (e->h, &e->q);
  } else
    waiter_wake (&e->w);
}

static void extents_listed (void *opaque);

static void
extents_page (struct aext *e)
{
  xfer_clear (&e->x);
  if (list_prepare (&e->x, e->prefix, e->start, e->token, 1000) == -1) {
    e->err = ENOMEM;
    extents_end (e);
    return;
  }
  if (xfer_submit (&e->x, 1, extents_listed, e) == -1) {
    e->err = EIO;
    extents_end (e);
  }
}

/* Add the extent [I, J) of objects, of TYPE. */
static int
extents_add (struct aext *e, uint64_t i, uint64_t j, uint32_t type)
{
  uint64_t osz = cfg.object_size;

  if (nbdkit_add_extent (e->ext, i * osz, (j - i) * osz, type) == -1) {
    e->err = errno ? errno : EIO;
    return -1;
  }
  return 0;
}

static void
extents_listed (void *opaque)
{
  struct aext *e = opaque;
  const uint32_t hole = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
  char **keys = NULL;
  size_t nkeys = 0, plen = strlen (e->prefix);
  bool past = false;

  e->err = list_parse (&e->x, &e->token, &keys, &nkeys);
  for (size_t k = 0; k < nkeys && !e->err && !past; k++) {
    const char *hex = keys[k] + plen;
    char *end;
    uint64_t i;

    if (strlen (hex) != 16 || !isxdigit ((unsigned char)hex[0]))
      continue;
    i = strtoull (hex, &end, 16);
    if (*end != '\0' || i < e->next)
      continue;
    if (i >= e->b) {
      past = true;
      continue;
    }
    if ((i > e->next && extents_add (e, e->next, i, hole) == -1)
        || extents_add (e, i, i + 1, 0) == -1)
      break;
    e->next = i + 1;
  }
  free_keys (keys, nkeys);
  if (e->err) {
    extents_end (e);
    return;
  }
  /* Nothing answered yet and more to list: the next page. */
  if (!past && e->next == e->a && e->token) {
    extents_page (e);
    return;
  }
  /* Past the last object listed, up to B: holes, if the listing
   * reached B or ended.
   */
  if ((past || e->token == NULL) && e->next < e->b)
    extents_add (e, e->next, e->b, hole);
  extents_end (e);
}

static struct aext *
extents_new (struct handle *h, struct nbdkit_completion *c, uint64_t count,
             uint64_t offset, struct nbdkit_extents *ext)
{
  uint64_t osz = cfg.object_size, nobj = cfg.size / osz;
  struct aext *e = calloc (1, sizeof *e);

  if (e == NULL) {
    nbdkit_error ("S3: out of memory");
    return NULL;
  }
  e->h = h;
  e->c = c;
  e->ext = ext;
  e->a = e->next = offset / osz;
  e->b = (offset + count + osz - 1) / osz;
  if (e->b > nobj)
    e->b = nobj;
  if ((e->a > 0 && (e->start = object_name (e->a - 1)) == NULL)
      || asprintf (&e->prefix, "%s/", cfg.key) == -1) {
    e->prefix = NULL;
    nbdkit_error ("S3: out of memory");
    extents_free (e);
    return NULL;
  }
  if (c == NULL)
    waiter_init (&e->w);
  return e;
}

static int
extents_run (struct handle *h, uint64_t count, uint64_t offset,
             struct nbdkit_extents *ext)
{
  struct aext *e = extents_new (h, NULL, count, offset, ext);
  int err;

  if (e == NULL)
    return -1;
  extents_page (e);
  waiter_wait (&e->w);
  err = e->err;
  extents_free (e);
  if (err) {
    nbdkit_set_error (err);
    return -1;
  }
  return 0;
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
 * whose callback (read_done) only queues the finished read for its
 * connection's completer, which checks the results and completes it.
 */
struct aread {
  struct areq q;
  struct handle *h;
  struct xfer *xs;
  size_t n;
  void *buf;
  uint64_t offset;
  struct nbdkit_read *rd;
  struct nbdkit_completion *c;
};

static void
read_complete (struct areq *q)
{
  struct aread *a = (struct aread *)q;
  int err = read_finish (a->buf, a->offset, a->rd, a->xs, a->n);

  clear_all (a->xs, a->n);
  nbdkit_complete (a->c, err);
  free (a);
}

/* On the transfer thread: the last transfer of A finished. */
static void
read_done (void *opaque)
{
  struct aread *a = opaque;

  a->q.finish = read_complete;
  queue_done (a->h, &a->q);
}

static void *
completer (void *arg)
{
  struct handle *h = arg;

  pthread_mutex_lock (&h->lock);
  for (;;) {
    struct areq *list = h->done;

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
      struct areq *q = list;
      list = q->next;
      q->finish (q);
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

/* The server calls close once every request of the handle completed. */
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
  (void)flags;
  return op_run (handle, OP_WRITE, buf, count, offset);
}

/* Start the write; it completes in the completer (op_end). */
static int
s3_async_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
                 uint32_t flags, struct nbdkit_completion *c)
{
  (void)flags;
  return op_async (handle, c, OP_WRITE, buf, count, offset);
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
  (void)flags;
  return extents_run (handle, count, offset, ext);
}

/* Start the listing; it completes in the completer (extents_end). */
static int
s3_async_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
                  struct nbdkit_extents *ext, struct nbdkit_completion *c)
{
  struct handle *h = handle;
  struct aext *e;

  (void)flags;
  if (!h->have_completer) {
    int r = extents_run (h, count, offset, ext);
    if (r == 0)
      nbdkit_complete (c, 0);
    return r;
  }
  e = extents_new (h, c, count, offset, ext);
  if (e == NULL)
    return -1;
  extents_page (e);
  return 0;
}

/* Writes are stable once completed: nothing to flush. */
static int
s3_flush (void *handle, uint32_t flags)
{
  (void)handle;
  (void)flags;
  return 0;
}

static int
s3_async_flush (void *handle, uint32_t flags, struct nbdkit_completion *c)
{
  (void)handle;
  (void)flags;
  nbdkit_complete (c, 0);
  return 0;
}

static int
s3_trim (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  (void)flags;
  return op_run (handle, OP_TRIM, NULL, count, offset);
}

static int
s3_async_trim (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_completion *c)
{
  (void)flags;
  return op_async (handle, c, OP_TRIM, NULL, count, offset);
}

static int
s3_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  (void)flags;
  return op_run (handle, OP_ZERO, NULL, count, offset);
}

static int
s3_async_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_completion *c)
{
  (void)flags;
  return op_async (handle, c, OP_ZERO, NULL, count, offset);
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
  .trim = s3_trim,
  .zero = s3_zero,
  .can_extents = s3_can_extents,
  .extents = s3_extents,
  .pread_fills_buffer = 1,
  .async_pread = s3_async_pread,
  .async_pwrite = s3_async_pwrite,
  .async_flush = s3_async_flush,
  .async_trim = s3_async_trim,
  .async_zero = s3_async_zero,
  .async_extents = s3_async_extents,
};

/* async=false: a server thread waits for each request, to compare. */
static int
s3_config_complete (void)
{
  if (config_complete () == -1)
    return -1;
  if (!cfg.async) {
    plugin.async_pread = NULL;
    plugin.async_pwrite = NULL;
    plugin.async_flush = NULL;
    plugin.async_trim = NULL;
    plugin.async_zero = NULL;
    plugin.async_extents = NULL;
  }
  return 0;
}

NBDKIT_REGISTER_PLUGIN (plugin)
