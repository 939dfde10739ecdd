/* format.c: parse and evaluate the data plugin's language.
 *
 * A recursive-descent parser that evaluates as it goes: every
 * expression becomes a blob (a sparse store and a size), postfix
 * operators (*N, [N:M], -> \NAME) transform it, and it is pasted into
 * the enclosing sequence at the current offset.  Offsets inside a
 * group are relative to the group, and a group's size is the furthest
 * offset reached in it (so "@N" alone makes room).  Errors stop
 * everything and say where: the source (the data text, a variable, a
 * file), the offset in it, and the line with a caret under the place.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "format.h"

#define MAX_DEPTH 100
#define MAX_SIZE ((uint64_t)INT64_MAX)
/* Files and scripts without a slice are read up to this much. */
#define MAX_READ (UINT64_C (1) << 30)
/* Memory a repeat may fill. */
#define MAX_ALLOC (UINT64_C (1) << 32)

struct blob {
  struct store st;
  uint64_t size;
};

struct binding {
  char *name;
  struct blob val;
  struct binding *next;
};

struct ctx {
  const struct data_env *env;
  struct data_error *err;
  struct binding *names; /* innermost scope first */
  int depth;
  bool failed;
};

struct parser {
  struct ctx *cx;
  const char *text, *name;
  size_t len, pos;
};

static int parse_seq (struct parser *p, struct blob *out, bool closing);
static void pop_names (struct ctx *cx, struct binding *scope);
static int parse_num (struct parser *p, uint64_t *v);

static void
blob_free (struct blob *b)
{
  store_free (&b->st);
  b->size = 0;
}

/* Names bound since SCOPE end with their group or variable. */
static void
pop_names (struct ctx *cx, struct binding *scope)
{
  while (cx->names != scope) {
    struct binding *n = cx->names;
    cx->names = n->next;
    free (n->name);
    blob_free (&n->val);
    free (n);
  }
}

static void
fail (struct parser *p, size_t pos, const char *fmt, ...)
{
  struct data_error *e = p->cx->err;
  char m[512], line[128];
  size_t ls = pos, le = pos, n;
  va_list ap;

  if (p->cx->failed)
    return;
  p->cx->failed = true;
  va_start (ap, fmt);
  vsnprintf (m, sizeof m, fmt, ap);
  va_end (ap);
  if (pos > p->len)
    pos = p->len;
  while (ls > 0 && p->text[ls - 1] != '\n' && pos - ls < 50)
    ls--;
  while (le < p->len && p->text[le] != '\n' && le - ls < 76)
    le++;
  n = le - ls;
  memcpy (line, p->text + ls, n);
  line[n] = '\0';
  for (size_t i = 0; i < n; i++)
    if (line[i] == '\t' || line[i] == '\r')
      line[i] = ' ';
  snprintf (e->source, sizeof e->source, "%s", p->name);
  e->offset = pos;
  snprintf (e->msg, sizeof e->msg, "%s: %s at offset %zu:\n  %s\n  %*s^",
            p->name, m, pos, line, (int)(pos - ls), "");
}

static void
fail_oom (struct parser *p)
{
  fail (p, p->pos, "out of memory");
}

static int
peek (const struct parser *p)
{
  return p->pos < p->len ? (unsigned char)p->text[p->pos] : -1;
}

static bool
starts (const struct parser *p, const char *s)
{
  size_t n = strlen (s);
  return p->len - p->pos >= n && memcmp (p->text + p->pos, s, n) == 0;
}

static bool
is_digit (int c)
{
  return c >= '0' && c <= '9';
}

