/* embed-reload.c: script layers reload in an embedded server, through
 * nbdkit_server_reload and through --watch, and install no signal
 * handler of their own (the process belongs to the program: SIGHUP
 * keeps its default disposition).  The Lua plugin reloads through
 * nbdkit_server_reload, the Python plugin through --watch (whichever
 * are built): a connection held open keeps the code it opened on, a
 * new one gets the new code.  Exit 0 pass, 1 fail, 77 skip.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnbd.h>
#include <nbdkit-server.h>

static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf (stderr, "embed-reload: FAIL line %d: ", __LINE__);              \
      fprintf (stderr, __VA_ARGS__);                                           \
      fprintf (stderr, "\n");                                                  \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static const char lua_script[]
    = "function get_size(h) return 4096 end\n"
      "function open(readonly, exportname, is_tls) return '%c' end\n"
      "function pread(h, count, offset, flags)"
      " return string.rep(h, count) end\n";
static const char python_script[]
    = "API_VERSION = 3\n"
      "def open(readonly, exportname, tls): return b'%c'\n"
      "def get_size(h): return 4096\n"
      "def pread(h, buf, offset, flags): buf[:] = h * len(buf)\n";

static void
write_script (const char *path, const char *fmt, char tag)
{
  char tmp[256];
  FILE *fp;

  snprintf (tmp, sizeof tmp, "%s.tmp", path);
  fp = fopen (tmp, "w");
  if (fp == NULL || fprintf (fp, fmt, tag) < 0 || fclose (fp) == EOF
      || rename (tmp, path) == -1) {
    fprintf (stderr, "embed-reload: writing %s: %m\n", path);
    exit (1);
  }
}

/* The byte at offset 0 through H, or '?'. */
static char
first_byte (struct nbd_handle *h)
{
  char c;

  if (nbd_pread (h, &c, 1, 0, 0) == -1)
    return '?';
  return c;
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

/* What a new connection reads, once it is WANT (within 10 s). */
static char
new_connection_reads (const char *uri, char want)
{
  char c = '?';

  for (int i = 0; i < 200 && c != want; i++) {
    struct nbd_handle *h = connect_uri (uri);
    c = h ? first_byte (h) : '?';
    if (h)
      nbd_close (h);
    if (c != want)
      usleep (50000);
  }
  return c;
}

/* 1 if the host is not built (skipped), else 0. */
static int
run (const char *dir, const char *host, const char *ext, const char *fmt,
     int watch)
{
  char script[256], sock[256];
  struct sigaction sa;
  nbdkit_server *srv;
  struct nbd_handle *held;
  const char *uri;

  snprintf (script, sizeof script, "%s/%s%d.%s", dir, host, watch, ext);
  snprintf (sock, sizeof sock, "%s/%s%d.sock", dir, host, watch);
  write_script (script, fmt, 'a');
  srv = nbdkit_server_new ();
  if (srv == NULL) {
    CHECK (0, "nbdkit_server_new: %m");
    return 0;
  }
  if (nbdkit_server_configure (
          srv, (const char *const[]){ "-U", sock, watch ? "--watch" : "-r",
                                      host, script, NULL })
      == -1) {
    fprintf (stderr, "embed-reload: %s: %s: skipped\n", host,
             nbdkit_server_error (srv));
    nbdkit_server_free (srv);
    return 1;
  }
  if (nbdkit_server_start (srv) == -1) {
    CHECK (0, "%s: start: %s", host, nbdkit_server_error (srv));
    nbdkit_server_free (srv);
    return 0;
  }
  uri = nbdkit_server_uri (srv);
  held = connect_uri (uri);
  CHECK (held && first_byte (held) == 'a', "%s: before the reload", host);
  CHECK (sigaction (SIGHUP, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO)
             && sa.sa_handler == SIG_DFL,
         "%s: the plugin installed a SIGHUP handler", host);

  write_script (script, fmt, 'b');
  if (!watch)
    nbdkit_server_reload (srv);
  CHECK (new_connection_reads (uri, 'b') == 'b', "%s%s: new code not used",
         host, watch ? " --watch" : "");
  CHECK (held && first_byte (held) == 'a',
         "%s: the held connection changed code", host);
  if (held)
    nbd_close (held);
  nbdkit_server_stop (srv);
  CHECK (nbdkit_server_wait (srv) == 0, "%s: wait", host);
  nbdkit_server_free (srv);
  return 0;
}

int
main (void)
{
  char dir[] = "/tmp/embed-reload.XXXXXX";
  int skipped = 0;

  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    return 1;
  }
  /* One server per host: a host's object stays loaded in the process
   * once its server is gone, with its script.
   */
  skipped += run (dir, "lua", "lua", lua_script, 0);
  skipped += run (dir, "python", "py", python_script, 1);
  {
    char cmd[300];
    snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
    if (system (cmd) != 0)
      fprintf (stderr, "embed-reload: could not remove %s\n", dir);
  }
  if (failures)
    return 1;
  if (skipped == 2)
    return 77;
  printf ("embed-reload: OK\n");
  return 0;
}
