/* parse.c: the parsing helpers every plugin and filter may call.
 *
 * nbdkit_parse_size, _bool, _probability and the integer family,
 * nbdkit_read_password and the path helpers.  The *_quiet forms say
 * why a string was refused instead of logging, so that params.c can
 * log one message naming the plugin and the key.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "internal.h"

/* ---- sizes ---- */

/* Decimal digits, then at most one suffix letter: s for 512-byte
 * sectors, the others powers of 1024.  No sign, no spaces, no hex: "0x10" is
 * refused rather than read as zero with a strange suffix.
 */
int
parse_size_quiet (const char *str, int64_t *r, const char **why)
{
  const char *p = str;
  uint64_t n = 0;
  unsigned shift = 0;

  if (*p == '-' && isdigit ((unsigned char)p[1])) {
    *why = "cannot be negative";
    return -1;
  }
  if (!isdigit ((unsigned char)*p)) {
    *why = "cannot be parsed as a number";
    return -1;
  }
  for (; isdigit ((unsigned char)*p); p++) {
    unsigned d = *p - '0';

    if (n > ((uint64_t)INT64_MAX - d) / 10)
      goto too_large;
    n = n * 10 + d;
  }

  if (*p != '\0') {
    switch (*p) {
      case 'b':
      case 'B':
        shift = 0;
        break;
      case 's':
      case 'S':
        shift = 9;
        break;
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      case 't':
      case 'T':
        shift = 40;
        break;
      case 'p':
      case 'P':
        shift = 50;
        break;
      case 'e':
      case 'E':
        shift = 60;
        break;
      default:
        goto bad_suffix;
    }
    if (p[1] != '\0')
      goto bad_suffix;
  }

  if (n > ((uint64_t)INT64_MAX >> shift))
    goto too_large;
  *r = (int64_t)(n << shift);
  return 0;

too_large:
  *why = "is larger than 2^63-1 bytes";
  return -1;
bad_suffix:
  *why = "has an unknown suffix (only b, s, k, m, g, t, p and e are known)";
  return -1;
}

int64_t
nbdkit_parse_size (const char *str)
{
  const char *why;
  int64_t r;

  if (parse_size_quiet (str, &r, &why) == -1) {
    nbdkit_error ("size parameter %s: %s", why, str);
    return -1;
  }
  return r;
}

/* ---- booleans ---- */

/* nbdkit also takes the one-letter forms t, y, f and n. */
int
parse_bool_quiet (const char *str)
{
  static const char *const yes[] = { "1", "true", "t", "yes", "y", "on" };
  static const char *const no[] = { "0", "false", "f", "no", "n", "off" };
  size_t i;

  for (i = 0; i < sizeof yes / sizeof yes[0]; i++)
    if (strcasecmp (str, yes[i]) == 0)
      return 1;
  for (i = 0; i < sizeof no / sizeof no[0]; i++)
    if (strcasecmp (str, no[i]) == 0)
      return 0;
  return -1;
}

int
nbdkit_parse_bool (const char *str)
{
  int r = parse_bool_quiet (str);

  if (r == -1)
    nbdkit_error ("could not parse boolean: %s "
                  "(expected 1/true/yes/on or 0/false/no/off)",
                  str);
  return r;
}

/* ---- probabilities ---- */

/* A number as strtod reads it, refusing the spaces strtod skips. */
static int
scan_double (const char *str, double *d, char **end)
{
  if (*str == '\0' || isspace ((unsigned char)*str))
    return -1;
  *d = strtod (str, end);
  return *end == str ? -1 : 0;
}

int
nbdkit_parse_probability (const char *what, const char *str, double *retp)
{
  double d, div;
  char *end, *end2;

  if (scan_double (str, &d, &end) == -1)
    goto bad;
  if (end[0] == '%' && end[1] == '\0')
    d /= 100;
  else if (*end == ':' || *end == '/') {
    if (scan_double (end + 1, &div, &end2) == -1 || *end2 != '\0')
      goto bad;
    d /= div;
  } else if (*end != '\0')
    goto bad;

  if (!isfinite (d) || d < 0) {
    nbdkit_error ("%s: probability must be a finite number >= 0: %s", what,
                  str);
    return -1;
  }
  *retp = d == 0 ? 0 : d; /* no negative zero */
  return 0;

bad:
  nbdkit_error ("%s: could not parse probability: %s "
                "(expected a number such as 0.1, 10%% or 1:10)",
                what, str);
  return -1;
}

/* ---- integers ---- */

/* Numbers as strtol reads them with base 0 (decimal, 0x hex, 0 octal),
 * but the whole string must be the number: no leading spaces, nothing
 * after it.  Unsigned types refuse any minus sign, even "-0", rather
 * than let strtoul wrap "-1" around.
 */
enum scan { SCAN_OK, SCAN_SYNTAX, SCAN_NEGATIVE, SCAN_RANGE };