static bool
is_alpha (int c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* Whitespace and # comments. */
static void
skip_ws (struct parser *p)
{
  for (;;) {
    int c = peek (p);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
      p->pos++;
    else if (c == '#')
      while (p->pos < p->len && p->text[p->pos] != '\n')
        p->pos++;
    else
      return;
  }
}

/* A name after $ or \ (NAME_CHARS adds '-' for \names). */
static char *
parse_name (struct parser *p, bool dash)
{
  size_t start = p->pos;

  if (!is_alpha (peek (p)) && !(dash && is_digit (peek (p)))) {
    fail (p, p->pos, "expected a name");
    return NULL;
  }
  while (is_alpha (peek (p)) || is_digit (peek (p))
         || (dash && peek (p) == '-'))
    p->pos++;
  char *s = strndup (p->text + start, p->pos - start);
  if (s == NULL)
    fail_oom (p);
  return s;
}

/* Evaluate a nested text (a variable's value, a data: file) as a new
 * source, in a nested scope.
 */
static int
eval_text (struct ctx *cx, const char *text, size_t len, const char *name,
           struct blob *out)
{
  struct parser q = { .cx = cx, .text = text, .name = name, .len = len };
  int r;

  r = parse_seq (&q, out, false);
  return r;
}

/* An integer literal: 0x hex, 0 octal, else decimal. */
static int
parse_literal (struct parser *p, uint64_t *v)
{
  size_t start = p->pos;
  unsigned base = 10;
  uint64_t r = 0;
  bool any = false;

  if (starts (p, "0x") || starts (p, "0X")) {
    base = 16;
    p->pos += 2;
  } else if (starts (p, "0") && p->pos + 1 < p->len
             && is_digit (p->text[p->pos + 1]))
    base = 8;
  for (;;) {
    int c = peek (p), d;
    if (is_digit (c))
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      break;
    if ((unsigned)d >= base) {
      fail (p, p->pos, "'%c' is not a base %u digit", c, base);
      return -1;
    }
    if (__builtin_mul_overflow (r, base, &r)
        || __builtin_add_overflow (r, (uint64_t)d, &r)) {
      fail (p, start, "number is too large");
      return -1;
    }
    any = true;
    p->pos++;
  }
  if (!any) {
    fail (p, start, "expected a number");
    return -1;
  }
  if (is_alpha (peek (p))) {
    fail (p, p->pos, "unexpected '%c' after a number", peek (p));
    return -1;
  }
  *v = r;
  return 0;
}

static const char *
lookup (struct parser *p, const char *name)
{
  const struct data_env *env = p->cx->env;
  return env && env->lookup ? env->lookup (env->opaque, name) : NULL;
}

/* A variable used as a number: its value is a number expression. */
static int
num_variable (struct parser *p, size_t at, const char *name, uint64_t *v)
{
  const char *val = lookup (p, name);
  char src[256];

  if (val == NULL) {
    fail (p, at, "unknown variable '%s' (give it as %s=VALUE)", name, name);
    return -1;
  }
  if (++p->cx->depth > MAX_DEPTH) {
    fail (p, at, "nested too deeply (does $%s refer to itself?)", name);
    return -1;
  }
  snprintf (src, sizeof src, "$%s", name);
  struct parser q
      = { .cx = p->cx, .text = val, .name = src, .len = strlen (val) };
  int r = parse_num (&q, v);
  if (r == 0) {
    skip_ws (&q);
    if (q.pos < q.len) {
      fail (&q, q.pos, "expected a number expression");
      r = -1;
    }
  }
  p->cx->depth--;
  return r;
}

/* factor: literal, NAME, $NAME or ( expr ). */
static int
parse_factor (struct parser *p, uint64_t *v)
{
  size_t at;
  int c, r;

  skip_ws (p);
  at = p->pos;
  c = peek (p);
  if (is_digit (c))
    return parse_literal (p, v);
  if (c == '(') {
    p->pos++;
    if (parse_num (p, v) == -1)
      return -1;
    skip_ws (p);
    if (peek (p) != ')') {
      fail (p, p->pos, "expected ')' to close the '(' at offset %zu", at);
      return -1;
    }
    p->pos++;
    return 0;
  }
  if (c == '$')
    p->pos++;
  if (is_alpha (peek (p))) {
    char *name = parse_name (p, false);
    if (name == NULL)
      return -1;
    r = num_variable (p, at, name, v);
    free (name);
    return r;
  }
  fail (p, at, "expected a number");
  return -1;
}

static int
parse_term (struct parser *p, uint64_t *v)
{
  uint64_t b;

  if (parse_factor (p, v) == -1)
    return -1;
  for (;;) {
    skip_ws (p);
    int op = peek (p);
    size_t at = p->pos;
    if (op != '*' && op != '/' && op != '%')
      return 0;
    p->pos++;
    if (parse_factor (p, &b) == -1)
      return -1;
    if (op == '*' && __builtin_mul_overflow (*v, b, v)) {
      fail (p, at, "number is too large");
      return -1;
    }
    if (op != '*' && b == 0) {
      fail (p, at, "division by zero");
      return -1;
    }
    if (op == '/')
      *v /= b;
    else if (op == '%')
      *v %= b;
  }
}

/* expr: term (+|- term)*, unsigned and checked. */
static int
parse_num (struct parser *p, uint64_t *v)
{
  uint64_t b;

  if (parse_term (p, v) == -1)
    return -1;
  for (;;) {
    skip_ws (p);
    int op = peek (p);
    size_t at = p->pos;
    if ((op != '+' && op != '-') || starts (p, "->"))
      return 0;
    p->pos++;
    if (parse_term (p, &b) == -1)
      return -1;
    if (op == '+' ? __builtin_add_overflow (*v, b, v)
                  : __builtin_sub_overflow (*v, b, v)) {
      fail (p, at,
            op == '+' ? "number is too large" : "the result is negative");
      return -1;
    }
  }
}

/* After a number in a postfix or offset: a number expression without
 * + and - at the top, so "E*2 @-1" stays two things.  (Parenthesize
 * to add: E*(n+1).)
 */
static int
parse_count (struct parser *p, uint64_t *v)
{
  return parse_factor (p, v);
}

/* A string with C escapes. */
static int
parse_string (struct parser *p, struct blob *b)
{
  size_t start = p->pos++;
  char *buf = malloc (p->len - p->pos + 1);
  size_t n = 0;

  if (buf == NULL) {
    fail_oom (p);
    return -1;
  }
  for (;;) {
    int c = peek (p);
    if (c == -1) {
      fail (p, start, "unterminated string");
      free (buf);
      return -1;
    }
    p->pos++;
    if (c == '"')
      break;
    if (c != '\\') {
      buf[n++] = c;
      continue;
    }
    size_t at = p->pos - 1;
    c = peek (p);
    p->pos++;
    switch (c) {
      case '\\':
      case '"':
      case '\'':
      case '?':
        buf[n++] = c;
        break;
      case 'a':
        buf[n++] = '\a';
        break;
      case 'b':
        buf[n++] = '\b';
        break;
      case 'f':
        buf[n++] = '\f';
        break;
      case 'n':
        buf[n++] = '\n';
        break;
      case 'r':
        buf[n++] = '\r';
        break;
      case 't':
        buf[n++] = '\t';
        break;
      case 'v':
        buf[n++] = '\v';
        break;
      case 'x': {
        unsigned v = 0, k = 0;
        for (; k < 2; k++) {
          int h = peek (p);
          if (is_digit (h))
            v = v * 16 + (h - '0');
          else if (h >= 'a' && h <= 'f')
            v = v * 16 + (h - 'a' + 10);
          else if (h >= 'A' && h <= 'F')
            v = v * 16 + (h - 'A' + 10);
          else
            break;
          p->pos++;
        }
        if (k == 0) {
          fail (p, at, "\\x needs hex digits");
          free (buf);
          return -1;
        }
        buf[n++] = v;
        break;
      }
      default:
        if (c >= '0' && c <= '7') {
          unsigned v = c - '0';
          for (int k = 0; k < 2 && peek (p) >= '0' && peek (p) <= '7'; k++)
            v = v * 8 + (p->text[p->pos++] - '0');
          if (v > 255) {
            fail (p, at, "octal escape \\%o is more than one byte", v);
            free (buf);
            return -1;
          }
          buf[n++] = v;
          break;
        }
        fail (p, at, "unknown escape '\\%c' in string", c == -1 ? ' ' : c);
        free (buf);
        return -1;
    }
  }
  int r = store_write (&b->st, 0, buf, n);
  free (buf);
  if (r == -1) {
    fail_oom (p);
    return -1;
  }
  b->size = n;
  return 0;
}

/* Read FD to the end or LIMIT bytes into *DATA. */
static int
read_all (int fd, uint64_t limit, char **data, size_t *len)
{
  size_t cap = 0, n = 0;
  char *d = NULL;

  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 65536;
      char *nd = realloc (d, cap);
      if (nd == NULL) {
        free (d);
        return -1;
      }
      d = nd;
    }
    size_t want = cap - n;
    if (want > limit - n)
      want = limit - n;
    if (want == 0)
      break;
    ssize_t r = read (fd, d + n, want);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      free (d);
      return -1;
    }
    if (r == 0)
      break;
    n += r;
  }
  *data = d;
  *len = n;
  return 0;
}

