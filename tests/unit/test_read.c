/* test_read.c: unit tests for core/read.c, what a pread can say beyond
 * plain data (nbdkit_read_hole, nbdkit_read_lend, nbdkit_read_error_at)
 * and what the server does with it (read_flatten, read_release).
 *
 * In zero-copy mode holes and loans are kept as segments, in request
 * order, adjacent holes merged; out of order ones are copied at once.
 * Without zero copy everything lands in the buffer at once and every
 * loan is released inside nbdkit_read_lend.  Ranges outside the
 * request are refused (and their loans released).  Every release
 * function is called exactly once, whatever the path.
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

#define REQ_OFF 1000 /* the request's offset in the disk */
#define REQ_LEN 4096

/* Loans: each release counts on its own slot. */
static unsigned released[64];

static void
release (void *opaque)
{
  released[(uintptr_t)opaque]++;
}

static unsigned char buf[REQ_LEN];
static unsigned char src[REQ_LEN]; /* lent data: src[i] = i % 251 + 1 */
static struct nbdkit_read rd;

static void
setup (bool zero_copy)
{
  memset (released, 0, sizeof released);
  memset (buf, 0xee, sizeof buf);
  for (size_t i = 0; i < sizeof src; i++)
    src[i] = i % 251 + 1;
  free (rd.segs);
  memset (&rd, 0, sizeof rd);
  read_init (&rd, buf, REQ_LEN, REQ_OFF, zero_copy);
  stub_reset ();
}

static void
teardown (void)
{
  free (rd.segs);
  memset (&rd, 0, sizeof rd);
}

static void
check_seg (size_t i, uint64_t off, uint64_t len, const void *data)
{
  ck_assert_uint_lt (i, rd.nsegs);
  ck_assert_msg (rd.segs[i].offset == off && rd.segs[i].length == len
                     && rd.segs[i].data == data,
                 "segment %zu: (%" PRIu64 ", %" PRIu64
                 ", %p), expected (%" PRIu64 ", %" PRIu64 ", %p)",
                 i, rd.segs[i].offset, rd.segs[i].length, rd.segs[i].data, off,
                 len, data);
}

/* BUF[FROM, FROM+LEN) is all BYTE. */
static void
check_fill (size_t from, size_t len, unsigned char byte)
{
  for (size_t i = from; i < from + len; i++)
    ck_assert_msg (buf[i] == byte, "buf[%zu] = 0x%x, expected 0x%x", i, buf[i],
                   byte);
}

START_TEST (test_init)
{
  setup (true);
  ck_assert_uint_eq (rd.offset, REQ_OFF);
  ck_assert_uint_eq (rd.count, REQ_LEN);
  ck_assert_ptr_eq (rd.buf, buf);
  ck_assert (rd.zero_copy);
  ck_assert_uint_eq (rd.nsegs, 0);
  ck_assert_uint_eq (rd.error_at, UINT64_MAX);
  teardown ();
}
END_TEST

START_TEST (test_segments_in_order)
{
  setup (true);
  /* Offsets are disk offsets; segments are relative to the request. */
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF, 512), 0);
  ck_assert_int_eq (
      nbdkit_read_lend (&rd, REQ_OFF + 1024, src, 100, release, (void *)1), 0);
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + 2048, 1000), 0);
  ck_assert_int_eq (nbdkit_read_lend (&rd, REQ_OFF + 3048, src + 10, 1048,
                                      release, (void *)2),
                    0);
  ck_assert_uint_eq (rd.nsegs, 4);
  check_seg (0, 0, 512, NULL);
  check_seg (1, 1024, 100, src);
  check_seg (2, 2048, 1000, NULL);
  check_seg (3, 3048, 1048, src + 10);
  /* Nothing released yet, nothing written to the buffer. */
  ck_assert_uint_eq (released[1] + released[2], 0);
  check_fill (0, REQ_LEN, 0xee);

  read_release (&rd);
  ck_assert_uint_eq (released[1], 1);
  ck_assert_uint_eq (released[2], 1);
  ck_assert_uint_eq (rd.nsegs, 0);
  /* Releasing again releases nothing twice. */
  read_release (&rd);
  ck_assert_uint_eq (released[1], 1);
  ck_assert_uint_eq (released[2], 1);
  teardown ();
}
END_TEST