static enum scan
scan_signed (const char *str, intmax_t min, intmax_t max, intmax_t *r)
{
  char *end;
  intmax_t v;

  if (*str == '\0' || isspace ((unsigned char)*str))
    return SCAN_SYNTAX;
  errno = 0;
  v = strtoimax (str, &end, 0);
  if (end == str || *end != '\0')
    return SCAN_SYNTAX;
  if (errno == ERANGE || v < min || v > max)
    return SCAN_RANGE;
  *r = v;
  return SCAN_OK;
}

static enum scan
scan_unsigned (const char *str, uintmax_t max, uintmax_t *r)
{
  char *end;
  uintmax_t v;

  if (*str == '\0' || isspace ((unsigned char)*str))
    return SCAN_SYNTAX;
  if (*str == '-')
    return SCAN_NEGATIVE;
  errno = 0;
  v = strtoumax (str, &end, 0);
  if (end == str || *end != '\0')
    return SCAN_SYNTAX;
  if (errno == ERANGE || v > max)
    return SCAN_RANGE;
  *r = v;
  return SCAN_OK;
}

/* Log why STR was refused; always returns -1. */
static int
number_error (const char *what, const char *str, enum scan e, const char *range)
{
  switch (e) {
    case SCAN_NEGATIVE:
      nbdkit_error ("%s: negative numbers are not allowed: %s", what, str);
      break;
    case SCAN_RANGE:
      nbdkit_error ("%s: number out of range (%s): %s", what, range, str);
      break;
    case SCAN_SYNTAX:
    case SCAN_OK:
    default:
      nbdkit_error ("%s: could not parse number: %s", what, str);
      break;
  }
  errno = e == SCAN_RANGE ? ERANGE : EINVAL;
  return -1;
}

int
parse_int64_quiet (const char *str, int64_t *r, const char **why)
{
  intmax_t v;

  switch (scan_signed (str, INT64_MIN, INT64_MAX, &v)) {
    case SCAN_OK:
      *r = v;
      return 0;
    case SCAN_RANGE:
      *why = "is out of the 64-bit signed range";
      return -1;
    default:
      *why = "cannot be parsed as a number";
      return -1;
  }
}

#define PARSE_SIGNED(name, type, min, max, range)                              \
  int nbdkit_parse_##name (const char *what, const char *str, type *rp)        \
  {                                                                            \
    intmax_t v;                                                                \
    enum scan e = scan_signed (str, (min), (max), &v);                         \
                                                                               \
    if (e != SCAN_OK)                                                          \
      return number_error (what, str, e, range);                               \
    *rp = (type)v;                                                             \
    return 0;                                                                  \
  }

#define PARSE_UNSIGNED(name, type, max, range)                                 \
  int nbdkit_parse_##name (const char *what, const char *str, type *rp)        \
  {                                                                            \
    uintmax_t v;                                                               \
    enum scan e = scan_unsigned (str, (max), &v);                              \
                                                                               \
    if (e != SCAN_OK)                                                          \
      return number_error (what, str, e, range);                               \
    *rp = (type)v;                                                             \
    return 0;                                                                  \
  }

/* INT_MAX and UINT_MAX are spelled out for the 32-bit int of every
 * platform we build on; the static assert keeps that honest.
 */
_Static_assert(INT_MAX == INT32_MAX && UINT_MAX == UINT32_MAX,
               "int is expected to be 32 bits");

PARSE_SIGNED (int, int, INT_MIN, INT_MAX, "-2147483648 to 2147483647")
PARSE_UNSIGNED (unsigned, unsigned, UINT_MAX, "0 to 4294967295")
PARSE_SIGNED (int8_t, int8_t, INT8_MIN, INT8_MAX, "-128 to 127")
PARSE_UNSIGNED (uint8_t, uint8_t, UINT8_MAX, "0 to 255")
PARSE_SIGNED (int16_t, int16_t, INT16_MIN, INT16_MAX, "-32768 to 32767")
PARSE_UNSIGNED (uint16_t, uint16_t, UINT16_MAX, "0 to 65535")
PARSE_SIGNED (int32_t, int32_t, INT32_MIN, INT32_MAX,
              "-2147483648 to 2147483647")
PARSE_UNSIGNED (uint32_t, uint32_t, UINT32_MAX, "0 to 4294967295")
PARSE_SIGNED (int64_t, int64_t, INT64_MIN, INT64_MAX,
              "-9223372036854775808 to 9223372036854775807")
PARSE_UNSIGNED (uint64_t, uint64_t, UINT64_MAX, "0 to 18446744073709551615")

/* ---- passwords ---- */