/* Run SCRIPT with /bin/sh and read its output, at most LIMIT bytes. */
static int
run_script (const char *script, uint64_t limit, char **data, size_t *len)
{
  int fd[2], status, r, saved;
  pid_t pid;

  if (pipe2 (fd, O_CLOEXEC) == -1)
    return -1;
  pid = fork ();
  if (pid == -1) {
    close (fd[0]);
    close (fd[1]);
    return -1;
  }
  if (pid == 0) {
    dup2 (fd[1], 1);
    signal (SIGPIPE, SIG_DFL);
    execl ("/bin/sh", "sh", "-c", script, (char *)NULL);
    _exit (127);
  }
  close (fd[1]);
  r = read_all (fd[0], limit, data, len);
  saved = errno;
  close (fd[0]); /* a script still writing gets SIGPIPE */
  while (waitpid (pid, &status, 0) == -1 && errno == EINTR)
    ;
  errno = saved;
  if (r == 0 && WIFEXITED (status) && WEXITSTATUS (status) != 0
      && *len < limit) {
    free (*data);
    errno = ECHILD;
    return -1;
  }
  return r;
}

/* After a file or script: the end of a slice that follows, so that
 * no more than that is read (</dev/urandom[:512]).
 */
static uint64_t
read_limit (struct parser *p)
{
  size_t save = p->pos;
  uint64_t limit = MAX_READ, v;
  bool saved_failed = p->cx->failed;

  skip_ws (p);
  if (peek (p) == '[') {
    p->pos++;
    skip_ws (p);
    if (peek (p) != ':' && parse_num (p, &v) == 0)
      skip_ws (p);
    if (peek (p) == ':') {
      p->pos++;
      skip_ws (p);
      if (peek (p) != ']' && parse_num (p, &v) == 0)
        limit = v;
    }
  }
  /* Errors are found again by the real parse. */
  p->cx->failed = saved_failed;
  p->pos = save;
  return limit;
}

