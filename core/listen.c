/* listen.c: where clients come from: Unix sockets (-U, including a
 * private one with -U -), TCP on chosen addresses (-p, -i, -4, -6),
 * vsock, socket activation (LISTEN_FDS), and the accept loop.
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "internal.h"

#define FIRST_SOCKET_ACTIVATION_FD 3

static int
add_fd (struct server *s, int fd)
{
  if (s->nlisten_fds >= MAX_LISTEN_FDS) {
    log_error (s, "too many listening sockets (at most %d)", MAX_LISTEN_FDS);
    close (fd);
    return -1;
  }
  s->listen_fds[s->nlisten_fds++] = fd;
  return 0;
}

static int
listen_unix (struct server *s)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  const char *path = s->opt.unixsocket;
  struct stat st;
  int fd;

  if (strcmp (path, "-") == 0) {
    const char *tmp = getenv ("TMPDIR");
    if (asprintf (&s->private_dir, "%s/nbdkitXXXXXX",
                  tmp && *tmp ? tmp : "/tmp")
            == -1
        || mkdtemp (s->private_dir) == NULL) {
      log_error (s, "-U -: cannot create a private directory: %m");
      return -1;
    }
    if (asprintf (&s->socket_path, "%s/socket", s->private_dir) == -1)
      return -1;
  } else if (path[0] == '/')
    s->socket_path = strdup (path);
  else
    s->socket_path = nbdkit_absolute_path (path);
  if (s->socket_path == NULL)
    return -1;
  if (strlen (s->socket_path) >= sizeof addr.sun_path) {
    log_error (s, "-U %s: socket path is too long (at most %zu bytes)",
               s->socket_path, sizeof addr.sun_path - 1);
    return -1;
  }
  /* A socket left by an earlier run is replaced; anything else is not. */
  if (lstat (s->socket_path, &st) == 0 && !S_ISSOCK (st.st_mode)) {
    log_error (s, "-U %s: %s", s->socket_path, strerror (EEXIST));
    return -1;
  }

  /* The socket is bound under a temporary name and renamed into place
   * once it listens, so whoever waits for the path to appear can
   * connect at once.  A path with no room for the suffix is bound
   * directly.
   */
  if (snprintf (addr.sun_path, sizeof addr.sun_path, "%s.%ld~", s->socket_path,
                (long)getpid ())
      >= (int)sizeof addr.sun_path) {
    strcpy (addr.sun_path, s->socket_path);
    if (lstat (s->socket_path, &st) == 0)
      unlink (s->socket_path);
  } else
    unlink (addr.sun_path);

  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    log_error (s, "socket: %m");
    return -1;
  }
  if (bind (fd, (struct sockaddr *)&addr, sizeof addr) == -1) {
    log_error (s, "-U %s: bind: %m", s->socket_path);
    close (fd);
    return -1;
  }
  if (listen (fd, SOMAXCONN) == -1) {
    log_error (s, "-U %s: listen: %m", s->socket_path);
    unlink (addr.sun_path);
    close (fd);
    return -1;
  }
  if (strcmp (addr.sun_path, s->socket_path) != 0
      && rename (addr.sun_path, s->socket_path) == -1) {
    log_error (s, "-U %s: rename: %m", s->socket_path);
    unlink (addr.sun_path);
    close (fd);
    return -1;
  }
  s->socket_made = true;
  return add_fd (s, fd);
}

static int
listen_tcp_addr (struct server *s, const char *addr, const char *port)
{
  struct addrinfo hints = {
    .ai_family = s->opt.family,
    .ai_socktype = SOCK_STREAM,
    .ai_flags = AI_PASSIVE | AI_ADDRCONFIG,
  };
  struct addrinfo *ai, *a;
  int r, n = 0, saved_errno = 0;

  r = getaddrinfo (addr, port, &hints, &ai);
  if (r != 0) {
    log_error (s, "-i %s -p %s: %s", addr ? addr : "(any)", port,
               gai_strerror (r));
    return -1;
  }
  for (a = ai; a; a = a->ai_next) {
    int one = 1;
    int fd
        = socket (a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd == -1) {
      saved_errno = errno;
      continue;
    }
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->ai_family == AF_INET6)
      setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind (fd, a->ai_addr, a->ai_addrlen) == -1
        || listen (fd, SOMAXCONN) == -1) {
      saved_errno = errno;
      close (fd);
      continue;
    }
    if (s->bound_port == 0) {
      struct sockaddr_storage ss;
      socklen_t len = sizeof ss;
      if (getsockname (fd, (struct sockaddr *)&ss, &len) == 0)
        s->bound_port = ntohs (ss.ss_family == AF_INET6
                                   ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                   : ((struct sockaddr_in *)&ss)->sin_port);
    }
    if (add_fd (s, fd) == -1)
      break;
    n++;
  }
  freeaddrinfo (ai);
  if (n == 0) {
    errno = saved_errno;
    log_error (s, "cannot listen on %s port %s: %m", addr ? addr : "(any)",
               port);
    return -1;
  }
  return 0;
}

