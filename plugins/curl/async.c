/* async.c: the curl plugin's asynchronous reads and writes.
 *
 * A few threads, the drivers (transfer-threads=, by default one per
 * CPU and at most CONNECTIONS), run every transfer of the asynchronous
 * callbacks, each on a curl multi handle of its own.  A request first
 * needs an easy handle of the pool (request.c), so CONNECTIONS still
 * bounds the transfers on the wire: async_read takes one if it is free
 * and hands the request to that handle's driver, or else queues the
 * request in the pool, which hands it a handle (and so to a driver)
 * when one comes back.  The calling thread never waits.  A handle
 * always goes to the same driver, so the connection it keeps alive
 * stays in that driver's multi handle.  With one driver, every byte of
 * every client went through one thread, and four client connections
 * copied at 0.75x the speed of Debian's nbdkit curl, which has a thread
 * per connection (bench/README.md, "Several transfer threads").
 *
 * The driver sets the transfer up with read_begin / write_begin, adds
 * it to the multi handle, and when libcurl says it is done checks it
 * with read_end / write_end (the checks and messages of the
 * synchronous path), returns the handle to the pool and completes the
 * request there and then.  nbdkit_complete never waits for the
 * client (it sends what the socket takes at once and leaves the rest
 * to a thread of the server), so a client that does not read its
 * replies holds up only its own, never the driver or another client's
 * transfers.  Nothing else the driver does waits on a client.  Big
 * reads are completed there too: the copy into the socket is then the
 * driver's, but sequential copies measured as fast as with a thread
 * per connection completing them, and the server's CPU per GiB the
 * same (bench/README.md, "bench/curl.sh -a"), so no hand-off is kept
 * for them.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setname_np */
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "curldefs.h"

/* One read or write.  W is first: the pool calls W.given with it. */
struct areq {
  struct pool_waiter w;
  struct areq *next; /* on the driver's list */
  bool write;
  void *rbuf;
  const void *wbuf;
  uint64_t count, offset;
  int64_t size; /* a write's Content-Range total */
  struct nbdkit_read *rd;
  struct nbdkit_completion *c;
};

/* One transfer thread and its multi handle.  A pooled handle always
 * runs on the same driver (its index modulo the drivers), so the HTTP
 * connection it keeps alive stays in that multi handle's cache.
 */
struct driver {
  CURLM *multi;
  pthread_t thread;
  /* Under lock: requests that have a handle and wait to be started. */
  pthread_mutex_t lock;
  struct areq *start_head, **start_tail;
  bool stopping;
  /* The thread's own: transfers on the multi handle. */
  unsigned active;
};

static struct driver *drivers;
static unsigned ndrivers;

/* Hand A, which has its easy handle, to the handle's driver. */
static void
submit (struct areq *a)
{
  struct driver *d = &drivers[a->w.ch->index % ndrivers];

  a->next = NULL;
  pthread_mutex_lock (&d->lock);
  *d->start_tail = a;
  d->start_tail = &a->next;
  pthread_mutex_unlock (&d->lock);
  curl_multi_wakeup (d->multi);
}

/* The pool's callback: a queued request got its handle. */
static void
given (struct pool_waiter *w)
{
  submit ((struct areq *)w);
}

/* Give the handle back and complete A. */
static void
finished (struct areq *a, int err)
{
  struct nbdkit_completion *c = a->c;

  pool_put (a->w.ch);
  free (a);
  nbdkit_complete (c, err);
}

/* The end of A's transfer with R: the checks of the synchronous path. */
static void
end (struct areq *a, CURLcode r)
{
  struct chandle *ch = a->w.ch;
  int e = a->write ? write_end (ch, r) : read_end (ch, r, a->rd);

  finished (a, e == -1 ? errno : 0);
}

static void
start (struct driver *d, struct areq *a)
{
  struct chandle *ch = a->w.ch;
  CURLMcode mr;
  int r;

  r = a->write ? write_begin (ch, a->wbuf, a->count, a->offset, a->size)
               : read_begin (ch, a->rbuf, a->count, a->offset);
  if (r == -1) {
    finished (a, errno);
    return;
  }
  curl_easy_setopt (ch->c, CURLOPT_PRIVATE, a);
  mr = curl_multi_add_handle (d->multi, ch->c);
  if (mr != CURLM_OK) {
    nbdkit_error ("%s: %s: curl_multi_add_handle: %s", cfg.shown_url, ch->what,
                  curl_multi_strerror (mr));
    end (a, CURLE_FAILED_INIT);
    return;
  }
  d->active++;
}