int64_t
data_base64 (const char *text, size_t len, struct store *out, size_t *bad)
{
  uint8_t *buf = malloc (len / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  bool pad = false;

  if (buf == NULL) {
    *bad = 0;
    return -1;
  }
  for (size_t i = 0; i < len; i++) {
    int c = (unsigned char)text[i], v;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
      continue;
    if (c == '=') {
      pad = true;
      continue;
    }
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+' || c == '-')
      v = 62;
    else if (c == '/' || c == '_')
      v = 63;
    else
      v = -1;
    if (v < 0 || pad) {
      *bad = i;
      free (buf);
      return -1;
    }
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[n++] = acc >> bits;
    }
  }
  if (store_write (out, 0, buf, n) == -1) {
    *bad = 0;
    free (buf);
    return -1;
  }
  free (buf);
  return n;
}

enum how { AS_DEFAULT, AS_RAW, AS_BASE64, AS_DATA };

/* Turn the contents of a variable or a file into a blob. */
static int
interpret (struct parser *p, size_t at, enum how how, const char *text,
           size_t len, const char *src, struct blob *b)
{
  size_t bad;
  int64_t n;
  int r;

  switch (how) {
    case AS_RAW:
      if (store_write (&b->st, 0, text, len) == -1) {
        fail_oom (p);
        return -1;
      }
      b->size = len;
      return 0;
    case AS_BASE64:
      n = data_base64 (text, len, &b->st, &bad);
      if (n == -1) {
        struct parser q
            = { .cx = p->cx, .text = text, .len = len, .name = src };
        fail (&q, bad, "invalid base64");
        return -1;
      }
      b->size = n;
      return 0;
    default:
      if (memchr (text, '\0', len)) {
        fail (p, at, "%s is binary, not in the data format (use raw:)", src);
        return -1;
      }
      if (++p->cx->depth > MAX_DEPTH) {
        fail (p, at, "nested too deeply (does %s include itself?)", src);
        return -1;
      }
      struct binding *scope = p->cx->names;
      r = eval_text (p->cx, text, len, src, b);
      pop_names (p->cx, scope);
      p->cx->depth--;
      return r;
  }
}