static int
listen_vsock (struct server *s)
{
  struct sockaddr_vm addr = {
    .svm_family = AF_VSOCK,
    .svm_cid = VMADDR_CID_ANY,
    .svm_port = s->opt.port ? (unsigned)atoi (s->opt.port) : 10809,
  };
  int fd = socket (AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd == -1) {
    log_error (s, "--vsock: socket: %m");
    return -1;
  }
  if (bind (fd, (struct sockaddr *)&addr, sizeof addr) == -1
      || listen (fd, SOMAXCONN) == -1) {
    log_error (s, "--vsock: port %u: %m", addr.svm_port);
    close (fd);
    return -1;
  }
  s->bound_port = addr.svm_port;
  return add_fd (s, fd);
}

/* Sockets handed over by systemd or a similar supervisor. */
static int
socket_activation (struct server *s)
{
  const char *pid = getenv ("LISTEN_PID"), *fds = getenv ("LISTEN_FDS");
  int n;

  if (pid == NULL || fds == NULL || atoi (pid) != getpid ())
    return 0;
  n = atoi (fds);
  unsetenv ("LISTEN_PID");
  unsetenv ("LISTEN_FDS");
  unsetenv ("LISTEN_FDNAMES");
  if (n <= 0 || n > MAX_LISTEN_FDS) {
    log_error (s, "LISTEN_FDS=%s is not a number of sockets we can use", fds);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    int fd = FIRST_SOCKET_ACTIVATION_FD + i;
    fcntl (fd, F_SETFD, FD_CLOEXEC);
    if (add_fd (s, fd) == -1)
      return -1;
  }
  s->opt.socket_activation = true;
  return 1;
}

int
listen_setup (struct server *s)
{
  int r = socket_activation (s);

  if (r != 0)
    return r == 1 ? 0 : -1;
  if (s->opt.unixsocket)
    return listen_unix (s);
  if (s->opt.vsock)
    return listen_vsock (s);

  const char *port = s->opt.port ? s->opt.port : "10809";
  if (s->opt.nipaddr == 0)
    return listen_tcp_addr (s, NULL, port);
  for (int i = 0; i < s->opt.nipaddr; i++)
    if (listen_tcp_addr (s, s->opt.ipaddr[i], port) == -1)
      return -1;
  return 0;
}

void
listen_cleanup (struct server *s)
{
  for (int i = 0; i < s->nlisten_fds; i++)
    close (s->listen_fds[i]);
  s->nlisten_fds = 0;
  if (s->socket_made)
    unlink (s->socket_path);
  if (s->private_dir)
    rmdir (s->private_dir);
}

/* How long the accept loop leaves the listening sockets alone when
 * the process is out of file descriptors (or memory): the pending
 * client stays in the kernel's backlog meanwhile, and polling would
 * only report it again at once.
 */
#define ACCEPT_BACKOFF_MS 100

