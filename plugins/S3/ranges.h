/* ranges.h: locks on ranges of objects.
 *
 * A writer locks the objects [A, B) it is about to change; it waits
 * while another holds any of them.  Taking the whole range at once
 * (never one object after another) is what keeps two writers from
 * waiting for each other forever.
 */

#ifndef S3_RANGES_H
#define S3_RANGES_H

#include <pthread.h>
#include <stdint.h>

struct range_lock {
  uint64_t a, b;
  struct range_lock *next;
};

struct ranges {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  struct range_lock *held;
};

extern void ranges_init (struct ranges *r);
extern void ranges_lock (struct ranges *r, struct range_lock *l, uint64_t a,
                         uint64_t b);
extern void ranges_unlock (struct ranges *r, struct range_lock *l);

#endif /* S3_RANGES_H */
