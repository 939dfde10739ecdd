/* test_format.c: table-driven tests of the data language (format.c)
 * and the sparse store under it (store.c).
 *
 * Each good case gives the data text, the bytes expected at the start
 * of the disk and its size; each bad case the source and the offset
 * the error must point at, and a word of the message.  Files used by
 * <FILE and data:<FILE live in a fresh temporary directory.
 */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "store.h"

static const char *vars[][2] = {
  { "n", "3" },
  { "pat", "0x55 0xAA" },
  { "b64", "aGVsbG8=" },
  { "bin", "hi!" },
  { "expr", "n*2+1" },
  { "self", "1 $self" },
  { "bad", "1 2 @-5" },
  { "badnum", "n+" },
  { "inner", "(1) -> \\x \\x \\x" },
};

static const char *
lookup (void *opaque, const char *name)
{
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    if (strcmp (vars[i][0], name) == 0)
      return vars[i][1];
  return NULL;
}

static const struct data_env env = { .lookup = lookup };

struct good {
  const char *text;
  const char *bytes; /* expected at offset 0 */
  size_t nbytes;
  uint64_t size;
};

#define B(s) s, sizeof s - 1

static const struct good goods[] = {
  /* nbdkit's language */
  { "", B (""), 0 },
  { "0 1 2 3", B ("\0\1\2\3"), 4 },
  { "0x10 010 10", B ("\x10\010\012"), 3 },
  { "1 @4 2", B ("\1\0\0\0\2"), 5 },
  { "1 @10", B ("\1"), 10 },
  { "1 @+3 2", B ("\1\0\0\0\2"), 5 },
  { "1 2 3 @-2 9", B ("\1\11\3"), 3 },
  { "1 @^8", B ("\1\0\0\0\0\0\0\0"), 8 },
  { "@^8", B (""), 0 },
  { "0xff*4", B ("\xff\xff\xff\xff"), 4 },
  { "(1 2)*3", B ("\1\2\1\2\1\2"), 6 },
  { "(@2 1)*2", B ("\0\0\1\0\0\1"), 6 },
  { "(1 2 3 4)[1:3]", B ("\2\3"), 2 },
  { "(1 2 3 4)[:2]", B ("\1\2"), 2 },
  { "(1 2 3 4)[2:]", B ("\3\4"), 2 },
  { "1*0", B (""), 0 },
  { "le16:0x1234 be16:0x1234", B ("\x34\x12\x12\x34"), 4 },
  { "le32:1 be32:1", B ("\1\0\0\0\0\0\0\1"), 8 },
  { "be64:0x0102030405060708", B ("\1\2\3\4\5\6\7\10"), 8 },
  { "\"Hi\\n\\x41\\101\\\"\"", B ("Hi\nAA\""), 6 },
  { "( \"ab\" )*2 # comment\n 1", B ("abab\1"), 5 },
  { "(0x55 0xAA) -> \\sig @2 \\sig \\sig", B ("\0\0\x55\xAA\x55\xAA"), 6 },
  { "(1 (2) -> \\a \\a)", B ("\1\2"), 2 },
  { "$pat*2", B ("\x55\xAA\x55\xAA"), 4 },
  { "@0x1fe 0x55 0xaa", B (""), 512 },
  /* beyond nbdkit: numbers from expressions and variables */
  { "(0x55 0xAA)*n", B ("\x55\xAA\x55\xAA\x55\xAA"), 6 },
  { "0*$n 1", B ("\0\0\0\1"), 4 },
  { "1*(n+1)", B ("\1\1\1\1"), 4 },
  { "1*(2*3-4)", B ("\1\1"), 2 },
  { "1*expr", B ("\1\1\1\1\1\1\1"), 7 },
  { "@(n*2) 7", B ("\0\0\0\0\0\0\7"), 7 },
  { "le16:(n*256)", B ("\0\3"), 2 },
  { "(1 2 3 4 5)[n:(n+2)]", B ("\4\5"), 2 },
  { "(1 2 3 4 5)[(10/5):(7%4)]", B ("\3"), 1 },
  /* variables holding binary or base64 data */
  { "raw:$bin", B ("hi!"), 3 },
  { "base64:$b64", B ("hello"), 5 },
  { "base64:$b64 [1:3]", B ("el"), 2 },
  { "$inner", B ("\1\1"), 2 },
  /* files: raw by default, in the data format with data: */
  { "<raw.bin", B ("ABC"), 3 },
  { "<raw.bin*2", B ("ABCABC"), 6 },
  { "1 <raw.bin @^8", B ("\1ABC\0\0\0\0"), 8 },
  { "data:<inc.data", B ("\1\2\4\4"), 4 },
  { "data:<inc.data*2", B ("\1\2\4\4\1\2\4\4"), 8 },
  { "base64:<b64.txt", B ("hello"), 5 },
  { "</dev/zero[:4] 1", B ("\0\0\0\0\1"), 5 },
  { "<(printf abc)", B ("abc"), 3 },
  { "<(while :; do printf x; done)[:3]", B ("xxx"), 3 },
};

