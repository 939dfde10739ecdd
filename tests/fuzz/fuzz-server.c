/* fuzz-server.c: a libFuzzer harness that feeds arbitrary bytes to a
 * server instance running in this process, with the memory plugin.
 *
 * Built twice (tests/fuzz/CMakeLists.txt): fuzz-handshake starts each
 * connection with the newstyle handshake, fuzz-transmission
 * (-DFUZZ_TRANSMISSION_ONLY) skips it as --no-handshake does, so the
 * fuzzer reaches request parsing without having to find a valid
 * handshake first.
 *
 * For each input: a socketpair; the server serves one end on this
 * thread with connection_start (not detached); a client thread writes
 * the input to the other end, shuts down its writing side and reads
 * (and throws away) every reply until the server closes.  The client
 * writes and reads at once, so a server blocked on a large reply never
 * deadlocks against a client blocked writing.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#ifndef FUZZ_PLUGIN
#error "FUZZ_PLUGIN must be the path of nbdkit-memory-plugin.so"
#endif

static struct server *server;

/* Threads in this process, from /proc/self/stat (field 20). */
static int
count_threads (void)
{
  char buf[1024];
  int fd = open ("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read (fd, buf, sizeof buf - 1) : -1;
  char *p;
  int field = 2;

  if (fd >= 0)
    close (fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  p = strrchr (buf, ')'); /* the command name may hold spaces */
  if (p == NULL)
    return -1;
  for (p++; *p && field < 20; p++)
    if (*p == ' ')
      field++;
  return atoi (p);
}

/* The connection's worker threads are detached: connection_start
 * returns once they have said they are done, which may be a moment
 * before they are gone.  Wait for that, so the next input (and the
 * leak checker, which must stop every thread) starts from the same
 * state.
 */
static void
wait_for_threads (int before)
{
  for (int i = 0; i < 100000; i++) {
    int n = count_threads ();
    if (n == -1 || n <= before)
      return;
    usleep (10);
  }
  fprintf (stderr, "fuzz: %d threads still running\n", count_threads ());
  abort ();
}

/* What server_run does before it serves its first client, without
 * listening: server_prepare, then each layer's after_fork.
 */
static int
prepare (struct server *s)
{
  if (server_prepare (s) == -1)
    return -1;
  for (struct backend *b = s->top; b; b = b->next) {
    thread_ctx_set (s, NULL, b->name);
    if (b->ops->after_fork (b) == -1)
      return -1;
  }
  thread_ctx_set (s, NULL, NULL);
  return 0;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  /* -t 2: a second thread per connection, so requests can overlap,
   * without making every input pay for sixteen thread starts.
   */
  char *args[] = { "nbdkit", "-t",        "2",       "--log=null", "-e",
                   "",       FUZZ_PLUGIN, "size=1M", NULL };
  int status;

  signal (SIGPIPE, SIG_IGN);
  if (getenv ("FUZZ_VERBOSE"))
    args[3] = "--log=stderr";
  server = server_new ();
  if (server == NULL
      || cmdline_parse (server, sizeof args / sizeof args[0] - 1, args, &status)
             != 0) {
    fprintf (stderr, "fuzz: cannot set up the server\n");
    abort ();
  }
#ifdef FUZZ_TRANSMISSION_ONLY
  server->opt.transmission_only = true;
#endif
  if (prepare (server) == -1) {
    fprintf (stderr, "fuzz: cannot prepare the server\n");
    abort ();
  }
  watchdog_start (server);
  return 0;
}

struct client {
  int fd;
  const uint8_t *data;
  size_t size;
};

/* The client: write the input, read replies, until the server closes. */
static void *
client (void *arg)
{
  struct client *cl = arg;
  size_t off = 0;
  bool wr_open = true;
  char buf[65536];

  fcntl (cl->fd, F_SETFL, O_NONBLOCK);
  for (;;) {
    struct pollfd p = { .fd = cl->fd, .events = POLLIN };
    if (wr_open && off == cl->size) {
      shutdown (cl->fd, SHUT_WR);
      wr_open = false;
    }
    if (wr_open)
      p.events |= POLLOUT;
    if (poll (&p, 1, -1) == -1) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (p.revents & POLLIN) {
      ssize_t r = read (cl->fd, buf, sizeof buf);
      if (r == 0)
        break;
      if (r == -1 && errno != EAGAIN && errno != EINTR)
        break;
    } else if (p.revents & (POLLHUP | POLLERR))
      break;
    if (wr_open && p.revents & POLLOUT) {
      ssize_t r = send (cl->fd, cl->data + off, cl->size - off, MSG_NOSIGNAL);
      if (r > 0)
        off += r;
      else if (r == -1 && errno != EAGAIN && errno != EINTR)
        wr_open = false; /* the server stopped reading */
    }
  }
  close (cl->fd);
  return NULL;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  int sv[2];
  pthread_t t;
  struct client cl;
  int before = count_threads ();

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
    abort ();
  cl.fd = sv[1];
  cl.data = data;
  cl.size = size;
  if (pthread_create (&t, NULL, client, &cl) != 0)
    abort ();
  /* Returns when the connection is over; closes sv[0]. */
  connection_start (server, sv[0], sv[0], false);
  pthread_join (t, NULL);
  wait_for_threads (before);
  return 0;
}
