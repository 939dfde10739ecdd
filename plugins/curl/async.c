/* async.c: the curl plugin's asynchronous reads and writes.
 *
 * One thread, the driver, runs every transfer of the asynchronous
 * callbacks on one curl multi handle.  A request first needs an easy
 * handle of the pool (request.c), so CONNECTIONS still bounds the
 * transfers on the wire: async_read takes one if it is free and hands
 * the request to the driver, or else queues the request in the pool,
 * which hands it a handle (and so to the driver) when one comes back.
 * The calling thread never waits.
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

static CURLM *multi;
static pthread_t driver;
static bool driver_running;

/* Under lock: requests that have a handle and wait to be started. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct areq *start_head, **start_tail = &start_head;
static bool stopping;

/* The driver's own: transfers on the multi handle. */
static unsigned active;

/* Hand A, which has its easy handle, to the driver. */
static void
submit (struct areq *a)
{
  a->next = NULL;
  pthread_mutex_lock (&lock);
  *start_tail = a;
  start_tail = &a->next;
  pthread_mutex_unlock (&lock);
  curl_multi_wakeup (multi);
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
start (struct areq *a)
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
  mr = curl_multi_add_handle (multi, ch->c);
  if (mr != CURLM_OK) {
    nbdkit_error ("%s: %s: curl_multi_add_handle: %s", cfg.shown_url, ch->what,
                  curl_multi_strerror (mr));
    end (a, CURLE_FAILED_INIT);
    return;
  }
  active++;
}

static void *
driver_main (void *arg)
{
  (void)arg;
  for (;;) {
    struct areq *list;
    CURLMsg *msg;
    int still, left;

    pthread_mutex_lock (&lock);
    if (stopping && active == 0 && start_head == NULL) {
      pthread_mutex_unlock (&lock);
      break;
    }
    list = start_head;
    start_head = NULL;
    start_tail = &start_head;
    pthread_mutex_unlock (&lock);

    while (list) {
      struct areq *a = list;
      list = a->next;
      start (a);
    }

    curl_multi_perform (multi, &still);
    while ((msg = curl_multi_info_read (multi, &left))) {
      if (msg->msg == CURLMSG_DONE) {
        CURL *c = msg->easy_handle;
        CURLcode r = msg->data.result;
        struct areq *a = NULL;

        curl_easy_getinfo (c, CURLINFO_PRIVATE, (char **)&a);
        curl_multi_remove_handle (multi, c);
        active--;
        end (a, r);
      }
    }
    curl_multi_poll (multi, NULL, 0, 1000, NULL);
  }
  return NULL;
}

int
driver_start (void)
{
  int err;

  if (driver_running)
    return 0;
  multi = curl_multi_init ();
  if (multi == NULL) {
    nbdkit_error ("%s: curl_multi_init failed", cfg.shown_url);
    return -1;
  }
  /* Keep the connections of every handle alive between requests. */
  curl_multi_setopt (multi, CURLMOPT_MAXCONNECTS, (long)cfg.connections);
  stopping = false;
  err = pthread_create (&driver, NULL, driver_main, NULL);
  if (err) {
    errno = err;
    nbdkit_error ("%s: pthread_create: %m", cfg.shown_url);
    curl_multi_cleanup (multi);
    multi = NULL;
    return -1;
  }
  driver_running = true;
  return 0;
}

/* Every request was completed before (the server waits for them
 * before it closes a connection): the driver finds nothing to do.
 */
void
driver_stop (void)
{
  if (!driver_running)
    return;
  pthread_mutex_lock (&lock);
  stopping = true;
  pthread_mutex_unlock (&lock);
  curl_multi_wakeup (multi);
  pthread_join (driver, NULL);
  driver_running = false;
  curl_multi_cleanup (multi);
  multi = NULL;
}

/* Start A: now if a handle is free, else once the pool hands one. */
static int
queue (struct areq *a)
{
  /* A header or cookie script that is due runs here, on the client
   * connection's thread, not on the driver's, which every transfer
   * needs.
   */
  if (scripts_refresh () == -1) {
    free (a);
    return -1;
  }
  if (!driver_running) { /* after_fork failed or was not called */
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