struct bad {
  const char *text;
  const char *source;
  size_t offset;
  const char *word; /* in the message */
};

static const struct bad bads[] = {
  { "1 2 xyz", "data", 4, "unexpected 'x'" },
  { "256", "data", 0, "out of range" },
  { "1 0x1g", "data", 5, "after a number" },
  { "089", "data", 1, "base 8" },
  { "(1 2", "data", 0, "unmatched '('" },
  { "1 2)", "data", 3, "unmatched ')'" },
  { "1 @-5", "data", 2, "before the start" },
  { "@^0", "data", 0, "alignment" },
  { "\"abc", "data", 0, "unterminated string" },
  { "\"a\\qb\"", "data", 2, "unknown escape" },
  { "(1 2)[1:5]", "data", 5, "not inside" },
  { "(1 2)[2:1]", "data", 5, "not inside" },
  { "(1 2)[1", "data", 7, "expected ':'" },
  { "1*", "data", 2, "expected a number" },
  { "*3", "data", 0, "must follow" },
  { "le16:0x10000", "data", 5, "16 bits" },
  { "99999999999999999999", "data", 0, "too large" },
  { "\\nope", "data", 0, "not defined" },
  { "(1) -> \\a (\\a) \\b", "data", 15, "not defined" },
  { "1 -> 2", "data", 5, "expected \\NAME" },
  { "$missing", "data", 0, "unknown variable 'missing'" },
  { "1*nosuch", "data", 2, "unknown variable 'nosuch'" },
  { "1*(n/0)", "data", 4, "division by zero" },
  { "1*(1-2)", "data", 4, "negative" },
  { "$self", "$self", 2, "nested too deeply" },
  { "1 $bad", "$bad", 4, "before the start" },
  { "1*badnum", "$badnum", 2, "expected a number" },
  { "base64:$bin", "$bin", 2, "invalid base64" },
  { "(1 (2) -> \\a \\a) \\a", "data", 17, "not defined" },
  { "$inner \\x", "data", 7, "not defined" },
  { "<no-such-file", "data", 0, "no-such-file" },
  { "data:<bad.data", "file bad.data", 6, "unexpected 'z'" },
  { "raw:1", "data", 4, "expected $VARIABLE or <FILE" },
  { "<(exit 1)", "data", 0, "exited with an error" },
  { "<(echo", "data", 0, "unclosed" },
  { "0xff*0x7fffffffffffffff", "data", 4, "more than 4G" },
  { "(@0x7fffffffffffffff)*2", "data", 21, "too large" },
};

START_TEST (test_good)
{
  const struct good *g = &goods[_i];
  struct data_error err;
  struct store st = { 0 };
  uint64_t size = 0;
  char buf[64];

  ck_assert_msg (data_eval (g->text, &env, &st, &size, &err) == 0,
                 "'%s' failed: %s", g->text, err.msg);
  ck_assert_msg (size == g->size, "'%s': size %llu, expected %llu", g->text,
                 (unsigned long long)size, (unsigned long long)g->size);
  ck_assert (g->nbytes <= sizeof buf);
  store_read (&st, 0, g->nbytes, buf);
  ck_assert_msg (memcmp (buf, g->bytes, g->nbytes) == 0, "'%s': wrong bytes",
                 g->text);
  store_free (&st);
}
END_TEST

START_TEST (test_bad)
{
  const struct bad *b = &bads[_i];
  struct data_error err;
  struct store st = { 0 };
  uint64_t size;

  ck_assert_msg (data_eval (b->text, &env, &st, &size, &err) == -1,
                 "'%s' was accepted", b->text);
  ck_assert_msg (strcmp (err.source, b->source) == 0,
                 "'%s': error in '%s', expected '%s' (%s)", b->text, err.source,
                 b->source, err.msg);
  ck_assert_msg (err.offset == b->offset,
                 "'%s': error at offset %zu, expected %zu (%s)", b->text,
                 err.offset, b->offset, err.msg);
  ck_assert_msg (strstr (err.msg, b->word) != NULL,
                 "'%s': message lacks '%s': %s", b->text, b->word, err.msg);
  ck_assert_msg (strstr (err.msg, "\n  ") && strchr (err.msg, '^'),
                 "'%s': no caret: %s", b->text, err.msg);
}
END_TEST