static void *
driver_main (void *arg)
{
  struct driver *d = arg;

  for (;;) {
    struct areq *list;
    CURLMsg *msg;
    int still, left;

    pthread_mutex_lock (&d->lock);
    if (d->stopping && d->active == 0 && d->start_head == NULL) {
      pthread_mutex_unlock (&d->lock);
      break;
    }
    list = d->start_head;
    d->start_head = NULL;
    d->start_tail = &d->start_head;
    pthread_mutex_unlock (&d->lock);

    while (list) {
      struct areq *a = list;
      list = a->next;
      start (d, a);
    }

    curl_multi_perform (d->multi, &still);
    while ((msg = curl_multi_info_read (d->multi, &left))) {
      if (msg->msg == CURLMSG_DONE) {
        CURL *c = msg->easy_handle;
        CURLcode r = msg->data.result;
        struct areq *a = NULL;

        curl_easy_getinfo (c, CURLINFO_PRIVATE, (char **)&a);
        curl_multi_remove_handle (d->multi, c);
        d->active--;
        end (a, r);
      }
    }
    curl_multi_poll (d->multi, NULL, 0, 1000, NULL);
  }
  return NULL;
}

/* Stop and free the first N drivers.  Every request was completed
 * before (the server waits for them before it closes a connection):
 * the drivers find nothing to do.
 */
static void
drivers_free (unsigned n)
{
  for (unsigned i = 0; i < n; i++) {
    struct driver *d = &drivers[i];

    pthread_mutex_lock (&d->lock);
    d->stopping = true;
    pthread_mutex_unlock (&d->lock);
    curl_multi_wakeup (d->multi);
    pthread_join (d->thread, NULL);
  }
  for (unsigned i = 0; i < ndrivers; i++) {
    if (drivers[i].multi)
      curl_multi_cleanup (drivers[i].multi);
    pthread_mutex_destroy (&drivers[i].lock);
  }
  free (drivers);
  drivers = NULL;
  ndrivers = 0;
}

int
driver_start (void)
{
  unsigned n = cfg.transfer_threads, started;
  /* Keep the connections of every handle alive between requests. */
  long maxconnects = (long)((cfg.connections + n - 1) / n);

  if (drivers)
    return 0;
  drivers = calloc (n, sizeof *drivers);
  if (drivers == NULL) {
    nbdkit_error ("calloc: %m");
    return -1;
  }
  ndrivers = n;
  for (unsigned i = 0; i < n; i++) {
    drivers[i].start_tail = &drivers[i].start_head;
    pthread_mutex_init (&drivers[i].lock, NULL);
    drivers[i].multi = curl_multi_init ();
    if (drivers[i].multi == NULL) {
      nbdkit_error ("%s: curl_multi_init failed", cfg.shown_url);
      drivers_free (0);
      return -1;
    }
    curl_multi_setopt (drivers[i].multi, CURLMOPT_MAXCONNECTS, maxconnects);
  }
  for (started = 0; started < n; started++) {
    int err = pthread_create (&drivers[started].thread, NULL, driver_main,
                              &drivers[started]);
    if (err) {
      errno = err;
      nbdkit_error ("%s: pthread_create: %m", cfg.shown_url);
      drivers_free (started);
      return -1;
    }
    /* Named, for top -H and the tests. */
    pthread_setname_np (drivers[started].thread, "curl-transfer");
  }
  return 0;
}

void
driver_stop (void)
{
  if (drivers)
    drivers_free (ndrivers);
}

/* Start A: now if a handle is free, else once the pool hands one. */
static int
queue (struct areq *a)
{
  /* A header or cookie script that is due runs here, on the client
   * connection's thread, not on a transfer thread, which other
   * clients' transfers need.
   */
  if (scripts_refresh () == -1) {
    free (a);
    return -1;
  }
  if (drivers == NULL) { /* after_fork failed or was not called */
    nbdkit_error ("%s: the transfer thread is not running", cfg.shown_url);
    free (a);
    return -1;
  }
  switch (pool_take (&a->w)) {
    case 1:
      submit (a);
      return 0;
    case 0:
      return 0; /* given () submits it */
    default:
      free (a);
      return -1;
  }
}

static struct areq *
areq_new (struct nbdkit_completion *c)
{
  struct areq *a = calloc (1, sizeof *a);

  if (a == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  a->w.given = given;
  a->c = c;
  return a;
}

int
async_read (void *buf, uint64_t count, uint64_t offset, struct nbdkit_read *rd,
            struct nbdkit_completion *c)
{
  struct areq *a;

  if (count == 0) {
    nbdkit_complete (c, 0);
    return 0;
  }
  if ((a = areq_new (c)) == NULL)
    return -1;
  a->rbuf = buf;
  a->count = count;
  a->offset = offset;
  a->rd = rd;
  return queue (a);
}

int
async_write (const void *buf, uint64_t count, uint64_t offset, int64_t size,
             struct nbdkit_completion *c)
{
  struct areq *a;

  if (count == 0) {
    nbdkit_complete (c, 0);
    return 0;
  }
  if ((a = areq_new (c)) == NULL)
    return -1;
  a->write = true;
  a->wbuf = buf;
  a->count = count;
  a->offset = offset;
  a->size = size;
  return queue (a);
}
