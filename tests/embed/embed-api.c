/* embed-api.c: <nbdkit-server.h> from a program, checked with libnbd.
 *
 *  - errors are returned with a message naming what was wrong, and the
 *    process goes on: an unknown plugin, a bad parameter, options an
 *    embedded server refuses, running an unconfigured server, a socket
 *    that cannot be bound;
 *  - two servers with different plugins run at once in one process:
 *    memory on a Unix socket, pattern on an ephemeral TCP port, each
 *    in a thread of its own; their sizes and bytes are their own;
 *  - two servers with the same plugin keep apart: each its own size and
 *    data (the second gets a private copy of the plugin's object);
 *  - filters, their key=value parameters and options are the command
 *    line's words (--filter=offset ... offset=4096, -r, -U -);
 *  - a server serves a given connected socket (--fd), in its thread;
 *  - a server runs in the caller's thread until another thread stops it.
 *
 * Plugins come from the build tree (NBDKIT_PLUGINDIR, set by ctest).
 * Exit 0 pass, 1 fail, 77 skip.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libnbd.h>
#include <nbdkit-server.h>

static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf (stderr, "embed-api: FAIL line %d: ", __LINE__);                 \
      fprintf (stderr, __VA_ARGS__);                                           \
      fprintf (stderr, "\n");                                                  \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* Configuring with WORDS fails, and the message contains WANT. */
static void
configure_fails (const char *const *words, const char *want)
{
  nbdkit_server *srv = nbdkit_server_new ();

  CHECK (srv != NULL, "nbdkit_server_new: %m");
  if (srv == NULL)
    return;
  CHECK (nbdkit_server_configure (srv, words) == -1,
         "configure with %s succeeded", words[0] ? words[0] : "(nothing)");
  CHECK (strstr (nbdkit_server_error (srv), want) != NULL,
         "error '%s' does not mention '%s'", nbdkit_server_error (srv), want);
  CHECK (nbdkit_server_run (srv) == -1, "an unconfigured server ran");
  nbdkit_server_free (srv);
}

static nbdkit_server *
start (const char *const *words)
{
  nbdkit_server *srv = nbdkit_server_new ();

  if (srv == NULL || nbdkit_server_configure (srv, words) == -1
      || nbdkit_server_start (srv) == -1) {
    CHECK (0, "start %s: %s", words[0], srv ? nbdkit_server_error (srv) : "");
    nbdkit_server_free (srv);
    return NULL;
  }
  return srv;
}

static struct nbd_handle *
connect_uri (const char *uri)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL || nbd_connect_uri (h, uri) == -1) {
    CHECK (0, "connect %s: %s", uri, nbd_get_error ());
    if (h)
      nbd_close (h);
    return NULL;
  }
  return h;
}

/* The pattern plugin's bytes: each 8-byte word is its offset, big
 * endian.
 */
static void
check_pattern (struct nbd_handle *h, uint64_t offset)
{
  unsigned char buf[16];

  CHECK (nbd_pread (h, buf, sizeof buf, offset, 0) == 0, "pattern pread: %s",
         nbd_get_error ());
  for (int w = 0; w < 2; w++) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
      v = v << 8 | buf[w * 8 + i];
    CHECK (v == offset + w * 8, "pattern at %llu: %llu",
           (unsigned long long)(offset + w * 8), (unsigned long long)v);
  }
}

struct stopper {
  nbdkit_server *srv;
  const char *sock;
  int ok;
};

/* From another thread: use the server running in the main thread,
 * then stop it.
 */
static void *
use_then_stop (void *arg)
{
  struct stopper *st = arg;
  char uri[512];
  struct nbd_handle *h = NULL;

  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s", st->sock);
  for (int i = 0; i < 100 && h == NULL; i++) {
    if (access (st->sock, F_OK) == 0) {
      h = nbd_create ();
      if (h && nbd_connect_uri (h, uri) == -1) {
        nbd_close (h);
        h = NULL;
      }
    }
    if (h == NULL)
      usleep (50000);
  }
  if (h) {
    st->ok = nbd_get_size (h) == 3 * 1024 * 1024;
    nbd_shutdown (h, 0);
    nbd_close (h);
  }
  nbdkit_server_stop (st->srv);
  return NULL;
}

