/* conncycle.c: connection cycles per second against an NBD server:
 * connect, handshake, read 4 KiB, disconnect, as fast as possible for
 * a given time.  Used by bench.sh; not part of the tests.
 *
 *   nbd-conncycle URI SECONDS
 * prints the number of cycles per second.
 */

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <libnbd.h>

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main (int argc, char *argv[])
{
  static char buf[4096];
  double start, end, t;
  long n = 0;

  if (argc != 3) {
    fprintf (stderr, "usage: %s URI SECONDS\n", argv[0]);
    return 2;
  }
  start = now ();
  end = start + atof (argv[2]);
  do {
    struct nbd_handle *h = nbd_create ();
    if (h == NULL || nbd_connect_uri (h, argv[1]) == -1
        || nbd_pread (h, buf, sizeof buf, 0, 0) == -1) {
      fprintf (stderr, "%s: %s\n", argv[0], nbd_get_error ());
      return 1;
    }
    nbd_shutdown (h, 0);
    nbd_close (h);
    n++;
  } while ((t = now ()) < end);
  printf ("%.0f\n", n / (t - start));
  return 0;
}
