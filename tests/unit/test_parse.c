/* test_parse.c: unit tests for core/parse.c.
 *
 * Sizes, booleans, probabilities, every integer width at its limits,
 * passwords from each source, and the path helpers, with the messages
 * they log on bad input.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "stub_log.h"

#define N_ELEMS(a) (sizeof (a) / sizeof (a)[0])

/* Assert that the last error contains NEEDLE. */
#define ck_assert_error_has(needle)                                            \
  ck_assert_msg (strstr (stub_last_error (), (needle)) != NULL,                \
                 "expected error containing \"%s\", got \"%s\"", (needle),     \
                 stub_last_error ())

/* ---- sizes ---- */

static const struct {
  const char *str;
  int64_t value;
} good_sizes[] = {
  { "0", 0 },
  { "1", 1 },
  { "007", 7 },
  { "512", 512 },
  { "1b", 1 },
  { "1B", 1 },
  { "0k", 0 },
  { "1k", 1024 },
  { "1K", 1024 },
  { "2m", 2 * 1024 * 1024 },
  { "2M", 2 * 1024 * 1024 },
  { "1g", INT64_C (1) << 30 },
  { "1G", INT64_C (1) << 30 },
  { "1024k", INT64_C (1) << 20 },
  { "3t", INT64_C (3) << 40 },
  { "1T", INT64_C (1) << 40 },
  { "1p", INT64_C (1) << 50 },
  { "8191P", INT64_C (8191) << 50 },
  { "1e", INT64_C (1) << 60 },
  { "7E", INT64_C (7) << 60 },
  { "9223372036854775807", INT64_MAX },
  { "9223372036854775807b", INT64_MAX },
  { "8388607T", INT64_C (8388607) << 40 },
  { "1s", 512 },
  { "2048S", INT64_C (2048) * 512 },
};

static const struct {
  const char *str;
  const char *why; /* part of the message */
} bad_sizes[] = {
  { "", "cannot be parsed as a number" },
  { " 1", "cannot be parsed as a number" },
  { "+1", "cannot be parsed as a number" },
  { "abc", "cannot be parsed as a number" },
  { "k", "cannot be parsed as a number" },
  { "-1", "negative" },
  { "-0", "negative" },
  { "-1G", "negative" },
  { "1 ", "suffix" },
  { "1x", "suffix" },
  { "1kb", "suffix" },
  { "1KiB", "suffix" },
  { "0x10", "suffix" },
  { "1.5G", "suffix" },
  { "1x2", "suffix" },
  { "1G\t", "suffix" },
  { "8E", "larger" },
  { "16E", "larger" },
  { "8192P", "larger" },
  { "8388608T", "larger" },
  { "9223372036854775808", "larger" },
  { "99999999999999999999", "larger" },
  { "9223372036854775807k", "larger" },
};

START_TEST (test_size_good)
{
  size_t i;

  for (i = 0; i < N_ELEMS (good_sizes); i++) {
    stub_reset ();
    ck_assert_msg (nbdkit_parse_size (good_sizes[i].str) == good_sizes[i].value,
                   "\"%s\"", good_sizes[i].str);
    ck_assert_uint_eq (stub_error_count (), 0);
  }
}
END_TEST

START_TEST (test_size_bad)
{
  size_t i;

  for (i = 0; i < N_ELEMS (bad_sizes); i++) {
    stub_reset ();
    ck_assert_msg (nbdkit_parse_size (bad_sizes[i].str) == -1,
                   "\"%s\" should be refused", bad_sizes[i].str);
    ck_assert_uint_eq (stub_error_count (), 1);
    ck_assert_error_has ("size parameter");
    ck_assert_error_has (bad_sizes[i].why);
    ck_assert_error_has (bad_sizes[i].str);
  }
}
END_TEST

/* What each parser's error names (abi/nbdkit-common.h): WHAT first
 * for those that take it, the value for all.
 */