/* $NAME, <FILE or <(SCRIPT), read as HOW. */
static int
parse_source (struct parser *p, enum how how, struct blob *b)
{
  size_t at = p->pos;
  char src[300];
  int r;

  if (peek (p) == '$') {
    p->pos++;
    char *name = parse_name (p, false);
    if (name == NULL)
      return -1;
    const char *val = lookup (p, name);
    if (val == NULL) {
      fail (p, at, "unknown variable '%s' (give it as %s=VALUE)", name, name);
      free (name);
      return -1;
    }
    snprintf (src, sizeof src, "$%s", name);
    free (name);
    return interpret (p, at, how == AS_DEFAULT ? AS_DATA : how, val,
                      strlen (val), src, b);
  }

  if (peek (p) != '<') {
    fail (p, at, "expected $VARIABLE or <FILE after the prefix");
    return -1;
  }
  p->pos++;
  char *data = NULL, *what;
  size_t len;

  if (peek (p) == '(') {
    /* <(SCRIPT): up to the matching parenthesis. */
    int depth = 1;
    size_t start = ++p->pos;
    while (p->pos < p->len && depth > 0) {
      if (p->text[p->pos] == '(')
        depth++;
      else if (p->text[p->pos] == ')')
        depth--;
      p->pos++;
    }
    if (depth > 0) {
      fail (p, at, "unclosed '<(' script");
      return -1;
    }
    what = strndup (p->text + start, p->pos - 1 - start);
    if (what == NULL) {
      fail_oom (p);
      return -1;
    }
    snprintf (src, sizeof src, "script <(%.200s)", what);
    r = run_script (what, read_limit (p), &data, &len);
    if (r == -1)
      fail (p, at,
            errno == ECHILD ? "script <(...) exited with an error"
                            : "script <(...) failed: %m");
  } else {
    size_t start = p->pos;
    while (p->pos < p->len && !strchr (" \t\r\n[]*()", p->text[p->pos]))
      p->pos++;
    if (p->pos == start) {
      fail (p, at, "expected a file name after '<'");
      return -1;
    }
    what = strndup (p->text + start, p->pos - start);
    if (what == NULL) {
      fail_oom (p);
      return -1;
    }
    snprintf (src, sizeof src, "file %.280s", what);
    int fd = open (what, O_RDONLY | O_CLOEXEC);
    r = fd == -1 ? -1 : read_all (fd, read_limit (p), &data, &len);
    if (r == -1)
      fail (p, at, "%s: %m", what);
    if (fd >= 0)
      close (fd);
  }
  free (what);
  if (r == -1)
    return -1;
  r = interpret (p, at, how == AS_DEFAULT ? AS_RAW : how, data ? data : "", len,
                 src, b);
  free (data);
  return r;
}

