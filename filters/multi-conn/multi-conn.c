/* multi-conn.c: offer (or hide) NBD_FLAG_CAN_MULTI_CONN, emulating it
 * by replaying a client's flush on every connection, and skip flushes
 * that cannot matter.
 *
 *   multi-conn-mode=auto|emulate|plugin|unsafe|disable
 *   multi-conn-track-dirty=connection|fast|off
 *   multi-conn-exportname=false|true
 *
 * Every open connection is on one list.  A connection is dirty once it
 * wrote, trimmed or zeroed since its last flush, or read or cached and
 * anything was written since (it may hold data another connection
 * changed); a flush on a clean connection is skipped
 * (track-dirty=connection).  With fast, one flag
 * for the whole server says whether anything was written since any
 * flush.  In plugin mode with track-dirty=connection a flush is skipped
 * only while nothing was written since one that made every connection
 * consistent (a flush of a plugin with multi-conn).
 *
 * Emulation calls flush on other connections' contexts from this
 * connection's thread; plugins that flush safely while another
 * request of the same connection runs (file, memory) are fine.
 */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-filter.h>

enum mode { AUTO, EMULATE, PLUGIN, UNSAFE, DISABLE };
enum track { CONN, FAST, OFF };

static const char *mode_str = "auto", *track_str = "connection";
static bool by_exportname;
static enum mode mode;
static enum track track;

static const struct nbdkit_param params[]
    = { { .name = "multi-conn-mode",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "auto",
          .choices = "auto|emulate|plugin|unsafe|disable",
          .doc = "whether and how multi-conn is offered",
          .dest = &mode_str },
        { .name = "multi-conn-track-dirty",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "connection",
          .choices = "connection|fast|off",
          .doc = "which flushes may be skipped",
          .dest = &track_str },
        { .name = "multi-conn-exportname",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "false",
          .doc = "replay flushes only on connections to the same export",
          .dest = &by_exportname },
        { .name = NULL } };

struct handle {
  struct handle *next_h;
  nbdkit_next *next; /* set in prepare, cleared in finalize */
  enum mode mode;    /* AUTO resolved per connection */
  char *exportname;
  unsigned dirty; /* DIRTY_WRITE | DIRTY_READ */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle *conns;
static bool fast_dirty;
#define DIRTY_WRITE 1 /* wrote since its last flush */
#define DIRTY_READ 2  /* read or cached since its last flush */
static bool serialized_connections;

static const char *
mc_config_help (void)
{
  return "multi-conn-mode=auto|emulate|plugin|unsafe|disable  Default auto.\n"
         "multi-conn-track-dirty=connection|fast|off          Default "
         "connection.\n"
         "multi-conn-exportname=BOOL                          Default false.";
}

static int
mc_config_complete (void)
{
  static const char *const modes[]
      = { "auto", "emulate", "plugin", "unsafe", "disable" };
  for (int i = 0; i < 5; i++)
    if (strcmp (mode_str, modes[i]) == 0)
      mode = i;
  track = strcmp (track_str, "fast") == 0  ? FAST
          : strcmp (track_str, "off") == 0 ? OFF
                                           : CONN;
  return 0;
}

static int
mc_get_ready (int thread_model)
{
  serialized_connections
      = thread_model == NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS;
  return 0;
}

static void *
mc_open (nbdkit_context *ctx, int readonly, const char *exportname, int is_tls)
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
mc_close (void *handle)
{
  struct handle *h = handle;
  free (h->exportname);
  free (h);
}

static int
mc_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;

  h->mode = mode;
  if (mode == AUTO) {
    int r = nbdkit_next_can_multi_conn (next);
    if (r == -1)
      return -1;
    h->mode = serialized_connections ? DISABLE : r ? PLUGIN : EMULATE;
  }
  if (h->mode == EMULATE && nbdkit_next_can_flush (next) != 1 && !readonly
      && nbdkit_next_can_write (next) == 1) {
    nbdkit_error ("multi-conn-mode=emulate needs a plugin that can flush");
    return -1;
  }
  h->next = next;
  pthread_mutex_lock (&lock);
  h->next_h = conns;
  conns = h;
  pthread_mutex_unlock (&lock);
  return 0;
}

static int
mc_finalize (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;

  pthread_mutex_lock (&lock);
  for (struct handle **pp = &conns; *pp; pp = &(*pp)->next_h)
    if (*pp == h) {
      *pp = h->next_h;
      break;
    }
  pthread_mutex_unlock (&lock);
  return 0;
}

static int
mc_can_multi_conn (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;

  switch (h->mode) {
    case EMULATE:
    case UNSAFE:
      return 1;
    case DISABLE:
      return 0;
    default:
      return nbdkit_next_can_multi_conn (next);
  }
}

/* Emulation needs flush to be offered so the client can ask for it. */
static int
mc_can_flush (nbdkit_next *next, void *handle)
{
  return nbdkit_next_can_flush (next);
}

