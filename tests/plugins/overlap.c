/* overlap.c: a plugin that checks the serialization its thread model
 * was promised.  Each read sleeps DELAY microseconds while counted as
 * "in call", both globally and on its handle; a read that finds
 * another call running where the model forbids it (any other call for
 * serialize_connections and serialize_all_requests, another call on
 * the same handle for serialize_requests) fails with EBUSY and counts
 * as a violation.  Reads return the byte (offset % 251) everywhere.
 *
 *   nbdkit build/tests/plugins/nbdkit-overlap-plugin.so \
 *          thread-model=serialize_requests [delay=US] [stats=FILE]
 *
 * Writes are accepted and thrown away; a write on a handle opened
 * read-only counts in readonly_writes.
 *
 * stats=FILE is rewritten at each close and at unload: calls (reads
 * served), violations, handles (opened so far), switches (how often
 * a call came on another handle than the call before it),
 * readonly_writes.
 */

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

static const char *model = "serialize_requests";
static int64_t delay = 1000;
static const char *stats_file;

static const struct nbdkit_param params[]
    = { { .name = "thread-model",
          .type = NBDKIT_PARAM_ENUM,
          .doc = "the thread model the plugin asks for",
          .choices = "serialize_connections|serialize_all_requests|"
                     "serialize_requests",
          .dest = &model },
        { .name = "delay",
          .type = NBDKIT_PARAM_INT,
          .doc = "microseconds each read takes",
          .dest = &delay },
        { .name = "stats", .type = NBDKIT_PARAM_STRING, .dest = &stats_file },
        { 0 } };

struct handle {
  atomic_int in_call;
  int id;
  bool readonly;
};

static atomic_int in_call, next_id;
static atomic_long calls, violations, switches, readonly_writes;
static atomic_int last_id;

static int
overlap_thread_model (void)
{
  if (strcmp (model, "serialize_connections") == 0)
    return NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS;
  if (strcmp (model, "serialize_all_requests") == 0)
    return NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;
  return NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
}

static void
write_stats (void)
{
  FILE *fp;

  if (stats_file == NULL || (fp = fopen (stats_file, "w")) == NULL)
    return;
  fprintf (fp,
           "calls=%ld\nviolations=%ld\nhandles=%d\nswitches=%ld\n"
           "readonly_writes=%ld\n",
           atomic_load (&calls), atomic_load (&violations),
           atomic_load (&next_id), atomic_load (&switches),
           atomic_load (&readonly_writes));
  fclose (fp);
}

static void *
overlap_open (int readonly, const char *name, int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  h->id = atomic_fetch_add (&next_id, 1) + 1;
  h->readonly = readonly;
  return h;
}

static void
overlap_close (void *handle)
{
  free (handle);
  write_stats ();
}

static void
overlap_unload (void)
{
  write_stats ();
}

static int64_t
overlap_get_size (void *handle)
{
  return 1024 * 1024;
}

static int
overlap_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
               uint32_t flags, struct nbdkit_read *rd)
{
  struct handle *h = handle;
  int all = atomic_fetch_add (&in_call, 1);
  int mine = atomic_fetch_add (&h->in_call, 1);
  bool bad = overlap_thread_model () == NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS
                 ? mine > 0
                 : all > 0;
  struct timespec ts
      = { .tv_sec = delay / 1000000, .tv_nsec = delay % 1000000 * 1000 };

  if (atomic_exchange (&last_id, h->id) != h->id)
    atomic_fetch_add (&switches, 1);
  nanosleep (&ts, NULL);
  for (uint64_t i = 0; i < count; i++)
    ((char *)buf)[i] = (offset + i) % 251;
  atomic_fetch_add (&calls, 1);
  atomic_fetch_sub (&h->in_call, 1);
  atomic_fetch_sub (&in_call, 1);
  if (bad) {
    atomic_fetch_add (&violations, 1);
    nbdkit_error ("overlapping calls under %s (handle %d)", model, h->id);
    nbdkit_set_error (EBUSY);
    return -1;
  }
  return 0;
}

static int
overlap_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
                uint32_t flags)
{
  struct handle *h = handle;

  if (h->readonly)
    atomic_fetch_add (&readonly_writes, 1);
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "overlap",
  .params = params,
  .unload = overlap_unload,
  .thread_model = overlap_thread_model,
  .open = overlap_open,
  .close = overlap_close,
  .get_size = overlap_get_size,
  .pread = overlap_pread,
  .pwrite = overlap_pwrite,
  .pread_fills_buffer = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)
