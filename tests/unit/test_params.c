/* test_params.c: unit tests for core/params.c.
 *
 * Each parameter type through param_parse (values stored, canonical
 * text, messages naming the key), repeats, unknown keys, defaults and
 * required keys through param_finish, and the --help and --dump-plugin
 * output.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, open_memstream */
#endif

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "internal.h"
#include "stub_log.h"

#define N_ELEMS(a) (sizeof (a) / sizeof (a)[0])

#define ck_assert_error_has(needle)                                            \
  ck_assert_msg (strstr (stub_last_error (), (needle)) != NULL,                \
                 "expected error containing \"%s\", got \"%s\"", (needle),     \
                 stub_last_error ())

/* Where the declared params store their values. */
static int64_t size_v, count_v;
static bool verbose_v;
static const char *mode_v, *name_v, *file_v, *dir_v, *pw_v, *opt_v;

/* Indexes into params[], for checking seen[]. */
enum {
  P_SIZE,
  P_MODE,
  P_VERBOSE,
  P_COUNT,
  P_NAME,
  P_FILE,
  P_DIR,
  P_PW,
  P_TAG,
  P_OPT,
  P_END
};

static struct nbdkit_param params[] = {
  [P_SIZE] = { "size", NBDKIT_PARAM_SIZE, NBDKIT_PARAM_REQUIRED, NULL,
               "Size of the disk.", NULL, &size_v },
  [P_MODE] = { "mode", NBDKIT_PARAM_ENUM, 0, "auto", "How to go.",
               "fast|slow|auto", &mode_v },
  [P_VERBOSE]
  = { "verbose", NBDKIT_PARAM_BOOL, 0, "false", "Say more.", NULL, &verbose_v },
  [P_COUNT]
  = { "count", NBDKIT_PARAM_INT, 0, "10", "How many.", NULL, &count_v },
  [P_NAME] = { "name", NBDKIT_PARAM_STRING, 0, NULL, "A name.", NULL, &name_v },
  [P_FILE] = { "file", NBDKIT_PARAM_FILE, 0, NULL, "A file.", NULL, &file_v },
  [P_DIR]
  = { "dir", NBDKIT_PARAM_DIRECTORY, 0, NULL, "A directory.", NULL, &dir_v },
  [P_PW]
  = { "password", NBDKIT_PARAM_PASSWORD, 0, NULL, "The secret.", NULL, &pw_v },
  [P_TAG] = { "tag", NBDKIT_PARAM_LIST, 0, NULL, "A tag.", NULL, NULL },
  [P_OPT] = { "opt", NBDKIT_PARAM_STRING, NBDKIT_PARAM_MULTIPLE, NULL,
              "An option.", NULL, &opt_v },
  [P_END] = { 0 },
};

static unsigned seen[P_END];

static void
setup (void)
{
  memset (seen, 0, sizeof seen);
  size_v = count_v = -1;
  verbose_v = false;
  mode_v = name_v = file_v = dir_v = pw_v = opt_v = NULL;
  stub_reset ();
}

/* Parse KEY=VALUE and expect success with CANONICAL. */
static void
parse_ok (const char *key, const char *value, const char *canonical)
{
  char *c = NULL;
  int r = param_parse ("memory", params, seen, key, value, &c);

  ck_assert_msg (r == 0, "%s=%s: %d: %s", key, value, r, stub_last_error ());
  ck_assert_ptr_nonnull (c);
  if (canonical)
    ck_assert_str_eq (c, canonical);
  free (c);
}

/* Parse KEY=VALUE and expect -1 with an error that contains NEEDLE. */
static void
parse_bad (const char *key, const char *value, const char *needle)
{
  char *c = NULL;
  unsigned before = stub_error_count ();
  int r = param_parse ("memory", params, seen, key, value, &c);

  ck_assert_msg (r == -1, "%s=%s should fail, got %d", key, value, r);
  ck_assert_ptr_null (c);
  ck_assert_uint_eq (stub_error_count (), before + 1);
  ck_assert_error_has (needle);
}