START_TEST (test_holes_merge)
{
  setup (true);
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF, 100), 0);
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + 100, 100), 0);
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + 200, 100), 0);
  ck_assert_uint_eq (rd.nsegs, 1);
  check_seg (0, 0, 300, NULL);
  /* Not adjacent: a new segment. */
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + 400, 100), 0);
  ck_assert_uint_eq (rd.nsegs, 2);
  /* Loans are never merged, even adjacent ones. */
  ck_assert_int_eq (
      nbdkit_read_lend (&rd, REQ_OFF + 500, src, 10, release, (void *)1), 0);
  ck_assert_int_eq (
      nbdkit_read_lend (&rd, REQ_OFF + 510, src + 10, 10, release, (void *)2),
      0);
  ck_assert_uint_eq (rd.nsegs, 4);
  /* A hole after a loan is not merged into it. */
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + 520, 10), 0);
  ck_assert_uint_eq (rd.nsegs, 5);
  check_seg (4, 520, 10, NULL);
  read_release (&rd);
  ck_assert_uint_eq (released[1], 1);
  ck_assert_uint_eq (released[2], 1);
  teardown ();
}
END_TEST

START_TEST (test_out_of_order)
{
  setup (true);
  ck_assert_int_eq (
      nbdkit_read_lend (&rd, REQ_OFF + 2048, src, 100, release, (void *)1), 0);
  /* Before the last segment: copied into the buffer and released at
   * once, not kept.
   */
  ck_assert_int_eq (
      nbdkit_read_lend (&rd, REQ_OFF + 100, src + 500, 50, release, (void *)2),
      0);
  ck_assert_uint_eq (released[2], 1);
  ck_assert_int_eq (memcmp (buf + 100, src + 500, 50), 0);
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + 10, 20), 0);
  check_fill (10, 20, 0);
  check_fill (0, 10, 0xee);
  ck_assert_uint_eq (rd.nsegs, 1);
  check_seg (0, 2048, 100, src);
  ck_assert_uint_eq (released[1], 0);
  read_release (&rd);
  ck_assert_uint_eq (released[1], 1);
  ck_assert_uint_eq (released[2], 1);
  teardown ();
}
END_TEST

START_TEST (test_not_zero_copy)
{
  setup (false);
  ck_assert_int_eq (
      nbdkit_read_lend (&rd, REQ_OFF + 8, src, 100, release, (void *)1), 0);
  /* Copied and released inside the call. */
  ck_assert_uint_eq (released[1], 1);
  ck_assert_int_eq (memcmp (buf + 8, src, 100), 0);
  check_fill (0, 8, 0xee);
  check_fill (108, 10, 0xee);
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + 200, 300), 0);
  check_fill (200, 300, 0);
  ck_assert_uint_eq (rd.nsegs, 0);
  read_release (&rd);
  read_flatten (&rd);
  ck_assert_uint_eq (released[1], 1);
  /* A NULL release is fine too. */
  ck_assert_int_eq (nbdkit_read_lend (&rd, REQ_OFF, src, 4, NULL, NULL), 0);
  ck_assert_int_eq (memcmp (buf, src, 4), 0);
  teardown ();
}
END_TEST

START_TEST (test_flatten)
{
  unsigned char want[REQ_LEN];

  setup (true);
  memset (want, 0xee, sizeof want);
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + 100, 200), 0);
  memset (want + 100, 0, 200);
  ck_assert_int_eq (
      nbdkit_read_lend (&rd, REQ_OFF + 300, src, 1000, release, (void *)1), 0);
  memcpy (want + 300, src, 1000);
  ck_assert_int_eq (
      nbdkit_read_lend (&rd, REQ_OFF + 1300, src + 7, 33, release, (void *)2),
      0);
  memcpy (want + 1300, src + 7, 33);
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + 4000, 96), 0);
  memset (want + 4000, 0, 96);
  ck_assert_uint_eq (rd.nsegs, 4);

  read_flatten (&rd);
  ck_assert_int_eq (memcmp (buf, want, REQ_LEN), 0);
  ck_assert_uint_eq (rd.nsegs, 0);
  ck_assert_uint_eq (released[1], 1);
  ck_assert_uint_eq (released[2], 1);
  read_release (&rd);
  ck_assert_uint_eq (released[1], 1);
  ck_assert_uint_eq (released[2], 1);
  teardown ();
}
END_TEST

