/* server.c: a server's life cycle: creation, the effective thread
 * model, the one start-up order (server_run) and an orderly shutdown
 * in which requests in flight finish and the plugin is closed and
 * unloaded.  The process-level mechanisms it calls live beside it:
 * signals.c, background.c (daemon, pidfile, --swap), usergroup.c (-u,
 * -g), captive.c (--run).
 */

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

struct server *
server_new (void)
{
  struct server *s = calloc (1, sizeof *s);

  if (s == NULL)
    return NULL;
  s->program_name = "nbdkit";
  s->opt.fd = -1;
  s->opt.threads = 16;
  s->opt.family = AF_UNSPEC;
  s->opt.log_to = LOG_TO_DEFAULT;
  s->debug_controlpath = s->debug_datapath = 1;
  atomic_init (&s->quit, false);
  if (pipe2 (s->quit_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
    free (s);
    return NULL;
  }
  if (pipe2 (s->reload_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
    close (s->quit_pipe[0]);
    close (s->quit_pipe[1]);
    free (s);
    return NULL;
  }
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->cond, NULL);
  pthread_cond_init (&s->watch_cond, NULL);
  pthread_mutex_init (&s->pool_lock, NULL);
  pthread_cond_init (&s->pool_done, NULL);
  pthread_mutex_init (&s->all_requests_lock, NULL);
  pthread_mutex_init (&s->plugin_lock, NULL);
  pthread_mutex_init (&s->connections_lock, NULL);
  pthread_mutex_init (&s->intern_lock, NULL);
  pthread_mutex_init (&s->error_lock, NULL);
  return s;
}

void
server_free (struct server *s)
{
  if (s == NULL)
    return;
  signals_forget (s);
  watch_free (s);
  for (size_t i = 0; i < s->ninterned; i++)
    free (s->interned[i]);
  free (s->interned);
  for (size_t i = 0; i < s->ndebug_flags; i++)
    free (s->debug_flags[i]);
  free (s->debug_flags);
  close (s->quit_pipe[0]);
  close (s->quit_pipe[1]);
  close (s->reload_pipe[0]);
  close (s->reload_pipe[1]);
  free (s->socket_path);
  free (s->private_dir);
  pthread_mutex_destroy (&s->lock);
  pthread_cond_destroy (&s->cond);
  pthread_cond_destroy (&s->watch_cond);
  pthread_mutex_destroy (&s->pool_lock);
  pthread_cond_destroy (&s->pool_done);
  pthread_mutex_destroy (&s->all_requests_lock);
  pthread_mutex_destroy (&s->plugin_lock);
  pthread_mutex_destroy (&s->connections_lock);
  pthread_mutex_destroy (&s->intern_lock);
  pthread_mutex_destroy (&s->error_lock);
  free (s->last_error);
  free (s);
}

/* Ask the server to stop: wake the accept loop and every reader. */
void
server_request_quit (struct server *s)
{
  char c = 1;

  atomic_store (&s->quit, true);
  if (write (s->quit_pipe[1], &c, 1) == -1) {
    /* Already woken. */
  }
  pthread_mutex_lock (&s->lock);
  for (struct connection *c = s->connections; c; c = c->next_live)
    shutdown (c->sockin, SHUT_RD);
  pthread_mutex_unlock (&s->lock);
}

/* The most serializing model among the layers. */
int
server_thread_model (struct server *s)
{
  int model = TM_PARALLEL;

  for (struct backend *b = s->top; b; b = b->next) {
    int m = b->ops->thread_model (b);
    if (m == -1)
      return -1;
    if (m != TM_SERIALIZE_CONNECTIONS && m != TM_SERIALIZE_ALL_REQUESTS
        && m != TM_SERIALIZE_REQUESTS && m != TM_SERIALIZE_RETIREMENT
        && m != TM_PARALLEL) {
      log_error (s, "%s: thread_model returned an unknown model %d", b->name,
                 m);
      return -1;
    }
    b->thread_model = m;
    if (m < model)
      model = m;
  }
  return model;
}

const char *
thread_model_name (int m)
{
  switch (m) {
    case TM_SERIALIZE_CONNECTIONS:
      return "serialize_connections";
    case TM_SERIALIZE_ALL_REQUESTS:
      return "serialize_all_requests";
    case TM_SERIALIZE_REQUESTS:
      return "serialize_requests";
    case TM_SERIALIZE_RETIREMENT:
      return "serialize_retirement";
    case TM_PARALLEL:
      return "parallel";
    default:
      return "unknown";
  }
}

/* How long requests in flight get to finish and send their replies
 * after the server is asked to stop, before the sockets of clients
 * still connected are shut down both ways.  A client that stops
 * reading mid-reply would otherwise keep its thread in a send, and
 * the server running, for ever.
 */
#define SHUTDOWN_GRACE_SECONDS 3

/* Wait until every connection has gone, after asking them to. */
static void
drain_connections (struct server *s)
{
  struct timespec until;
  bool forced = false;

  server_request_quit (s);
  clock_gettime (CLOCK_REALTIME, &until);
  until.tv_sec += SHUTDOWN_GRACE_SECONDS;
  pthread_mutex_lock (&s->lock);
  while (s->nconnections > 0) {
    if (forced) {
      pthread_cond_wait (&s->cond, &s->lock);
      continue;
    }
    if (pthread_cond_timedwait (&s->cond, &s->lock, &until) != ETIMEDOUT)
      continue;
    /* Sends now fail at once; requests in the plugins still finish. */
    log_debug (s, "%u connection(s) still busy after %d s: closing them",
               s->nconnections, SHUTDOWN_GRACE_SECONDS);
    for (struct connection *c = s->connections; c; c = c->next_live) {
      shutdown (c->sockin, SHUT_RDWR);
      if (c->sockout != c->sockin)
        shutdown (c->sockout, SHUT_RDWR);
    }
    forced = true;
  }
  pthread_mutex_unlock (&s->lock);
}

/* The orderly stop, after the accept loop has ended (or the single
 * connection of -s/--fd has been served).  Who owns what, and why
 * this order is safe:
 *
 *  - A connection is owned by its first thread (connection_main),
 *    which waits under c->lock until its extra workers have left
 *    (nthreads 0), unlinks it from s->connections under s->lock, frees
 *    it, and only then counts it gone (s->nconnections, s->lock).
 *  - drain_connections waits for that count to reach 0.  Afterwards
 *    no thread touches a connection, and connection threads touch the
 *    server only through the pool.
 *  - watchdog_stop joins the watchdog, which walks s->connections.
 *  - pool_stop stops and joins every pool thread (threads.c), so no
 *    thread we started runs any code, not even a thread-local
 *    destructor that a plugin registered.
 *  - listen_cleanup closes the listening sockets.
 *  - captive_detach cuts the --run waiter off the server under its
 *    own lock; if it is using the server now, this waits for it.  If
 *    the server stopped on its own (not by a signal or
 *    nbdkit_server_stop), it first waits for the --run command to exit.
 *  - Only then are the plugin and filters unloaded, and the server's
 *    locks destroyed (server_free), with no thread left to take them.
 */
static void
stop_serving (struct server *s)
{
  drain_connections (s);
  watchdog_stop (s);
  pool_stop (s);
  /* A --run command the server may now wait for must find no socket
   * accepting connections that nobody will serve.
   */
  listen_cleanup (s);
  captive_detach (s);
}

void
server_unload (struct server *s)
{
  tls_free (s);
  for (struct backend *b = s->top; b; b = b->next) {
    thread_ctx_set (s, NULL, b->name);
    b->ops->cleanup (b);
  }
  for (struct backend *b = s->top; b;) {
    struct backend *next = b->next;
    backend_free (s, b);
    b = next;
  }
  s->top = s->plugin = NULL;
}

void
backend_free (struct server *s, struct backend *b)
{
  thread_ctx_set (s, NULL, b->name);
  b->ops->unload (b);
  thread_ctx_set (s, NULL, NULL);
  if (b->dl)
    layer_dlclose (b->dl);
  free (b->filename);
  free (b->impl_copy);
  free (b->params_seen);
  free (b);
}

/* Everything between configuration and the first client: TLS
 * credentials, the meta contexts on offer, the thread model, and every
 * layer's get_ready.  server_run calls it; so can a program that feeds
 * connections itself (connection_start), e.g. the fuzzer.
 */
int
server_prepare (struct server *s)
{
  int model;
  cpu_set_t cpus;

  s->ncpus
      = sched_getaffinity (0, sizeof cpus, &cpus) == 0 ? CPU_COUNT (&cpus) : 2;
  if (s->opt.log_to == LOG_TO_DEFAULT)
    s->opt.log_to = LOG_TO_STDERR;
  if (tls_init (s) == -1)
    return -1;

  /* The meta contexts on offer. */
  s->meta_names[0] = "base:allocation";
  s->meta_owner[0] = NULL;
  s->nmeta = 1;
  for (struct backend *b = s->top; b; b = b->next) {
    const char *m = b->ops->meta_context ? b->ops->meta_context (b) : NULL;
    if (m == NULL)
      continue;
    if (strnlen (m, MAX_STRING + 1) > MAX_STRING) {
      log_error (s,
                 "%s: meta context name is longer than the protocol's"
                 " limit of %d bytes",
                 b->name, MAX_STRING);
      return -1;
    }
    if (s->nmeta >= MAX_META || strchr (m, ':') == NULL) {
      log_error (s,
                 "%s: cannot offer meta context '%s' (at most %d, and"
                 " the name needs a namespace such as 'qemu:')",
                 b->name, m, MAX_META);
      return -1;
    }
    s->meta_names[s->nmeta] = m;
    s->meta_owner[s->nmeta++] = b;
  }

  model = server_thread_model (s);
  if (model == -1)
    return -1;
  s->thread_model = model;
  log_debug (s, "using thread model %s", thread_model_name (model));
  /* The plugin is held to the model it is told (every call into it,
   * backend.c); a filter that asks for one request at a time across
   * clients for itself gets it for the clients' requests
   * (transmission.c).
   */
  s->serialize_filters = false;
  for (struct backend *b = s->top; b; b = b->next)
    if (b->is_filter && b->thread_model <= TM_SERIALIZE_ALL_REQUESTS)
      s->serialize_filters = true;
  for (struct backend *b = s->top; b; b = b->next) {
    thread_ctx_set (s, NULL, b->name);
    if (b->ops->get_ready (b, model) == -1)
      return -1;
  }
  thread_ctx_set (s, NULL, NULL);

  return 0;
}

/* Where the one client of -s, --fd or --reverse comes in and goes
 * out.  With -s the protocol owns stdin and stdout from now on: they
 * are moved away from anything else that might print.
 */
static int
one_client (struct server *s, int *in, int *out)
{
  if (s->opt.reverse) {
    *in = *out = reverse_connect (s);
    return *in == -1 ? -1 : 0;
  }
  if (!s->opt.single) {
    *in = *out = s->opt.fd;
    return 0;
  }
  *in = fcntl (0, F_DUPFD_CLOEXEC, 3);
  *out = fcntl (1, F_DUPFD_CLOEXEC, 3);
  if (*in == -1 || *out == -1) {
    log_error (s, "-s: cannot keep stdin and stdout: %m");
    return -1;
  }
  int null = open ("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2 (null, 0);
    dup2 (null, 1);
    close (null);
  }
  return 0;
}

/* From configuration to serving, in one order whether the server
 * listens or serves one client (-s, --fd, --reverse):
 *
 *   1. signals (the nbdkit program only), then server_prepare: TLS,
 *      meta contexts, the thread model, every layer's get_ready;
 *   2. where clients come from: the listening sockets, or the one
 *      client's descriptors;
 *   3. into the background (listening without -f only), then every
 *      layer's after_fork, in the process that serves;
 *   4. --swap, the pidfile (written with the identity that could
 *      create it), then -u/-g;
 *   5. --print-uri and --run (listening only);
 *   6. serve, then stop: drain, unload.
 */
int
server_run (struct server *s)
{
  enum {
    SERVE_LISTEN,
    SERVE_ONE
  } mode
      = s->opt.single || s->opt.fd >= 0 || s->opt.reverse ? SERVE_ONE
                                                          : SERVE_LISTEN;
  bool foreground = s->embedded || s->opt.foreground || mode == SERVE_ONE
                    || s->opt.run || s->opt.exit_with_parent;
  bool log_default = s->opt.log_to == LOG_TO_DEFAULT;
  int in = -1, out = -1;

  if (s->opt.log_to == LOG_TO_DEFAULT)
    s->opt.log_to = LOG_TO_STDERR;
  if (!s->embedded)
    signals_install (s);

  if (server_prepare (s) == -1)
    goto fail;
  if (s->opt.exit_with_parent)
    prctl (PR_SET_PDEATHSIG, SIGTERM);

  if (mode == SERVE_ONE ? one_client (s, &in, &out) == -1
                        : listen_setup (s) == -1)
    goto fail;

  if (!foreground && daemonize (s, log_default) == -1)
    goto fail;
  for (struct backend *b = s->top; b; b = b->next) {
    thread_ctx_set (s, NULL, b->name);
    if (b->ops->after_fork (b) == -1)
      goto fail;
  }
  thread_ctx_set (s, NULL, NULL);

  if (lock_memory (s) == -1 || write_pidfile (s) == -1 || change_user (s) == -1)
    goto fail;

  if (mode == SERVE_LISTEN && s->opt.print_uri) {
    char *uri = server_uri (s);
    if (uri) {
      printf ("%s\n", uri);
      fflush (stdout);
      free (uri);
    }
  }
  if (mode == SERVE_LISTEN && s->opt.run && captive_start (s) == -1)
    goto fail;

  if (s->ready)
    s->ready (s, s->ready_opaque);
  watchdog_start (s);
  if (mode == SERVE_ONE)
    connection_start (s, in, out, false);
  else
    listen_loop (s);
  stop_serving (s);
  /* The pidfile stays, as nbdkit's does: whoever waits for the
   * server to exit reads the pid from it after.
   */
  listen_cleanup (s);
  server_unload (s);
  return s->exit_status;

fail:
  thread_ctx_set (s, NULL, NULL);
  listen_cleanup (s);
  server_unload (s);
  return 1;
}
