/* ranges.h: locks on ranges of objects.
 *
 * A writer locks the objects [A, B) it is about to change; while
 * another holds any of them, its request waits in a queue and is
 * granted when the conflicting ranges are released, in the order the
 * requests came (a request never overtakes an earlier one it overlaps).
 * Taking the whole range at once (never one object after another) is
 * what keeps two writers from waiting for each other forever.
 *
 * ranges_lock_async never blocks: a request that cannot be granted at
 * once is queued with a callback, run when it is granted by the thread
 * that released the conflicting range.  ranges_lock is the same request
 * with a callback that wakes the waiting thread.
 */

#ifndef S3_RANGES_H
#define S3_RANGES_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct range_lock {
  uint64_t a, b;
  void (*granted) (void *opaque);
  void *opaque;
  struct range_lock *next;         /* in held or waiting */
  struct range_lock *granted_next; /* private to ranges_unlock */
};

struct ranges {
  pthread_mutex_t lock;
  struct range_lock *held;
  struct range_lock *waiting, **waiting_tail; /* oldest first */
};

extern void ranges_init (struct ranges *r);

/* Request [A, B) for L.  Returns true if granted at once (GRANTED is
 * then not called); otherwise L is queued and GRANTED (OPAQUE) runs
 * once it is granted, on the thread calling ranges_unlock, after the
 * queue's mutex is released.  L must live until ranges_unlock.
 */
extern bool ranges_lock_async (struct ranges *r, struct range_lock *l,
                               uint64_t a, uint64_t b,
                               void (*granted) (void *opaque), void *opaque);

/* Request [A, B) for L and wait until it is granted. */
extern void ranges_lock (struct ranges *r, struct range_lock *l, uint64_t a,
                         uint64_t b);

/* Release L and grant (run the callbacks of) the queued requests that
 * no longer conflict with anything held or queued before them.
 */
extern void ranges_unlock (struct ranges *r, struct range_lock *l);

#endif /* S3_RANGES_H */
