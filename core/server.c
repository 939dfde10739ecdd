/* server.c: a server's life cycle: creation, the effective thread
 * model, going into the background, captive mode (--run), signals,
 * and an orderly shutdown in which requests in flight finish and the
 * plugin is closed and unloaded.
 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

/* Signal handlers can only reach the server through this; it is the
 * one piece of process-wide state, as signals are process-wide.
 */
static _Atomic int signal_quit_fd = -1;

static void
handle_quit_signal (int sig)
{
  char c = 1;
  int fd = atomic_load (&signal_quit_fd);
  if (fd >= 0 && write (fd, &c, 1) == -1) {
    /* The pipe is full: a wake-up is already pending. */
  }
}

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
  s->opt.log_to = -1;
  s->debug_controlpath = s->debug_datapath = 1;
  atomic_init (&s->quit, false);
  if (pipe2 (s->quit_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
    free (s);
    return NULL;
  }
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->cond, NULL);
  pthread_cond_init (&s->watch_cond, NULL);
  pthread_mutex_init (&s->pool_lock, NULL);
  pthread_cond_init (&s->pool_done, NULL);
  pthread_mutex_init (&s->all_requests_lock, NULL);
  pthread_mutex_init (&s->connections_lock, NULL);
  pthread_mutex_init (&s->intern_lock, NULL);
  return s;
}

void
server_free (struct server *s)
{
  if (s == NULL)
    return;
  /* A signal arriving from now on finds no pipe to write to. */
  if (atomic_load (&signal_quit_fd) == s->quit_pipe[1])
    atomic_store (&signal_quit_fd, -1);
  for (size_t i = 0; i < s->ninterned; i++)
    free (s->interned[i]);
  free (s->interned);
  for (size_t i = 0; i < s->ndebug_flags; i++)
    free (s->debug_flags[i]);
  free (s->debug_flags);
  close (s->quit_pipe[0]);
  close (s->quit_pipe[1]);
  free (s->socket_path);
  free (s->private_dir);
  pthread_mutex_destroy (&s->lock);
  pthread_cond_destroy (&s->cond);
  pthread_cond_destroy (&s->watch_cond);
  pthread_mutex_destroy (&s->pool_lock);
  pthread_cond_destroy (&s->pool_done);
  pthread_mutex_destroy (&s->all_requests_lock);
  pthread_mutex_destroy (&s->connections_lock);
  pthread_mutex_destroy (&s->intern_lock);
  free (s);
}

/* nbdkit_shutdown from a thread the server did not start (a plugin's
 * or filter's own): it has no server to name, and the process has one.
 */