START_TEST (test_count)
{
  static const struct nbdkit_param none[] = { { 0 } };

  ck_assert_uint_eq (param_count (params), P_END);
  ck_assert_uint_eq (param_count (none), 0);
  ck_assert_uint_eq (param_count (NULL), 0);
}
END_TEST

START_TEST (test_size)
{
  static const struct {
    const char *value;
    int64_t v;
    const char *canonical;
  } goods[] = {
    { "1G", INT64_C (1) << 30, "1073741824" },
    { "512k", 512 * 1024, "524288" },
    { "0", 0, "0" },
    { "7E", INT64_C (7) << 60, "8070450532247928832" },
  };
  static const char *const bads[] = { "abc", "", "-1", "1x", "8E", "0x10" };
  size_t i;

  for (i = 0; i < N_ELEMS (goods); i++) {
    setup ();
    parse_ok ("size", goods[i].value, goods[i].canonical);
    ck_assert_int_eq (size_v, goods[i].v);
    ck_assert_uint_eq (seen[P_SIZE], 1);
  }
  for (i = 0; i < N_ELEMS (bads); i++) {
    setup ();
    parse_bad ("size", bads[i], "expected a size such as 1G or 512K");
    ck_assert_int_eq (size_v, -1);
    ck_assert_uint_eq (seen[P_SIZE], 0);
  }

  setup ();
  parse_bad ("size", "abc", "memory: size=abc: ");
  ck_assert_str_eq (stub_last_error (),
                    "memory: size=abc: expected a size such as 1G or 512K "
                    "(the value cannot be parsed as a number)");
  parse_bad ("size", "8E", "larger than 2^63-1 bytes");
}
END_TEST

START_TEST (test_int)
{
  setup ();
  parse_ok ("count", "0x10", "16");
  ck_assert_int_eq (count_v, 16);
  setup ();
  parse_ok ("count", "-5", "-5");
  ck_assert_int_eq (count_v, -5);
  setup ();
  parse_ok ("count", "-9223372036854775808", "-9223372036854775808");
  ck_assert_int_eq (count_v, INT64_MIN);

  setup ();
  parse_bad ("count", "abc", "memory: count=abc: expected an integer");
  parse_bad ("count", "1.5", "count=1.5");
  parse_bad ("count", "9223372036854775808", "out of the 64-bit");
  ck_assert_int_eq (count_v, -1);
}
END_TEST

START_TEST (test_bool)
{
  static const struct {
    const char *value;
    bool v;
  } cases[] = {
    { "1", true },  { "yes", true }, { "TRUE", true },   { "on", true },
    { "0", false }, { "no", false }, { "False", false }, { "off", false },
  };
  size_t i;

  for (i = 0; i < N_ELEMS (cases); i++) {
    setup ();
    verbose_v = !cases[i].v;
    parse_ok ("verbose", cases[i].value, cases[i].v ? "1" : "0");
    ck_assert (verbose_v == cases[i].v);
  }
  setup ();
  parse_bad ("verbose", "maybe", "memory: verbose=maybe: expected a boolean");
}
END_TEST

START_TEST (test_enum)
{
  static const char *const goods[] = { "fast", "slow", "auto" };
  static const char *const bads[]
      = { "FAST", "fas", "fastt", "", "slow|auto", "|", " fast" };
  size_t i;

  for (i = 0; i < N_ELEMS (goods); i++) {
    setup ();
    parse_ok ("mode", goods[i], goods[i]);
    ck_assert_str_eq (mode_v, goods[i]);
  }
  for (i = 0; i < N_ELEMS (bads); i++) {
    setup ();
    parse_bad ("mode", bads[i], "expected one of fast|slow|auto");
    ck_assert_ptr_null (mode_v);
  }
  setup ();
  parse_bad ("mode", "turbo", "memory: mode=turbo: ");
}
END_TEST

