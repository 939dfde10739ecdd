/* ranges.c: locks on ranges of objects (see ranges.h). */

#include <stdbool.h>

#include "ranges.h"

void
ranges_init (struct ranges *r)
{
  pthread_mutex_init (&r->lock, NULL);
  pthread_cond_init (&r->changed, NULL);
  r->held = NULL;
}

static bool
overlaps (const struct ranges *r, uint64_t a, uint64_t b)
{
  for (const struct range_lock *l = r->held; l; l = l->next)
    if (l->a < b && a < l->b)
      return true;
  return false;
}

void
ranges_lock (struct ranges *r, struct range_lock *l, uint64_t a, uint64_t b)
{
  l->a = a;
  l->b = b;
  pthread_mutex_lock (&r->lock);
  while (overlaps (r, a, b))
    pthread_cond_wait (&r->changed, &r->lock);
  l->next = r->held;
  r->held = l;
  pthread_mutex_unlock (&r->lock);
}

void
ranges_unlock (struct ranges *r, struct range_lock *l)
{
  pthread_mutex_lock (&r->lock);
  for (struct range_lock **p = &r->held; *p; p = &(*p)->next)
    if (*p == l) {
      *p = l->next;
      break;
    }
  pthread_cond_broadcast (&r->changed);
  pthread_mutex_unlock (&r->lock);
}