START_TEST (test_range_checks)
{
  setup (true);
  /* Before the request, past its end, longer than it, and overflowing. */
  errno = 0;
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF - 1, 10), -1);
  ck_assert_int_eq (errno, EINVAL);
  ck_assert_uint_eq (stub_error_count (), 1);
  ck_assert_msg (strstr (stub_last_error (), "nbdkit_read_hole") != NULL,
                 "error does not name the function: %s", stub_last_error ());
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + REQ_LEN - 10, 11), -1);
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF, REQ_LEN + 1), -1);
  ck_assert_int_eq (nbdkit_read_hole (&rd, UINT64_MAX, 2), -1);
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + 1, UINT64_MAX), -1);
  ck_assert_uint_eq (rd.nsegs, 0);
  /* The edges themselves are fine. */
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + REQ_LEN - 10, 10), 0);
  ck_assert_int_eq (nbdkit_read_hole (&rd, REQ_OFF + REQ_LEN, 0), 0);

  /* A refused loan is still released, exactly once. */
  errno = 0;
  ck_assert_int_eq (
      nbdkit_read_lend (&rd, REQ_OFF + REQ_LEN, src, 1, release, (void *)3),
      -1);
  ck_assert_int_eq (errno, EINVAL);
  ck_assert_uint_eq (released[3], 1);
  ck_assert_int_eq (
      nbdkit_read_lend (&rd, REQ_OFF - 5, src, 10, release, (void *)4), -1);
  ck_assert_uint_eq (released[4], 1);
  /* An empty or NULL loan is accepted and released at once. */
  ck_assert_int_eq (nbdkit_read_lend (&rd, REQ_OFF, src, 0, release, (void *)5),
                    0);
  ck_assert_uint_eq (released[5], 1);
  ck_assert_int_eq (
      nbdkit_read_lend (&rd, REQ_OFF, NULL, 10, release, (void *)6), 0);
  ck_assert_uint_eq (released[6], 1);
  ck_assert_uint_eq (rd.nsegs, 1);
  read_release (&rd);
  for (int i = 3; i <= 6; i++)
    ck_assert_uint_eq (released[i], 1);
  teardown ();
}
END_TEST

START_TEST (test_error_at)
{
  setup (true);
  ck_assert_int_eq (nbdkit_read_error_at (&rd, REQ_OFF + 100), 0);
  ck_assert_uint_eq (rd.error_at, 100);
  /* The start and the end of the request are both inside. */
  ck_assert_int_eq (nbdkit_read_error_at (&rd, REQ_OFF), 0);
  ck_assert_uint_eq (rd.error_at, 0);
  ck_assert_int_eq (nbdkit_read_error_at (&rd, REQ_OFF + REQ_LEN), 0);
  ck_assert_uint_eq (rd.error_at, REQ_LEN);
  errno = 0;
  ck_assert_int_eq (nbdkit_read_error_at (&rd, REQ_OFF + REQ_LEN + 1), -1);
  ck_assert_int_eq (errno, EINVAL);
  ck_assert_int_eq (nbdkit_read_error_at (&rd, REQ_OFF - 1), -1);
  ck_assert_uint_eq (rd.error_at, REQ_LEN);
  teardown ();
}
END_TEST

START_TEST (test_many_segments)
{
  /* More segments than the first allocation: all kept, in order,
   * each released once.
   */
  static unsigned char big[65536];
  unsigned count = 0;

  setup (true);
  free (rd.segs);
  memset (&rd, 0, sizeof rd);
  read_init (&rd, big, sizeof big, 0, true);
  for (uint64_t off = 0; off < sizeof big; off += 128) {
    if ((off / 128) % 2)
      ck_assert_int_eq (nbdkit_read_hole (&rd, off, 128), 0);
    else
      ck_assert_int_eq (nbdkit_read_lend (&rd, off, src, 128, release,
                                          (void *)(uintptr_t)(off / 128 % 64)),
                        0);
  }
  ck_assert_uint_eq (rd.nsegs, sizeof big / 128);
  for (size_t i = 0; i < rd.nsegs; i++)
    check_seg (i, i * 128, 128, i % 2 ? NULL : src);
  read_release (&rd);
  for (int i = 0; i < 64; i++)
    count += released[i];
  ck_assert_uint_eq (count, sizeof big / 128 / 2);
  teardown ();
}
END_TEST

static Suite *
read_suite (void)
{
  Suite *s = suite_create ("read");
  TCase *tc = tcase_create ("read");

  tcase_add_test (tc, test_init);
  tcase_add_test (tc, test_segments_in_order);
  tcase_add_test (tc, test_holes_merge);
  tcase_add_test (tc, test_out_of_order);
  tcase_add_test (tc, test_not_zero_copy);
  tcase_add_test (tc, test_flatten);
  tcase_add_test (tc, test_range_checks);
  tcase_add_test (tc, test_error_at);
  tcase_add_test (tc, test_many_segments);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (read_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