/* Log a password error, prefixed with "WHAT: " when WHAT is given. */
static void password_error (const char *what, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
password_error (const char *what, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  /* vsnprintf expands %m from errno, which it leaves alone. */
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (what)
    nbdkit_error ("%s: %s", what, msg);
  else
    nbdkit_error ("%s", msg);
}

/* Read FD until EOF (or, with ONE_LINE, the first newline) into a
 * malloc'd string without its one trailing newline.  Sets errno.
 */
static char *
read_fd (int fd, bool one_line)
{
  char *buf = NULL, *nbuf;
  size_t len = 0, cap = 0;
  ssize_t r;

  for (;;) {
    if (cap - len < 2) {
      cap = cap ? cap * 2 : 64;
      nbuf = realloc (buf, cap);
      if (nbuf == NULL)
        goto err;
      buf = nbuf;
    }
    r = read (fd, buf + len, one_line ? 1 : cap - len - 1);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      goto err;
    }
    if (r == 0)
      break;
    len += r;
    if (one_line && buf[len - 1] == '\n')
      break;
  }
  if (len > 0 && buf[len - 1] == '\n')
    len--;
  buf[len] = '\0';
  return buf;

err:
  free (buf);
  return NULL;
}

/* Ask on the terminal with echo off. */
static char *
read_password_tty (const char *what)
{
  static const char prompt[] = "password: ";
  struct termios orig, quiet;
  char *pw;
  int fd, err;
  bool restore = false;

  if (!isatty (STDIN_FILENO)) {
    password_error (what,
                    "stdin is not a tty, cannot read password interactively");
    return NULL;
  }
  fd = open ("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd == -1) {
    password_error (what, "/dev/tty: %m");
    return NULL;
  }
  /* Echo goes off before the prompt shows, so that nothing typed after
   * the prompt is echoed or thrown away by the flush.
   */
  if (tcgetattr (fd, &orig) == 0) {
    quiet = orig;
    quiet.c_lflag &= ~ECHO;
    if (tcsetattr (fd, TCSAFLUSH, &quiet) == 0)
      restore = true;
  }
  if (write (fd, prompt, sizeof prompt - 1) == -1) {
    if (restore)
      tcsetattr (fd, TCSANOW, &orig);
    goto err;
  }
  pw = read_fd (fd, true);
  err = errno;
  if (restore)
    tcsetattr (fd, TCSANOW, &orig);
  /* The user's newline was not echoed. */
  if (write (fd, "\n", 1) == -1) {
    /* nothing useful to do */
  }
  close (fd);
  if (pw == NULL) {
    errno = err;
    password_error (what, "reading password from /dev/tty: %m");
  }
  return pw;

err:
  password_error (what, "/dev/tty: %m");
  close (fd);
  return NULL;
}

/* nbdkit_read_password, with messages prefixed by WHAT (if not NULL):
 * params.c passes "PLUGIN: KEY".  Messages never show the password.
 */
int
read_password_as (const char *what, const char *value, char **password)
{
  char *pw = NULL;
  int fd;

  if (strcmp (value, "-") == 0)
    pw = read_password_tty (what);
  else if (value[0] == '-') {
    /* -FD: the descriptor is read to EOF, then closed. */
    intmax_t v;

    if (scan_signed (value + 1, 0, INT_MAX, &v) != SCAN_OK) {
      password_error (what, "could not parse file descriptor in -FD: %s",
                      value);
      return -1;
    }
    fd = (int)v;
    if (fd <= 2) {
      password_error (what,
                      "cannot use password -FD for file descriptor "
                      "%d (stdin, stdout or stderr); use -FD with FD > 2",
                      fd);
      return -1;
    }
    pw = read_fd (fd, false);
    if (pw == NULL)
      password_error (what, "reading password from file descriptor %d: %m", fd);
    close (fd);
  } else if (value[0] == '+') {
    fd = open (value + 1, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
      password_error (what, "password file %s: %m", value + 1);
      return -1;
    }
    pw = read_fd (fd, false);
    if (pw == NULL)
      password_error (what, "reading password file %s: %m", value + 1);
    close (fd);
  } else {
    pw = strdup (value);
    if (pw == NULL)
      password_error (what, "strdup: %m");
  }

  if (pw == NULL)
    return -1;
  *password = pw;
  return 0;
}

int
nbdkit_read_password (const char *value, char **password)
{
  return read_password_as (NULL, value, password);
}

/* ---- paths ---- */

char *
nbdkit_absolute_path (const char *path)
{
  char *cwd, *ret;
  size_t n;

  if (path == NULL || *path == '\0') {
    nbdkit_error ("cannot make an absolute path from an empty path");
    return NULL;
  }
  if (*path == '/') {
    ret = strdup (path);
    if (ret == NULL)
      nbdkit_error ("strdup: %m");
    return ret;
  }

  cwd = getcwd (NULL, 0);
  if (cwd == NULL) {
    nbdkit_error ("%s: getcwd: %m", path);
    return NULL;
  }
  n = strlen (cwd);
  if (asprintf (&ret, "%s%s%s", cwd, n > 0 && cwd[n - 1] == '/' ? "" : "/",
                path)
      == -1) {
    nbdkit_error ("asprintf: %m");
    ret = NULL;
  }
  free (cwd);
  return ret;
}

char *
nbdkit_realpath (const char *path)
{
  char *ret;

  if (path == NULL || *path == '\0') {
    nbdkit_error ("realpath: the path is empty");
    return NULL;
  }
  ret = realpath (path, NULL);
  if (ret == NULL)
    nbdkit_error ("realpath: %s: %m", path);
  return ret;
}
