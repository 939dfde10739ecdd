/* background.c: what the nbdkit program does to its own process before
 * it serves: go into the background, write the pidfile (-P), lock
 * itself in memory (--swap).  An embedded server does none of these.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* Into the background.  Without --log, messages go to syslog from
 * now on, as with nbdkit (with -v they stay on stderr, for debugging).
 */
int
daemonize (struct server *s, bool log_default)
{
  pid_t pid = fork ();

  if (pid == -1) {
    log_error (s, "fork: %m");
    return -1;
  }
  if (pid > 0)
    _exit (0);
  setsid ();
  if (chdir ("/") == -1) {
    /* Not fatal. */
  }
  int fd = open ("/dev/null", O_RDWR);
  if (fd >= 0) {
    dup2 (fd, 0);
    dup2 (fd, 1);
    if (log_default && !s->opt.verbose)
      s->opt.log_to = LOG_TO_SYSLOG;
    if (!s->opt.verbose && s->opt.log_to != LOG_TO_STDERR)
      dup2 (fd, 2);
    if (fd > 2)
      close (fd);
  }
  return 0;
}

int
write_pidfile (struct server *s)
{
  char buf[32];
  int fd, len;

  if (s->opt.pidfile == NULL)
    return 0;
  /* Write a temporary file and rename it, so a reader never sees a
   * half-written pid.
   */
  char *tmp;
  if (asprintf (&tmp, "%s.tmp%d", s->opt.pidfile, (int)getpid ()) == -1)
    return -1;
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1) {
    log_error (s, "pidfile %s: %m", s->opt.pidfile);
    free (tmp);
    return -1;
  }
  len = snprintf (buf, sizeof buf, "%d\n", (int)getpid ());
  if (write (fd, buf, len) != len || close (fd) == -1
      || rename (tmp, s->opt.pidfile) == -1) {
    log_error (s, "pidfile %s: %m", s->opt.pidfile);
    unlink (tmp);
    free (tmp);
    return -1;
  }
  free (tmp);
  return 0;
}

/* --swap: the disk may be this machine's swap space, and a server
 * that had to be paged in to serve a page-in would deadlock.  Done in
 * the process that serves: a child does not inherit memory locks.
 */
int
lock_memory (struct server *s)
{
  if (!s->opt.mlock)
    return 0;
  if (mlockall (MCL_CURRENT | MCL_FUTURE) == -1) {
    log_error (s, "--swap: mlockall: %m");
    return -1;
  }
  log_debug (s, "mlockall done");
  return 0;
}