int
main (void)
{
  char dir[] = "/tmp/embedtestXXXXXX";
  char sock_a[256], sock_d[256], sock_e[256], bad[256], fdword[16];
  unsigned char buf[512];

  signal (SIGPIPE, SIG_IGN);
  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    return 1;
  }
  snprintf (sock_a, sizeof sock_a, "%s/a.sock", dir);
  snprintf (sock_d, sizeof sock_d, "%s/d.sock", dir);
  snprintf (sock_e, sizeof sock_e, "%s/e.sock", dir);
  snprintf (bad, sizeof bad, "%s/no/such/dir/x.sock", dir);

  /* Errors come back; the process goes on. */
  configure_fails ((const char *const[]){ "no-such-plugin", NULL },
                   "no-such-plugin");
  configure_fails ((const char *const[]){ "memory", "size=lots", NULL },
                   "size");
  configure_fails ((const char *const[]){ "--help", "memory", NULL }, "--help");
  configure_fails ((const char *const[]){ "-s", "memory", "1M", NULL }, "-s");
  configure_fails ((const char *const[]){ "--no-such-option", "memory", NULL },
                   "--no-such-option");
  configure_fails ((const char *const[]){ NULL }, "no plugin");
  {
    nbdkit_server *srv = nbdkit_server_new ();
    CHECK (nbdkit_server_configure (
               srv, (const char *const[]){ "-U", bad, "memory", "1M", NULL })
               == 0,
           "configure: %s", nbdkit_server_error (srv));
    CHECK (nbdkit_server_start (srv) == -1, "started on %s", bad);
    CHECK (strstr (nbdkit_server_error (srv), bad) != NULL,
           "error '%s' does not name the socket", nbdkit_server_error (srv));
    nbdkit_server_free (srv);
  }

  /* Two servers, two plugins, one process. */
  nbdkit_server *a
      = start ((const char *const[]){ "-U", sock_a, "memory", "1M", NULL });
  nbdkit_server *b = start ((const char *const[]){
      "-p", "0", "-i", "127.0.0.1", "pattern", "size=2M", NULL });
  if (a && b) {
    struct nbd_handle *ha = connect_uri (nbdkit_server_uri (a));
    struct nbd_handle *hb = connect_uri (nbdkit_server_uri (b));
    if (ha && hb) {
      CHECK (nbd_get_size (ha) == 1024 * 1024, "A size %lld",
             (long long)nbd_get_size (ha));
      CHECK (nbd_get_size (hb) == 2 * 1024 * 1024, "B size %lld",
             (long long)nbd_get_size (hb));
      memset (buf, 0x5c, sizeof buf);
      CHECK (nbd_pwrite (ha, buf, sizeof buf, 4096, 0) == 0, "A pwrite: %s",
             nbd_get_error ());
      memset (buf, 0, sizeof buf);
      CHECK (nbd_pread (ha, buf, sizeof buf, 4096, 0) == 0, "A pread: %s",
             nbd_get_error ());
      CHECK (buf[0] == 0x5c && buf[511] == 0x5c, "A read back %02x", buf[0]);
      CHECK (nbd_pread (ha, buf, 8, 0, 0) == 0 && buf[0] == 0,
             "A unwritten bytes");
      check_pattern (hb, 4096);
      check_pattern (hb, 2 * 1024 * 1024 - 16);
    }
    if (ha) {
      nbd_shutdown (ha, 0);
      nbd_close (ha);
    }
    if (hb) {
      nbd_shutdown (hb, 0);
      nbd_close (hb);
    }
  }
  if (a) {
    nbdkit_server_stop (a);
    CHECK (nbdkit_server_wait (a) == 0, "A ended with an error: %s",
           nbdkit_server_error (a));
    CHECK (access (sock_a, F_OK) == -1, "A left its socket behind");
  }
  if (b) {
    nbdkit_server_stop (b);
    CHECK (nbdkit_server_wait (b) == 0, "B ended with an error");
  }
  nbdkit_server_free (a);
  nbdkit_server_free (b);

  /* The same plugin in two servers at once. */
  a = start ((const char *const[]){ "-U", sock_a, "memory", "1M", NULL });
  nbdkit_server *e
      = start ((const char *const[]){ "-U", sock_e, "memory", "3M", NULL });
  if (a && e) {
    struct nbd_handle *ha = connect_uri (nbdkit_server_uri (a));
    struct nbd_handle *he = connect_uri (nbdkit_server_uri (e));
    if (ha && he) {
      CHECK (nbd_get_size (ha) == 1024 * 1024, "memory A size %lld",
             (long long)nbd_get_size (ha));
      CHECK (nbd_get_size (he) == 3 * 1024 * 1024, "memory E size %lld",
             (long long)nbd_get_size (he));
      memset (buf, 0xa1, sizeof buf);
      CHECK (nbd_pwrite (ha, buf, sizeof buf, 0, 0) == 0, "A pwrite");
      memset (buf, 0xe5, sizeof buf);
      CHECK (nbd_pwrite (he, buf, sizeof buf, 512, 0) == 0, "E pwrite");
      CHECK (nbd_pread (he, buf, sizeof buf, 0, 0) == 0 && buf[0] == 0
                 && buf[511] == 0,
             "E sees A's write: %02x", buf[0]);
      CHECK (nbd_pread (ha, buf, sizeof buf, 512, 0) == 0 && buf[0] == 0,
             "A sees E's write: %02x", buf[0]);
      CHECK (nbd_pread (ha, buf, sizeof buf, 0, 0) == 0 && buf[0] == 0xa1,
             "A lost its write: %02x", buf[0]);
    }
    if (ha) {
      nbd_shutdown (ha, 0);
      nbd_close (ha);
    }
    if (he) {
      nbd_shutdown (he, 0);
      nbd_close (he);
    }
  }
  nbdkit_server_free (a);
  nbdkit_server_free (e);

  /* A filter, its parameter and options, on a private socket. */
  {
    nbdkit_server *f
        = start ((const char *const[]){ "--filter=offset", "-r", "-U", "-",
                                        "pattern", "1M", "offset=4096", NULL });
    if (f) {
      const char *uri = nbdkit_server_uri (f);
      CHECK (uri && strstr (uri, "socket=") != NULL, "private socket URI %s",
             uri ? uri : "(null)");
      struct nbd_handle *h = uri ? connect_uri (uri) : NULL;
      if (h) {
        CHECK (nbd_get_size (h) == 1024 * 1024 - 4096, "offset size %lld",
               (long long)nbd_get_size (h));
        CHECK (nbd_is_read_only (h) == 1, "-r not applied");
        unsigned char w[8];
        CHECK (nbd_pread (h, w, 8, 0, 0) == 0, "offset pread");
        CHECK (w[6] == 0x10 && w[7] == 0 && w[5] == 0,
               "offset: read at 0 is not the plugin's offset 4096");
        nbd_shutdown (h, 0);
        nbd_close (h);
      }
      nbdkit_server_free (f); /* stops and waits for it */
    }
  }

  /* A given connected socket: the server serves that client. */
  {
    int sv[2];
    CHECK (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
           "socketpair: %m");
    snprintf (fdword, sizeof fdword, "%d", sv[0]);
    nbdkit_server *c = start (
        (const char *const[]){ "--fd", fdword, "pattern", "64K", NULL });
    if (c) {
      struct nbd_handle *h = nbd_create ();
      CHECK (h && nbd_connect_socket (h, sv[1]) == 0, "connect fd: %s",
             nbd_get_error ());
      CHECK (nbd_get_size (h) == 65536, "fd size");
      check_pattern (h, 1024);
      nbd_shutdown (h, 0);
      nbd_close (h);
      CHECK (nbdkit_server_wait (c) == 0, "fd server: %s",
             nbdkit_server_error (c));
      nbdkit_server_free (c);
    }
  }

  /* In the caller's thread, stopped from another. */
  {
    nbdkit_server *d = nbdkit_server_new ();
    struct stopper st = { .srv = d, .sock = sock_d };
    pthread_t t;
    CHECK (nbdkit_server_configure (
               d, (const char *const[]){ "-U", sock_d, "memory", "3M", NULL })
               == 0,
           "configure D: %s", nbdkit_server_error (d));
    pthread_create (&t, NULL, use_then_stop, &st);
    CHECK (nbdkit_server_run (d) == 0, "run D: %s", nbdkit_server_error (d));
    pthread_join (t, NULL);
    CHECK (st.ok, "D was not reachable from another thread");
    nbdkit_server_free (d);
  }

  rmdir (dir);
  if (failures) {
    fprintf (stderr, "embed-api: %d failure(s)\n", failures);
    return 1;
  }
  printf ("embed-api: OK\n");
  return 0;
}
