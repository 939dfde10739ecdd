/* test_extents.c: unit tests for core/extents.c (nbdkit_add_extent and
 * the list it fills).
 *
 * Clipping to [start, end), merging of neighbours of the same type,
 * the type mask, zero-length extents, and the errors: a first extent
 * starting after start, a gap or overlap between extents, and offset
 * + length overflowing.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "internal.h"
#include "stub_log.h"

#define HOLE NBDKIT_EXTENT_HOLE
#define ZERO NBDKIT_EXTENT_ZERO

#define ck_assert_error_has(needle)                                            \
  ck_assert_msg (strstr (stub_last_error (), (needle)) != NULL,                \
                 "expected error containing \"%s\", got \"%s\"", (needle),     \
                 stub_last_error ())

/* Assert extent I of E is (OFF, LEN, TYPE). */
static void
check_extent (const struct nbdkit_extents *e, size_t i, uint64_t off,
              uint64_t len, uint32_t type)
{
  struct nbdkit_extent x;

  ck_assert_uint_lt (i, nbdkit_extents_count (e));
  x = nbdkit_get_extent (e, i);
  ck_assert_msg (x.offset == off && x.length == len && x.type == type,
                 "extent %zu: got (%" PRIu64 ", %" PRIu64 ", %u),"
                 " expected (%" PRIu64 ", %" PRIu64 ", %u)",
                 i, x.offset, x.length, x.type, off, len, type);
}

START_TEST (test_simple)
{
  struct nbdkit_extents *e = nbdkit_extents_new (0, 1000);

  ck_assert_ptr_nonnull (e);
  ck_assert_uint_eq (nbdkit_extents_count (e), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 0, 100, 0), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 100, 200, HOLE | ZERO), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 300, 700, ZERO), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 3);
  check_extent (e, 0, 0, 100, 0);
  check_extent (e, 1, 100, 200, HOLE | ZERO);
  check_extent (e, 2, 300, 700, ZERO);
  nbdkit_extents_free (e);
}
END_TEST

START_TEST (test_clip_start)
{
  /* Extents before start are dropped, the one across it is cut. */
  struct nbdkit_extents *e = nbdkit_extents_new (1000, 5000);

  ck_assert_int_eq (nbdkit_add_extent (e, 0, 500, HOLE), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 500, 500, 0), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 1000, 0, 0), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 0);
  nbdkit_extents_free (e);

  e = nbdkit_extents_new (1000, 5000);
  ck_assert_int_eq (nbdkit_add_extent (e, 0, 1500, HOLE), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 1500, 100, 0), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 2);
  check_extent (e, 0, 1000, 500, HOLE);
  check_extent (e, 1, 1500, 100, 0);
  nbdkit_extents_free (e);
}
END_TEST

START_TEST (test_clip_end)
{
  /* The one across end is cut, later ones dropped (but still checked
   * for gaps).
   */
  struct nbdkit_extents *e = nbdkit_extents_new (0, 1000);

  ck_assert_int_eq (nbdkit_add_extent (e, 0, 800, 0), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 800, 800, HOLE), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 1600, 100, ZERO), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 2);
  check_extent (e, 0, 0, 800, 0);
  check_extent (e, 1, 800, 200, HOLE);
  stub_reset ();
  ck_assert_int_eq (nbdkit_add_extent (e, 1800, 100, 0), -1);
  ck_assert_int_eq (errno, EINVAL);
  ck_assert_uint_eq (nbdkit_extents_count (e), 2);
  nbdkit_extents_free (e);

  /* One extent covering start and end on both sides. */
  e = nbdkit_extents_new (100, 200);
  ck_assert_int_eq (nbdkit_add_extent (e, 0, 1000, HOLE), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 1);
  check_extent (e, 0, 100, 100, HOLE);
  nbdkit_extents_free (e);
}
END_TEST

START_TEST (test_merge)
{
  struct nbdkit_extents *e = nbdkit_extents_new (0, 10000);

  /* Same type neighbours become one. */
  ck_assert_int_eq (nbdkit_add_extent (e, 0, 100, HOLE), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 100, 100, HOLE), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 200, 100, HOLE), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 1);
  check_extent (e, 0, 0, 300, HOLE);
  /* A different type starts a new one, then merges on. */
  ck_assert_int_eq (nbdkit_add_extent (e, 300, 50, 0), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 350, 50, 0), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 400, 10, HOLE), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 3);
  check_extent (e, 1, 300, 100, 0);
  check_extent (e, 2, 400, 10, HOLE);
  /* Zero-length extents change nothing, whatever their type. */
  ck_assert_int_eq (nbdkit_add_extent (e, 410, 0, 0), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 410, 5, HOLE), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 3);
  check_extent (e, 2, 400, 15, HOLE);
  nbdkit_extents_free (e);
}
END_TEST

START_TEST (test_merge_after_clip)
{
  /* A clipped first extent merges with a following one of its type. */
  struct nbdkit_extents *e = nbdkit_extents_new (50, 1000);

  ck_assert_int_eq (nbdkit_add_extent (e, 0, 100, ZERO), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 100, 100, ZERO), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 1);
  check_extent (e, 0, 50, 150, ZERO);
  nbdkit_extents_free (e);
}
END_TEST

