/* forward-only.c: let a plugin that can only read forwards (a pipe, a
 * stream being decompressed) serve random reads.
 *
 * Per connection, the plugin has a position: everything before it has
 * been read, in order, and kept in a temporary file (unlinked at once,
 * in $TMPDIR or /var/tmp).  A read below the position is answered from
 * that file; a read beyond it first reads (and keeps) the bytes in
 * between, so the plugin only ever sees reads that start exactly where
 * the previous one ended.
 *
 * The export is read-only: a write would have to go back to where the
 * plugin already was.  Block status reports everything as data (the
 * plugin is never asked), and cache requests read ahead up to their end.
 * A mutex per connection keeps the plugin's reads in order when the
 * client sends requests in parallel.
 */

#define _GNU_SOURCE /* asprintf, mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nbdkit-filter.h>

#define CHUNK (1024 * 1024)

struct handle {
  pthread_mutex_t lock;
  int fd;       /* what the plugin returned so far */
  uint64_t pos; /* the plugin's position */
  char *buf;    /* CHUNK bytes for skipping forward */
};

static void *
fo_open (nbdkit_context *ctx, int readonly, const char *exportname, int is_tls)
{
  struct handle *h;
  const char *dir = getenv ("TMPDIR");
  char *tmpl;

  /* The layer below is opened read-only: no write goes down. */
  if (nbdkit_next_open (ctx, 1, exportname) == -1)
    return NULL;
  h = calloc (1, sizeof *h);
  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  if (asprintf (&tmpl, "%s/nbdkit-forward-only-XXXXXX",
                dir && *dir ? dir : "/var/tmp")
      == -1) {
    nbdkit_error ("asprintf: %m");
    free (h);
    return NULL;
  }
  h->fd = mkostemp (tmpl, O_CLOEXEC);
  if (h->fd == -1) {
    nbdkit_error ("forward-only: temporary file %s: %m", tmpl);
    free (tmpl);
    free (h);
    return NULL;
  }
  unlink (tmpl);
  free (tmpl);
  h->buf = malloc (CHUNK);
  if (h->buf == NULL) {
    nbdkit_error ("malloc: %m");
    close (h->fd);
    free (h);
    return NULL;
  }
  pthread_mutex_init (&h->lock, NULL);
  return h;
}

static void
fo_close (void *handle)
{
  struct handle *h = handle;
  close (h->fd);
  free (h->buf);
  pthread_mutex_destroy (&h->lock);
  free (h);
}

static int
fo_can_write (nbdkit_next *next, void *handle)
{
  return 0;
}

static int
fo_can_extents (nbdkit_next *next, void *handle)
{
  return NBDKIT_EXTENTS_EMULATE;
}

static int
fo_can_cache (nbdkit_next *next, void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

static int
fo_can_multi_conn (nbdkit_next *next, void *handle)
{
  return 1; /* read-only: every connection agrees */
}

static int
save (struct handle *h, const void *buf, uint64_t count, uint64_t offset,
      int *err)
{
  const char *p = buf;
  while (count > 0) {
    ssize_t r = pwrite (h->fd, p, count, offset);
    if (r == -1) {
      *err = errno;
      nbdkit_error ("forward-only: writing the temporary file: %m");
      return -1;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

static int
load (struct handle *h, void *buf, uint64_t count, uint64_t offset, int *err)
{
  char *p = buf;
  while (count > 0) {
    ssize_t r = pread (h->fd, p, count, offset);
    if (r <= 0) {
      *err = r == -1 ? errno : EIO;
      nbdkit_error ("forward-only: reading the temporary file: %m");
      return -1;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

/* Move the plugin forward to END, keeping what it returns.  If BUF is
 * given, the bytes from OFFSET on also land in BUF (OFFSET >= h->pos).
 */
static int
advance (nbdkit_next *next, struct handle *h, uint64_t end, char *buf,
         uint64_t offset, int *err)
{
  while (h->pos < end) {
    uint64_t n;
    char *dst;
    if (buf && h->pos >= offset) {
      n = end - h->pos;
      dst = buf + (h->pos - offset);
    } else {
      uint64_t stop = buf ? offset : end;
      n = stop - h->pos > CHUNK ? CHUNK : stop - h->pos;
      dst = h->buf;
    }
    if (nbdkit_next_pread (next, dst, n, h->pos, 0, NULL, err) == -1
        || save (h, dst, n, h->pos, err) == -1)
      return -1;
    h->pos += n;
  }
  return 0;
}

static int
fo_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
          uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct handle *h = handle;
  uint64_t end = offset + count;
  uint64_t below;
  int r = 0;

  pthread_mutex_lock (&h->lock);
  below = h->pos > offset ? (h->pos < end ? h->pos : end) - offset : 0;
  if (below > 0)
    r = load (h, buf, below, offset, err);
  if (r == 0 && end > h->pos)
    r = advance (next, h, end, (char *)buf + below, offset + below, err);
  pthread_mutex_unlock (&h->lock);
  return r;
}

static int
fo_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  struct handle *h = handle;
  int r;

  pthread_mutex_lock (&h->lock);
  r = advance (next, h, offset + count, NULL, 0, err);
  pthread_mutex_unlock (&h->lock);
  return r;
}

static struct nbdkit_filter filter = {
  .name = "forward-only",
  .longname = "nbdkit forward-only filter",
  .description = "serve random reads from a plugin that reads forwards only",
  .open = fo_open,
  .close = fo_close,
  .can_write = fo_can_write,
  .can_extents = fo_can_extents,
  .can_cache = fo_can_cache,
  .can_multi_conn = fo_can_multi_conn,
  .pread = fo_pread,
  .cache = fo_cache,
};

NBDKIT_REGISTER_FILTER (filter)