START_TEST (test_string)
{
  char buf[] = "hello";

  setup ();
  parse_ok ("name", buf, "hello");
  /* The stored string is a copy: it outlives the caller's buffer. */
  buf[0] = 'j';
  ck_assert_str_eq (name_v, "hello");
  setup ();
  parse_ok ("name", "", "");
  ck_assert_str_eq (name_v, "");
}
END_TEST

static char tmpdir[64];
static char tmpfile_path[PATH_MAX];

/* A fresh directory holding disk.img, which contains a password. */
static void
setup_dir (void)
{
  FILE *fp;

  strcpy (tmpdir, "/tmp/test-params-XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (tmpdir));
  snprintf (tmpfile_path, sizeof tmpfile_path, "%s/disk.img", tmpdir);
  fp = fopen (tmpfile_path, "w");
  ck_assert_ptr_nonnull (fp);
  fputs ("pw-from-file\n", fp);
  fclose (fp);
}

static void
teardown_dir (void)
{
  unlink (tmpfile_path);
  rmdir (tmpdir);
}

START_TEST (test_file)
{
  char cwd[PATH_MAX], *abs_tmpfile;

  setup_dir ();
  abs_tmpfile = realpath (tmpfile_path, NULL);
  ck_assert_ptr_nonnull (abs_tmpfile);

  setup ();
  parse_ok ("file", tmpfile_path, abs_tmpfile);
  ck_assert_str_eq (file_v, abs_tmpfile);

  /* A relative name comes back absolute. */
  ck_assert_ptr_nonnull (getcwd (cwd, sizeof cwd));
  ck_assert_int_eq (chdir (tmpdir), 0);
  setup ();
  parse_ok ("file", "disk.img", abs_tmpfile);
  ck_assert_str_eq (file_v, abs_tmpfile);
  setup ();
  parse_ok ("file", "./disk.img", abs_tmpfile);
  ck_assert_int_eq (chdir (cwd), 0);

  setup ();
  parse_bad ("file", "/nope", "/nope");
  ck_assert_str_eq (stub_last_error (),
                    "memory: file=/nope: No such file or directory");
  ck_assert_ptr_null (file_v);
  parse_bad ("file", "", "memory: file=: No such file or directory");
  parse_bad ("file", tmpdir, "Is a directory, expected a file");
  ck_assert_uint_eq (seen[P_FILE], 0);

  free (abs_tmpfile);
  teardown_dir ();
}
END_TEST

START_TEST (test_directory)
{
  char *abs_dir;

  setup_dir ();
  abs_dir = realpath (tmpdir, NULL);
  ck_assert_ptr_nonnull (abs_dir);

  setup ();
  parse_ok ("dir", tmpdir, abs_dir);
  ck_assert_str_eq (dir_v, abs_dir);
  setup ();
  parse_ok ("dir", "/", "/");

  setup ();
  parse_bad ("dir", tmpfile_path, "Not a directory, expected a directory");
  ck_assert_error_has ("memory: dir=");
  parse_bad ("dir", "/nope", "memory: dir=/nope: No such file or directory");
  ck_assert_ptr_null (dir_v);

  free (abs_dir);
  teardown_dir ();
}
END_TEST

START_TEST (test_password)
{
  char arg[PATH_MAX + 1];

  setup ();
  parse_ok ("password", "hunter2", "hunter2");
  ck_assert_str_eq (pw_v, "hunter2");

  setup_dir ();
  snprintf (arg, sizeof arg, "+%s", tmpfile_path);
  setup ();
  parse_ok ("password", arg, "pw-from-file");
  ck_assert_str_eq (pw_v, "pw-from-file");
  teardown_dir ();

  setup ();
  parse_bad ("password", "+/nope",
             "memory: password: password file /nope: "
             "No such file or directory");
  parse_bad ("password", "-1", "memory: password: ");
  ck_assert_ptr_null (pw_v);
}
END_TEST

START_TEST (test_unknown_key)
{
  char *c = NULL;
  size_t i;

  setup ();
  ck_assert_int_eq (param_parse ("memory", params, seen, "sise", "1G", &c), -2);
  ck_assert_ptr_null (c);
  ck_assert_int_eq (param_parse ("memory", params, seen, "", "x", &c), -2);
  ck_assert_int_eq (param_parse ("memory", params, seen, "SIZE", "1G", &c), -2);
  /* Nothing logged, nothing counted. */
  ck_assert_uint_eq (stub_error_count (), 0);
  for (i = 0; i < P_END; i++)
    ck_assert_uint_eq (seen[i], 0);
}
END_TEST

START_TEST (test_twice)
{
  setup ();
  /* As in nbdkit, a key given again replaces the earlier value. */
  parse_ok ("size", "1G", NULL);
  parse_ok ("size", "2G", NULL);
  ck_assert_int_eq (size_v, INT64_C (2) << 30);
  ck_assert_uint_eq (seen[P_SIZE], 2);

  parse_ok ("name", "a", NULL);
  parse_ok ("name", "b", NULL);
  ck_assert_str_eq (name_v, "b");

  /* A list and a MULTIPLE string may repeat; the string keeps the last. */
  parse_ok ("tag", "x", "x");
  parse_ok ("tag", "y", "y");
  parse_ok ("tag", "x", "x");
  ck_assert_uint_eq (seen[P_TAG], 3);
  parse_ok ("opt", "first", "first");
  parse_ok ("opt", "second", "second");
  ck_assert_uint_eq (seen[P_OPT], 2);
  ck_assert_str_eq (opt_v, "second");
}
END_TEST

START_TEST (test_bad_value_not_counted)
{
  /* A refused value does not count as given: the fixed value may follow. */
  setup ();
  parse_bad ("size", "abc", "size=abc");
  parse_ok ("size", "1M", "1048576");
  ck_assert_uint_eq (seen[P_SIZE], 1);
}
END_TEST

START_TEST (test_null_canonical)
{
  setup ();
  ck_assert_int_eq (param_parse ("memory", params, seen, "size", "4k", NULL),
                    0);
  ck_assert_int_eq (size_v, 4096);
}
END_TEST

/* What param_finish applied, in order. */
struct applied {
  char keys[16][32];
  char values[16][64];
  size_t n;
  const char *fail_on; /* key whose apply fails */
};

static int
record_apply (void *opaque, const char *key, const char *canonical)
{
  struct applied *a = opaque;

  if (a->fail_on && strcmp (key, a->fail_on) == 0)
    return -1;
  ck_assert_uint_lt (a->n, 16);
  snprintf (a->keys[a->n], sizeof a->keys[0], "%s", key);
  snprintf (a->values[a->n], sizeof a->values[0], "%s", canonical);
  a->n++;
  return 0;
}

START_TEST (test_finish_defaults)
{
  struct applied a = { .n = 0 };

  setup ();
  parse_ok ("size", "1G", NULL);
  parse_ok ("count", "3", NULL);
  ck_assert_int_eq (param_finish ("memory", params, seen, record_apply, &a), 0);
  ck_assert_uint_eq (stub_error_count (), 0);

  /* Only mode and verbose: count was given, the rest have no default. */
  ck_assert_uint_eq (a.n, 2);
  ck_assert_str_eq (a.keys[0], "mode");
  ck_assert_str_eq (a.values[0], "auto");
  ck_assert_str_eq (a.keys[1], "verbose");
  ck_assert_str_eq (a.values[1], "0");

  /* Defaults reach dest too; given values are left alone. */
  ck_assert_str_eq (mode_v, "auto");
  ck_assert (verbose_v == false);
  ck_assert_int_eq (count_v, 3);
  ck_assert_int_eq (size_v, INT64_C (1) << 30);
  ck_assert_ptr_null (name_v);
}
END_TEST

START_TEST (test_finish_all_defaults)
{
  struct applied a = { .n = 0 };

  setup ();
  parse_ok ("size", "1G", NULL);
  ck_assert_int_eq (param_finish ("memory", params, seen, record_apply, &a), 0);
  ck_assert_uint_eq (a.n, 3);
  ck_assert_str_eq (a.keys[2], "count");
  ck_assert_str_eq (a.values[2], "10");
  ck_assert_int_eq (count_v, 10);

  /* Without an apply callback, defaults still reach dest. */
  setup ();
  parse_ok ("size", "1G", NULL);
  ck_assert_int_eq (param_finish ("memory", params, seen, NULL, NULL), 0);
  ck_assert_int_eq (count_v, 10);
  ck_assert_str_eq (mode_v, "auto");
}
END_TEST

START_TEST (test_finish_required)
{
  struct applied a = { .n = 0 };

  setup ();
  ck_assert_int_eq (param_finish ("memory", params, seen, record_apply, &a),
                    -1);
  ck_assert_uint_eq (stub_error_count (), 1);
  ck_assert_str_eq (stub_last_error (),
                    "memory: missing required parameter 'size' "
                    "(see 'nbdkit memory --help')");
}
END_TEST

START_TEST (test_finish_every_missing)
{
  static const struct nbdkit_param two[] = {
    { "a", NBDKIT_PARAM_STRING, NBDKIT_PARAM_REQUIRED, NULL, NULL, NULL, NULL },
    { "b", NBDKIT_PARAM_INT, NBDKIT_PARAM_REQUIRED, NULL, NULL, NULL, NULL },
    /* Required with a default: never missing. */
    { "c", NBDKIT_PARAM_INT, NBDKIT_PARAM_REQUIRED, "5", NULL, NULL, NULL },
    { 0 },
  };
  unsigned s[3] = { 0, 0, 0 };
  struct applied a = { .n = 0 };

  stub_reset ();
  ck_assert_int_eq (param_finish ("null", two, s, record_apply, &a), -1);
  ck_assert_uint_eq (stub_error_count (), 2);
  ck_assert_error_has ("missing required parameter 'b'");
  ck_assert_uint_eq (a.n, 1);
  ck_assert_str_eq (a.keys[0], "c");
  ck_assert_str_eq (a.values[0], "5");
}
END_TEST

START_TEST (test_finish_apply_fails)
{
  struct applied a = { .n = 0, .fail_on = "verbose" };

  setup ();
  parse_ok ("size", "1G", NULL);
  ck_assert_int_eq (param_finish ("memory", params, seen, record_apply, &a),
                    -1);
  ck_assert_uint_eq (a.n, 1); /* mode applied, then verbose failed */
}
END_TEST

START_TEST (test_finish_bad_default)
{
  static int64_t v;
  static const struct nbdkit_param bad[] = {
    { "size", NBDKIT_PARAM_SIZE, 0, "lots", NULL, NULL, &v },
    { 0 },
  };
  unsigned s[1] = { 0 };

  stub_reset ();
  ck_assert_int_eq (param_finish ("memory", bad, s, NULL, NULL), -1);
  ck_assert_error_has ("memory: size=lots: expected a size");
}
END_TEST

/* Run FN's output into a string. */
static char *
capture (void (*fn) (FILE *, const char *, const struct nbdkit_param *),
         const char *prefix, const struct nbdkit_param *p)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream (&buf, &len);

  ck_assert_ptr_nonnull (fp);
  if (fn)
    fn (fp, prefix, p);
  else
    param_help (fp, p);
  fclose (fp);
  return buf;
}

