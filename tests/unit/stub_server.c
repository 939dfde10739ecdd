/* stub_server.c: log_debug and conn_sendv for the unit tests.
 *
 * Debug messages are dropped (printed with STUB_LOG_VERBOSE set).
 * conn_sendv appends every iovec's bytes to a growing capture buffer
 * instead of writing to a socket, and counts its calls, so reply
 * encoding can be checked byte for byte.  conn_sendv_nowait does the
 * same up to a budget of bytes, as a socket whose buffer fills.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "stub_server.h"

static unsigned char *sent;
static size_t sent_len, sent_alloc;
static unsigned calls;
static int max_iovcnt;
static int fail_from = -1;
static size_t nowait_budget = SIZE_MAX;

void
log_debug (struct server *s, const char *fmt, ...)
{
  va_list args;

  if (!getenv ("STUB_LOG_VERBOSE"))
    return;
  va_start (args, fmt);
  fprintf (stderr, "stub debug: ");
  vfprintf (stderr, fmt, args);
  fprintf (stderr, "\n");
  va_end (args);
}

static void
capture (const void *p, size_t n)
{
  if (sent_len + n > sent_alloc) {
    size_t na = sent_alloc ? sent_alloc : 4096;
    while (na < sent_len + n)
      na *= 2;
    unsigned char *nv = realloc (sent, na);
    if (nv == NULL)
      abort ();
    sent = nv;
    sent_alloc = na;
  }
  memcpy (sent + sent_len, p, n);
  sent_len += n;
}

ssize_t
conn_sendv_nowait (struct connection *c, struct iovec *iov, int iovcnt)
{
  size_t done = 0;

  calls++;
  if (iovcnt > max_iovcnt)
    max_iovcnt = iovcnt;
  for (int i = 0; i < iovcnt && nowait_budget > 0; i++) {
    size_t n = iov[i].iov_len < nowait_budget ? iov[i].iov_len : nowait_budget;
    capture (iov[i].iov_base, n);
    nowait_budget -= n;
    done += n;
  }
  return done;
}

void
stub_nowait_budget (size_t n)
{
  nowait_budget = n;
}

int
conn_sendv (struct connection *c, struct iovec *iov, int iovcnt)
{
  unsigned call = calls++;

  if (iovcnt > max_iovcnt)
    max_iovcnt = iovcnt;
  if (fail_from >= 0 && call >= (unsigned)fail_from)
    return -1;
  for (int i = 0; i < iovcnt; i++)
    capture (iov[i].iov_base, iov[i].iov_len);
  return 0;
}

const unsigned char *
stub_sent (void)
{
  return sent;
}

size_t
stub_sent_len (void)
{
  return sent_len;
}

unsigned
stub_sendv_calls (void)
{
  return calls;
}

int
stub_sendv_max_iovcnt (void)
{
  return max_iovcnt;
}

void
stub_sendv_fail_from (int n)
{
  fail_from = n;
}

void
stub_sent_reset (void)
{
  sent_len = 0;
  calls = 0;
  max_iovcnt = 0;
  fail_from = -1;
  nowait_budget = SIZE_MAX;
}
