/* cacheextents.c: the cacheextents filter, which keeps the last block
 * status answer of the layer below.
 *
 *   nbdkit --filter=cacheextents PLUGIN ...
 *
 * Clients such as qemu-img ask for one extent at a time, walking the
 * disk; a plugin for which each call is slow (a remote one) may answer
 * with many extents at once for the same cost.  The filter keeps the
 * whole answer and serves the next requests that start inside it
 * without asking again.  Any write, trim or zero, on any connection,
 * forgets it.  One answer is kept for the whole server, under a lock:
 * with several exports below it is tagged with the export name.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct nbdkit_extent *cached; /* ascending, contiguous */
static size_t ncached;
static char *cached_export; /* the export the answer is about */

/* Forget the answer; called with the lock held. */
static void
forget (void)
{
  free (cached);
  cached = NULL;
  ncached = 0;
  free (cached_export);
  cached_export = NULL;
}

static void
cacheextents_unload (void)
{
  forget ();
}

struct handle {
  char *exportname;
};

static void *
cacheextents_open (nbdkit_context *ctx, int readonly, const char *exportname,
                   int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL || (h->exportname = strdup (exportname)) == NULL) {
    nbdkit_error ("malloc: %m");
    free (h);
    return NULL;
  }
  return h;
}

static void
cacheextents_close (void *handle)
{
  struct handle *h = handle;

  free (h->exportname);
  free (h);
}

/* Answer from the kept list if it covers OFFSET: 1 answered, 0 not
 * covered, -1 error.  Called with the lock held.
 */
static int
from_cache (struct handle *h, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *e, int *err)
{
  size_t i;

  if (ncached == 0 || strcmp (cached_export, h->exportname) != 0
      || offset < cached[0].offset
      || offset >= cached[ncached - 1].offset + cached[ncached - 1].length)
    return 0;
  for (i = 0; cached[i].offset + cached[i].length <= offset; i++)
    ;
  nbdkit_debug ("cacheextents: answering offset %" PRIu64 " from the cache",
                offset);
  for (; i < ncached; i++) {
    if (nbdkit_add_extent (e, cached[i].offset, cached[i].length,
                           cached[i].type)
        == -1) {
      *err = errno;
      return -1;
    }
    if ((flags & NBDKIT_FLAG_REQ_ONE)
        || cached[i].offset + cached[i].length >= offset + count)
      break;
  }
  return 1;
}

static int
cacheextents_extents (nbdkit_next *next, void *handle, uint64_t count,
                      uint64_t offset, uint32_t flags, struct nbdkit_extents *e,
                      int *err)
{
  struct handle *h = handle;
  struct nbdkit_extents *all;
  struct nbdkit_extent *copy;
  int64_t size;
  size_t n;
  int r;

  pthread_mutex_lock (&lock);
  r = from_cache (h, count, offset, flags, e, err);
  pthread_mutex_unlock (&lock);
  if (r != 0)
    return r == 1 ? 0 : -1;

  /* Ask for everything the layer below will say at once, beyond the
   * request too, and without REQ_ONE: that is the point.
   */
  size = nbdkit_next_get_size (next);
  if (size == -1) {
    *err = EIO;
    return -1;
  }
  all = nbdkit_extents_new (offset, size);
  if (all == NULL) {
    *err = errno;
    return -1;
  }
  if (nbdkit_next_extents (next, count, offset, flags & ~NBDKIT_FLAG_REQ_ONE,
                           all, err)
      == -1) {
    nbdkit_extents_free (all);
    return -1;
  }
  n = nbdkit_extents_count (all);
  copy = n ? malloc (n * sizeof *copy) : NULL;
  for (size_t i = 0; copy && i < n; i++)
    copy[i] = nbdkit_get_extent (all, i);
  nbdkit_extents_free (all);
  if (n && copy == NULL) {
    *err = errno;
    nbdkit_error ("malloc: %m");
    return -1;
  }

  pthread_mutex_lock (&lock);
  forget ();
  cached = copy;
  ncached = n;
  cached_export = strdup (h->exportname);
  if (cached_export == NULL)
    forget ();
  r = from_cache (h, count, offset, flags, e, err);
  pthread_mutex_unlock (&lock);
  if (r == 0) {
    /* The answer did not cover OFFSET: the layer below misbehaved. */
    nbdkit_error ("cacheextents: no extent at offset %" PRIu64
                  " in the answer of the layer below",
                  offset);
    *err = EIO;
    return -1;
  }
  return r == 1 ? 0 : -1;
}

/* Every change to the disk may change its extents. */
static void
invalidate (void)
{
  pthread_mutex_lock (&lock);
  forget ();
  pthread_mutex_unlock (&lock);
}

static int
cacheextents_pwrite (nbdkit_next *next, void *handle, const void *buf,
                     uint64_t count, uint64_t offset, uint32_t flags, int *err)
{
  invalidate ();
  return nbdkit_next_pwrite (next, buf, count, offset, flags, err);
}

static int
cacheextents_trim (nbdkit_next *next, void *handle, uint64_t count,
                   uint64_t offset, uint32_t flags, int *err)
{
  invalidate ();
  return nbdkit_next_trim (next, count, offset, flags, err);
}

static int
cacheextents_zero (nbdkit_next *next, void *handle, uint64_t count,
                   uint64_t offset, uint32_t flags, int *err)
{
  invalidate ();
  return nbdkit_next_zero (next, count, offset, flags, err);
}

static struct nbdkit_filter filter = {
  .name = "cacheextents",
  .longname = "nbdkit cacheextents filter",
  .description = "keep the last block status answer",
  .unload = cacheextents_unload,
  .open = cacheextents_open,
  .close = cacheextents_close,
  .extents = cacheextents_extents,
  .pwrite = cacheextents_pwrite,
  .trim = cacheextents_trim,
  .zero = cacheextents_zero,
  .pread_fills_buffer = 1, /* pread passes through */
};

NBDKIT_REGISTER_FILTER (filter)
