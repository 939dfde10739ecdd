/* nbd.c: the nbd plugin, a proxy to another NBD server through libnbd.
 *
 *   nbdkit nbd socket=PATH | hostname=HOST [port=PORT] | vsock=CID [port=]
 *              | socket-fd=FD | command=CMD [arg=ARG]... | [uri=]URI
 *              [export=NAME] [dynamic-export=BOOL] [shared=BOOL] [retry=N]
 *              [tls=off|on|require] [tls-certificates=DIR] [tls-verify=BOOL]
 *              [tls-username=NAME] [tls-psk=FILE] [timeout=SECONDS]
 *
 * Without shared=true each client connection gets its own libnbd
 * handle, connected in open and closed in close.  With shared=true
 * (the default for command= and socket-fd=) one handle, connected when
 * the server is ready, serves every client.  If that connection is
 * lost (the NBD server went away, or timeout= dropped it), requests in
 * flight fail with EIO and the next request connects again (conn_get:
 * one thread connects, the requests that come meanwhile wait for its
 * outcome), with socket=, uri=, hostname= and vsock=; a server that
 * comes back offering another size or other flags is refused, as the
 * clients were told the old ones.  command= is not run again (its disk
 * may not outlive it), and socket-fd= cannot be remade.  The conn of a
 * lost connection is closed once the last request using it is done
 * (conn->refs).
 *
 * timeout= bounds the age of each request: the reader drops the
 * connection when the oldest request in flight is older, even while
 * the server answers the others.  Only the whole connection can be
 * dropped: libnbd has no way to abandon one command, whose buffer it
 * keeps until the reply or the end of the connection, so every
 * request in flight on it fails with EIO too.  The thread model is
 * parallel: requests are issued with libnbd's aio calls and a reader
 * thread per handle runs its state machine (struct conn), so many
 * requests are in flight on one connection.
 *
 * What the backend offers (size, read-only, flush, FUA, trim, zero,
 * fast zero, cache, multi-conn, block sizes, base:allocation) is
 * passed through as is.  Holes in structured read replies become holes
 * for our client, and libnbd's errno for a failed command is the errno
 * our client sees.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libnbd.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

/* Configuration. */
static const char *sockname, *uri, *hostname, *port, *vsock_cid;
static const char *command, *export_name, *tls_certificates, *tls_username;
static const char *tls_psk;
static char **args;  /* command followed by each arg=, NULL-terminated */
static size_t nargs; /* entries in args, without the NULL */
static int socket_fd = -1;
static int retry;
static int shared = -1; /* -1: not given */
static bool dynamic_export;
static int tls = -1; /* -1: not given; else LIBNBD_TLS_* */
static int tls_verify = -1;
static bool use_async = true;
static int timeout; /* timeout=: 0 none */

/* Without timeout=, connecting and the handshake still give up after
 * this long: a server that accepted the connection but never answers
 * would otherwise hold our client (and its thread) for ever, while a
 * server that answers at all does so in well under a second.
 * Requests have no bound by default: a slow server is legitimate.
 */
#define DEFAULT_CONNECT_TIMEOUT 30

/* After the server is asked to stop, requests still waiting for the
 * NBD server get this long (less than the core's grace for sending
 * replies) before they are abandoned and fail.
 */
#define STOP_GRACE_MS 2000

static int
connect_timeout (void)
{
  return timeout > 0 ? timeout : DEFAULT_CONNECT_TIMEOUT;
}

static int64_t
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Why a connection was cut from our side. */
enum { CUT_NONE, CUT_TIMEOUT, CUT_STOP };

/* A request in flight to the NBD server, on its connection's list in
 * the order they were issued, so that the reader knows the oldest.
 */
struct pend {
  struct pend *prev, *next;
  int64_t t; /* now_ms when issued */
};

/* What the NBD server offers, read once per connection (and, in
 * shared mode, once at start: a server that comes back must offer the
 * same).
 */
struct caps {
  int64_t size;
  int read_only, flush, rotational, trim, zero, fast_zero, fua, multi_conn;
  int extents, cache;
  int64_t bs_min, bs_pref, bs_max;
  char *description; /* malloc'd, or NULL */
};

/* A connected libnbd handle and the thread that runs its state machine:
 * requests are issued with the aio calls from the server's threads,
 * which then wait for their completion, so that requests of one
 * client (and, with shared, of all clients) are in flight together.
 */
struct aop;
struct conn {
  struct nbd_handle *nbd;
  pthread_t reader;
  int wake[2];   /* a byte written to wake[1] makes the reader look again */
  bool stop;     /* under the handle: read by the reader after a wake-up */
  int quit_fd;   /* nbdkit_shutdown_fd, or -1 */
  int cut;       /* CUT_*, set once by the reader (atomic) */
  bool quitting; /* the reader saw quit_fd (atomic) */
  bool ended;    /* the reader has left its loop (atomic) */
  int refs;      /* shared mode: users of the conn, under shared_lock */
  struct caps caps;
  /* Asynchronous requests libnbd has completed, to be completed to
   * the server once out of libnbd (see drain); and the requests in
   * flight, oldest first.  Both under done_lock.
   */
  pthread_mutex_t done_lock;
  struct aop *done, **done_tail;
  struct pend pending; /* list head */
};

static void drain (struct conn *c);
static const char *target (void);
static int failed (const char *op);

/* Shared mode: the one connection (NULL while it is being remade),
 * holding one reference; what the server offered at start; whether a
 * thread is connecting again (the others wait on shared_cond).
 */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t shared_cond = PTHREAD_COND_INITIALIZER;
static struct conn *shared_conn;
static struct caps shared_caps;
static bool reconnecting;

/* Without shared, C is the client's own connection; with shared, C is
 * NULL and each request takes the shared one (conn_get).
 */
struct handle {
  struct conn *c;
  const struct caps *caps;
};

static void
pend_add (struct conn *c, struct pend *p)
{
  pthread_mutex_lock (&c->done_lock);
  p->t = now_ms ();
  p->next = &c->pending;
  p->prev = c->pending.prev;
  p->prev->next = p;
  c->pending.prev = p;
  pthread_mutex_unlock (&c->done_lock);
}

static void
pend_del (struct conn *c, struct pend *p)
{
  pthread_mutex_lock (&c->done_lock);
  if (p->next) {
    p->prev->next = p->next;
    p->next->prev = p->prev;
    p->next = p->prev = NULL;
  }
  pthread_mutex_unlock (&c->done_lock);
}

/* When the oldest request in flight was issued, or -1. */
static int64_t
pend_oldest (struct conn *c)
{
  int64_t t = -1;

  pthread_mutex_lock (&c->done_lock);
  if (c->pending.next != &c->pending)
    t = c->pending.next->t;
  pthread_mutex_unlock (&c->done_lock);
  return t;
}

static void
wake_reader (struct conn *c)
{
  char x = 0;
  ssize_t r;

  do
    r = write (c->wake[1], &x, 1);
  while (r == -1 && errno == EINTR);
}

/* Cut the connection from our side: the NBD server no longer answers,
 * or we are stopping.  Shutting the socket down makes libnbd see the
 * end of the connection at its next read or write, and it fails every
 * command in flight (their buffers are not touched again).
 */
static void
cut (struct conn *c, int why)
{
  int fd = nbd_aio_get_fd (c->nbd);

  __atomic_store_n (&c->cut, why, __ATOMIC_RELEASE);
  if (why == CUT_TIMEOUT)
    nbdkit_error ("the NBD server at %s has left a request unanswered "
                  "for %d s: dropping the connection",
                  target (), timeout);
  else
    nbdkit_debug ("stopping: abandoning %d request(s) to the NBD server "
                  "at %s",
                  nbd_aio_in_flight (c->nbd), target ());
  if (fd >= 0)
    shutdown (fd, SHUT_RDWR);
}

