/* slowlisten.c: an LD_PRELOAD library whose listen() waits
 * $SLOWLISTEN_MS milliseconds (default 500) before listening, to widen
 * the moment between bind and listen (integration/core-unix-ready.sh).
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

int
listen (int fd, int backlog)
{
  static int (*real_listen) (int, int);
  const char *env = getenv ("SLOWLISTEN_MS");
  long ms = env ? atol (env) : 500;
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

  if (real_listen == NULL)
    real_listen = (int (*) (int, int))dlsym (RTLD_NEXT, "listen");
  nanosleep (&ts, NULL);
  return real_listen (fd, backlog);
}