START_TEST (test_error_names)
{
  int i;
  unsigned u;
  double d;

  stub_reset ();
  ck_assert_int_eq (nbdkit_parse_int ("retries", "x1", &i), -1);
  ck_assert_str_eq (stub_last_error (), "retries: could not parse number: x1");
  ck_assert_int_eq (nbdkit_parse_unsigned ("-t", "-3", &u), -1);
  ck_assert_msg (strncmp (stub_last_error (), "-t: ", 4) == 0
                     && strstr (stub_last_error (), "-3"),
                 "%s", stub_last_error ());
  ck_assert_int_eq (nbdkit_parse_probability ("rate", "2x", &d), -1);
  ck_assert_msg (strncmp (stub_last_error (), "rate: ", 6) == 0
                     && strstr (stub_last_error (), "2x"),
                 "%s", stub_last_error ());
  ck_assert_int_eq (nbdkit_parse_bool ("maybe"), -1);
  ck_assert_msg (strstr (stub_last_error (), "maybe") != NULL, "%s",
                 stub_last_error ());
}
END_TEST

START_TEST (test_size_message)
{
  stub_reset ();
  ck_assert_int_eq (nbdkit_parse_size ("abc"), -1);
  ck_assert_str_eq (stub_last_error (),
                    "size parameter cannot be parsed as a number: abc");
}
END_TEST

/* ---- booleans ---- */

START_TEST (test_bool)
{
  static const char *const trues[] = {
    "1", "true", "TRUE", "True", "t", "T", "yes", "YES", "y", "on", "On",
  };
  static const char *const falses[] = {
    "0", "false", "FALSE", "f", "no", "No", "n", "N", "off", "OFF",
  };
  static const char *const bads[] = {
    "",      "2",     "-1",   "01",     "00",  "tru",
    " true", "true ", "yess", "enable", "onn", "o",
  };
  size_t i;

  for (i = 0; i < N_ELEMS (trues); i++)
    ck_assert_msg (nbdkit_parse_bool (trues[i]) == 1, "\"%s\"", trues[i]);
  for (i = 0; i < N_ELEMS (falses); i++)
    ck_assert_msg (nbdkit_parse_bool (falses[i]) == 0, "\"%s\"", falses[i]);
  for (i = 0; i < N_ELEMS (bads); i++) {
    stub_reset ();
    ck_assert_msg (nbdkit_parse_bool (bads[i]) == -1, "\"%s\"", bads[i]);
    ck_assert_uint_eq (stub_error_count (), 1);
    ck_assert_error_has ("could not parse boolean");
  }
  stub_reset ();
  nbdkit_parse_bool ("maybe");
  ck_assert_error_has ("maybe");
}
END_TEST

/* ---- probabilities ---- */

START_TEST (test_probability)
{
  static const struct {
    const char *str;
    double value;
  } goods[] = {
    { "0", 0 },      { "-0", 0 },     { "1", 1 },      { "0.1", 0.1 },
    { "1e-1", 0.1 }, { ".5", 0.5 },   { "10%", 0.1 },  { "100%", 1 },
    { "0%", 0 },     { "1:10", 0.1 }, { "1/10", 0.1 }, { "3:4", 0.75 },
    { "2", 2 },      { "150%", 1.5 },
  };
  static const char *const bads[] = {
    "",   " 0.1", "abc", "0.1x",  "10%%",  "10 %", "%",
    "1:", ":2",   "1:x", "1:2:3", "1:10%", "1: 2",
  };
  static const char *const out_of_range[] = {
    "-0.1", "-5%", "-1:2", "1:-2", "1:0", "0:0", "inf", "nan", "1e999",
  };
  size_t i;
  double d;

  for (i = 0; i < N_ELEMS (goods); i++) {
    d = -1;
    ck_assert_msg (nbdkit_parse_probability ("p", goods[i].str, &d) == 0,
                   "\"%s\"", goods[i].str);
    ck_assert_msg (fabs (d - goods[i].value) < 1e-12, "\"%s\" gave %g",
                   goods[i].str, d);
    ck_assert (!signbit (d));
  }
  for (i = 0; i < N_ELEMS (bads); i++) {
    stub_reset ();
    d = 42;
    ck_assert_msg (nbdkit_parse_probability ("error-rate", bads[i], &d) == -1,
                   "\"%s\"", bads[i]);
    ck_assert (d == 42);
    ck_assert_error_has ("error-rate: could not parse probability");
  }
  for (i = 0; i < N_ELEMS (out_of_range); i++) {
    stub_reset ();
    ck_assert_msg (nbdkit_parse_probability ("p", out_of_range[i], &d) == -1,
                   "\"%s\"", out_of_range[i]);
    ck_assert_error_has ("finite number >= 0");
    ck_assert_error_has (out_of_range[i]);
  }
}
END_TEST