static void *
reader (void *arg)
{
  struct conn *c = arg;
  int64_t quit_at = -1;

  while (!__atomic_load_n (&c->stop, __ATOMIC_ACQUIRE)) {
    struct pollfd fds[3];
    int nfds = 2, wait = -1;
    int fd = nbd_aio_get_fd (c->nbd);
    unsigned dir = nbd_aio_get_direction (c->nbd);
    int64_t n = nbd_aio_in_flight (c->nbd), t = now_ms ();
    int64_t oldest = pend_oldest (c);
    char buf[64];

    if (fd == -1 || nbd_aio_is_dead (c->nbd) || nbd_aio_is_closed (c->nbd))
      break;
    /* timeout= bounds the age of each request, whether or not the
     * server answers others meanwhile.
     */
    if (__atomic_load_n (&c->cut, __ATOMIC_ACQUIRE) == CUT_NONE
        && (n > 0 || oldest >= 0)) {
      if (timeout > 0 && oldest >= 0) {
        int64_t left = oldest + (int64_t)timeout * 1000 - t;
        if (left <= 0) {
          cut (c, CUT_TIMEOUT);
          continue;
        }
        wait = left > INT_MAX ? INT_MAX : (int)left;
      }
      if (quit_at >= 0) {
        int64_t left = quit_at + STOP_GRACE_MS - t;
        if (left <= 0) {
          cut (c, CUT_STOP);
          continue;
        }
        if (wait == -1 || left < wait)
          wait = (int)left;
      }
    }
    fds[0] = (struct pollfd){ .fd = fd };
    if (dir & LIBNBD_AIO_DIRECTION_READ)
      fds[0].events |= POLLIN;
    if (dir & LIBNBD_AIO_DIRECTION_WRITE)
      fds[0].events |= POLLOUT;
    fds[1] = (struct pollfd){ .fd = c->wake[0], .events = POLLIN };
    /* Readable for good once we stop: watched until seen. */
    if (c->quit_fd >= 0 && quit_at < 0)
      fds[nfds++] = (struct pollfd){ .fd = c->quit_fd, .events = POLLIN };
    if (poll (fds, nfds, wait) == -1) {
      if (errno == EINTR)
        continue;
      nbdkit_error ("poll: %m");
      break;
    }
    if (nfds > 2 && fds[2].revents) {
      quit_at = now_ms ();
      __atomic_store_n (&c->quitting, true, __ATOMIC_RELEASE);
    }
    if (fds[1].revents & POLLIN)
      (void)!read (c->wake[0], buf, sizeof buf);
    dir = nbd_aio_get_direction (c->nbd);
    if ((dir & LIBNBD_AIO_DIRECTION_READ)
        && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
      nbd_aio_notify_read (c->nbd);
    else if ((dir & LIBNBD_AIO_DIRECTION_WRITE)
             && (fds[0].revents & (POLLOUT | POLLHUP | POLLERR)))
      nbd_aio_notify_write (c->nbd);
    drain (c);
  }
  __atomic_store_n (&c->ended, true, __ATOMIC_RELEASE);
  drain (c);
  return NULL;
}

/* What connected handle NBD offers, into CAPS. */
static int
caps_read (struct nbd_handle *nbd, struct caps *caps)
{
  *caps = (struct caps){
    .size = nbd_get_size (nbd),
    .read_only = nbd_is_read_only (nbd),
    .flush = nbd_can_flush (nbd),
    .rotational = nbd_is_rotational (nbd),
    .trim = nbd_can_trim (nbd),
    .zero = nbd_can_zero (nbd),
    .fast_zero = nbd_can_fast_zero (nbd),
    .fua = nbd_can_fua (nbd),
    .multi_conn = nbd_can_multi_conn (nbd),
    .extents = nbd_can_meta_context (nbd, LIBNBD_CONTEXT_BASE_ALLOCATION),
    .cache = nbd_can_cache (nbd),
    .bs_min = nbd_get_block_size (nbd, LIBNBD_SIZE_MINIMUM),
    .bs_pref = nbd_get_block_size (nbd, LIBNBD_SIZE_PREFERRED),
    .bs_max = nbd_get_block_size (nbd, LIBNBD_SIZE_MAXIMUM)
  };
  if (caps->size == -1 || caps->read_only == -1 || caps->flush == -1
      || caps->rotational == -1 || caps->trim == -1 || caps->zero == -1
      || caps->fast_zero == -1 || caps->fua == -1 || caps->multi_conn == -1
      || caps->extents == -1 || caps->cache == -1) {
    nbdkit_error ("the NBD server at %s: what it offers: %s", target (),
                  nbd_get_error ());
    return -1;
  }
  caps->description = nbd_get_export_description (nbd);
  return 0;
}

/* Whether a server that came back (NOW) offers what it did (WAS):
 * serving other bounds or flags to clients that were told the old
 * ones would be wrong.  0, or -1 with an error naming the difference.
 */
static int
caps_same (const struct caps *was, const struct caps *now)
{
  static const struct {
    const char *name;
    size_t off;
  } flags[] = {
#define F(x) { #x, offsetof (struct caps, x) }
    F (read_only), F (flush), F (rotational), F (trim),    F (zero),
    F (fast_zero), F (fua),   F (multi_conn), F (extents), F (cache),
#undef F
  };

  if (was->size != now->size) {
    nbdkit_error ("the NBD server at %s came back with a size of %" PRIi64
                  " bytes instead of %" PRIi64 ": not serving it",
                  target (), now->size, was->size);
    return -1;
  }
  for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
    int a = *(const int *)((const char *)was + flags[i].off);
    int b = *(const int *)((const char *)now + flags[i].off);
    if (a != b) {
      nbdkit_error ("the NBD server at %s came back with %s=%d instead of "
                    "%d: not serving it",
                    target (), flags[i].name, b, a);
      return -1;
    }
  }
  if (was->bs_min != now->bs_min || was->bs_pref != now->bs_pref
      || was->bs_max != now->bs_max) {
    nbdkit_error ("the NBD server at %s came back with block sizes %" PRIi64
                  "/%" PRIi64 "/%" PRIi64 " instead of %" PRIi64 "/%" PRIi64
                  "/%" PRIi64 ": not serving it",
                  target (), now->bs_min, now->bs_pref, now->bs_max,
                  was->bs_min, was->bs_pref, was->bs_max);
    return -1;
  }
  return 0;
}

/* Start the reader of connected handle NBD; closes NBD on failure. */
static struct conn *
conn_start (struct nbd_handle *nbd)
{
  struct conn *c = calloc (1, sizeof *c);
  int err;

  if (c == NULL) {
    nbdkit_error ("calloc: %m");
    nbd_close (nbd);
    return NULL;
  }
  if (caps_read (nbd, &c->caps) == -1) {
    nbd_close (nbd);
    free (c);
    return NULL;
  }
  c->nbd = nbd;
  c->quit_fd = nbdkit_shutdown_fd ();
  pthread_mutex_init (&c->done_lock, NULL);
  c->done_tail = &c->done;
  c->pending.next = c->pending.prev = &c->pending;
  if (pipe2 (c->wake, O_CLOEXEC | O_NONBLOCK) == -1) {
    nbdkit_error ("pipe2: %m");
    goto fail;
  }
  err = pthread_create (&c->reader, NULL, reader, c);
  if (err) {
    errno = err;
    nbdkit_error ("pthread_create: %m");
    close (c->wake[0]);
    close (c->wake[1]);
    goto fail;
  }
  return c;

fail:
  nbd_close (nbd);
  pthread_mutex_destroy (&c->done_lock);
  free (c->caps.description);
  free (c);
  return NULL;
}

/* Disconnect politely, stop the reader, close. */
static void
conn_stop (struct conn *c)
{
  if (c == NULL)
    return;
  /* A connection we cut: let the reader see its end, so that libnbd
   * fails every command still in flight (whose requests would
   * otherwise never complete) before the handle is closed.
   */
  for (int i = 0; i < 300 && __atomic_load_n (&c->cut, __ATOMIC_ACQUIRE)
                  && !__atomic_load_n (&c->ended, __ATOMIC_ACQUIRE);
       i++) {
    wake_reader (c);
    usleep (10000);
  }
  if (nbd_aio_is_ready (c->nbd) || nbd_aio_is_processing (c->nbd)) {
    nbd_aio_disconnect (c->nbd, 0);
    /* Let the reader send it, and see the server close. */
    for (int i = 0;
         i < 100 && !nbd_aio_is_closed (c->nbd) && !nbd_aio_is_dead (c->nbd);
         i++) {
      wake_reader (c);
      usleep (10000);
    }
  }
  __atomic_store_n (&c->stop, true, __ATOMIC_RELEASE);
  wake_reader (c);
  pthread_join (c->reader, NULL);
  close (c->wake[0]);
  close (c->wake[1]);
  drain (c);
  nbd_close (c->nbd);
  pthread_mutex_destroy (&c->done_lock);
  free (c->caps.description);
  free (c);
}