START_TEST (test_help)
{
  char *out = capture (NULL, NULL, params);

  ck_assert_msg (strstr (out, "  size=<SIZE>           (required) "
                              "Size of the disk.\n")
                     != NULL,
                 "%s", out);
  ck_assert_msg (strstr (out, "  mode=<fast|slow|auto> How to go. "
                              "(default: auto)\n")
                     != NULL,
                 "%s", out);
  ck_assert_msg (strstr (out, "  verbose=<BOOL>        Say more. "
                              "(default: false)\n")
                     != NULL,
                 "%s", out);
  ck_assert_msg (strstr (out, "  count=<INT>") != NULL, "%s", out);
  ck_assert_msg (strstr (out, "  name=<STRING>         A name.\n") != NULL,
                 "%s", out);
  ck_assert_msg (strstr (out, "  file=<FILE> ") != NULL, "%s", out);
  ck_assert_msg (strstr (out, "  dir=<DIR> ") != NULL, "%s", out);
  ck_assert_msg (strstr (out, "  password=<PASSWORD> ") != NULL, "%s", out);
  ck_assert_msg (strstr (out, "  tag=<STRING>          (repeatable) A tag.\n")
                     != NULL,
                 "%s", out);
  ck_assert_msg (strstr (out, "  opt=<STRING>          (repeatable) ") != NULL,
                 "%s", out);
  free (out);
}
END_TEST

