/* ranges.c: locks on ranges of objects (see ranges.h). */

#include <stddef.h>

#include "ranges.h"

void
ranges_init (struct ranges *r)
{
  pthread_mutex_init (&r->lock, NULL);
  r->held = NULL;
  r->waiting = NULL;
  r->waiting_tail = &r->waiting;
}

/* Whether [A, B) meets a lock of LIST, stopping at STOP. */
static bool
overlaps (const struct range_lock *list, const struct range_lock *stop,
          uint64_t a, uint64_t b)
{
  for (const struct range_lock *l = list; l && l != stop; l = l->next)
    if (l->a < b && a < l->b)
      return true;
  return false;
}

bool
ranges_lock_async (struct ranges *r, struct range_lock *l, uint64_t a,
                   uint64_t b, void (*granted) (void *opaque), void *opaque)
{
  bool now;

  l->a = a;
  l->b = b;
  l->granted = granted;
  l->opaque = opaque;
  pthread_mutex_lock (&r->lock);
  /* Queued requests before it that it overlaps go first. */
  now = !overlaps (r->held, NULL, a, b) && !overlaps (r->waiting, NULL, a, b);
  if (now) {
    l->next = r->held;
    r->held = l;
  } else {
    l->next = NULL;
    *r->waiting_tail = l;
    r->waiting_tail = &l->next;
  }
  pthread_mutex_unlock (&r->lock);
  return now;
}

struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool granted;
};

static void
wake (void *opaque)
{
  struct waiter *w = opaque;

  pthread_mutex_lock (&w->lock);
  w->granted = true;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
}

void
ranges_lock (struct ranges *r, struct range_lock *l, uint64_t a, uint64_t b)
{
  struct waiter w = { .granted = false };

  pthread_mutex_init (&w.lock, NULL);
  pthread_cond_init (&w.cond, NULL);
  if (!ranges_lock_async (r, l, a, b, wake, &w)) {
    pthread_mutex_lock (&w.lock);
    while (!w.granted)
      pthread_cond_wait (&w.cond, &w.lock);
    pthread_mutex_unlock (&w.lock);
  }
  pthread_cond_destroy (&w.cond);
  pthread_mutex_destroy (&w.lock);
}

void
ranges_unlock (struct ranges *r, struct range_lock *l)
{
  struct range_lock *grant = NULL, **grant_tail = &grant;

  pthread_mutex_lock (&r->lock);
  for (struct range_lock **p = &r->held; *p; p = &(*p)->next)
    if (*p == l) {
      *p = l->next;
      break;
    }
  /* Grant, oldest first, what meets neither a held range nor an
   * earlier request still waiting.
   */
  struct range_lock **p = &r->waiting;
  while (*p) {
    struct range_lock *w = *p;
    if (overlaps (r->held, NULL, w->a, w->b)
        || overlaps (r->waiting, w, w->a, w->b)) {
      p = &w->next;
      continue;
    }
    *p = w->next;
    w->next = r->held;
    r->held = w;
    w->granted_next = NULL;
    *grant_tail = w;
    grant_tail = &w->granted_next;
  }
  r->waiting_tail = p;
  pthread_mutex_unlock (&r->lock);

  /* A callback may release its range at once (and so call this again). */
  while (grant) {
    struct range_lock *g = grant;
    grant = g->granted_next;
    g->granted (g->opaque);
  }
}