static const struct nbdkit_param nbd_params[]
    = { { .name = "socket",
          .type = NBDKIT_PARAM_STRING,
          .doc = "Unix socket of the NBD server" },
        { .name = "uri",
          .type = NBDKIT_PARAM_STRING,
          .doc = "NBD URI of the server (nbd://, nbds://, nbd+unix://...)" },
        { .name = "hostname",
          .type = NBDKIT_PARAM_STRING,
          .doc = "host name of the NBD server (TCP)" },
        { .name = "port",
          .type = NBDKIT_PARAM_STRING,
          .doc = "TCP port or service name, or vsock port (default 10809)" },
        { .name = "vsock",
          .type = NBDKIT_PARAM_STRING,
          .doc = "AF_VSOCK CID of the NBD server" },
        { .name = "socket-fd",
          .type = NBDKIT_PARAM_STRING,
          .doc = "inherited file descriptor connected to the NBD server" },
        { .name = "command",
          .type = NBDKIT_PARAM_STRING,
          .doc = "run this NBD server as a subprocess (socket activation)" },
        { .name = "arg",
          .type = NBDKIT_PARAM_LIST,
          .doc = "an argument of command= (repeat in order)" },
        { .name = "export",
          .type = NBDKIT_PARAM_STRING,
          .doc = "export name to ask the server for (default \"\")" },
        { .name = "dynamic-export",
          .type = NBDKIT_PARAM_BOOL,
          .doc = "ask the server for the export name each client asked for" },
        { .name = "shared",
          .type = NBDKIT_PARAM_BOOL,
          .doc = "one connection to the server for all clients" },
        { .name = "retry",
          .type = NBDKIT_PARAM_INT,
          .doc = "if connecting fails, try again N more times, 1 s apart" },
        { .name = "tls",
          .type = NBDKIT_PARAM_ENUM,
          .choices = "off|on|require",
          .doc
          = "TLS to the server (default off, or on with another tls key)" },
        { .name = "tls-certificates",
          .type = NBDKIT_PARAM_DIRECTORY,
          .doc = "directory of X.509 client certificates" },
        { .name = "tls-verify",
          .type = NBDKIT_PARAM_BOOL,
          .doc = "verify the server's certificate (default true)" },
        { .name = "tls-username",
          .type = NBDKIT_PARAM_STRING,
          .doc = "user name to present to the server" },
        { .name = "tls-psk",
          .type = NBDKIT_PARAM_FILE,
          .doc = "file of pre-shared keys" },
        { .name = "timeout",
          .type = NBDKIT_PARAM_INT,
          .doc = "seconds: bound on connecting and the handshake (default "
                 "30), and on the age of each request (default none)" },
        { .name = "async",
          .type = NBDKIT_PARAM_BOOL,
          .default_value = "true",
          .doc = "complete requests asynchronously, without a server "
                 "thread waiting for each (false: one thread per request)" },
        { .name = NULL } };

