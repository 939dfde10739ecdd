/* test_s3_ranges.c: unit tests for plugins/S3/ranges.c, the S3
 * plugin's range locks.
 *
 * A request that meets nothing held is granted at once; one that meets
 * a held range is queued and granted (its callback run) when that
 * range is released; queued requests are granted oldest first and
 * never before an earlier one they overlap; a callback may release its
 * range at once; ranges_lock waits for a range another thread holds.
 */

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "../../plugins/S3/ranges.h"

/* The order callbacks ran in: the ids of the requests. */
static int order[16];
static int n_order;

struct req {
  int id;
  struct range_lock l;
  struct ranges *r;
  bool release; /* release at once when granted */
};

static void
granted (void *opaque)
{
  struct req *q = opaque;

  order[n_order++] = q->id;
  if (q->release)
    ranges_unlock (q->r, &q->l);
}

static bool
req (struct ranges *r, struct req *q, int id, uint64_t a, uint64_t b)
{
  q->id = id;
  q->r = r;
  q->release = false;
  return ranges_lock_async (r, &q->l, a, b, granted, q);
}

START_TEST (test_disjoint)
{
  struct ranges r;
  struct req x, y;

  ranges_init (&r);
  n_order = 0;
  ck_assert (req (&r, &x, 1, 0, 2));
  ck_assert (req (&r, &y, 2, 2, 4));
  ranges_unlock (&r, &x.l);
  ranges_unlock (&r, &y.l);
  ck_assert_int_eq (n_order, 0);
}
END_TEST

START_TEST (test_queued)
{
  struct ranges r;
  struct req x, y, z;

  ranges_init (&r);
  n_order = 0;
  ck_assert (req (&r, &x, 1, 0, 4));
  ck_assert (!req (&r, &y, 2, 3, 5));
  ck_assert (!req (&r, &z, 3, 0, 1));
  ck_assert_int_eq (n_order, 0);
  ranges_unlock (&r, &x.l);
  ck_assert_int_eq (n_order, 2);
  ck_assert_int_eq (order[0], 2);
  ck_assert_int_eq (order[1], 3);
  /* Both held now: [4, 6) waits for y. */
  struct req w;
  ck_assert (!req (&r, &w, 4, 4, 6));
  ranges_unlock (&r, &z.l);
  ck_assert_int_eq (n_order, 2);
  ranges_unlock (&r, &y.l);
  ck_assert_int_eq (n_order, 3);
  ck_assert_int_eq (order[2], 4);
  ranges_unlock (&r, &w.l);
}
END_TEST

/* A request does not overtake an earlier one it overlaps, even when
 * what is held would let it in.
 */
START_TEST (test_no_overtaking)
{
  struct ranges r;
  struct req x, y, z, w;

  ranges_init (&r);
  n_order = 0;
  ck_assert (req (&r, &x, 1, 0, 1));
  ck_assert (!req (&r, &y, 2, 0, 3)); /* waits for x */
  ck_assert (!req (&r, &z, 3, 2, 3)); /* free, but y came first */
  ck_assert (req (&r, &w, 4, 5, 6));  /* meets nothing */
  ranges_unlock (&r, &w.l);
  ck_assert_int_eq (n_order, 0);
  ranges_unlock (&r, &x.l);
  ck_assert_int_eq (n_order, 1);
  ck_assert_int_eq (order[0], 2);
  ranges_unlock (&r, &y.l);
  ck_assert_int_eq (n_order, 2);
  ck_assert_int_eq (order[1], 3);
  ranges_unlock (&r, &z.l);
}
END_TEST

/* A callback that releases its range at once lets the next in. */
START_TEST (test_release_in_callback)
{
  struct ranges r;
  struct req q[5];

  ranges_init (&r);
  n_order = 0;
  ck_assert (req (&r, &q[0], 0, 0, 1));
  for (int i = 1; i < 5; i++) {
    ck_assert (!req (&r, &q[i], i, 0, 1));
    q[i].release = true;
  }
  ranges_unlock (&r, &q[0].l);
  ck_assert_int_eq (n_order, 4);
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq (order[i], i + 1);
  /* All released: the range is free. */
  ck_assert (req (&r, &q[0], 9, 0, 1));
  ranges_unlock (&r, &q[0].l);
}
END_TEST

static struct ranges shared;
static struct range_lock held;
static volatile int released;

static void *
release_later (void *arg)
{
  struct timespec ts = { 0, 100 * 1000 * 1000 };

  (void)arg;
  nanosleep (&ts, NULL);
  released = 1;
  ranges_unlock (&shared, &held);
  return NULL;
}

START_TEST (test_sync_waits)
{
  struct range_lock mine;
  pthread_t t;

  ranges_init (&shared);
  released = 0;
  ranges_lock (&shared, &held, 10, 20);
  ck_assert_int_eq (pthread_create (&t, NULL, release_later, NULL), 0);
  ranges_lock (&shared, &mine, 15, 16);
  ck_assert_int_eq (released, 1);
  ranges_unlock (&shared, &mine);
  pthread_join (t, NULL);
}
END_TEST

static Suite *
ranges_suite (void)
{
  Suite *s = suite_create ("s3_ranges");
  TCase *tc = tcase_create ("ranges");

  tcase_add_test (tc, test_disjoint);
  tcase_add_test (tc, test_queued);
  tcase_add_test (tc, test_no_overtaking);
  tcase_add_test (tc, test_release_in_callback);
  tcase_add_test (tc, test_sync_waits);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (ranges_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
