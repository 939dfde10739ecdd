/* embed.c: <nbdkit-server.h>, the server as a library: create,
 * configure with the command line's words, run in the caller's thread
 * or one of its own, stop, free; and nbdkit_main, the nbdkit program
 * itself.  Errors are returned and kept for nbdkit_server_error; the
 * process is never exited.
 */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "nbdkit-server.h"

struct nbdkit_server {
  struct server *s;
  char **words; /* copies, "nbdkit" first: S points into them */
  int nwords;
  bool configured; /* nbdkit_server_configure was called */
  bool config_ok;  /* and succeeded */
  bool ran;        /* nbdkit_server_run or _start was called */
  char *uri;

  /* Between nbdkit_server_start and the server's thread. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool ready;    /* clients can connect */
  bool finished; /* server_run returned */
  int status;
  pthread_t thread;
  bool thread_started, thread_joined;
};

/* getopt keeps its state in globals: one command line at a time. */
static pthread_mutex_t getopt_lock = PTHREAD_MUTEX_INITIALIZER;

/* Messages about SRV itself, not from the server's log path. */
static void
set_error (nbdkit_server *srv, const char *msg)
{
  pthread_mutex_lock (&srv->s->error_lock);
  free (srv->s->last_error);
  srv->s->last_error = strdup (msg);
  pthread_mutex_unlock (&srv->s->error_lock);
}

/* The caller's thread talks for SRV while in one of these calls, and
 * for no server after: a later nbdkit_error there must not reach a
 * server that may be freed.
 */
static void
enter (nbdkit_server *srv)
{
  thread_ctx_set (srv->s, NULL, NULL);
}

static void
leave (void)
{
  thread_ctx_set (NULL, NULL, NULL);
}

NBDKIT_DLL_PUBLIC nbdkit_server *
nbdkit_server_new (void)
{
  nbdkit_server *srv = calloc (1, sizeof *srv);

  if (srv == NULL)
    return NULL;
  srv->s = server_new ();
  if (srv->s == NULL) {
    int e = errno;
    free (srv);
    errno = e;
    return NULL;
  }
  srv->s->embedded = true;
  pthread_mutex_init (&srv->lock, NULL);
  pthread_cond_init (&srv->cond, NULL);
  return srv;
}

NBDKIT_DLL_PUBLIC int
nbdkit_server_configure (nbdkit_server *srv, const char *const *words)
{
  int n = 0, status;
  enum cmdline_result r;

  if (srv->configured || srv->ran) {
    set_error (srv, "nbdkit_server_configure: the server is configured"
                    " already");
    return -1;
  }
  srv->configured = true;
  while (words && words[n])
    n++;
  srv->words = calloc (n + 2, sizeof *srv->words);
  if (srv->words == NULL) {
    set_error (srv, "nbdkit_server_configure: out of memory");
    return -1;
  }
  srv->words[srv->nwords++] = strdup ("nbdkit");
  for (int i = 0; i < n; i++)
    srv->words[srv->nwords++] = strdup (words[i]);
  for (int i = 0; i < srv->nwords; i++)
    if (srv->words[i] == NULL) {
      set_error (srv, "nbdkit_server_configure: out of memory");
      return -1;
    }

  enter (srv);
  pthread_mutex_lock (&getopt_lock);
  r = cmdline_parse (srv->s, srv->nwords, srv->words, &status);
  pthread_mutex_unlock (&getopt_lock);
  leave ();
  if (r != CMDLINE_RUN) {
    if (r == CMDLINE_DONE)
      set_error (srv, "nbdkit_server_configure: nothing to serve");
    return -1;
  }
  srv->config_ok = true;
  return 0;
}

/* server_run's signal that clients can connect. */
static void
on_ready (struct server *s, void *opaque)
{
  nbdkit_server *srv = opaque;

  pthread_mutex_lock (&srv->lock);
  srv->uri = s->nlisten_fds > 0 ? server_uri (s) : NULL;
  srv->ready = true;
  pthread_cond_broadcast (&srv->cond);
  pthread_mutex_unlock (&srv->lock);
}

static int
run (nbdkit_server *srv)
{
  bool ready;

  enter (srv);
  srv->s->ready = on_ready;
  srv->s->ready_opaque = srv;
  server_run (srv->s);
  leave ();
  pthread_mutex_lock (&srv->lock);
  ready = srv->ready;
  srv->finished = true;
  srv->status = ready ? 0 : -1;
  pthread_cond_broadcast (&srv->cond);
  pthread_mutex_unlock (&srv->lock);
  return ready ? 0 : -1;
}

