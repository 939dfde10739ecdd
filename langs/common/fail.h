/* fail.h: how a language host reports a failure of its own (not the
 * script's): one message naming the script (or the host) and what
 * failed, and ERR for the client.
 */

#ifndef LANGS_FAIL_H
#define LANGS_FAIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static inline int
host_vfail (const char *who, const char *what, int err, const char *fmt,
            va_list ap)
{
  char *msg = NULL;

  if (vasprintf (&msg, fmt, ap) == -1)
    msg = NULL;
  nbdkit_error ("%s: %s: %s", who, what, msg ? msg : fmt);
  free (msg);
  nbdkit_set_error (err);
  errno = err;
  return -1;
}

#endif /* LANGS_FAIL_H */