START_TEST (test_help_long_key)
{
  static const struct nbdkit_param p[] = {
    { "a-very-long-parameter-name", NBDKIT_PARAM_BOOL, 0, NULL, "Doc.", NULL,
      NULL },
    { "nodoc", NBDKIT_PARAM_STRING, 0, NULL, NULL, NULL, NULL },
    { 0 },
  };
  char *out = capture (NULL, NULL, p);

  ck_assert_str_eq (out, "  a-very-long-parameter-name=<BOOL> Doc.\n"
                         "  nodoc=<STRING>\n");
  free (out);
}
END_TEST

START_TEST (test_dump)
{
  char *out = capture (param_dump, "memory", params);

  ck_assert_str_eq (out, "memory_param_size=size,required\n"
                         "memory_param_mode=enum,choices=fast|slow|auto,"
                         "default=auto\n"
                         "memory_param_verbose=bool,default=false\n"
                         "memory_param_count=int,default=10\n"
                         "memory_param_name=string\n"
                         "memory_param_file=file\n"
                         "memory_param_dir=directory\n"
                         "memory_param_password=password\n"
                         "memory_param_tag=list,multiple\n"
                         "memory_param_opt=string,multiple\n");
  free (out);

  out = capture (param_dump, "", params);
  ck_assert_msg (strncmp (out, "param_size=size,required\n", 25) == 0, "%s",
                 out);
  free (out);
}
END_TEST