static bool
can_run (nbdkit_server *srv, const char *fn)
{
  char msg[128];

  if (!srv->config_ok) {
    snprintf (msg, sizeof msg, "%s: the server has not been configured", fn);
    set_error (srv, msg);
    return false;
  }
  if (srv->ran) {
    snprintf (msg, sizeof msg, "%s: the server has run already", fn);
    set_error (srv, msg);
    return false;
  }
  srv->ran = true;
  return true;
}

NBDKIT_DLL_PUBLIC int
nbdkit_server_run (nbdkit_server *srv)
{
  if (!can_run (srv, "nbdkit_server_run"))
    return -1;
  return run (srv);
}

static void *
server_thread (void *arg)
{
  run (arg);
  return NULL;
}

NBDKIT_DLL_PUBLIC int
nbdkit_server_start (nbdkit_server *srv)
{
  int err;
  bool ok;

  if (!can_run (srv, "nbdkit_server_start"))
    return -1;
  err = pthread_create (&srv->thread, NULL, server_thread, srv);
  if (err != 0) {
    errno = err;
    set_error (srv, "nbdkit_server_start: cannot create a thread");
    return -1;
  }
  srv->thread_started = true;
  pthread_mutex_lock (&srv->lock);
  while (!srv->ready && !srv->finished)
    pthread_cond_wait (&srv->cond, &srv->lock);
  ok = srv->ready;
  pthread_mutex_unlock (&srv->lock);
  if (!ok)
    nbdkit_server_wait (srv);
  return ok ? 0 : -1;
}

NBDKIT_DLL_PUBLIC void
nbdkit_server_stop (nbdkit_server *srv)
{
  atomic_store (&srv->s->stop_asked, true);
  server_request_quit (srv->s);
}

NBDKIT_DLL_PUBLIC void
nbdkit_server_reload (nbdkit_server *srv)
{
  char c = 1;
  if (write (srv->s->reload_pipe[1], &c, 1) == -1) {
    /* The pipe is full: a reload is already pending. */
  }
}

NBDKIT_DLL_PUBLIC int
nbdkit_server_wait (nbdkit_server *srv)
{
  if (!srv->thread_started) {
    set_error (srv, "nbdkit_server_wait: the server was not started with"
                    " nbdkit_server_start");
    return -1;
  }
  if (!srv->thread_joined) {
    pthread_join (srv->thread, NULL);
    srv->thread_joined = true;
  }
  return srv->status;
}

NBDKIT_DLL_PUBLIC const char *
nbdkit_server_uri (nbdkit_server *srv)
{
  const char *uri;

  pthread_mutex_lock (&srv->lock);
  uri = srv->finished ? NULL : srv->uri;
  pthread_mutex_unlock (&srv->lock);
  return uri;
}

NBDKIT_DLL_PUBLIC const char *
nbdkit_server_error (nbdkit_server *srv)
{
  const char *e;

  pthread_mutex_lock (&srv->s->error_lock);
  e = srv->s->last_error ? srv->s->last_error : "";
  pthread_mutex_unlock (&srv->s->error_lock);
  return e;
}

NBDKIT_DLL_PUBLIC void
nbdkit_server_free (nbdkit_server *srv)
{
  if (srv == NULL)
    return;
  if (srv->thread_started) {
    nbdkit_server_stop (srv);
    nbdkit_server_wait (srv);
  }
  /* Configured but never run: the layers are still loaded. */
  if (srv->s->top) {
    enter (srv);
    server_unload (srv->s);
    leave ();
  }
  server_free (srv->s);
  for (int i = 0; i < srv->nwords; i++)
    free (srv->words[i]);
  free (srv->words);
  free (srv->uri);
  pthread_mutex_destroy (&srv->lock);
  pthread_cond_destroy (&srv->cond);
  free (srv);
}

NBDKIT_DLL_PUBLIC int
nbdkit_main (int argc, char **argv)
{
  struct server *s = server_new ();
  enum cmdline_result r;
  int status;

  if (s == NULL) {
    perror ("nbdkit");
    return EXIT_FAILURE;
  }
  r = cmdline_parse (s, argc, argv, &status);
  if (r == CMDLINE_RUN)
    status = server_run (s);
  fflush (stdout);
  /* On errors before running, or after --dump-plugin, the plugin may
   * still be loaded; the process ends when this returns, which unloads
   * it.  With nothing loaded (--version, --help, a bad option) the
   * server is freed, so leak checkers see a clean exit.
   */
  if (r == CMDLINE_RUN || s->top == NULL)
    server_free (s);
  return status;
}