static bool
out_of_resources (int err)
{
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

int
listen_loop (struct server *s)
{
  struct pollfd pfd[MAX_LISTEN_FDS + 3];
  int n = s->nlisten_fds;
  bool starved = false; /* the last accept ran out of descriptors */

  for (int i = 0; i < n; i++) {
    pfd[i].fd = s->listen_fds[i];
    pfd[i].events = POLLIN;
  }
  pfd[n].fd = s->quit_pipe[0];
  pfd[n].events = POLLIN;
  pfd[n + 1].fd = s->reload_pipe[0];
  pfd[n + 1].events = POLLIN;
  /* --watch: -1 (which poll skips) without it. */
  pfd[n + 2].fd = watch_start (s);
  pfd[n + 2].events = POLLIN;

  while (!atomic_load (&s->quit)) {
    /* Out of descriptors, wait for the quit pipe only, for a while:
     * the clients already connected go on being served.
     */
    if (starved) {
      if (poll (&pfd[n], 1, ACCEPT_BACKOFF_MS) == 1)
        break;
    }
    if (poll (pfd, n + 3, watch_timeout (s)) == -1) {
      if (errno == EINTR)
        continue;
      log_error (s, "poll: %m");
      return -1;
    }
    if (pfd[n].revents) {
      /* A signal or nbdkit_shutdown. */
      break;
    }
    if (pfd[n + 1].revents) {
      /* SIGHUP, perhaps several: one reload. */
      char buf[64];
      while (read (s->reload_pipe[0], buf, sizeof buf) > 0)
        ;
      server_reload (s);
      continue;
    }
    if (pfd[n + 2].revents)
      watch_read (s);
    if (watch_due (s)) {
      log_debug (s, "--watch: a script changed: reloading");
      server_reload (s);
      continue;
    }
    for (int i = 0; i < n; i++) {
      int fd, one = 1;
      if (!(pfd[i].revents & POLLIN))
        continue;
      fd = accept4 (pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd == -1) {
        if (out_of_resources (errno)) {
          /* Said once per shortage, not once per attempt. */
          if (!starved)
            log_error (s, "accept: %m: new clients wait until some close "
                          "(raise the limit with ulimit -n)");
          starved = true;
          break;
        }
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
          log_debug (s, "accept: %m");
        continue;
      }
      if (starved) {
        log_debug (s, "accepting clients again");
        starved = false;
      }
      setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (s->opt.keepalive)
        setsockopt (fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      connection_start (s, fd, fd, true);
    }
  }
  return 0;
}

/* Append STR to *R; with ESCAPE, %-escape what a URI cannot hold as
 * it is.
 */
static int
uri_append (char **r, const char *str, bool escape)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen (*r), len = strlen (str);
  char *p = realloc (*r, n + 3 * len + 1);

  if (p == NULL)
    return -1;
  *r = p;
  for (; *str; str++) {
    unsigned char ch = *str;
    if (!escape || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
        || (ch >= '0' && ch <= '9') || strchr ("/.-_~", ch))
      p[n++] = ch;
    else {
      p[n++] = '%';
      p[n++] = hex[ch >> 4];
      p[n++] = hex[ch & 15];
    }
  }
  p[n] = '\0';
  return 0;
}

/* nbd+unix:///EXPORT?socket=PATH or nbd://HOST:PORT/EXPORT, the
 * export left out when it is the default one ("").  nbds only when
 * TLS is required: with --tls=on a client may do without.
 */
char *
server_uri (struct server *s)
{
  const char *e = s->opt.exportname ? s->opt.exportname : "";
  const char *scheme = s->opt.tls == TLS_REQUIRE ? "nbds" : "nbd";
  char *r = NULL;
  int ok;

  if (s->socket_path)
    ok = asprintf (&r, "%s+unix://", scheme) != -1;
  else if (s->opt.vsock)
    ok = asprintf (&r, "%s+vsock://1:%d", scheme, s->bound_port) != -1;
  else {
    const char *host = s->opt.nipaddr ? s->opt.ipaddr[0] : "localhost";
    bool v6 = strchr (host, ':') != NULL;
    ok = asprintf (&r, "%s://%s%s%s:%d", scheme, v6 ? "[" : "", host,
                   v6 ? "]" : "", s->bound_port)
         != -1;
  }
  if (!ok)
    return NULL;
  if (*e
      && (uri_append (&r, "/", false) == -1 || uri_append (&r, e, true) == -1))
    goto fail;
  if (s->socket_path
      && (uri_append (&r, "?socket=", false) == -1
          || uri_append (&r, s->socket_path, true) == -1))
    goto fail;
  return r;
fail:
  free (r);
  return NULL;
}

/* --reverse: the client listens and the server calls it.  Returns the
 * connected socket, or -1.
 */
int
reverse_connect (struct server *s)
{
  int fd = -1;

  if (s->opt.unixsocket) {
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen (s->opt.unixsocket) >= sizeof addr.sun_path) {
      log_error (s, "--reverse -U %s: path too long", s->opt.unixsocket);
      return -1;
    }
    strcpy (addr.sun_path, s->opt.unixsocket);
    fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect (fd, (struct sockaddr *)&addr, sizeof addr) == -1) {
      log_error (s, "--reverse: connect to %s: %m", s->opt.unixsocket);
      if (fd >= 0)
        close (fd);
      return -1;
    }
    return fd;
  }

  struct addrinfo hints = {
    .ai_family = s->opt.family,
    .ai_socktype = SOCK_STREAM,
  };
  struct addrinfo *ai, *a;
  const char *host = s->opt.nipaddr ? s->opt.ipaddr[0] : "localhost";
  const char *port = s->opt.port ? s->opt.port : "10809";
  int r = getaddrinfo (host, port, &hints, &ai);

  if (r != 0) {
    log_error (s, "--reverse: %s port %s: %s", host, port, gai_strerror (r));
    return -1;
  }
  for (a = ai; a; a = a->ai_next) {
    fd = socket (a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd == -1)
      continue;
    if (connect (fd, a->ai_addr, a->ai_addrlen) == 0)
      break;
    close (fd);
    fd = -1;
  }
  freeaddrinfo (ai);
  if (fd == -1)
    log_error (s, "--reverse: cannot connect to %s port %s: %m", host, port);
  else {
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}
