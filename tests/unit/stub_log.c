/* stub_log.c: nbdkit_error, nbdkit_debug and nbdkit_strdup_intern for
 * the unit tests.
 *
 * Records the last error message in a buffer instead of printing it,
 * so tests can check what was said; debug messages are dropped.
 * Interned strings are kept reachable until the test exits.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "stub_log.h"

static char last_error[1024];
static unsigned error_count;

void
nbdkit_verror (const char *msg, va_list args)
{
  int err = errno;
  size_t n;

  /* glibc's vsnprintf expands %m itself. */
  vsnprintf (last_error, sizeof last_error, msg, args);
  n = strlen (last_error);
  if (n > 0 && last_error[n - 1] == '\n')
    last_error[n - 1] = '\0';
  error_count++;
  if (getenv ("STUB_LOG_VERBOSE"))
    fprintf (stderr, "stub error: %s\n", last_error);
  errno = err;
}

void
nbdkit_error (const char *msg, ...)
{
  va_list args;

  va_start (args, msg);
  nbdkit_verror (msg, args);
  va_end (args);
}

void
nbdkit_vdebug (const char *msg, va_list args)
{
  (void)msg;
  (void)args;
}

void
nbdkit_debug (const char *msg, ...)
{
  (void)msg;
}

/* Every interned string, reachable so that LeakSanitizer is quiet. */
static char **interned;
static size_t n_interned;

const char *
nbdkit_strdup_intern (const char *str)
{
  char **list = realloc (interned, (n_interned + 1) * sizeof *list);
  char *copy;

  if (list == NULL)
    return NULL;
  interned = list;
  copy = strdup (str);
  if (copy == NULL)
    return NULL;
  interned[n_interned++] = copy;
  return copy;
}

const char *
stub_last_error (void)
{
  return last_error;
}

unsigned
stub_error_count (void)
{
  return error_count;
}

void
stub_reset (void)
{
  last_error[0] = '\0';
  error_count = 0;
}
