/* log.c: the one logging path (nbdkit_error, nbdkit_debug) and the
 * thread-local context that tells it who is speaking.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

static __thread struct thread_ctx tctx;

struct thread_ctx *
thread_ctx (void)
{
  return &tctx;
}

void
thread_ctx_set (struct server *s, struct connection *c, const char *name)
{
  tctx.server = s;
  tctx.conn = c;
  tctx.name = name;
  tctx.error = 0;
}

/* Format "PROG: NAME[CONN]: LEVEL: MSG" into one line and emit it with
 * a single write so concurrent messages do not interleave.
 */
static void
emit (struct server *s, const char *level, int saved_errno, const char *fmt,
      va_list ap)
{
  int log_to = s ? s->opt.log_to : LOG_TO_STDERR;
  const char *prog = s && s->program_name ? s->program_name : "nbdkit";
  char *msg = NULL, *line = NULL;
  size_t len;
  int r;

  errno = saved_errno; /* for %m */
  if (vasprintf (&msg, fmt, ap) == -1)
    return;
  len = strlen (msg);
  while (len > 0 && msg[len - 1] == '\n')
    msg[--len] = '\0';

  /* Kept for nbdkit_server_error, with who said it. */
  if (s && *level == 'e') {
    char *last = NULL;
    if (tctx.name && tctx.conn)
      r = asprintf (&last, "%s[%u]: %s", tctx.name, tctx.conn->id, msg);
    else if (tctx.name)
      r = asprintf (&last, "%s: %s", tctx.name, msg);
    else
      r = asprintf (&last, "%s", msg);
    if (r >= 0) {
      pthread_mutex_lock (&s->error_lock);
      free (s->last_error);
      s->last_error = last;
      pthread_mutex_unlock (&s->error_lock);
    }
  }

  if (log_to == LOG_TO_NULL) {
    free (msg);
    return;
  }
  if (log_to == LOG_TO_SYSLOG) {
    if (tctx.name && tctx.conn)
      syslog (*level == 'e' ? LOG_ERR : LOG_DEBUG, "%s[%u]: %s: %s", tctx.name,
              tctx.conn->id, level, msg);
    else if (tctx.name)
      syslog (*level == 'e' ? LOG_ERR : LOG_DEBUG, "%s: %s: %s", tctx.name,
              level, msg);
    else
      syslog (*level == 'e' ? LOG_ERR : LOG_DEBUG, "%s: %s", level, msg);
    free (msg);
    return;
  }

  if (tctx.name && tctx.conn)
    r = asprintf (&line, "%s: %s[%u]: %s: %s\n", prog, tctx.name, tctx.conn->id,
                  level, msg);
  else if (tctx.name)
    r = asprintf (&line, "%s: %s: %s: %s\n", prog, tctx.name, level, msg);
  else
    r = asprintf (&line, "%s: %s: %s\n", prog, level, msg);
  free (msg);
  if (r == -1)
    return;
  if (write (STDERR_FILENO, line, r) == -1) {
    /* Nowhere left to report it. */
  }
  free (line);
}

void
log_error (struct server *s, const char *fmt, ...)
{
  va_list ap;
  int saved = errno;

  va_start (ap, fmt);
  emit (s, "error", saved, fmt, ap);
  va_end (ap);
  errno = saved;
}

void
log_warning (struct server *s, const char *fmt, ...)
{
  va_list ap;
  int saved = errno;

  va_start (ap, fmt);
  emit (s, "warning", saved, fmt, ap);
  va_end (ap);
  errno = saved;
}

void
log_debug (struct server *s, const char *fmt, ...)
{
  va_list ap;
  int saved = errno;

  if (s == NULL || !s->opt.verbose)
    return;
  va_start (ap, fmt);
  emit (s, "debug", saved, fmt, ap);
  va_end (ap);
  errno = saved;
}

NBDKIT_EXTERN_C void
nbdkit_verror (const char *fmt, va_list ap)
{
  int saved = errno;
  emit (tctx.server, "error", saved, fmt, ap);
  errno = saved;
}

NBDKIT_EXTERN_C void
nbdkit_error (const char *fmt, ...)
{
  va_list ap;
  int saved = errno;

  va_start (ap, fmt);
  emit (tctx.server, "error", saved, fmt, ap);
  va_end (ap);
  errno = saved;
}

NBDKIT_EXTERN_C void
nbdkit_vdebug (const char *fmt, va_list ap)
{
  int saved = errno;

  if (tctx.server == NULL || !tctx.server->opt.verbose)
    return;
  emit (tctx.server, "debug", saved, fmt, ap);
  errno = saved;
}

NBDKIT_EXTERN_C void
nbdkit_debug (const char *fmt, ...)
{
  va_list ap;
  int saved = errno;

  if (tctx.server == NULL || !tctx.server->opt.verbose)
    return;
  va_start (ap, fmt);
  emit (tctx.server, "debug", saved, fmt, ap);
  va_end (ap);
  errno = saved;
}

NBDKIT_EXTERN_C void
nbdkit_set_error (int err)
{
  tctx.error = err;
}

int
callback_errno (void)
{
  int err = tctx.error ? tctx.error : errno;

  tctx.error = 0;
  return err ? err : EIO;
}