START_TEST (test_type_mask)
{
  /* Bits other than HOLE and ZERO are not passed on, so extents that
   * differ only in them merge.
   */
  struct nbdkit_extents *e = nbdkit_extents_new (0, 1000);

  ck_assert_int_eq (nbdkit_add_extent (e, 0, 100, HOLE | 0x100), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 100, 100, HOLE), 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 200, 100, 0xfffffff0), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 2);
  check_extent (e, 0, 0, 200, HOLE);
  check_extent (e, 1, 200, 100, 0);
  nbdkit_extents_free (e);
}
END_TEST

START_TEST (test_first_after_start)
{
  struct nbdkit_extents *e = nbdkit_extents_new (100, 1000);

  stub_reset ();
  errno = 0;
  ck_assert_int_eq (nbdkit_add_extent (e, 101, 100, 0), -1);
  ck_assert_int_eq (errno, EINVAL);
  ck_assert_uint_eq (stub_error_count (), 1);
  ck_assert_error_has ("101");
  ck_assert_error_has ("100");
  ck_assert_uint_eq (nbdkit_extents_count (e), 0);
  /* Starting exactly at start, or before it, is fine. */
  ck_assert_int_eq (nbdkit_add_extent (e, 100, 100, 0), 0);
  nbdkit_extents_free (e);

  e = nbdkit_extents_new (100, 1000);
  ck_assert_int_eq (nbdkit_add_extent (e, 99, 100, 0), 0);
  check_extent (e, 0, 100, 99, 0);
  nbdkit_extents_free (e);
}
END_TEST

START_TEST (test_gap_overlap)
{
  struct nbdkit_extents *e = nbdkit_extents_new (0, 1000);

  ck_assert_int_eq (nbdkit_add_extent (e, 0, 100, 0), 0);
  stub_reset ();
  errno = 0;
  /* A gap. */
  ck_assert_int_eq (nbdkit_add_extent (e, 101, 100, HOLE), -1);
  ck_assert_int_eq (errno, EINVAL);
  ck_assert_uint_eq (stub_error_count (), 1);
  ck_assert_error_has ("101");
  /* An overlap. */
  errno = 0;
  ck_assert_int_eq (nbdkit_add_extent (e, 50, 100, HOLE), -1);
  ck_assert_int_eq (errno, EINVAL);
  /* Going back to the start. */
  ck_assert_int_eq (nbdkit_add_extent (e, 0, 100, HOLE), -1);
  /* The list is unchanged and the right next extent is still taken. */
  ck_assert_uint_eq (nbdkit_extents_count (e), 1);
  check_extent (e, 0, 0, 100, 0);
  ck_assert_int_eq (nbdkit_add_extent (e, 100, 100, HOLE), 0);
  check_extent (e, 1, 100, 100, HOLE);
  nbdkit_extents_free (e);
}
END_TEST

START_TEST (test_overflow)
{
  struct nbdkit_extents *e = nbdkit_extents_new (0, UINT64_MAX);

  stub_reset ();
  errno = 0;
  ck_assert_int_eq (nbdkit_add_extent (e, UINT64_MAX - 10, 11, 0), -1);
  ck_assert_int_eq (errno, ERANGE);
  ck_assert_error_has ("overflows");
  ck_assert_int_eq (nbdkit_add_extent (e, 1, UINT64_MAX, 0), -1);
  ck_assert_int_eq (errno, ERANGE);
  ck_assert_uint_eq (nbdkit_extents_count (e), 0);
  /* Up to the last byte is fine. */
  ck_assert_int_eq (nbdkit_add_extent (e, 0, UINT64_MAX, HOLE), 0);
  check_extent (e, 0, 0, UINT64_MAX, HOLE);
  nbdkit_extents_free (e);
}
END_TEST

START_TEST (test_many)
{
  /* Alternating types: one extent per call, in order, and the list
   * grows past its first allocation.
   */
  struct nbdkit_extents *e = nbdkit_extents_new (0, 1 << 20);

  for (uint64_t i = 0; i < 1000; i++)
    ck_assert_int_eq (
        nbdkit_add_extent (e, i * 512, 512, i & 1 ? HOLE | ZERO : 0), 0);
  ck_assert_uint_eq (nbdkit_extents_count (e), 1000);
  for (size_t i = 0; i < 1000; i++)
    check_extent (e, i, i * 512, 512, i & 1 ? HOLE | ZERO : 0);
  nbdkit_extents_free (e);
  nbdkit_extents_free (NULL);
}
END_TEST

static Suite *
extents_suite (void)
{
  Suite *s = suite_create ("extents");
  TCase *tc = tcase_create ("add_extent");

  tcase_add_test (tc, test_simple);
  tcase_add_test (tc, test_clip_start);
  tcase_add_test (tc, test_clip_end);
  tcase_add_test (tc, test_merge);
  tcase_add_test (tc, test_merge_after_clip);
  tcase_add_test (tc, test_type_mask);
  tcase_add_test (tc, test_first_after_start);
  tcase_add_test (tc, test_gap_overlap);
  tcase_add_test (tc, test_overflow);
  tcase_add_test (tc, test_many);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (extents_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
