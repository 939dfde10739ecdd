/* extents.c: the S3 plugin's block status, from listing the bucket. */

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

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "config.h"
#include "s3.h"
#include "transfer.h"

/* Block status: which objects of [OFFSET, OFFSET+COUNT) exist, from
 * listing the bucket after the object before the range: existing
 * objects are data, the others holes.  A page (1000 objects) that
 * names an object in the range answers up to the last one it names
 * (the client asks again for the rest); pages before the range are
 * followed.  Each page is submitted from the previous one's completion,
 * as the steps of a write are (struct wop).
 */
struct aext {
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
extents_end (struct aext *e)
{
  if (e->c) {
    /* On the transfer thread: nbdkit_complete never waits. */
    nbdkit_complete (e->c, e->err);
    extents_free (e);
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
extents_new (struct nbdkit_completion *c, uint64_t count, uint64_t offset,
             struct nbdkit_extents *ext)
{
  uint64_t osz = cfg.object_size, nobj = cfg.size / osz;
  struct aext *e = calloc (1, sizeof *e);

  if (e == NULL) {
    nbdkit_error ("S3: out of memory");
    return NULL;
  }
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

int
extents_run (uint64_t count, uint64_t offset, struct nbdkit_extents *ext)
{
  struct aext *e = extents_new (NULL, count, offset, ext);
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

int
extents_async (struct nbdkit_completion *c, uint64_t count, uint64_t offset,
               struct nbdkit_extents *ext)
{
  struct aext *e;

  if (!cfg.async) {
    int r = extents_run (count, offset, ext);
    if (r == 0)
      nbdkit_complete (c, 0);
    return r;
  }
  e = extents_new (c, count, offset, ext);
  if (e == NULL)
    return -1;
  extents_page (e);
  return 0;
}
