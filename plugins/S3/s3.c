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
 * Requests are asynchronous: reads (s3_async_pread, here) submit their
 * transfers and complete when they finish; writes, zeroes and trims
 * (write.c) are chains of steps, each submitted when the previous
 * one's transfers finish, and a lock that is taken queues the request
 * until it is released; block status (extents.c) lists the bucket a
 * page at a time the same way.  No thread waits, except the caller of
 * a synchronous callback (async=false), which runs the same steps.
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
#include "s3.h"
#include "transfer.h"

/* Reads of one object are split into pieces this big, sent in parallel. */
#define READ_PIECE (4 * 1024 * 1024)

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

void
waiter_init (struct waiter *w)
{
  pthread_mutex_init (&w->lock, NULL);
  pthread_cond_init (&w->cond, NULL);
  w->finished = false;
}

void
waiter_wake (struct waiter *w)
{
  pthread_mutex_lock (&w->lock);
  w->finished = true;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
}

/* Wait for waiter_wake, then free W's mutex and condition. */
void
waiter_wait (struct waiter *w)
{
  pthread_mutex_lock (&w->lock);
  while (!w->finished)
    pthread_cond_wait (&w->cond, &w->lock);
  pthread_mutex_unlock (&w->lock);
  pthread_cond_destroy (&w->cond);
  pthread_mutex_destroy (&w->lock);
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
 * whose callback (read_done) checks the results and completes the
 * read there: nbdkit_complete never waits for the client (it sends
 * what the socket takes at once and leaves the rest to a thread of
 * the server), so a client that does not read its replies holds up
 * only its own, never the transfer thread.
 */
struct aread {
  struct xfer *xs;
  size_t n;
  void *buf;
  uint64_t offset;
  struct nbdkit_read *rd;
  struct nbdkit_completion *c;
};

/* On the transfer thread: the last transfer of A finished. */
static void
read_done (void *opaque)
{
  struct aread *a = opaque;
  struct nbdkit_completion *c = a->c;
  int err = read_finish (a->buf, a->offset, a->rd, a->xs, a->n);

  clear_all (a->xs, a->n);
  free (a);
  nbdkit_complete (c, err);
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
  writes_init ();
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
  return h;
}

/* The server calls close once every request of the handle completed. */
static void
s3_close (void *handle)
{
  free (handle);
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

/* Start the read; it completes in read_done. */
static int
s3_async_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
                uint32_t flags, struct nbdkit_read *rd,
                struct nbdkit_completion *c)
{
  struct aread *a;

  (void)handle;
  (void)flags;
  if (count == 0 || !cfg.async) {
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
  *a = (struct aread){ .buf = buf, .offset = offset, .rd = rd, .c = c };
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
  return op_run (OP_WRITE, buf, count, offset);
}

/* Start the write; it completes in op_end. */
static int
s3_async_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
                 uint32_t flags, struct nbdkit_completion *c)
{
  (void)handle;
  (void)flags;
  return op_async (c, OP_WRITE, buf, count, offset);
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
  return extents_run (count, offset, ext);
}

/* Start the listing; it completes in extents_end. */
static int
s3_async_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
                  struct nbdkit_extents *ext, struct nbdkit_completion *c)
{
  (void)handle;
  (void)flags;
  return extents_async (c, count, offset, ext);
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
  (void)handle;
  (void)flags;
  return op_run (OP_TRIM, NULL, count, offset);
}

static int
s3_async_trim (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_completion *c)
{
  (void)handle;
  (void)flags;
  return op_async (c, OP_TRIM, NULL, count, offset);
}

static int
s3_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  (void)handle;
  (void)flags;
  return op_run (OP_ZERO, NULL, count, offset);
}

static int
s3_async_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_completion *c)
{
  (void)handle;
  (void)flags;
  return op_async (c, OP_ZERO, NULL, count, offset);
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
