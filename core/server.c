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
static int signal_quit_fd = -1;

static void
handle_quit_signal (int sig)
{
  char c = 1;
  if (signal_quit_fd >= 0 && write (signal_quit_fd, &c, 1) == -1) {
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
  free (s);
}

/* nbdkit_shutdown from a thread the server did not start (a plugin's
 * or filter's own): it has no server to name, and the process has one.
 */
void
server_quit_from_anywhere (void)
{
  char c = 1;
  if (signal_quit_fd >= 0 && write (signal_quit_fd, &c, 1) == -1) {
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

  signal_quit_fd = s->quit_pipe[1];
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

struct captive {
  struct server *s;
  pid_t pid;
};

/* Wait for the --run command, then stop the server with its status. */
static void *
captive_wait (void *arg)
{
  struct captive *cap = arg;
  int status;

  while (waitpid (cap->pid, &status, 0) == -1 && errno == EINTR)
    ;
  if (WIFEXITED (status))
    cap->s->exit_status = WEXITSTATUS (status);
  else if (WIFSIGNALED (status)) {
    log_error (cap->s, "--run command was killed by signal %d",
               WTERMSIG (status));
    cap->s->exit_status = 128 + WTERMSIG (status);
  } else
    cap->s->exit_status = 1;
  server_request_quit (cap->s);
  free (cap);
  return NULL;
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
  cap->s = s;
  cap->pid = pid;
  if (pthread_create (&t, NULL, captive_wait, cap) != 0) {
    free (cap);
    return -1;
  }
  pthread_detach (t);
  return 0;
}

/* Wait until every connection has gone, after asking them to. */
static void
drain_connections (struct server *s)
{
  server_request_quit (s);
  pthread_mutex_lock (&s->lock);
  while (s->nconnections > 0)
    pthread_cond_wait (&s->cond, &s->lock);
  pthread_mutex_unlock (&s->lock);
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
#ifndef __SANITIZE_ADDRESS__
    if (b->dl)
      dlclose (b->dl);
#endif
    free (b->filename);
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
      in = dup (0);
      out = dup (1);
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
    drain_connections (s);
    watchdog_stop (s);
    pool_stop (s);
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
  if (lock_memory (s) == -1 || write_pidfile (s) == -1
      || change_user (s) == -1)
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
  drain_connections (s);
  watchdog_stop (s);
  pool_stop (s);
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
