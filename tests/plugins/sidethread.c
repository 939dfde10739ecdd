/* sidethread.c: a filter that calls the plugin on a context of its own
 * (nbdkit_next_context_open) from a thread of its own, while serving
 * the client's reads from that same context: calls the server must
 * serialize as the plugin's thread model says, though no client sent
 * them.
 *
 *   nbdkit --filter=build/tests/plugins/nbdkit-sidethread-filter.so \
 *          PLUGIN ... [side-shared=true]
 *
 * Each connection opens its own side context and thread; with
 * side-shared=true the first connection's context serves every
 * connection (so two clients call one plugin handle), and the thread
 * runs until the server's cleanup.  The thread reads 4 KiB
 * at offset 0 in a loop, pausing a millisecond between reads.
 *
 * Also, for the checks on what a filter sends below: side-readonly=true
 * opens the side context read-only (the client's writes still go to
 * it), and grow=N makes the export N bytes larger than the layer below
 * (reads there go below as they are).
 */

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nbdkit-filter.h>

static bool side_shared, side_readonly;
static int64_t grow;

static const struct nbdkit_param params[]
    = { { .name = "side-shared",
          .type = NBDKIT_PARAM_BOOL,
          .doc = "one side context for every connection",
          .dest = &side_shared },
        { .name = "side-readonly",
          .type = NBDKIT_PARAM_BOOL,
          .doc = "open the side context read-only",
          .dest = &side_readonly },
        { .name = "grow",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "bytes added to the size of the layer below",
          .dest = &grow },
        { 0 } };

struct side {
  nbdkit_next *next;
  pthread_t thread;
  atomic_bool stop;
};

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct side *shared;

static void *
side_loop (void *arg)
{
  struct side *s = arg;
  char buf[4096];
  struct timespec pause = { .tv_nsec = 1000000 };
  int err;

  while (!atomic_load (&s->stop)) {
    nbdkit_next_pread (s->next, buf, sizeof buf, 0, 0, NULL, &err);
    nanosleep (&pause, NULL);
  }
  return NULL;
}

static struct side *
side_new (nbdkit_backend *below, int readonly, const char *exportname)
{
  struct side *s = calloc (1, sizeof *s);

  if (s == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  s->next
      = nbdkit_next_context_open (below, readonly || side_readonly, exportname);
  if (s->next == NULL) {
    free (s);
    return NULL;
  }
  atomic_init (&s->stop, false);
  if (pthread_create (&s->thread, NULL, side_loop, s) != 0) {
    nbdkit_error ("pthread_create failed");
    nbdkit_next_context_close (s->next);
    free (s);
    return NULL;
  }
  return s;
}

static void
side_free (struct side *s)
{
  if (s == NULL)
    return;
  atomic_store (&s->stop, true);
  pthread_join (s->thread, NULL);
  nbdkit_next_context_close (s->next);
  free (s);
}

static void
sidethread_cleanup (nbdkit_backend *below)
{
  side_free (shared);
  shared = NULL;
}

static void *
sidethread_open (nbdkit_context *ctx, int readonly, const char *exportname,
                 int is_tls)
{
  nbdkit_backend *below = nbdkit_context_get_backend (ctx);
  struct side *s;

  if (!side_shared)
    return side_new (below, readonly, exportname);
  pthread_mutex_lock (&shared_lock);
  if (shared == NULL)
    shared = side_new (below, readonly, exportname);
  s = shared;
  pthread_mutex_unlock (&shared_lock);
  return s;
}

static void
sidethread_close (void *handle)
{
  if (!side_shared)
    side_free (handle);
}

static int
sidethread_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
                  uint64_t offset, uint32_t flags, struct nbdkit_read *rd,
                  int *err)
{
  struct side *s = handle;

  return nbdkit_next_pread (s->next, buf, count, offset, flags, NULL, err);
}

static int
sidethread_pwrite (nbdkit_next *next, void *handle, const void *buf,
                   uint64_t count, uint64_t offset, uint32_t flags, int *err)
{
  struct side *s = handle;

  return nbdkit_next_pwrite (s->next, buf, count, offset, flags, err);
}

static int64_t
sidethread_get_size (nbdkit_next *next, void *handle)
{
  int64_t size = nbdkit_next_get_size (next);

  return size == -1 ? -1 : size + grow;
}

static struct nbdkit_filter filter = {
  .name = "sidethread",
  .params = params,
  .cleanup = sidethread_cleanup,
  .open = sidethread_open,
  .close = sidethread_close,
  .get_size = sidethread_get_size,
  .pread = sidethread_pread,
  .pwrite = sidethread_pwrite,
};

NBDKIT_REGISTER_FILTER (filter)