/* The caret sits under the offending character. */
START_TEST (test_caret)
{
  struct data_error err;
  struct store st = { 0 };
  uint64_t size;

  ck_assert (data_eval ("1 2 oops", &env, &st, &size, &err) == -1);
  ck_assert_str_eq (err.msg, "data: unexpected 'o' at offset 4:\n"
                             "  1 2 oops\n"
                             "      ^");
}
END_TEST

/* Large sparse disks stay sparse. */
START_TEST (test_sparse)
{
  struct data_error err;
  struct store st = { 0 };
  uint64_t size;
  uint8_t b[2];

  ck_assert (data_eval ("(@0x100000 1)*1000 @0x1000000000000000", &env, &st,
                        &size, &err)
             == 0);
  ck_assert_uint_eq (size, UINT64_C (1) << 60);
  ck_assert_uint_eq (store_allocated (&st), 1000);
  store_read (&st, 0x100000 * 2, 2, b);
  ck_assert (b[0] == 0 && b[1] == 1);
  store_free (&st);
}
END_TEST

struct op {
  char kind;
  uint64_t off, len;
};

/* The store against a flat reference. */
START_TEST (test_store)
{
  static const struct op ops[] = {
    { 'w', 10, 5 },  { 'w', 15, 5 },  { 'w', 0, 3 },   { 'w', 2, 10 },
    { 'z', 4, 2 },   { 'w', 30, 10 }, { 'z', 0, 100 }, { 'w', 50, 1 },
    { 'w', 40, 20 }, { 'z', 45, 5 },  { 'w', 44, 2 },  { 'z', 59, 1 },
  };
  uint8_t ref[128] = { 0 }, got[128], data[128];
  struct store st = { 0 };

  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    for (size_t k = 0; k < ops[i].len; k++)
      data[k] = i * 16 + k + 1;
    if (ops[i].kind == 'w') {
      ck_assert (store_write (&st, ops[i].off, data, ops[i].len) == 0);
      memcpy (ref + ops[i].off, data, ops[i].len);
    } else {
      ck_assert (store_zero (&st, ops[i].off, ops[i].len) == 0);
      memset (ref + ops[i].off, 0, ops[i].len);
    }
    store_read (&st, 0, sizeof got, got);
    ck_assert_msg (memcmp (ref, got, sizeof ref) == 0, "after op %zu", i);
    for (size_t k = 1; k < st.n; k++)
      ck_assert (st.runs[k - 1].off + st.runs[k - 1].len < st.runs[k].off);
  }
  store_free (&st);
}
END_TEST

static void
write_file (const char *name, const char *text)
{
  FILE *fp = fopen (name, "w");
  if (fp == NULL) {
    perror (name);
    exit (1);
  }
  fputs (text, fp);
  fclose (fp);
}

int
main (void)
{
  char dir[] = "/tmp/test_data_format.XXXXXX";
  Suite *s = suite_create ("data format");
  TCase *tc = tcase_create ("language");
  SRunner *sr;
  int failed;

  if (mkdtemp (dir) == NULL || chdir (dir) == -1) {
    perror (dir);
    return 1;
  }
  write_file ("raw.bin", "ABC");
  write_file ("inc.data", "# data format\n1 2 (4)*2\n");
  write_file ("bad.data", "1 2\n  zz\n");
  write_file ("b64.txt", "aGVs\nbG8=\n");

  tcase_add_loop_test (tc, test_good, 0, sizeof goods / sizeof goods[0]);
  tcase_add_loop_test (tc, test_bad, 0, sizeof bads / sizeof bads[0]);
  tcase_add_test (tc, test_caret);
  tcase_add_test (tc, test_sparse);
  tcase_add_test (tc, test_store);
  suite_add_tcase (s, tc);
  sr = srunner_create (s);
  srunner_set_fork_status (sr, CK_NOFORK);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);

  remove ("raw.bin");
  remove ("inc.data");
  remove ("bad.data");
  remove ("b64.txt");
  if (chdir ("/") == 0)
    rmdir (dir);
  return failed ? 1 : 0;
}
