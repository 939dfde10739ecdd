/* quota.c: close a connection once it has used up its byte budget.
 *
 *   quota-read=SIZE    bytes a connection may read (0: no limit)
 *   quota-write=SIZE   bytes a connection may write (0: no limit)
 *
 * Only the data that crosses the wire counts: the payload of reads and
 * writes.  Zero, trim, cache and block status carry no data and are
 * free.  A request that fits the remaining budget runs; the first one
 * that does not is not run at all and fails with ESHUTDOWN (the NBD
 * error meaning "the server is ending this connection", rather than a
 * media error or a full disk), and the connection is then closed with
 * nbdkit_disconnect: requests already in flight finish and get their
 * replies, later ones fail the same way, and the client sees the
 * connection close.  So a budget is never exceeded, and a client that
 * reads or writes exactly its budget keeps its connection.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include <nbdkit-filter.h>

static int64_t quota_read, quota_write;

static const struct nbdkit_param params[]
    = { { .name = "quota-read",
          .type = NBDKIT_PARAM_SIZE,
          .default_value = "0",
          .doc = "bytes each connection may read (0: no limit)",
          .dest = &quota_read },
        { .name = "quota-write",
          .type = NBDKIT_PARAM_SIZE,
          .default_value = "0",
          .doc = "bytes each connection may write (0: no limit)",
          .dest = &quota_write },
        { .name = NULL } };

struct handle {
  pthread_mutex_t lock;
  uint64_t read, written;
  bool over;
};

static const char *
quota_config_help (void)
{
  return "quota-read=SIZE   Bytes each connection may read (0: no limit).\n"
         "quota-write=SIZE  Bytes each connection may write (0: no limit).";
}

static void *
quota_open (nbdkit_context *ctx, int readonly, const char *exportname,
            int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);
  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  pthread_mutex_init (&h->lock, NULL);
  return h;
}

static void
quota_close (void *handle)
{
  struct handle *h = handle;
  pthread_mutex_destroy (&h->lock);
  free (h);
}

/* Take COUNT bytes from the budget, or refuse and end the connection. */
static int
charge (struct handle *h, uint64_t *used, int64_t quota, const char *what,
        uint64_t count, int *err)
{
  bool ok;

  pthread_mutex_lock (&h->lock);
  ok = !h->over && (quota == 0 || count <= (uint64_t)quota - *used);
  if (ok)
    *used += count;
  else if (!h->over) {
    h->over = true;
    nbdkit_error ("quota-%s=%" PRId64 " exceeded: %" PRIu64 " bytes used,"
                  " %" PRIu64 " more asked: closing the connection",
                  what, quota, *used, count);
    nbdkit_disconnect (0);
  }
  pthread_mutex_unlock (&h->lock);
  if (!ok) {
    *err = ESHUTDOWN;
    return -1;
  }
  return 0;
}

static int
quota_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
             uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct handle *h = handle;
  if (charge (h, &h->read, quota_read, "read", count, err) == -1)
    return -1;
  return nbdkit_next_pread (next, buf, count, offset, flags, rd, err);
}

static int
quota_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
              uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  if (charge (h, &h->written, quota_write, "write", count, err) == -1)
    return -1;
  return nbdkit_next_pwrite (next, buf, count, offset, flags, err);
}

static struct nbdkit_filter filter = {
  .name = "quota",
  .longname = "nbdkit quota filter",
  .description = "close a connection after it read or wrote its budget",
  .params = params,
  .config_help = quota_config_help,
  .open = quota_open,
  .close = quota_close,
  .pread = quota_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = quota_pwrite,
};

NBDKIT_REGISTER_FILTER (filter)