void
server_quit_from_anywhere (void)
{
  char c = 1;
  int fd = atomic_load (&signal_quit_fd);
  if (fd >= 0 && write (fd, &c, 1) == -1) {
    /* A wake-up is already pending. */
  }
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

static void
set_signals (struct server *s)
{
  struct sigaction sa = { .sa_handler = handle_quit_signal };

  atomic_store (&signal_quit_fd, s->quit_pipe[1]);
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGQUIT, &sa, NULL);
  signal (SIGPIPE, SIG_IGN);
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

static int
change_user (struct server *s)
{
  if (s->opt.group) {
    struct group *g = getgrnam (s->opt.group);
    gid_t gid = g ? g->gr_gid : (gid_t)strtoul (s->opt.group, NULL, 10);
    if (!g && strspn (s->opt.group, "0123456789") != strlen (s->opt.group)) {
      log_error (s, "-g %s: no such group", s->opt.group);
      return -1;
    }
    if (setgroups (1, &gid) == -1 || setgid (gid) == -1) {
      log_error (s, "-g %s: setgid: %m", s->opt.group);
      return -1;
    }
  }
  if (s->opt.user) {
    struct passwd *p = getpwnam (s->opt.user);
    uid_t uid = p ? p->pw_uid : (uid_t)strtoul (s->opt.user, NULL, 10);
    if (!p && strspn (s->opt.user, "0123456789") != strlen (s->opt.user)) {
      log_error (s, "-u %s: no such user", s->opt.user);
      return -1;
    }
    if (setuid (uid) == -1) {
      log_error (s, "-u %s: setuid: %m", s->opt.user);
      return -1;
    }
  }
  return 0;
}

static int
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

/* Into the background.  Without --log, messages go to syslog from
 * now on, as with nbdkit (with -v they stay on stderr, for debugging).
 */
static int
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

/* --swap: the disk may be this machine's swap space, and a server
 * that had to be paged in to serve a page-in would deadlock.  Done in
 * the process that serves: a child does not inherit memory locks.
 */
static int
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

/* The thread waiting for the --run command cannot be joined: after a
 * signal the server stops while the command may run on.  So it and the
 * server share this record, freed by whichever lets go last, and the
 * thread reaches the server only through cap->s under cap->lock.  The
 * server sets cap->s to NULL (captive_detach) before it tears anything
 * down: from then on the thread cannot touch the server, and before
 * then the server waits for it to finish any use of it.
 */
struct captive {
  pthread_mutex_t lock;
  struct server *s; /* NULL once the server has let go */
  pid_t pid;
  int refs; /* 2 while both hold it */
};

static void
captive_unref (struct captive *cap)
{
  bool last;

  pthread_mutex_lock (&cap->lock);
  last = --cap->refs == 0;
  pthread_mutex_unlock (&cap->lock);
  if (last) {
    pthread_mutex_destroy (&cap->lock);
    free (cap);
  }
}

/* Wait for the --run command, then stop the server with its status. */
static void *
captive_wait (void *arg)
{
  struct captive *cap = arg;
  int status;

  while (waitpid (cap->pid, &status, 0) == -1 && errno == EINTR)
    ;
  pthread_mutex_lock (&cap->lock);
  struct server *s = cap->s;
  if (s) {
    if (WIFEXITED (status))
      s->exit_status = WEXITSTATUS (status);
    else if (WIFSIGNALED (status)) {
      log_error (s, "--run command was killed by signal %d", WTERMSIG (status));
      s->exit_status = 128 + WTERMSIG (status);
    } else
      s->exit_status = 1;
    server_request_quit (s);
  }
  pthread_mutex_unlock (&cap->lock);
  captive_unref (cap);
  return NULL;
}

static void
captive_detach (struct server *s)
{
  struct captive *cap = s->captive;

  if (cap == NULL)
    return;
  pthread_mutex_lock (&cap->lock);
  cap->s = NULL;
  pthread_mutex_unlock (&cap->lock);
  s->captive = NULL;
  captive_unref (cap);
}

static int
start_captive (struct server *s)
{
  pid_t pid;
  /* $nbd is the URI too, as in nbdkit since URIs became the norm. */
  char *uri = server_uri (s), *nbd = server_uri (s);
  char port[16];
  pthread_t t;
  struct captive *cap;

  pid = fork ();
  if (pid == -1) {
    log_error (s, "fork: %m");
    free (uri);
    free (nbd);
    return -1;
  }
  if (pid == 0) {
    if (uri)
      setenv ("uri", uri, 1);
    if (nbd)
      setenv ("nbd", nbd, 1);
    setenv ("exportname", s->opt.exportname ? s->opt.exportname : "", 1);
    if (s->socket_path) {
      setenv ("unixsocket", s->socket_path, 1);
      setenv ("port", "", 1);
    } else {
      snprintf (port, sizeof port, "%d", s->bound_port);
      setenv ("port", port, 1);
      setenv ("unixsocket", "", 1);
    }
    /* $tls is the --tls level (1 on, 2 require), unset without TLS. */
    if (s->opt.tls) {
      snprintf (port, sizeof port, "%d", s->opt.tls);
      setenv ("tls", port, 1);
    } else
      unsetenv ("tls");
    /* The command must not inherit the server's listening sockets. */
    for (int i = 0; i < s->nlisten_fds; i++)
      close (s->listen_fds[i]);
    signal (SIGPIPE, SIG_DFL);
    execl ("/bin/sh", "sh", "-c", s->opt.run, (char *)NULL);
    _exit (127);
  }
  free (uri);
  free (nbd);
  cap = malloc (sizeof *cap);
  if (cap == NULL)
    return -1;
  pthread_mutex_init (&cap->lock, NULL);
  cap->s = s;
  cap->pid = pid;
  cap->refs = 2;
  if (pthread_create (&t, NULL, captive_wait, cap) != 0) {
    pthread_mutex_destroy (&cap->lock);
    free (cap);
    return -1;
  }
  pthread_detach (t);
  s->captive = cap;
  return 0;
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
 *  - captive_detach cuts the --run waiter off the server under its
 *    own lock; if it is using the server now, this waits for it.
 *  - Only then are the plugin and filters unloaded, and the server's
 *    locks destroyed (server_free), with no thread left to take them.
 */
static void
stop_serving (struct server *s)
{
  drain_connections (s);
  watchdog_stop (s);
  pool_stop (s);
  captive_detach (s);
}

static void
unload_all (struct server *s)
{
  tls_free (s);
  for (struct backend *b = s->top; b; b = b->next) {
    thread_ctx_set (s, NULL, b->name);
    b->ops->cleanup (b);
  }
  for (struct backend *b = s->top; b;) {
    struct backend *next = b->next;
    thread_ctx_set (s, NULL, b->name);
    b->ops->unload (b);
    /* Under the sanitizers keep the code mapped, so leak reports can
     * still name the plugin's functions.
     */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    if (b->dl)
      dlclose (b->dl);
#endif
    free (b->filename);
    free (b->impl_copy);
    free (b->params_seen);
    free (b);
    b = next;
  }
  s->top = s->plugin = NULL;
  thread_ctx_set (s, NULL, NULL);
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
  if (s->opt.log_to == -1)
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
  for (struct backend *b = s->top; b; b = b->next) {
    thread_ctx_set (s, NULL, b->name);
    if (b->ops->get_ready (b, model) == -1)
      return -1;
  }
  thread_ctx_set (s, NULL, NULL);

  return 0;
}

int
server_run (struct server *s)
{
  bool foreground = s->opt.foreground || s->opt.single || s->opt.fd >= 0
                    || s->opt.run || s->opt.exit_with_parent || s->opt.reverse;
  bool log_default = s->opt.log_to == -1;

  if (s->opt.log_to == -1)
    s->opt.log_to = LOG_TO_STDERR;
  set_signals (s);

  if (server_prepare (s) == -1)
    goto fail;

  if (s->opt.exit_with_parent)
    prctl (PR_SET_PDEATHSIG, SIGTERM);

  if (s->opt.single || s->opt.fd >= 0 || s->opt.reverse) {
    int in = s->opt.single ? 0 : s->opt.fd;
    int out = s->opt.single ? 1 : s->opt.fd;
    if (s->opt.reverse) {
      in = out = reverse_connect (s);
      if (in == -1)
        goto fail;
    }
    if (s->opt.single) {
      /* The protocol owns stdin/stdout now: keep them away from anything
       * else that might print.
       */
      in = fcntl (0, F_DUPFD_CLOEXEC, 3);
      out = fcntl (1, F_DUPFD_CLOEXEC, 3);
      int null = open ("/dev/null", O_RDWR);
      if (null >= 0) {
        dup2 (null, 0);
        dup2 (null, 1);
        close (null);
      }
    }
    if (lock_memory (s) == -1 || change_user (s) == -1
        || write_pidfile (s) == -1)
      goto fail;
    for (struct backend *b = s->top; b; b = b->next)
      if (b->ops->after_fork (b) == -1)
        goto fail;
    watchdog_start (s);
    connection_start (s, in, out, false);
    stop_serving (s);
    unload_all (s);
    return s->exit_status;
  }

  if (listen_setup (s) == -1)
    goto fail;
  if (!foreground && daemonize (s, log_default) == -1)
    goto fail;
  for (struct backend *b = s->top; b; b = b->next) {
    thread_ctx_set (s, NULL, b->name);
    if (b->ops->after_fork (b) == -1)
      goto fail;
  }
  thread_ctx_set (s, NULL, NULL);
  /* The pidfile is written with the identity that could create it;
   * -u/-g take effect just after.
   */
  if (lock_memory (s) == -1 || write_pidfile (s) == -1 || change_user (s) == -1)
    goto fail;
  if (s->opt.print_uri) {
    char *uri = server_uri (s);
    if (uri) {
      printf ("%s\n", uri);
      fflush (stdout);
      free (uri);
    }
  }
  if (s->opt.run && start_captive (s) == -1)
    goto fail;

  watchdog_start (s);
  listen_loop (s);
  stop_serving (s);
  listen_cleanup (s);
  /* The pidfile stays, as nbdkit's does: whoever waits for the
   * server to exit reads the pid from it after.
   */
  unload_all (s);
  return s->exit_status;

fail:
  listen_cleanup (s);
  unload_all (s);
  return 1;
}