/* One expression, before postfix operators. */
static int
parse_primary (struct parser *p, struct blob *b)
{
  static const struct {
    const char *prefix;
    int bytes;
    bool be;
  } words[] = {
    { "le16:", 2, false }, { "be16:", 2, true },  { "le32:", 4, false },
    { "be32:", 4, true },  { "le64:", 8, false }, { "be64:", 8, true },
  };
  size_t at = p->pos;
  int c = peek (p);
  uint64_t v;

  if (c == '(') {
    struct binding *scope = p->cx->names;
    int r;
    p->pos++;
    if (++p->cx->depth > MAX_DEPTH) {
      fail (p, at, "groups nested too deeply");
      return -1;
    }
    r = parse_seq (p, b, true);
    p->cx->depth--;
    pop_names (p->cx, scope);
    if (r == 0 && peek (p) != ')') {
      fail (p, at, "unmatched '('");
      return -1;
    }
    p->pos++;
    return r;
  }
  if (c == '"')
    return parse_string (p, b);
  if (c == '$' || c == '<')
    return parse_source (p, AS_DEFAULT, b);
  if (c == '\\') {
    p->pos++;
    char *name = parse_name (p, true);
    if (name == NULL)
      return -1;
    for (struct binding *n = p->cx->names; n; n = n->next)
      if (strcmp (n->name, name) == 0) {
        free (name);
        if (store_paste (&b->st, 0, &n->val.st, 0, n->val.size) == -1) {
          fail_oom (p);
          return -1;
        }
        b->size = n->val.size;
        return 0;
      }
    fail (p, at, "\\%s is not defined here", name);
    free (name);
    return -1;
  }
  if (is_digit (c)) {
    if (parse_literal (p, &v) == -1)
      return -1;
    if (v > 255) {
      fail (p, at,
            "byte value %" PRIu64 " is out of range 0..255 "
            "(use le16: ... be64: for words)",
            v);
      return -1;
    }
    uint8_t byte = v;
    if (store_write (&b->st, 0, &byte, 1) == -1) {
      fail_oom (p);
      return -1;
    }
    b->size = 1;
    return 0;
  }
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (starts (p, words[i].prefix)) {
      uint8_t w[8];
      int n = words[i].bytes;
      p->pos += 5;
      size_t vat = p->pos;
      if (parse_count (p, &v) == -1)
        return -1;
      if (n < 8 && v >> (n * 8)) {
        fail (p, vat, "%" PRIu64 " does not fit in %d bits", v, n * 8);
        return -1;
      }
      for (int k = 0; k < n; k++)
        w[words[i].be ? n - 1 - k : k] = v >> (8 * k);
      if (store_write (&b->st, 0, w, n) == -1) {
        fail_oom (p);
        return -1;
      }
      b->size = n;
      return 0;
    }
  if (starts (p, "raw:")) {
    p->pos += 4;
    return parse_source (p, AS_RAW, b);
  }
  if (starts (p, "base64:")) {
    p->pos += 7;
    return parse_source (p, AS_BASE64, b);
  }
  if (starts (p, "data:")) {
    p->pos += 5;
    return parse_source (p, AS_DATA, b);
  }
  if (c == ')')
    fail (p, at, "unmatched ')'");
  else if (c == '*' || c == '[')
    fail (p, at, "'%c' must follow an expression", c);
  else
    fail (p, at, "unexpected '%c'", c);
  return -1;
}

static int
repeat (struct parser *p, size_t at, struct blob *b, uint64_t n)
{
  struct blob r = { .size = 0 };
  uint64_t total, alloc;

  if (__builtin_mul_overflow (b->size, n, &total) || total > MAX_SIZE) {
    fail (p, at, "repeat makes the expression too large");
    return -1;
  }
  if (__builtin_mul_overflow (store_allocated (&b->st), n, &alloc)
      || alloc > MAX_ALLOC) {
    fail (p, at, "repeat needs more than 4G of memory");
    return -1;
  }
  if (b->size > 0)
    for (uint64_t k = 0; k < n; k++)
      if (store_paste (&r.st, k * b->size, &b->st, 0, b->size) == -1) {
        blob_free (&r);
        fail_oom (p);
        return -1;
      }
  r.size = total;
  blob_free (b);
  *b = r;
  return 0;
}

static int
slice (struct parser *p, size_t at, struct blob *b)
{
  uint64_t from = 0, to = b->size;
  struct blob r = { .size = 0 };

  skip_ws (p);
  if (peek (p) != ':' && parse_num (p, &from) == -1)
    return -1;
  skip_ws (p);
  if (peek (p) != ':') {
    fail (p, p->pos, "expected ':' in the slice [N:M]");
    return -1;
  }
  p->pos++;
  skip_ws (p);
  if (peek (p) != ']' && parse_num (p, &to) == -1)
    return -1;
  skip_ws (p);
  if (peek (p) != ']') {
    fail (p, p->pos, "expected ']' to end the slice");
    return -1;
  }
  p->pos++;
  /* An empty slice is empty wherever it starts (as nbdkit). */
  if (from == to) {
    blob_free (b);
    *b = r;
    return 0;
  }
  if (from > to || to > b->size) {
    fail (p, at,
          "slice [%" PRIu64 ":%" PRIu64 "] is not inside the "
          "expression (of size %" PRIu64 ")",
          from, to, b->size);
    return -1;
  }
  if (store_paste (&r.st, 0, &b->st, from, to) == -1) {
    fail_oom (p);
    return -1;
  }
  r.size = to - from;
  blob_free (b);
  *b = r;
  return 0;
}

