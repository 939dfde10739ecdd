/* write.c: the S3 plugin's writes, zeroes and trims (struct wop), each
 * a chain of steps started by the completion of the previous one's
 * transfers, under a lock of the objects it changes (ranges.c).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "config.h"
#include "ranges.h"
#include "s3.h"
#include "transfer.h"

/* Trims of more objects than this list the bucket first, and delete
 * only the objects there are.
 */
#define BLIND_DELETE_MAX 64

static struct ranges locks;

void
writes_init (void)
{
  ranges_init (&locks);
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

static void
op_end (struct wop *op)
{
  if (op->locked) {
    op->locked = false;
    ranges_unlock (&locks, &op->held);
  }
  if (op->c) {
    /* On the transfer thread: nbdkit_complete never waits for the
     * client.
     */
    nbdkit_complete (op->c, op->err);
    op_free (op);
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
op_new (struct nbdkit_completion *c, enum op_kind kind, const char *data,
        uint64_t count, uint64_t offset)
{
  uint64_t osz = cfg.object_size, end = offset + count;
  uint64_t first = offset / osz, last = (end - 1) / osz;
  /* The objects wholly inside. */
  uint64_t a = (offset + osz - 1) / osz, b = end / osz;
  bool listed = kind != OP_WRITE && b > a + BLIND_DELETE_MAX;
  struct wop *op = calloc (1, sizeof *op);

  if (op == NULL)
    goto nomem;
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
int
op_run (enum op_kind kind, const char *data, uint64_t count, uint64_t offset)
{
  struct wop *op;
  int err;

  if (count == 0)
    return 0;
  op = op_new (NULL, kind, data, count, offset);
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
int
op_async (struct nbdkit_completion *c, enum op_kind kind, const char *data,
          uint64_t count, uint64_t offset)
{
  struct wop *op;

  if (count == 0 || !cfg.async) {
    int r = op_run (kind, data, count, offset);
    if (r == 0)
      nbdkit_complete (c, 0);
    return r;
  }
  op = op_new (c, kind, data, count, offset);
  if (op == NULL)
    return -1;
  op_start (op);
  return 0;
}