static void
mark_dirty (struct handle *h)
{
  if (track == OFF)
    return;
  pthread_mutex_lock (&lock);
  h->dirty |= DIRTY_WRITE;
  fast_dirty = true;
  pthread_mutex_unlock (&lock);
}

/* Flush connection H, unless tracking says it is clean.  LOCK held. */
static int
flush_one (struct handle *h, int *err)
{
  /* What it read is stale only if something was written since. */
  if (track == CONN && !(h->dirty & DIRTY_WRITE)
      && !((h->dirty & DIRTY_READ) && fast_dirty))
    return 0;
  h->dirty = 0;
  return nbdkit_next_flush (h->next, 0, err);
}

/* The flush the client asked for on H (or implied by FUA). */
static int
do_flush (struct handle *h, bool only_others, int *err)
{
  int r = 0;

  pthread_mutex_lock (&lock);
  if (track == FAST && !fast_dirty) {
    pthread_mutex_unlock (&lock);
    return 0;
  }
  if (h->mode != EMULATE && track == CONN) {
    /* The plugin's own flush: needed while anything was written since
     * a flush made every connection consistent (as nbdkit), which only
     * a plugin with multi-conn does.
     */
    if (!only_others && fast_dirty) {
      r = nbdkit_next_flush (h->next, 0, err);
      if (r == 0 && nbdkit_next_can_multi_conn (h->next) == 1) {
        for (struct handle *o = conns; o; o = o->next_h)
          o->dirty = 0;
        fast_dirty = false;
      } else if (r == 0)
        h->dirty = 0;
    }
    pthread_mutex_unlock (&lock);
    return r;
  }
  if (h->mode != EMULATE) {
    if (!only_others)
      r = flush_one (h, err);
  } else {
    for (struct handle *o = conns; o && r == 0; o = o->next_h) {
      if ((only_others && o == h)
          || (by_exportname && strcmp (o->exportname, h->exportname) != 0))
        continue;
      r = flush_one (o, err);
    }
  }
  if (r == 0 && !only_others)
    fast_dirty = false;
  pthread_mutex_unlock (&lock);
  return r;
}

static int
mc_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
          uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct handle *h = handle;
  if (track == CONN && !(h->dirty & DIRTY_READ)) {
    pthread_mutex_lock (&lock);
    h->dirty |= DIRTY_READ;
    pthread_mutex_unlock (&lock);
  }
  return nbdkit_next_pread (next, buf, count, offset, flags, rd, err);
}

/* A cache request may fill a cache of the connection, as a read. */
static int
mc_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  struct handle *h = handle;
  if (track == CONN && !(h->dirty & DIRTY_READ)) {
    pthread_mutex_lock (&lock);
    h->dirty |= DIRTY_READ;
    pthread_mutex_unlock (&lock);
  }
  return nbdkit_next_cache (next, count, offset, flags, err);
}

/* After a FUA write in emulate mode, the others must see it too. */
static int
after_write (struct handle *h, uint32_t flags, int *err)
{
  mark_dirty (h);
  if ((flags & NBDKIT_FLAG_FUA) && h->mode == EMULATE)
    return do_flush (h, true, err);
  return 0;
}

static int
mc_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
           uint64_t offset, uint32_t flags, int *err)
{
  mark_dirty (handle);
  if (nbdkit_next_pwrite (next, buf, count, offset, flags, err) == -1)
    return -1;
  return after_write (handle, flags, err);
}

static int
mc_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
         uint32_t flags, int *err)
{
  mark_dirty (handle);
  if (nbdkit_next_trim (next, count, offset, flags, err) == -1)
    return -1;
  return after_write (handle, flags, err);
}

static int
mc_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
         uint32_t flags, int *err)
{
  mark_dirty (handle);
  if (nbdkit_next_zero (next, count, offset, flags, err) == -1)
    return -1;
  return after_write (handle, flags, err);
}

static int
mc_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  if (track == OFF && ((struct handle *)handle)->mode != EMULATE)
    return nbdkit_next_flush (next, flags, err);
  return do_flush (handle, false, err);
}

static struct nbdkit_filter filter = {
  .name = "multi-conn",
  .longname = "nbdkit multi-conn filter",
  .description = "offer or emulate multi-conn flush consistency",
  .params = params,
  .config_help = mc_config_help,
  .config_complete = mc_config_complete,
  .get_ready = mc_get_ready,
  .open = mc_open,
  .close = mc_close,
  .prepare = mc_prepare,
  .finalize = mc_finalize,
  .can_multi_conn = mc_can_multi_conn,
  .can_flush = mc_can_flush,
  .pread = mc_pread,
  .cache = mc_cache,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = mc_pwrite,
  .trim = mc_trim,
  .zero = mc_zero,
  .flush = mc_flush,
};

NBDKIT_REGISTER_FILTER (filter)