/* Postfix operators.  *BOUND: the expression went to a name. */
static int
parse_postfix (struct parser *p, struct blob *b, bool *bound)
{
  uint64_t n;

  *bound = false;
  for (;;) {
    skip_ws (p);
    size_t at = p->pos;
    if (peek (p) == '*') {
      p->pos++;
      skip_ws (p);
      if (parse_count (p, &n) == -1 || repeat (p, at, b, n) == -1)
        return -1;
    } else if (peek (p) == '[') {
      p->pos++;
      if (slice (p, at, b) == -1)
        return -1;
    } else if (starts (p, "->")) {
      p->pos += 2;
      skip_ws (p);
      if (peek (p) != '\\') {
        fail (p, p->pos, "expected \\NAME after '->'");
        return -1;
      }
      p->pos++;
      struct binding *nb = calloc (1, sizeof *nb);
      if (nb == NULL || (nb->name = parse_name (p, true)) == NULL) {
        free (nb);
        if (!p->cx->failed)
          fail_oom (p);
        return -1;
      }
      nb->val = *b;
      *b = (struct blob){ .size = 0 };
      nb->next = p->cx->names;
      p->cx->names = nb;
      *bound = true;
      return 0;
    } else
      return 0;
  }
}

/* @N, @+N, @-N, @^N: move *CUR. */
static int
parse_offset (struct parser *p, uint64_t *cur)
{
  size_t at = p->pos++;
  int op = peek (p);
  uint64_t v;

  if (op == '+' || op == '-' || op == '^')
    p->pos++;
  else
    op = 0;
  if (parse_count (p, &v) == -1)
    return -1;
  switch (op) {
    case '+':
      if (__builtin_add_overflow (*cur, v, cur) || *cur > MAX_SIZE) {
        fail (p, at, "offset is too large");
        return -1;
      }
      break;
    case '-':
      if (v > *cur) {
        fail (p, at,
              "@-%" PRIu64 " goes before the start (the offset is "
              "%" PRIu64 ")",
              v, *cur);
        return -1;
      }
      *cur -= v;
      break;
    case '^':
      if (v == 0) {
        fail (p, at, "@^0: the alignment must be at least 1");
        return -1;
      }
      if (*cur % v) {
        uint64_t up = *cur + (v - *cur % v);
        if (up < *cur || up > MAX_SIZE) {
          fail (p, at, "offset is too large");
          return -1;
        }
        *cur = up;
      }
      break;
    default:
      if (v > MAX_SIZE) {
        fail (p, at, "offset is too large");
        return -1;
      }
      *cur = v;
  }
  return 0;
}

/* A sequence of expressions and offsets, to the end of the text or
 * (CLOSING) to a ')', which is left for the caller.
 */
static int
parse_seq (struct parser *p, struct blob *out, bool closing)
{
  uint64_t cur = 0;

  for (;;) {
    skip_ws (p);
    int c = peek (p);
    if (c == -1 || (c == ')' && closing))
      return 0;
    if (c == '@') {
      if (parse_offset (p, &cur) == -1)
        return -1;
    } else {
      struct blob b = { .size = 0 };
      bool bound;
      if (parse_primary (p, &b) == -1 || parse_postfix (p, &b, &bound) == -1) {
        blob_free (&b);
        return -1;
      }
      if (!bound) {
        if (cur + b.size > MAX_SIZE || cur + b.size < cur) {
          fail (p, p->pos, "the data is too large");
          blob_free (&b);
          return -1;
        }
        if (store_paste (&out->st, cur, &b.st, 0, b.size) == -1) {
          blob_free (&b);
          fail_oom (p);
          return -1;
        }
        cur += b.size;
      }
      blob_free (&b);
    }
    if (cur > out->size)
      out->size = cur;
  }
}

int
data_eval (const char *text, const struct data_env *env, struct store *out,
           uint64_t *size, struct data_error *err)
{
  struct ctx cx = { .env = env, .err = err };
  struct blob b = { .size = 0 };
  int r;

  memset (err, 0, sizeof *err);
  r = eval_text (&cx, text, strlen (text), "data", &b);
  pop_names (&cx, NULL);
  if (r == -1) {
    blob_free (&b);
    return -1;
  }
  *out = b.st;
  *size = b.size;
  return 0;
}
