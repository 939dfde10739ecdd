/* exitlast.c: exit the server when the last client disconnects, after
 * an optional grace period (timeout=SECS) during which a new client
 * cancels the exit.  Nothing happens before the first client.
 *
 * The grace period runs in a thread of our own, started after the
 * server forked; it stops the server with nbdkit_shutdown, which works
 * from any thread.  (Not SIGTERM: a signal means the server was stopped
 * from outside, and then it does not wait for its --run command.)
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include <nbdkit-filter.h>

static int64_t timeout_secs;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static int64_t active;
static bool waiting; /* the last client left, grace running */
static struct timespec deadline;
static bool timer_started, stopping;
static pthread_t timer;

static const struct nbdkit_param params[]
    = { { .name = "timeout",
          .type = NBDKIT_PARAM_INT,
          .default_value = "0",
          .doc = "seconds to wait for a new client before exiting",
          .dest = &timeout_secs },
        { .name = NULL } };

static const char *
exitlast_config_help (void)
{
  return "timeout=SECS  Grace period after the last client leaves (default"
         " 0: exit at once).";
}

static int
exitlast_config_complete (void)
{
  if (timeout_secs < 0) {
    nbdkit_error ("timeout=%" PRId64 ": must be 0 or more", timeout_secs);
    return -1;
  }
  return 0;
}

static void *
timer_main (void *arg)
{
  pthread_mutex_lock (&lock);
  while (!stopping) {
    if (!waiting)
      pthread_cond_wait (&cond, &lock);
    else if (pthread_cond_timedwait (&cond, &lock, &deadline) == ETIMEDOUT
             && waiting && active == 0) {
      waiting = false;
      nbdkit_debug ("exitlast: no client for %" PRId64 "s: exiting",
                    timeout_secs);
      nbdkit_shutdown ();
    }
  }
  pthread_mutex_unlock (&lock);
  return NULL;
}

static int
exitlast_after_fork (nbdkit_backend *next)
{
  pthread_condattr_t attr;

  if (timeout_secs == 0)
    return 0;
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&cond, &attr);
  pthread_condattr_destroy (&attr);
  if (pthread_create (&timer, NULL, timer_main, NULL) != 0) {
    nbdkit_error ("exitlast: cannot start the timer thread");
    return -1;
  }
  timer_started = true;
  return 0;
}

/* The thread runs this filter's code: stop it before it is unloaded. */
static void
exitlast_unload (void)
{
  if (!timer_started)
    return;
  pthread_mutex_lock (&lock);
  stopping = true;
  pthread_cond_signal (&cond);
  pthread_mutex_unlock (&lock);
  pthread_join (timer, NULL);
}

static void *
exitlast_open (nbdkit_context *ctx, int readonly, const char *exportname,
               int is_tls)
{
  static int token;

  pthread_mutex_lock (&lock);
  active++;
  if (waiting) {
    waiting = false; /* a new client cancels the exit */
    pthread_cond_signal (&cond);
  }
  pthread_mutex_unlock (&lock);
  return &token;
}

static void
exitlast_close (void *handle)
{
  bool now = false;

  pthread_mutex_lock (&lock);
  if (--active == 0) {
    if (!timer_started)
      now = true;
    else {
      clock_gettime (CLOCK_MONOTONIC, &deadline);
      deadline.tv_sec += timeout_secs;
      waiting = true;
      pthread_cond_signal (&cond);
    }
  }
  pthread_mutex_unlock (&lock);
  if (now) {
    nbdkit_debug ("exitlast: last client gone: exiting");
    nbdkit_shutdown ();
  }
}

static struct nbdkit_filter filter = {
  .name = "exitlast",
  .longname = "nbdkit exitlast filter",
  .description = "exit when the last client disconnects",
  .params = params,
  .config_help = exitlast_config_help,
  .config_complete = exitlast_config_complete,
  .after_fork = exitlast_after_fork,
  .unload = exitlast_unload,
  .open = exitlast_open,
  .close = exitlast_close,
};

NBDKIT_REGISTER_FILTER (filter)
