/* public.c: the helpers plugins call about their connection and the
 * server: export name, peer credentials, TLS, shutdown and disconnect,
 * sleeping, interned strings.
 */

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

NBDKIT_EXTERN_C const char *
nbdkit_export_name (void)
{
  struct connection *c = thread_ctx ()->conn;
  if (c == NULL) {
    nbdkit_error ("nbdkit_export_name: called outside a connection");
    return NULL;
  }
  return c->exportname ? c->exportname : "";
}

NBDKIT_EXTERN_C int
nbdkit_is_tls (void)
{
  struct connection *c = thread_ctx ()->conn;
  if (c == NULL) {
    nbdkit_error ("nbdkit_is_tls: called outside a connection");
    return -1;
  }
  return c->is_tls;
}

NBDKIT_EXTERN_C int
nbdkit_peer_name (struct sockaddr *addr, socklen_t *addrlen)
{
  struct connection *c = thread_ctx ()->conn;
  if (c == NULL) {
    nbdkit_error ("nbdkit_peer_name: called outside a connection");
    return -1;
  }
  if (getpeername (c->sockin, addr, addrlen) == -1) {
    nbdkit_error ("peername: %m");
    return -1;
  }
  return 0;
}

static int
peer_cred (struct ucred *cred)
{
  struct connection *c = thread_ctx ()->conn;
  socklen_t len = sizeof *cred;

  if (c == NULL) {
    nbdkit_error ("peer credentials: called outside a connection");
    return -1;
  }
  if (!c->is_unix) {
    nbdkit_error ("peer credentials are only known for Unix domain sockets");
    return -1;
  }
  if (getsockopt (c->sockin, SOL_SOCKET, SO_PEERCRED, cred, &len) == -1) {
    nbdkit_error ("getsockopt: SO_PEERCRED: %m");
    return -1;
  }
  return 0;
}

NBDKIT_EXTERN_C int64_t
nbdkit_peer_pid (void)
{
  struct ucred cred;
  return peer_cred (&cred) == -1 ? -1 : cred.pid;
}

NBDKIT_EXTERN_C int64_t
nbdkit_peer_uid (void)
{
  struct ucred cred;
  return peer_cred (&cred) == -1 ? -1 : (int64_t)cred.uid;
}

NBDKIT_EXTERN_C int64_t
nbdkit_peer_gid (void)
{
  struct ucred cred;
  return peer_cred (&cred) == -1 ? -1 : (int64_t)cred.gid;
}

NBDKIT_EXTERN_C void
nbdkit_shutdown (void)
{
  struct server *s = thread_ctx ()->server;
  if (s)
    server_request_quit (s);
  else
    server_quit_from_anywhere ();
}

NBDKIT_EXTERN_C int
nbdkit_shutdown_fd (void)
{
  struct server *s = thread_ctx ()->server;
  return s ? s->quit_pipe[0] : -1;
}

NBDKIT_EXTERN_C void
nbdkit_disconnect (int force)
{
  struct connection *c = thread_ctx ()->conn;
  if (c == NULL)
    return;
  /* Forced: the reader sees end of file and replies fail.  Soft:
   * requests already read finish; later ones fail with ESHUTDOWN
   * until the client disconnects.
   */
  if (force) {
    atomic_store (&c->status, CONN_DEAD);
    shutdown (c->sockin, SHUT_RDWR);
  } else
    atomic_store (&c->soft_disconnect, true);
}

NBDKIT_EXTERN_C int
nbdkit_stdio_safe (void)
{
  struct server *s = thread_ctx ()->server;
  return s == NULL || !s->opt.single;
}

NBDKIT_EXTERN_C int
nbdkit_nanosleep (unsigned sec, unsigned nsec)
{
  struct thread_ctx *t = thread_ctx ();
  struct timespec start, now;
  int64_t total_ms = (int64_t)sec * 1000 + nsec / 1000000;
  struct pollfd pfd[2];
  int n = 0;

  /* Wake early when the server quits or this client goes away. */
  if (t->server) {
    pfd[n].fd = t->server->quit_pipe[0];
    pfd[n++].events = POLLIN;
  }
  if (t->conn) {
    pfd[n].fd = t->conn->sockin;
    pfd[n++].events = POLLRDHUP;
  }
  clock_gettime (CLOCK_MONOTONIC, &start);
  for (;;) {
    int64_t elapsed;
    clock_gettime (CLOCK_MONOTONIC, &now);
    elapsed = (now.tv_sec - start.tv_sec) * 1000
              + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (elapsed >= total_ms)
      return 0;
    if ((t->server && atomic_load (&t->server->quit))
        || (t->conn && atomic_load (&t->conn->status) <= CONN_STOPPING)) {
      nbdkit_error ("aborting sleep: shutting down");
      errno = ESHUTDOWN;
      return -1;
    }
    int r = poll (pfd, n, total_ms - elapsed);
    if (r > 0) {
      if ((t->server && atomic_load (&t->server->quit))
          || (n > 1 && (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))) {
        nbdkit_error ("aborting sleep: shutting down");
        errno = ESHUTDOWN;
        return -1;
      }
      /* Only data to read: sleep on, without watching the socket. */
      if (n > 1)
        n = 1;
    }
  }
}

/* ---- interned strings ---- */

static const char *
intern (char *str)
{
  struct thread_ctx *t = thread_ctx ();
  char ***v;
  size_t *n, *alloc;
  const char *ret = str;

  if (str == NULL) {
    nbdkit_error ("strdup: %m");
    return NULL;
  }
  /* No server: the string lives for the process. */
  if (t->server == NULL)
    return str;

  /* One lock for both lists: threads of a connection share its list. */
  pthread_mutex_lock (&t->server->intern_lock);
  if (t->conn) {
    v = &t->conn->interned;
    n = &t->conn->ninterned;
    alloc = &t->conn->interned_alloc;
  } else {
    v = &t->server->interned;
    n = &t->server->ninterned;
    alloc = &t->server->interned_alloc;
  }
  if (*n == *alloc) {
    size_t na = *alloc ? *alloc * 2 : 16;
    char **nv = realloc (*v, na * sizeof *nv);
    if (nv == NULL) {
      free (str);
      nbdkit_error ("realloc: %m");
      ret = NULL;
      goto out;
    }
    *v = nv;
    *alloc = na;
  }
  (*v)[(*n)++] = str;
out:
  pthread_mutex_unlock (&t->server->intern_lock);
  return ret;
}

NBDKIT_EXTERN_C const char *
nbdkit_strdup_intern (const char *str)
{
  return intern (strdup (str));
}

NBDKIT_EXTERN_C const char *
nbdkit_strndup_intern (const char *str, size_t n)
{
  return intern (strndup (str, n));
}

NBDKIT_EXTERN_C const char *
nbdkit_vprintf_intern (const char *fmt, va_list ap)
{
  char *s = NULL;
  if (vasprintf (&s, fmt, ap) == -1)
    s = NULL;
  return intern (s);
}

NBDKIT_EXTERN_C const char *
nbdkit_printf_intern (const char *fmt, ...)
{
  va_list ap;
  const char *r;
  va_start (ap, fmt);
  r = nbdkit_vprintf_intern (fmt, ap);
  va_end (ap);
  return r;
}
