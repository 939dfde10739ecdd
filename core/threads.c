/* threads.c: the server's threads, kept for reuse.  A connection's
 * first thread and its extra workers come from here: a task goes
 * straight to an idle thread if there is one, else a new thread is
 * started for it.  A thread idle for a while exits, so an idle server
 * holds few threads.
 */

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

#define IDLE_SECONDS 2

/* An idle thread, waiting on its own condition for a task. */
struct idle {
  struct idle *next;
  pthread_cond_t cond;
  void *(*fn) (void *);
  void *arg;
};

struct start {
  struct server *s;
  void *(*fn) (void *);
  void *arg;
};

static void *
pool_thread (void *arg)
{
  struct start *st = arg;
  struct server *s = st->s;
  void *(*fn) (void *) = st->fn;
  void *farg = st->arg;
  struct idle me = { .fn = NULL };

  free (st);
  pthread_cond_init (&me.cond, NULL);
  for (;;) {
    fn (farg);
    thread_ctx_set (NULL, NULL, NULL);

    /* Wait to be given the next task, for a while. */
    pthread_mutex_lock (&s->pool_lock);
    if (s->pool_stop)
      break;
    me.fn = NULL;
    me.next = s->pool_idle;
    s->pool_idle = &me;
    struct timespec until;
    clock_gettime (CLOCK_REALTIME, &until);
    until.tv_sec += IDLE_SECONDS;
    while (me.fn == NULL && !s->pool_stop)
      if (pthread_cond_timedwait (&me.cond, &s->pool_lock, &until) == ETIMEDOUT)
        break;
    if (me.fn == NULL) {
      /* Still on the idle list: take ourselves off and go. */
      for (struct idle **p = &s->pool_idle; *p; p = &(*p)->next)
        if (*p == &me) {
          *p = me.next;
          break;
        }
      break;
    }
    fn = me.fn;
    farg = me.arg;
    pthread_mutex_unlock (&s->pool_lock);
  }
  s->pool_threads--;
  pthread_cond_broadcast (&s->pool_done);
  pthread_mutex_unlock (&s->pool_lock);
  pthread_cond_destroy (&me.cond);
  return NULL;
}

int
pool_run (struct server *s, void *(*fn) (void *), void *arg)
{
  pthread_t th;
  pthread_attr_t attr;
  struct start *st;
  int r;

  pthread_mutex_lock (&s->pool_lock);
  if (s->pool_idle) {
    struct idle *t = s->pool_idle;
    s->pool_idle = t->next;
    t->fn = fn;
    t->arg = arg;
    pthread_cond_signal (&t->cond);
    pthread_mutex_unlock (&s->pool_lock);
    return 0;
  }
  s->pool_threads++;
  pthread_mutex_unlock (&s->pool_lock);

  st = malloc (sizeof *st);
  if (st == NULL)
    goto fail;
  st->s = s;
  st->fn = fn;
  st->arg = arg;
  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  r = pthread_create (&th, &attr, pool_thread, st);
  pthread_attr_destroy (&attr);
  if (r == 0)
    return 0;
  free (st);
fail:
  pthread_mutex_lock (&s->pool_lock);
  s->pool_threads--;
  pthread_mutex_unlock (&s->pool_lock);
  return -1;
}

void
pool_stop (struct server *s)
{
  pthread_mutex_lock (&s->pool_lock);
  s->pool_stop = true;
  for (struct idle *t = s->pool_idle; t; t = t->next)
    pthread_cond_signal (&t->cond);
  while (s->pool_threads > 0)
    pthread_cond_wait (&s->pool_done, &s->pool_lock);
  pthread_mutex_unlock (&s->pool_lock);
}