static Suite *
params_suite (void)
{
  Suite *s = suite_create ("params");
  TCase *tc;

  tc = tcase_create ("parse");
  tcase_add_test (tc, test_count);
  tcase_add_test (tc, test_size);
  tcase_add_test (tc, test_int);
  tcase_add_test (tc, test_bool);
  tcase_add_test (tc, test_enum);
  tcase_add_test (tc, test_string);
  tcase_add_test (tc, test_file);
  tcase_add_test (tc, test_directory);
  tcase_add_test (tc, test_password);
  tcase_add_test (tc, test_unknown_key);
  tcase_add_test (tc, test_twice);
  tcase_add_test (tc, test_bad_value_not_counted);
  tcase_add_test (tc, test_null_canonical);
  suite_add_tcase (s, tc);

  tc = tcase_create ("finish");
  tcase_add_test (tc, test_finish_defaults);
  tcase_add_test (tc, test_finish_all_defaults);
  tcase_add_test (tc, test_finish_required);
  tcase_add_test (tc, test_finish_every_missing);
  tcase_add_test (tc, test_finish_apply_fails);
  tcase_add_test (tc, test_finish_bad_default);
  suite_add_tcase (s, tc);

  tc = tcase_create ("help");
  tcase_add_test (tc, test_help);
  tcase_add_test (tc, test_help_long_key);
  tcase_add_test (tc, test_dump);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (params_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