static int
keep (const char **dest, const char *key, const char *value)
{
  if (*dest) {
    nbdkit_error ("%s= given more than once", key);
    return -1;
  }
  *dest = strdup (value);
  if (*dest == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  return 0;
}

static int
add_arg (const char *value)
{
  char **a = realloc (args, (nargs + 2) * sizeof *a);

  if (a == NULL) {
    nbdkit_error ("realloc: %m");
    return -1;
  }
  args = a;
  args[nargs] = strdup (value);
  if (args[nargs] == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  args[++nargs] = NULL;
  return 0;
}

static int
nbd_config (const char *key, const char *value)
{
  int r;

  if (strcmp (key, "socket") == 0)
    return keep (&sockname, key, value);
  if (strcmp (key, "uri") == 0)
    return keep (&uri, key, value);
  if (strcmp (key, "hostname") == 0)
    return keep (&hostname, key, value);
  if (strcmp (key, "port") == 0)
    return keep (&port, key, value);
  if (strcmp (key, "vsock") == 0)
    return keep (&vsock_cid, key, value);
  if (strcmp (key, "socket-fd") == 0) {
    if (nbdkit_parse_int ("socket-fd", value, &socket_fd) == -1)
      return -1;
    if (socket_fd < 0) {
      nbdkit_error ("socket-fd=%s: must be a file descriptor", value);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "command") == 0) {
    if (keep (&command, key, value) == -1)
      return -1;
    /* The command comes first, before any arg= given earlier. */
    if (add_arg (value) == -1)
      return -1;
    char *c = args[nargs - 1];
    memmove (&args[1], &args[0], (nargs - 1) * sizeof *args);
    args[0] = c;
    return 0;
  }
  if (strcmp (key, "arg") == 0)
    return add_arg (value);
  if (strcmp (key, "export") == 0)
    return keep (&export_name, key, value);
  if (strcmp (key, "dynamic-export") == 0) {
    dynamic_export = strcmp (value, "1") == 0;
    return 0;
  }
  if (strcmp (key, "shared") == 0) {
    shared = strcmp (value, "1") == 0;
    return 0;
  }
  if (strcmp (key, "retry") == 0) {
    if (nbdkit_parse_int ("retry", value, &r) == -1)
      return -1;
    if (r < 0) {
      nbdkit_error ("retry=%s: must not be negative", value);
      return -1;
    }
    retry = r;
    return 0;
  }
  if (strcmp (key, "tls") == 0) {
    if (strcmp (value, "off") == 0)
      tls = LIBNBD_TLS_DISABLE;
    else if (strcmp (value, "on") == 0)
      tls = LIBNBD_TLS_ALLOW;
    else
      tls = LIBNBD_TLS_REQUIRE;
    return 0;
  }
  if (strcmp (key, "tls-certificates") == 0)
    return keep (&tls_certificates, key, value);
  if (strcmp (key, "tls-verify") == 0) {
    tls_verify = strcmp (value, "1") == 0;
    return 0;
  }
  if (strcmp (key, "tls-username") == 0)
    return keep (&tls_username, key, value);
  if (strcmp (key, "tls-psk") == 0)
    return keep (&tls_psk, key, value);
  if (strcmp (key, "timeout") == 0) {
    if (nbdkit_parse_int ("timeout", value, &r) == -1)
      return -1;
    if (r <= 0 || r > 24 * 3600) {
      nbdkit_error ("timeout=%s: must be between 1 and 86400 seconds", value);
      return -1;
    }
    timeout = r;
    return 0;
  }
  if (strcmp (key, "async") == 0) {
    use_async = strcmp (value, "1") == 0;
    return 0;
  }
  nbdkit_error ("unknown parameter %s", key);
  return -1;
}

/* What this libnbd can do (libnbd asks for a handle). */
enum { HAS_TLS, HAS_URI };
static int
libnbd_has (int what)
{
  struct nbd_handle *h = nbd_create ();
  int r = 0;

  if (h) {
    r = what == HAS_TLS ? nbd_supports_tls (h) : nbd_supports_uri (h);
    nbd_close (h);
  }
  return r == 1;
}

static void drop_async (void);

static void target_set (void);

static int
nbd_config_complete (void)
{
  int n = (sockname != NULL) + (uri != NULL) + (hostname != NULL)
          + (vsock_cid != NULL) + (socket_fd >= 0) + (command != NULL);

  if (n != 1) {
    nbdkit_error ("give exactly one of socket=, uri=, hostname=, vsock=, "
                  "socket-fd= and command=");
    return -1;
  }
  if (nargs > 0 && command == NULL) {
    nbdkit_error ("arg= needs command=");
    return -1;
  }
  if (port && hostname == NULL && vsock_cid == NULL) {
    nbdkit_error ("port= needs hostname= or vsock=");
    return -1;
  }
  if (vsock_cid) {
    uint32_t c;
    if (nbdkit_parse_uint32_t ("vsock", vsock_cid, &c) == -1)
      return -1;
    if (port && nbdkit_parse_uint32_t ("port", port, &c) == -1)
      return -1;
  }
  if (uri && export_name) {
    nbdkit_error ("export= cannot be used with uri=: put the export name "
                  "in the URI");
    return -1;
  }
  if (dynamic_export && export_name) {
    nbdkit_error ("export= cannot be used with dynamic-export=true");
    return -1;
  }
  if (command || socket_fd >= 0) {
    if (shared == 0) {
      nbdkit_error ("%s= needs shared=true", command ? "command" : "socket-fd");
      return -1;
    }
    shared = 1;
  }
  if (shared == -1)
    shared = 0;
  if (dynamic_export && shared) {
    nbdkit_error ("dynamic-export=true cannot be used with shared mode "
                  "(shared=true, command= or socket-fd=)");
    return -1;
  }
  if (tls == -1)
    tls = (tls_certificates || tls_verify != -1 || tls_username || tls_psk)
              ? LIBNBD_TLS_ALLOW
              : LIBNBD_TLS_DISABLE;
  if (tls != LIBNBD_TLS_DISABLE && !libnbd_has (HAS_TLS)) {
    nbdkit_error ("tls: this libnbd was built without TLS support");
    return -1;
  }
  if (uri && !libnbd_has (HAS_URI)) {
    nbdkit_error ("uri: this libnbd was built without URI support");
    return -1;
  }
  if (!use_async)
    drop_async ();
  target_set ();
  return 0;
}

static const char *
nbd_config_help (void)
{
  return "Give exactly one of socket=, uri=, hostname=, vsock=, socket-fd= "
         "or command=.\n"
         "timeout=SECONDS bounds connecting and the handshake (default 30 s)\n"
         "and each request: a request the server leaves unanswered that long\n"
         "fails with EIO and the connection to the server is dropped\n"
         "(default: requests wait as long as the server takes).\n"
         "With shared=true, a lost connection is made again by the next\n"
         "request (socket=, uri=, hostname=, vsock=).";
}

static void
nbd_dump_plugin (void)
{
  struct nbd_handle *h = nbd_create ();

  if (h) {
    printf ("libnbd_version=%s\n", nbd_get_version (h));
    nbd_close (h);
  }
  printf ("libnbd_tls=%d\n", libnbd_has (HAS_TLS));
  printf ("libnbd_uri=%d\n", libnbd_has (HAS_URI));
  printf ("libnbd_vsock=1\n");
  printf ("libnbd_dynamic_list=1\n");
}

/* Where we connect to, for messages: set once configured, so that
 * any thread (a completion's too) may name it.
 */
static char target_text[1024];

static void
target_set (void)
{
  const char *p = port ? port : "10809";

  if (sockname)
    snprintf (target_text, sizeof target_text, "socket=%s", sockname);
  else if (uri)
    snprintf (target_text, sizeof target_text, "uri=%s", uri);
  else if (hostname)
    snprintf (target_text, sizeof target_text, "hostname=%s port=%s", hostname,
              p);
  else if (vsock_cid)
    snprintf (target_text, sizeof target_text, "vsock=%s port=%s", vsock_cid,
              p);
  else if (socket_fd >= 0)
    snprintf (target_text, sizeof target_text, "socket-fd=%d", socket_fd);
  else
    snprintf (target_text, sizeof target_text, "command=%s", command);
}

static const char *
target (void)
{
  return target_text;
}

/* Run the state machine of H, from this thread, while it is
 * connecting (the handshake, or an option being negotiated), until
 * DEADLINE (now_ms) or until the server stops.  0 when it is done; -1
 * when H died (libnbd has the error) or, with *WHY set, when we gave up.
 */
static int
run_handshake (struct nbd_handle *h, int64_t deadline, const char **why)
{
  int quit_fd = nbdkit_shutdown_fd ();

  *why = NULL;
  for (;;) {
    struct pollfd fds[2];
    int fd, r;
    unsigned dir;
    int64_t left;

    if (nbd_aio_is_dead (h) || nbd_aio_is_closed (h))
      return -1;
    if (!nbd_aio_is_connecting (h))
      return 0;
    fd = nbd_aio_get_fd (h);
    dir = nbd_aio_get_direction (h);
    if (fd == -1)
      return -1;
    left = deadline - now_ms ();
    if (left <= 0) {
      *why = nbdkit_printf_intern ("no answer within %d s", connect_timeout ());
      return -1;
    }
    fds[0] = (struct pollfd){ .fd = fd };
    if (dir & LIBNBD_AIO_DIRECTION_READ)
      fds[0].events |= POLLIN;
    if (dir & LIBNBD_AIO_DIRECTION_WRITE)
      fds[0].events |= POLLOUT;
    fds[1] = (struct pollfd){ .fd = quit_fd, .events = POLLIN };
    r = poll (fds, quit_fd >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      *why = nbdkit_printf_intern ("poll: %s", strerror (errno));
      return -1;
    }
    if (quit_fd >= 0 && fds[1].revents) {
      *why = "the server is stopping";
      return -1;
    }
    if ((dir & LIBNBD_AIO_DIRECTION_READ)
        && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
      nbd_aio_notify_read (h);
    else if ((dir & LIBNBD_AIO_DIRECTION_WRITE)
             && (fds[0].revents & (POLLOUT | POLLHUP | POLLERR)))
      nbd_aio_notify_write (h);
  }
}

/* The completion of an option (opt_go, opt_list, opt_info). */
static int
opt_done (void *user_data, int *error)
{
  *(int *)user_data = *error;
  return 1;
}

/* Negotiate the option just issued (R: its aio call's result). */
static int
run_option (struct nbd_handle *h, int r, int *err, int64_t deadline,
            const char *op)
{
  const char *why;

  if (r == -1)
    return failed (op);
  if (run_handshake (h, deadline, &why) == -1) {
    if (why) {
      nbdkit_error ("%s: the NBD server at %s: %s", op, target (), why);
      nbdkit_set_error (EIO);
      return -1;
    }
    return failed (op);
  }
  if (*err) {
    nbdkit_error ("%s: the NBD server at %s: %s", op, target (),
                  strerror (*err));
    nbdkit_set_error (*err);
    return -1;
  }
  return 0;
}

/* One attempt: a new handle set up and connected, or NULL.  A failure
 * is an error on the LAST attempt, a debug message before.  With OPT
 * the handle is left in option negotiation (to list the exports).
 */
static struct nbd_handle *
try_connect (const char *name, bool last, bool opt)
{
  struct nbd_handle *h = nbd_create ();
  int64_t deadline = now_ms () + (int64_t)connect_timeout () * 1000;
  const char *why = NULL;
  int r;

  if (h == NULL) {
    nbdkit_error ("nbd_create: %s", nbd_get_error ());
    return NULL;
  }
  if (nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1
      || nbd_set_tls (h, tls) == -1
      || (tls_certificates
          && nbd_set_tls_certificates (h, tls_certificates) == -1)
      || (tls_verify != -1 && nbd_set_tls_verify_peer (h, tls_verify) == -1)
      || (tls_username && nbd_set_tls_username (h, tls_username) == -1)
      || (tls_psk && nbd_set_tls_psk_file (h, tls_psk) == -1))
    goto err;
  if (!uri && nbd_set_export_name (h, name) == -1)
    goto err;
  /* The URI comes from the command line: its tls-psk-file may be used. */
  if (uri && nbd_set_uri_allow_local_file (h, true) == -1)
    goto err;
  /* With a URI and a client's export name, go through option mode to
   * replace the URI's export name before NBD_OPT_GO.
   */
  if ((opt || (uri && dynamic_export)) && nbd_set_opt_mode (h, true) == -1)
    goto err;

  /* Connecting with libnbd's aio calls, running the handshake here,
   * bounds it in time and lets a stopping server abandon it.
   */
  if (sockname)
    r = nbd_aio_connect_unix (h, sockname);
  else if (uri)
    r = nbd_aio_connect_uri (h, uri);
  else if (hostname)
    r = nbd_aio_connect_tcp (h, hostname, port ? port : "10809");
  else if (vsock_cid) {
    uint32_t cid, p = 10809;
    nbdkit_parse_uint32_t ("vsock", vsock_cid, &cid);
    if (port)
      nbdkit_parse_uint32_t ("port", port, &p);
    r = nbd_aio_connect_vsock (h, cid, p);
  } else if (socket_fd >= 0)
    r = nbd_aio_connect_socket (h, socket_fd);
  else
    r = nbd_aio_connect_systemd_socket_activation (h, args);
  if (r == -1 || run_handshake (h, deadline, &why) == -1)
    goto err;
  if (!opt && uri && dynamic_export) {
    int e = 0;
    nbd_completion_callback cb = { .callback = opt_done, .user_data = &e };
    if (nbd_set_export_name (h, name) == -1 || nbd_aio_opt_go (h, cb) == -1
        || run_handshake (h, deadline, &why) == -1)
      goto err;
    if (e || !nbd_aio_is_ready (h)) {
      why = nbdkit_printf_intern ("export %s: %s", name,
                                  strerror (e ? e : EINVAL));
      goto err;
    }
  }
  if (!nbd_aio_is_ready (h) && !(opt && nbd_aio_is_negotiating (h)))
    goto err;
  return h;

err:
  if (why == NULL)
    why = nbd_get_error ();
  if (why == NULL)
    why = "the handshake failed";
  if (last)
    nbdkit_error ("cannot connect to the NBD server at %s: %s", target (), why);
  else
    nbdkit_debug ("cannot connect to the NBD server at %s: %s", target (), why);
  nbd_close (h);
  return NULL;
}

static struct nbd_handle *
connect_server (const char *name, bool opt)
{
  for (int i = 0;; i++) {
    struct nbd_handle *h = try_connect (name, i >= retry, opt);
    if (h || i >= retry)
      return h;
    nbdkit_debug ("nbd: retrying the connection to %s (%d of %d)", target (),
                  i + 1, retry);
    if (nbdkit_nanosleep (1, 0) == -1)
      return NULL;
  }
}

static int
nbd_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static int
nbd_after_fork (void)
{
  if (!shared)
    return 0;
  struct nbd_handle *nbd
      = connect_server (export_name ? export_name : "", false);
  if (nbd == NULL)
    return -1;
  shared_conn = conn_start (nbd);
  if (shared_conn == NULL)
    return -1;
  shared_conn->refs = 1;
  shared_caps = shared_conn->caps;
  if (shared_caps.description) {
    shared_caps.description = strdup (shared_caps.description);
    if (shared_caps.description == NULL) {
      nbdkit_error ("strdup: %m");
      return -1;
    }
  }
  return 0;
}

/* The shared connection can be made again only to a server we find by
 * address.  A socket-fd= is used up.  A command= is not run again: it
 * may serve a disk that does not outlive it (a RAM disk, a temporary
 * overlay), and a fresh one of the same size would be served as if it
 * were the old one.
 */
static bool
can_reconnect (void)
{
  return sockname || uri || hostname || vsock_cid;
}

/* Shared mode: drop a reference to C (never from C's reader). */
static void
conn_put (struct conn *c)
{
  bool last;

  if (c == NULL || !shared)
    return;
  pthread_mutex_lock (&shared_lock);
  last = --c->refs == 0;
  pthread_mutex_unlock (&shared_lock);
  if (last)
    conn_stop (c);
}

static bool
conn_lost (struct conn *c)
{
  return __atomic_load_n (&c->ended, __ATOMIC_ACQUIRE)
         || __atomic_load_n (&c->cut, __ATOMIC_ACQUIRE) != CUT_NONE
         || nbd_aio_is_dead (c->nbd) || nbd_aio_is_closed (c->nbd);
}

/* Connect to the shared server again; the new conn, or NULL. */
static struct conn *
reconnect (void)
{
  struct nbd_handle *nbd;
  struct conn *c;

  nbdkit_debug ("nbd: connecting again to the NBD server at %s", target ());
  nbd = connect_server (export_name ? export_name : "", false);
  if (nbd == NULL)
    return NULL;
  c = conn_start (nbd);
  if (c && caps_same (&shared_caps, &c->caps) == -1) {
    conn_stop (c);
    return NULL;
  }
  if (c)
    nbdkit_debug ("nbd: connected again to the NBD server at %s", target ());
  return c;
}

/* The connection for a request OP of H, with a reference (conn_put
 * when done), or NULL with an error (EIO).  In shared mode, after the
 * connection was lost the next request connects again; requests that
 * come meanwhile wait for that attempt and share its outcome (failing
 * with EIO if it failed), so that one attempt is made at a time.
 */
static struct conn *
conn_get (struct handle *h, const char *op)
{
  struct conn *c, *old;
  bool waited = false;

  if (!shared)
    return h->c;
  pthread_mutex_lock (&shared_lock);
  for (;;) {
    c = shared_conn;
    if (c && !conn_lost (c)) {
      c->refs++;
      pthread_mutex_unlock (&shared_lock);
      return c;
    }
    if (!reconnecting)
      break;
    while (reconnecting)
      pthread_cond_wait (&shared_cond, &shared_lock);
    waited = true;
  }
  if (waited || !can_reconnect ()
      || (c && __atomic_load_n (&c->quitting, __ATOMIC_ACQUIRE))) {
    pthread_mutex_unlock (&shared_lock);
    nbdkit_error ("%s: the connection to the NBD server at %s is lost%s", op,
                  target (),
                  waited             ? " and connecting again failed"
                  : can_reconnect () ? ""
                                     : " (it cannot be made again)");
    nbdkit_set_error (EIO);
    return NULL;
  }
  reconnecting = true;
  old = shared_conn;
  shared_conn = NULL;
  pthread_mutex_unlock (&shared_lock);

  conn_put (old);
  c = reconnect ();

  pthread_mutex_lock (&shared_lock);
  shared_conn = c;
  if (c)
    c->refs = 2; /* shared_conn's and ours */
  reconnecting = false;
  pthread_cond_broadcast (&shared_cond);
  pthread_mutex_unlock (&shared_lock);
  if (c == NULL) {
    nbdkit_error ("%s: the connection to the NBD server at %s is lost and "
                  "connecting again failed",
                  op, target ());
    nbdkit_set_error (EIO);
  }
  return c;
}

static void
nbd_unload (void)
{
  conn_stop (shared_conn);
  free (shared_caps.description);
  free ((char *)sockname);
  free ((char *)uri);
  free ((char *)hostname);
  free ((char *)port);
  free ((char *)vsock_cid);
  free ((char *)command);
  free ((char *)export_name);
  free ((char *)tls_certificates);
  free ((char *)tls_username);
  free ((char *)tls_psk);
  for (size_t i = 0; i < nargs; i++)
    free (args[i]);
  free (args);
}

static int
add_listed (void *user_data, const char *name, const char *description)
{
  return nbdkit_add_export (user_data, name, description);
}

/* With dynamic-export, the server's own list; otherwise the one export. */
static int
nbd_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  struct nbd_handle *h;
  nbd_list_callback cb = { .callback = add_listed, .user_data = exports };
  int r;

  if (!dynamic_export)
    return nbdkit_use_default_export (exports);
  int e = 0;
  nbd_completion_callback done = { .callback = opt_done, .user_data = &e };

  h = connect_server ("", true);
  if (h == NULL)
    return -1;
  r = run_option (h, nbd_aio_opt_list (h, cb, done), &e,
                  now_ms () + (int64_t)connect_timeout () * 1000,
                  "list of exports");
  if (nbd_aio_is_negotiating (h))
    nbd_aio_opt_abort (h);
  nbd_close (h);
  return r == -1 ? -1 : 0;
}

/* With dynamic-export, the server's own name for its default export
 * (NBD_INFO_NAME), as it would answer a client asking directly.
 */
static const char *
nbd_default_export (int readonly, int is_tls)
{
  struct nbd_handle *h;
  const char *name = "";
  char *canonical;

  if (!dynamic_export)
    return "";
  int e = 0;
  nbd_completion_callback done = { .callback = opt_done, .user_data = &e };

  h = connect_server ("", true);
  if (h == NULL)
    return NULL;
  if (nbd_set_full_info (h, true) == -1) {
    failed ("information about the default export");
    name = NULL;
  } else if (run_option (h, nbd_aio_opt_info (h, done), &e,
                         now_ms () + (int64_t)connect_timeout () * 1000,
                         "information about the default export")
             == -1)
    name = NULL;
  else if ((canonical = nbd_get_canonical_export_name (h)) != NULL) {
    name = nbdkit_strdup_intern (canonical);
    free (canonical);
  }
  if (nbd_aio_is_negotiating (h))
    nbd_aio_opt_abort (h);
  nbd_close (h);
  return name;
}

static void *
nbd_open (int readonly, const char *exportname, int is_tls)
{
  struct handle *h = malloc (sizeof *h);

  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  /* Shared: what the server offered at start, whether or not the
   * connection is up now (a request connects again if it is not).
   */
  if (shared) {
    h->c = NULL;
    h->caps = &shared_caps;
    return h;
  }
  struct nbd_handle *nbd = connect_server (dynamic_export ? exportname
                                           : export_name  ? export_name
                                                          : "",
                                           false);
  h->c = nbd ? conn_start (nbd) : NULL;
  if (h->c == NULL) {
    free (h);
    return NULL;
  }
  h->caps = &h->c->caps;
  return h;
}

static void
nbd_close_handle (void *handle)
{
  struct handle *h = handle;

  if (!shared)
    conn_stop (h->c);
  free (h);
}

/* Report libnbd's last error for OP, with its errno. */
static int
failed (const char *op)
{
  int err = nbd_get_errno ();

  nbdkit_error ("%s: the NBD server at %s: %s", op, target (),
                nbd_get_error ());
  nbdkit_set_error (err ? err : EIO);
  return -1;
}

static int64_t
nbd_get_size_cb (void *handle)
{
  return ((struct handle *)handle)->caps->size;
}

static const char *
nbd_export_description (void *handle)
{
  const char *d = ((struct handle *)handle)->caps->description;

  return d ? nbdkit_strdup_intern (d) : NULL;
}

static int
nbd_block_size_cb (void *handle, struct nbdkit_block_size *bs)
{
  const struct caps *c = ((struct handle *)handle)->caps;
  int64_t mn = c->bs_min, pr = c->bs_pref, mx = c->bs_max;

  /* Pass them on only when the server gave a usable set, bringing the
   * preferred size into the range our clients may be told.
   */
  if (mn <= 0 || pr <= 0 || mx <= 0 || mn > 65536 || (mn & (mn - 1)) != 0
      || (pr & (pr - 1)) != 0)
    return 0;
  if (pr < 512)
    pr = 512;
  if (pr < mn)
    pr = mn;
  if (pr > 32 * 1024 * 1024)
    pr = 32 * 1024 * 1024;
  mx = mx / mn * mn;
  if (mx < mn)
    return 0;
  bs->minimum = mn;
  bs->preferred = pr;
  bs->maximum = mx;
  return 0;
}

#define CAP(handle, x) (((struct handle *)(handle))->caps->x)

static int
nbd_can_write (void *handle)
{
  return !CAP (handle, read_only);
}

static int
nbd_can_flush_cb (void *handle)
{
  return CAP (handle, flush);
}

static int
nbd_is_rotational_cb (void *handle)
{
  return CAP (handle, rotational);
}

static int
nbd_can_trim_cb (void *handle)
{
  return CAP (handle, trim);
}

static int
nbd_can_zero_cb (void *handle)
{
  return CAP (handle, zero) ? NBDKIT_ZERO_NATIVE : NBDKIT_ZERO_EMULATE;
}

static int
nbd_can_fast_zero_cb (void *handle)
{
  return CAP (handle, fast_zero);
}

static int
nbd_can_fua_cb (void *handle)
{
  return CAP (handle, fua) ? NBDKIT_FUA_NATIVE : NBDKIT_FUA_NONE;
}

static int
nbd_can_multi_conn_cb (void *handle)
{
  return CAP (handle, multi_conn);
}

static int
nbd_can_extents_cb (void *handle)
{
  return CAP (handle, extents) ? NBDKIT_EXTENTS_NATIVE : NBDKIT_EXTENTS_EMULATE;
}

static int
nbd_can_cache_cb (void *handle)
{
  return CAP (handle, cache) ? NBDKIT_CACHE_NATIVE : NBDKIT_CACHE_NONE;
}

/* One request in flight: the issuing thread waits on DONE.  The
 * reader thread runs the callbacks, so holes and extents are collected
 * here and handed to the server by the issuing thread afterwards.
 */
struct range {
  uint64_t offset, length;
  uint32_t type;
};

struct txn {
  struct pend p;
  struct conn *c;
  sem_t done;
  int err;         /* from the server (or libnbd) */
  struct range *r; /* holes (pread) or extents (block status) */
  size_t n, cap;
  int oom;
};

/* libnbd's errno for a command.  The server answers EIO for a lost
 * connection (ENOTCONN, ECONNRESET, EPIPE: core/request.c); ESHUTDOWN,
 * libnbd's word for a connection it closed, would tell our client that
 * this server is shutting down, so it is an I/O error too.
 */
static int
cmd_errno (int err)
{
  return err == ESHUTDOWN ? EIO : err;
}

static int
txn_done (void *user_data, int *error)
{
  struct txn *t = user_data;

  t->err = *error;
  pend_del (t->c, &t->p);
  sem_post (&t->done);
  return 1;
}

static int
txn_add (struct txn *t, uint64_t offset, uint64_t length, uint32_t type)
{
  if (t->n == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 16;
    struct range *r = realloc (t->r, cap * sizeof *r);
    if (r == NULL) {
      t->oom = 1;
      return -1;
    }
    t->r = r;
    t->cap = cap;
  }
  t->r[t->n++] = (struct range){ offset, length, type };
  return 0;
}

/* After issuing a command: libnbd sends what it can at once, from the
 * issuing thread; the reader polls only for replies unless woken to
 * send the rest.
 */
static void
kick (struct conn *c)
{
  /* With a clock to run (timeout=, or stopping), the reader must see
   * the request too.
   */
  if ((nbd_aio_get_direction (c->nbd) & LIBNBD_AIO_DIRECTION_WRITE)
      || timeout > 0 || __atomic_load_n (&c->quitting, __ATOMIC_ACQUIRE))
    wake_reader (c);
}

/* The error of a command that failed with ERR, naming OP. */
static void
report (struct conn *c, const char *op, int err)
{
  switch (__atomic_load_n (&c->cut, __ATOMIC_ACQUIRE)) {
    case CUT_TIMEOUT:
      nbdkit_error ("%s: no answer from the NBD server at %s within "
                    "timeout=%d s",
                    op, target (), timeout);
      break;
    case CUT_STOP:
      nbdkit_error ("%s: abandoned, the server is stopping and the NBD "
                    "server at %s has not answered",
                    op, target ());
      break;
    default:
      nbdkit_error ("%s: the NBD server at %s: %s", op, target (),
                    strerror (err));
  }
}

/* Wait for the command of COOKIE (-1: it was not issued). */
static int
txn_wait (struct conn *c, struct txn *t, int64_t cookie, const char *op)
{
  if (cookie == -1) {
    pend_del (c, &t->p);
    if (nbd_aio_is_dead (c->nbd) || nbd_aio_is_closed (c->nbd)) {
      nbdkit_error ("%s: the connection to the NBD server at %s is lost", op,
                    target ());
      nbdkit_set_error (EIO);
      return -1;
    }
    failed (op);
    return -1;
  }
  kick (c);
  while (sem_wait (&t->done) == -1 && errno == EINTR)
    ;
  if (t->err) {
    report (c, op, t->err);
    nbdkit_set_error (cmd_errno (t->err));
    return -1;
  }
  if (t->oom) {
    nbdkit_error ("%s: out of memory", op);
    nbdkit_set_error (ENOMEM);
    return -1;
  }
  return 0;
}

/* Before issuing a command on C: it is in flight from now on. */
static void
txn_init (struct txn *t, struct conn *c)
{
  *t = (struct txn){ .c = c };
  sem_init (&t->done, 0, 0);
  pend_add (c, &t->p);
}

static void
txn_free (struct txn *t)
{
  sem_destroy (&t->done);
  free (t->r);
  conn_put (t->c);
}

#define COMPLETION(t)                                                          \
  ((nbd_completion_callback){ .callback = txn_done, .user_data = (t) })

/* Structured read chunks: holes become holes for our client.  libnbd
 * has already put the data (or zeroes, for a hole) in the buffer.
 */
static int
read_chunk (void *user_data, const void *subbuf, size_t count, uint64_t offset,
            unsigned status, int *error)
{
  struct txn *t = user_data;

  if (status == LIBNBD_READ_HOLE)
    txn_add (t, offset, count, 0);
  return 0;
}

static int
nbd_pread_cb (void *handle, void *buf, uint64_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_read *rd)
{
  struct conn *c = conn_get (handle, "pread");
  struct txn t;
  int r;

  if (c == NULL)
    return -1;
  txn_init (&t, c);
  nbd_chunk_callback cb = { .callback = read_chunk, .user_data = &t };
  r = txn_wait (c, &t,
                nbd_aio_pread_structured (c->nbd, buf, count, offset, cb,
                                          COMPLETION (&t), 0),
                "pread");
  for (size_t i = 0; r == 0 && rd && i < t.n; i++)
    r = nbdkit_read_hole (rd, t.r[i].offset, t.r[i].length);
  txn_free (&t);
  return r;
}

static uint32_t
lflags (uint32_t flags)
{
  uint32_t f = 0;

  if (flags & NBDKIT_FLAG_FUA)
    f |= LIBNBD_CMD_FLAG_FUA;
  if (flags & NBDKIT_FLAG_FAST_ZERO)
    f |= LIBNBD_CMD_FLAG_FAST_ZERO;
  if (flags & NBDKIT_FLAG_REQ_ONE)
    f |= LIBNBD_CMD_FLAG_REQ_ONE;
  return f;
}

static int
nbd_pwrite_cb (void *handle, const void *buf, uint64_t count, uint64_t offset,
               uint32_t flags)
{
  struct conn *c = conn_get (handle, "pwrite");
  struct txn t;
  int r;

  if (c == NULL)
    return -1;
  txn_init (&t, c);
  r = txn_wait (c, &t,
                nbd_aio_pwrite (c->nbd, buf, count, offset, COMPLETION (&t),
                                lflags (flags)),
                "pwrite");
  txn_free (&t);
  return r;
}

static int
nbd_flush_cb (void *handle, uint32_t flags)
{
  struct conn *c = conn_get (handle, "flush");
  struct txn t;
  int r;

  if (c == NULL)
    return -1;
  txn_init (&t, c);
  r = txn_wait (c, &t, nbd_aio_flush (c->nbd, COMPLETION (&t), 0), "flush");
  txn_free (&t);
  return r;
}

static int
nbd_trim_cb (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct conn *c = conn_get (handle, "trim");
  struct txn t;
  int r;

  if (c == NULL)
    return -1;
  txn_init (&t, c);
  r = txn_wait (
      c, &t,
      nbd_aio_trim (c->nbd, count, offset, COMPLETION (&t), lflags (flags)),
      "trim");
  txn_free (&t);
  return r;
}

static int
nbd_zero_cb (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct conn *c = conn_get (handle, "zero");
  uint32_t f = lflags (flags);
  struct txn t;
  int r;

  if (c == NULL)
    return -1;
  if (!(flags & NBDKIT_FLAG_MAY_TRIM))
    f |= LIBNBD_CMD_FLAG_NO_HOLE;
  txn_init (&t, c);
  r = txn_wait (c, &t, nbd_aio_zero (c->nbd, count, offset, COMPLETION (&t), f),
                "zero");
  txn_free (&t);
  return r;
}

static int
nbd_cache_cb (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct conn *c = conn_get (handle, "cache");
  struct txn t;
  int r;

  if (c == NULL)
    return -1;
  txn_init (&t, c);
  r = txn_wait (c, &t,
                nbd_aio_cache (c->nbd, count, offset, COMPLETION (&t), 0),
                "cache");
  txn_free (&t);
  return r;
}

static int
got_extents (void *user_data, const char *metacontext, uint64_t offset,
             uint32_t *entries, size_t nr_entries, int *error)
{
  struct txn *t = user_data;

  if (strcmp (metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  for (size_t i = 0; i + 1 < nr_entries; i += 2) {
    uint32_t type = 0;
    if (entries[i + 1] & LIBNBD_STATE_HOLE)
      type |= NBDKIT_EXTENT_HOLE;
    if (entries[i + 1] & LIBNBD_STATE_ZERO)
      type |= NBDKIT_EXTENT_ZERO;
    if (txn_add (t, offset, entries[i], type) == -1)
      return 0; /* reported when the command completes */
    offset += entries[i];
  }
  return 0;
}

static int
nbd_extents_cb (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
                struct nbdkit_extents *extents)
{
  struct conn *c = conn_get (handle, "block_status");
  struct txn t;
  int r;

  if (c == NULL)
    return -1;
  /* One request covers less than 4G: ask for 2G (a multiple of any
   * block size), the client asks again for the rest.
   */
  if (count > UINT32_MAX)
    count = UINT64_C (1) << 31;
  txn_init (&t, c);
  nbd_extent_callback cb = { .callback = got_extents, .user_data = &t };
  r = txn_wait (c, &t,
                nbd_aio_block_status (
                    c->nbd, count, offset, cb, COMPLETION (&t),
                    flags & NBDKIT_FLAG_REQ_ONE ? LIBNBD_CMD_FLAG_REQ_ONE : 0),
                "block_status");
  for (size_t i = 0; r == 0 && i < t.n; i++)
    r = nbdkit_add_extent (extents, t.r[i].offset, t.r[i].length, t.r[i].type);
  txn_free (&t);
  return r;
}

/* ---- asynchronous completion ----
 *
 * The same commands, but no server thread waits.  libnbd runs its
 * callbacks with the handle locked, and completing a request sends
 * its reply, which may wait for our client: so the completion
 * callback only queues the request on the conn, and whoever called
 * into libnbd (the reader after each notify, an issuing thread after
 * its aio call) completes the queue once out.  Holes and extents go to
 * the server as they arrive, from the chunk and extent callbacks,
 * before the completion.
 */
struct aop {
  struct pend p;
  struct aop *next;
  struct conn *c;
  struct nbdkit_completion *done;
  struct nbdkit_read *rd;
  struct nbdkit_extents *e;
  const char *op;
  int err;     /* from a chunk or extent callback, then the command's */
  bool queued; /* completed by libnbd: to be queued once freed */
};

static int
aop_done (void *user_data, int *error)
{
  struct aop *a = user_data;

  if (*error)
    a->err = *error;
  a->queued = true;
  return 1;
}

/* libnbd is done with the aop (it calls this after aop_done, or alone
 * for a command it did not take): queue it, or free it.
 */
static void
aop_free (void *user_data)
{
  struct aop *a = user_data;
  struct conn *c = a->c;

  pend_del (c, &a->p);
  if (!a->queued) {
    free (a);
    return;
  }
  a->next = NULL;
  pthread_mutex_lock (&c->done_lock);
  *c->done_tail = a;
  c->done_tail = &a->next;
  pthread_mutex_unlock (&c->done_lock);
}

/* Complete what libnbd completed, in the order it did. */
static void
drain (struct conn *c)
{
  struct aop *a;

  pthread_mutex_lock (&c->done_lock);
  a = c->done;
  c->done = NULL;
  c->done_tail = &c->done;
  pthread_mutex_unlock (&c->done_lock);
  while (a) {
    struct aop *next = a->next;
    if (a->err)
      report (c, a->op, a->err);
    nbdkit_complete (a->done, cmd_errno (a->err));
    free (a);
    a = next;
  }
}

/* A new aop for a command about to be issued on the conn of H, or
 * NULL (then the request fails at once).
 */
static struct aop *
aop_new (struct handle *h, struct nbdkit_completion *done, const char *op)
{
  struct conn *c = conn_get (h, op);
  struct aop *a;

  if (c == NULL)
    return NULL;
  a = calloc (1, sizeof *a);
  if (a == NULL) {
    nbdkit_error ("calloc: %m");
    conn_put (c);
    return NULL;
  }
  a->c = c;
  a->done = done;
  a->op = op;
  pend_add (c, &a->p);
  return a;
}

#define ACOMPLETION(a)                                                         \
  ((nbd_completion_callback){                                                  \
      .callback = aop_done, .user_data = (a), .free = aop_free })

/* After issuing: COOKIE -1 means libnbd did not take the command (and
 * has freed the aop): fail at once, as the synchronous way does.
 */
static int
issued (struct conn *c, int64_t cookie, const char *op)
{
  int r = 0;

  drain (c);
  if (cookie == -1) {
    if (nbd_aio_is_dead (c->nbd) || nbd_aio_is_closed (c->nbd)) {
      nbdkit_error ("%s: the connection to the NBD server at %s is lost", op,
                    target ());
      nbdkit_set_error (EIO);
      r = -1;
    } else
      r = failed (op);
  } else
    kick (c);
  conn_put (c);
  return r;
}

static int
async_read_chunk (void *user_data, const void *subbuf, size_t count,
                  uint64_t offset, unsigned status, int *error)
{
  struct aop *a = user_data;

  if (status == LIBNBD_READ_HOLE && a->rd
      && nbdkit_read_hole (a->rd, offset, count) == -1)
    a->err = errno ? errno : EIO;
  return 0;
}

static int
nbd_async_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
                 uint32_t flags, struct nbdkit_read *rd,
                 struct nbdkit_completion *done)
{
  struct handle *h = handle;
  struct conn *c;
  struct aop *a = aop_new (h, done, "pread");

  if (a == NULL)
    return -1;
  c = a->c;
  a->rd = rd;
  nbd_chunk_callback cb = { .callback = async_read_chunk, .user_data = a };
  return issued (c,
                 nbd_aio_pread_structured (c->nbd, buf, count, offset, cb,
                                           ACOMPLETION (a), 0),
                 "pread");
}

static int
nbd_async_pwrite (void *handle, const void *buf, uint64_t count,
                  uint64_t offset, uint32_t flags,
                  struct nbdkit_completion *done)
{
  struct handle *h = handle;
  struct conn *c;
  struct aop *a = aop_new (h, done, "pwrite");

  if (a == NULL)
    return -1;
  c = a->c;
  return issued (c,
                 nbd_aio_pwrite (c->nbd, buf, count, offset, ACOMPLETION (a),
                                 lflags (flags)),
                 "pwrite");
}

static int
nbd_async_flush (void *handle, uint32_t flags, struct nbdkit_completion *done)
{
  struct handle *h = handle;
  struct conn *c;
  struct aop *a = aop_new (h, done, "flush");

  if (a == NULL)
    return -1;
  c = a->c;
  return issued (c, nbd_aio_flush (c->nbd, ACOMPLETION (a), 0), "flush");
}

static int
nbd_async_trim (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
                struct nbdkit_completion *done)
{
  struct handle *h = handle;
  struct conn *c;
  struct aop *a = aop_new (h, done, "trim");

  if (a == NULL)
    return -1;
  c = a->c;
  return issued (
      c, nbd_aio_trim (c->nbd, count, offset, ACOMPLETION (a), lflags (flags)),
      "trim");
}

static int
nbd_async_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
                struct nbdkit_completion *done)
{
  struct handle *h = handle;
  struct conn *c;
  uint32_t f = lflags (flags);
  struct aop *a = aop_new (h, done, "zero");

  if (a == NULL)
    return -1;
  c = a->c;
  if (!(flags & NBDKIT_FLAG_MAY_TRIM))
    f |= LIBNBD_CMD_FLAG_NO_HOLE;
  return issued (c, nbd_aio_zero (c->nbd, count, offset, ACOMPLETION (a), f),
                 "zero");
}

static int
async_extents_cb (void *user_data, const char *metacontext, uint64_t offset,
                  uint32_t *entries, size_t nr_entries, int *error)
{
  struct aop *a = user_data;

  if (strcmp (metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  for (size_t i = 0; i + 1 < nr_entries && a->err == 0; i += 2) {
    uint32_t type = 0;
    if (entries[i + 1] & LIBNBD_STATE_HOLE)
      type |= NBDKIT_EXTENT_HOLE;
    if (entries[i + 1] & LIBNBD_STATE_ZERO)
      type |= NBDKIT_EXTENT_ZERO;
    if (nbdkit_add_extent (a->e, offset, entries[i], type) == -1)
      a->err = errno ? errno : EIO;
    offset += entries[i];
  }
  return 0;
}

static int
nbd_async_extents (void *handle, uint64_t count, uint64_t offset,
                   uint32_t flags, struct nbdkit_extents *extents,
                   struct nbdkit_completion *done)
{
  struct handle *h = handle;
  struct conn *c;
  struct aop *a = aop_new (h, done, "block_status");

  if (a == NULL)
    return -1;
  c = a->c;
  a->e = extents;
  if (count > UINT32_MAX)
    count = UINT64_C (1) << 31;
  nbd_extent_callback cb = { .callback = async_extents_cb, .user_data = a };
  return issued (c,
                 nbd_aio_block_status (
                     c->nbd, count, offset, cb, ACOMPLETION (a),
                     flags & NBDKIT_FLAG_REQ_ONE ? LIBNBD_CMD_FLAG_REQ_ONE : 0),
                 "block_status");
}

static struct nbdkit_plugin plugin = {
  .name = "nbd",
  .longname = "nbdkit nbd plugin",
  .version = "1.0",
  .description = "proxy to another NBD server",
  .params = nbd_params,
  .magic_config_key = "uri",
  .config = nbd_config,
  .config_complete = nbd_config_complete,
  .config_help = nbd_config_help,
  .dump_plugin = nbd_dump_plugin,
  .thread_model = nbd_thread_model,
  .after_fork = nbd_after_fork,
  .list_exports = nbd_list_exports,
  .default_export = nbd_default_export,
  .unload = nbd_unload,
  .open = nbd_open,
  .close = nbd_close_handle,
  .get_size = nbd_get_size_cb,
  .export_description = nbd_export_description,
  .block_size = nbd_block_size_cb,
  .can_write = nbd_can_write,
  .can_flush = nbd_can_flush_cb,
  .is_rotational = nbd_is_rotational_cb,
  .can_trim = nbd_can_trim_cb,
  .can_zero = nbd_can_zero_cb,
  .can_fast_zero = nbd_can_fast_zero_cb,
  .can_fua = nbd_can_fua_cb,
  .can_multi_conn = nbd_can_multi_conn_cb,
  .can_extents = nbd_can_extents_cb,
  .can_cache = nbd_can_cache_cb,
  .pread = nbd_pread_cb,
  .pwrite = nbd_pwrite_cb,
  .flush = nbd_flush_cb,
  .trim = nbd_trim_cb,
  .zero = nbd_zero_cb,
  .extents = nbd_extents_cb,
  .cache = nbd_cache_cb,
  .async_pread = nbd_async_pread,
  .async_pwrite = nbd_async_pwrite,
  .async_flush = nbd_async_flush,
  .async_trim = nbd_async_trim,
  .async_zero = nbd_async_zero,
  .async_extents = nbd_async_extents,
};

/* async=false: the server waits for each request on a thread, as
 * before asynchronous completion (kept to compare the two).
 */
static void
drop_async (void)
{
  plugin.async_pread = NULL;
  plugin.async_pwrite = NULL;
  plugin.async_flush = NULL;
  plugin.async_trim = NULL;
  plugin.async_zero = NULL;
  plugin.async_extents = NULL;
}

NBDKIT_REGISTER_PLUGIN (plugin)
