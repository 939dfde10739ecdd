/* example-embed.c: two NBD servers in one process, through
 * <nbdkit-server.h>.
 *
 *   example-embed SOCKET_A SOCKET_B
 *
 * serves a 1 MiB RAM disk (the memory plugin) on the Unix socket
 * SOCKET_A and a 2 MiB read-only pattern disk (the pattern plugin) on
 * SOCKET_B, each from its own server in its own thread, until SIGTERM
 * or SIGINT.  Build it against an installed tree with
 *
 *   cc example-embed.c -o example-embed \
 *      $(pkg-config --cflags --libs nbdkit-server)
 */

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <nbdkit-server.h>

/* Configure and start one server; NULL after printing why not. */
static nbdkit_server *
serve (const char *const *words)
{
  nbdkit_server *srv = nbdkit_server_new ();

  if (srv == NULL) {
    perror ("nbdkit_server_new");
    return NULL;
  }
  if (nbdkit_server_configure (srv, words) == -1
      || nbdkit_server_start (srv) == -1) {
    fprintf (stderr, "example-embed: %s\n", nbdkit_server_error (srv));
    nbdkit_server_free (srv);
    return NULL;
  }
  printf ("serving %s on %s\n", words[2], nbdkit_server_uri (srv));
  return srv;
}

int
main (int argc, char *argv[])
{
  sigset_t stop;
  int sig;

  if (argc != 3) {
    fprintf (stderr, "usage: %s SOCKET_A SOCKET_B\n", argv[0]);
    return EXIT_FAILURE;
  }

  /* The signals that stop us are taken by sigwait below.  Blocked
   * before any thread starts, so the servers' threads never take them;
   * SIGPIPE is ignored, as a client may leave mid-reply.
   */
  sigemptyset (&stop);
  sigaddset (&stop, SIGTERM);
  sigaddset (&stop, SIGINT);
  pthread_sigmask (SIG_BLOCK, &stop, NULL);
  signal (SIGPIPE, SIG_IGN);

  const char *const words_a[] = { "-U", argv[1], "memory", "1M", NULL };
  const char *const words_b[] = { "-U", argv[2], "pattern", "2M", "-r", NULL };
  nbdkit_server *a = serve (words_a);
  nbdkit_server *b = a ? serve (words_b) : NULL;
  if (a == NULL || b == NULL) {
    nbdkit_server_free (a);
    return EXIT_FAILURE;
  }
  fflush (stdout);

  sigwait (&stop, &sig);

  nbdkit_server_stop (a);
  nbdkit_server_stop (b);
  int ra = nbdkit_server_wait (a), rb = nbdkit_server_wait (b);
  nbdkit_server_free (a);
  nbdkit_server_free (b);
  return ra == 0 && rb == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
