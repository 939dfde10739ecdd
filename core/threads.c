/* threads.c: the server's threads, kept for reuse.  A connection's
 * first thread and its extra workers come from here: a task goes
 * straight to an idle thread if there is one, else a new thread is
 * started for it.  A thread idle for a while exits, so an idle server
 * holds few threads.
 *
 * Every pool thread is joined, never detached: a thread that leaves
 * puts its record on s->pool_exited, and the next new connection
 * (connection_start calls pool_reap) or pool_stop joins it.  So when
 * pool_stop returns no pool thread runs any code at all, not even its
 * exit path, whose thread-local destructors may live in a plugin (a
 * language host's per-thread state) that is about to be unloaded.
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

/* A pool thread's record: its first task, then, once it has left the
 * loop, its id on s->pool_exited for a joiner.
 */
struct pool_rec {
  struct server *s;
  void *(*fn) (void *);
  void *arg;
  pthread_t th;
  struct pool_rec *next;
};

/* Join the threads that have left.  Each queued itself after its last
 * access to the server, so joining waits only for its exit path; that
 * may run thread-local destructors (a language host's), so no lock is
 * held meanwhile.
 */
void
pool_reap (struct server *s)
{
  struct pool_rec *list;

  pthread_mutex_lock (&s->pool_lock);
  list = s->pool_exited;
  s->pool_exited = NULL;
  pthread_mutex_unlock (&s->pool_lock);
  while (list) {
    struct pool_rec *st = list;
    list = st->next;
    pthread_join (st->th, NULL);
    free (st);
  }
}

static void *
pool_thread (void *arg)
{
  struct pool_rec *st = arg;
  struct server *s = st->s;
  void *(*fn) (void *) = st->fn;
  void *farg = st->arg;
  struct idle me = { .fn = NULL };

  /* A thread takes the name of the one that started it, which may be a
   * plugin's (started on its thread by nbdkit_complete): say whose it is.
   */
  pthread_setname_np (pthread_self (), "nbdkit");
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
  pthread_cond_destroy (&me.cond);
  st->th = pthread_self ();
  st->next = s->pool_exited;
  s->pool_exited = st;
  s->pool_threads--;
  pthread_cond_broadcast (&s->pool_done);
  pthread_mutex_unlock (&s->pool_lock);
  return NULL;
}

int
pool_run (struct server *s, void *(*fn) (void *), void *arg)
{
  pthread_t th;
  struct pool_rec *st;
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
  r = pthread_create (&th, NULL, pool_thread, st);
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
  pool_reap (s);
}