/* ---- integers ---- */

/* One table row: STR parses to VALUE (if OK) for the type. */
struct num_case {
  const char *str;
  int ok;
  intmax_t value;   /* signed types */
  uintmax_t uvalue; /* unsigned types */
};

/* Check a signed parser against its table. */
#define CHECK_SIGNED(fn, type, cases)                                          \
  do {                                                                         \
    size_t i_;                                                                 \
    for (i_ = 0; i_ < N_ELEMS (cases); i_++) {                                 \
      type v_ = 99;                                                            \
      int r_;                                                                  \
      stub_reset ();                                                           \
      r_ = fn ("what", (cases)[i_].str, &v_);                                  \
      if ((cases)[i_].ok) {                                                    \
        ck_assert_msg (r_ == 0, #fn " \"%s\": %s", (cases)[i_].str,            \
                       stub_last_error ());                                    \
        ck_assert_msg ((intmax_t)v_ == (cases)[i_].value,                      \
                       #fn " \"%s\" gave %jd", (cases)[i_].str, (intmax_t)v_); \
      } else {                                                                 \
        ck_assert_msg (r_ == -1, #fn " \"%s\" should fail", (cases)[i_].str);  \
        ck_assert_msg (v_ == 99, #fn " changed *r on error");                  \
        ck_assert_uint_eq (stub_error_count (), 1);                            \
        ck_assert_error_has ("what: ");                                        \
        ck_assert_error_has ((cases)[i_].str);                                 \
      }                                                                        \
    }                                                                          \
  } while (0)

#define CHECK_UNSIGNED(fn, type, cases)                                        \
  do {                                                                         \
    size_t i_;                                                                 \
    for (i_ = 0; i_ < N_ELEMS (cases); i_++) {                                 \
      type v_ = 99;                                                            \
      int r_;                                                                  \
      stub_reset ();                                                           \
      r_ = fn ("what", (cases)[i_].str, &v_);                                  \
      if ((cases)[i_].ok) {                                                    \
        ck_assert_msg (r_ == 0, #fn " \"%s\": %s", (cases)[i_].str,            \
                       stub_last_error ());                                    \
        ck_assert_msg ((uintmax_t)v_ == (cases)[i_].uvalue,                    \
                       #fn " \"%s\" gave %ju", (cases)[i_].str,                \
                       (uintmax_t)v_);                                         \
      } else {                                                                 \
        ck_assert_msg (r_ == -1, #fn " \"%s\" should fail", (cases)[i_].str);  \
        ck_assert_msg (v_ == 99, #fn " changed *r on error");                  \
        ck_assert_uint_eq (stub_error_count (), 1);                            \
        ck_assert_error_has ("what: ");                                        \
        ck_assert_error_has ((cases)[i_].str);                                 \
      }                                                                        \
    }                                                                          \
  } while (0)

/* Syntax every width shares: refused for all. */
#define COMMON_BAD                                                             \
  { "", 0, 0, 0 }, { " 1", 0, 0, 0 }, { "1 ", 0, 0, 0 }, { "abc", 0, 0, 0 },   \
      { "1x", 0, 0, 0 }, { "0x", 0, 0, 0 }, { "08", 0, 0, 0 },                 \
      { "1.0", 0, 0, 0 }, { "--1", 0, 0, 0 }, { "1k", 0, 0, 0 },               \
      { "+", 0, 0, 0 },                                                        \
  {                                                                            \
    "-", 0, 0, 0                                                               \
  }

/* Syntax every width shares: accepted for all. */
#define COMMON_GOOD                                                            \
  { "0", 1, 0, 0 }, { "1", 1, 1, 1 }, { "+7", 1, 7, 7 }, { "010", 1, 8, 8 },   \
      { "0x1f", 1, 31, 31 }, { "0X1F", 1, 31, 31 },                            \
  {                                                                            \
    "00", 1, 0, 0                                                              \
  }

START_TEST (test_int8)
{
  static const struct num_case c[] = {
    COMMON_GOOD,
    COMMON_BAD,
    { "127", 1, 127, 0 },
    { "-128", 1, -128, 0 },
    { "0x7f", 1, 127, 0 },
    { "-0x80", 1, -128, 0 },
    { "-0", 1, 0, 0 },
    { "128", 0, 0, 0 },
    { "-129", 0, 0, 0 },
    { "0x80", 0, 0, 0 },
    { "99999999999999999999999", 0, 0, 0 },
  };
  CHECK_SIGNED (nbdkit_parse_int8_t, int8_t, c);
}
END_TEST

START_TEST (test_uint8)
{
  static const struct num_case c[] = {
    COMMON_GOOD,           COMMON_BAD,
    { "255", 1, 0, 255 },  { "0xff", 1, 0, 255 },
    { "0377", 1, 0, 255 }, { "256", 0, 0, 0 },
    { "0x100", 0, 0, 0 },  { "-1", 0, 0, 0 },
    { "-0", 0, 0, 0 },     { "-255", 0, 0, 0 },
  };
  CHECK_UNSIGNED (nbdkit_parse_uint8_t, uint8_t, c);
}
END_TEST

START_TEST (test_int16)
{
  static const struct num_case c[] = {
    COMMON_GOOD,
    COMMON_BAD,
    { "32767", 1, 32767, 0 },
    { "-32768", 1, -32768, 0 },
    { "32768", 0, 0, 0 },
    { "-32769", 0, 0, 0 },
    { "0x8000", 0, 0, 0 },
  };
  CHECK_SIGNED (nbdkit_parse_int16_t, int16_t, c);
}
END_TEST

START_TEST (test_uint16)
{
  static const struct num_case c[] = {
    COMMON_GOOD,
    COMMON_BAD,
    { "65535", 1, 0, 65535 },
    { "0xffff", 1, 0, 65535 },
    { "65536", 0, 0, 0 },
    { "-1", 0, 0, 0 },
    { "-0", 0, 0, 0 },
  };
  CHECK_UNSIGNED (nbdkit_parse_uint16_t, uint16_t, c);
}
END_TEST

START_TEST (test_int32)
{
  static const struct num_case c[] = {
    COMMON_GOOD,
    COMMON_BAD,
    { "2147483647", 1, INT32_MAX, 0 },
    { "-2147483648", 1, INT32_MIN, 0 },
    { "0x7fffffff", 1, INT32_MAX, 0 },
    { "2147483648", 0, 0, 0 },
    { "-2147483649", 0, 0, 0 },
    { "0x80000000", 0, 0, 0 },
  };
  CHECK_SIGNED (nbdkit_parse_int32_t, int32_t, c);
  CHECK_SIGNED (nbdkit_parse_int, int, c);
}
END_TEST

START_TEST (test_uint32)
{
  static const struct num_case c[] = {
    COMMON_GOOD,
    COMMON_BAD,
    { "4294967295", 1, 0, UINT32_MAX },
    { "0xffffffff", 1, 0, UINT32_MAX },
    { "4294967296", 0, 0, 0 },
    { "-1", 0, 0, 0 },
    { "-0", 0, 0, 0 },
    { "-4294967295", 0, 0, 0 },
  };
  CHECK_UNSIGNED (nbdkit_parse_uint32_t, uint32_t, c);
  CHECK_UNSIGNED (nbdkit_parse_unsigned, unsigned, c);
}
END_TEST

START_TEST (test_int64)
{
  static const struct num_case c[] = {
    COMMON_GOOD,
    COMMON_BAD,
    { "9223372036854775807", 1, INT64_MAX, 0 },
    { "-9223372036854775808", 1, INT64_MIN, 0 },
    { "0x7fffffffffffffff", 1, INT64_MAX, 0 },
    { "9223372036854775808", 0, 0, 0 },
    { "-9223372036854775809", 0, 0, 0 },
    { "0x8000000000000000", 0, 0, 0 },
  };
  CHECK_SIGNED (nbdkit_parse_int64_t, int64_t, c);
}
END_TEST

START_TEST (test_uint64)
{
  static const struct num_case c[] = {
    COMMON_GOOD,
    COMMON_BAD,
    { "18446744073709551615", 1, 0, UINT64_MAX },
    { "0xffffffffffffffff", 1, 0, UINT64_MAX },
    { "18446744073709551616", 0, 0, 0 },
    { "0x10000000000000000", 0, 0, 0 },
    { "-1", 0, 0, 0 },
    { "-0", 0, 0, 0 },
    { "-18446744073709551615", 0, 0, 0 },
  };
  CHECK_UNSIGNED (nbdkit_parse_uint64_t, uint64_t, c);
}
END_TEST

START_TEST (test_int_messages)
{
  int i;
  unsigned u;
  int8_t i8;

  stub_reset ();
  ck_assert_int_eq (nbdkit_parse_int ("retries", "abc", &i), -1);
  ck_assert_str_eq (stub_last_error (), "retries: could not parse number: abc");

  stub_reset ();
  ck_assert_int_eq (nbdkit_parse_unsigned ("count", "-1", &u), -1);
  ck_assert_error_has ("count: negative numbers are not allowed");

  stub_reset ();
  ck_assert_int_eq (nbdkit_parse_int8_t ("level", "200", &i8), -1);
  ck_assert_error_has ("level: number out of range (-128 to 127): 200");
}
END_TEST

/* ---- passwords ---- */

static char *
write_temp_file (const char *content)
{
  char *name = strdup ("/tmp/test-parse-XXXXXX");
  int fd;

  ck_assert_ptr_nonnull (name);
  fd = mkstemp (name);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (write (fd, content, strlen (content)),
                    (ssize_t)strlen (content));
  close (fd);
  return name;
}

START_TEST (test_password_literal)
{
  char *pw = NULL;

  ck_assert_int_eq (nbdkit_read_password ("secret", &pw), 0);
  ck_assert_str_eq (pw, "secret");
  free (pw);
  ck_assert_int_eq (nbdkit_read_password ("", &pw), 0);
  ck_assert_str_eq (pw, "");
  free (pw);
  ck_assert_int_eq (nbdkit_read_password ("with space\n", &pw), 0);
  ck_assert_str_eq (pw, "with space\n");
  free (pw);
}
END_TEST

START_TEST (test_password_file)
{
  static const struct {
    const char *content, *password;
  } cases[] = {
    { "pw\n", "pw" },     { "pw", "pw" },
    { "pw\n\n", "pw\n" }, { "two\nlines\n", "two\nlines" },
    { "", "" },           { "\n", "" },
  };
  size_t i;
  char *name, *arg, *pw;

  for (i = 0; i < N_ELEMS (cases); i++) {
    name = write_temp_file (cases[i].content);
    ck_assert_int_ge (asprintf (&arg, "+%s", name), 0);
    pw = NULL;
    ck_assert_int_eq (nbdkit_read_password (arg, &pw), 0);
    ck_assert_str_eq (pw, cases[i].password);
    free (pw);
    free (arg);
    unlink (name);
    free (name);
  }

  stub_reset ();
  pw = NULL;
  ck_assert_int_eq (nbdkit_read_password ("+/nonexistent/pw", &pw), -1);
  ck_assert_ptr_null (pw);
  ck_assert_error_has ("/nonexistent/pw");
  ck_assert_error_has ("No such file or directory");
}
END_TEST

START_TEST (test_password_fd)
{
  int fds[2];
  char arg[32], *pw = NULL;

  ck_assert_int_eq (pipe (fds), 0);
  ck_assert_int_gt (fds[0], 2);
  ck_assert_int_eq (write (fds[1], "s3cret\n", 7), 7);
  close (fds[1]);
  snprintf (arg, sizeof arg, "-%d", fds[0]);
  ck_assert_int_eq (nbdkit_read_password (arg, &pw), 0);
  ck_assert_str_eq (pw, "s3cret");
  free (pw);
  /* Read once: the descriptor is closed afterwards. */
  ck_assert_int_eq (fcntl (fds[0], F_GETFD), -1);
  ck_assert_int_eq (errno, EBADF);
}
END_TEST

START_TEST (test_password_fd_bad)
{
  static const char *const bads[]
      = { "-0", "-1", "-2", "-abc", "-3x", "- 3", "--3" };
  size_t i;
  char *pw;

  for (i = 0; i < N_ELEMS (bads); i++) {
    stub_reset ();
    pw = NULL;
    ck_assert_msg (nbdkit_read_password (bads[i], &pw) == -1, "\"%s\"",
                   bads[i]);
    ck_assert_ptr_null (pw);
    ck_assert_uint_eq (stub_error_count (), 1);
  }
  stub_reset ();
  nbdkit_read_password ("-1", &pw);
  ck_assert_error_has ("file descriptor 1");

  /* A descriptor that is not open. */
  stub_reset ();
  ck_assert_int_eq (nbdkit_read_password ("-1000", &pw), -1);
  ck_assert_error_has ("file descriptor 1000");
  ck_assert_error_has ("Bad file descriptor");
}
END_TEST

START_TEST (test_password_not_a_tty)
{
  int saved = dup (0), null = open ("/dev/null", O_RDONLY);
  char *pw = NULL;
  int r;

  ck_assert_int_ge (saved, 0);
  ck_assert_int_ge (null, 0);
  ck_assert_int_eq (dup2 (null, 0), 0);
  stub_reset ();
  r = nbdkit_read_password ("-", &pw);
  dup2 (saved, 0);
  close (saved);
  close (null);
  ck_assert_int_eq (r, -1);
  ck_assert_ptr_null (pw);
  ck_assert_str_eq (stub_last_error (),
                    "stdin is not a tty, cannot read password interactively");
}
END_TEST

/* ---- paths ---- */

START_TEST (test_absolute_path)
{
  char cwd[PATH_MAX], *p, *want;

  ck_assert_ptr_nonnull (getcwd (cwd, sizeof cwd));

  p = nbdkit_absolute_path ("/a/b");
  ck_assert_str_eq (p, "/a/b");
  free (p);

  p = nbdkit_absolute_path ("does-not-exist");
  ck_assert_int_ge (asprintf (&want, "%s/does-not-exist", cwd), 0);
  ck_assert_str_eq (p, want);
  free (p);
  free (want);

  ck_assert_int_eq (chdir ("/"), 0);
  p = nbdkit_absolute_path ("x/y");
  ck_assert_str_eq (p, "/x/y");
  free (p);
  ck_assert_int_eq (chdir (cwd), 0);

  stub_reset ();
  ck_assert_ptr_null (nbdkit_absolute_path (""));
  ck_assert_error_has ("empty path");
}
END_TEST

START_TEST (test_realpath)
{
  char *p;

  p = nbdkit_realpath ("/");
  ck_assert_str_eq (p, "/");
  free (p);
  p = nbdkit_realpath ("/tmp/../tmp/.");
  ck_assert_ptr_nonnull (p);
  ck_assert_int_eq (p[0], '/');
  ck_assert_ptr_null (strstr (p, ".."));
  free (p);

  stub_reset ();
  ck_assert_ptr_null (nbdkit_realpath ("/nonexistent/xyz"));
  ck_assert_str_eq (stub_last_error (),
                    "realpath: /nonexistent/xyz: No such file or directory");
  stub_reset ();
  ck_assert_ptr_null (nbdkit_realpath (""));
  ck_assert_uint_eq (stub_error_count (), 1);
}
END_TEST

static Suite *
parse_suite (void)
{
  Suite *s = suite_create ("parse");
  TCase *tc;

  tc = tcase_create ("size");
  tcase_add_test (tc, test_size_good);
  tcase_add_test (tc, test_size_bad);
  tcase_add_test (tc, test_size_message);
  tcase_add_test (tc, test_error_names);
  suite_add_tcase (s, tc);

  tc = tcase_create ("bool-probability");
  tcase_add_test (tc, test_bool);
  tcase_add_test (tc, test_probability);
  suite_add_tcase (s, tc);

  tc = tcase_create ("int");
  tcase_add_test (tc, test_int8);
  tcase_add_test (tc, test_uint8);
  tcase_add_test (tc, test_int16);
  tcase_add_test (tc, test_uint16);
  tcase_add_test (tc, test_int32);
  tcase_add_test (tc, test_uint32);
  tcase_add_test (tc, test_int64);
  tcase_add_test (tc, test_uint64);
  tcase_add_test (tc, test_int_messages);
  suite_add_tcase (s, tc);

  tc = tcase_create ("password");
  tcase_add_test (tc, test_password_literal);
  tcase_add_test (tc, test_password_file);
  tcase_add_test (tc, test_password_fd);
  tcase_add_test (tc, test_password_fd_bad);
  tcase_add_test (tc, test_password_not_a_tty);
  suite_add_tcase (s, tc);

  tc = tcase_create ("path");
  tcase_add_test (tc, test_absolute_path);
  tcase_add_test (tc, test_realpath);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (parse_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
