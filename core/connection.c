/* connection.c: one client's life: its socket I/O, the threads that
 * serve it (created on demand, up to -t, taking turns as the reader of
 * requests), and its teardown.
 */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "async.h"
#include "internal.h"
#include "protocol.h"

#define RBUF_SIZE 16384

/* ---- I/O ---- */

/* A deadline for the whole handshake, not for each read or send: a
 * client trickling a byte at a time, or one that stops reading our
 * replies, must not hold its thread for ever.  Each read or send may
 * wait only for the time that is left.
 */
static int
set_timeout (struct connection *c, int fd, int optname)
{
  uint64_t now = monotonic_ns ();
  struct timeval tv;

  if (now >= c->deadline) {
    errno = ETIMEDOUT;
    return -1;
  }
  tv.tv_sec = (c->deadline - now) / 1000000000;
  tv.tv_usec = (c->deadline - now) % 1000000000 / 1000;
  if (tv.tv_sec == 0 && tv.tv_usec == 0)
    tv.tv_usec = 1;
  setsockopt (fd, SOL_SOCKET, optname, &tv, sizeof tv);
  return 0;
}

static int
set_read_timeout (struct connection *c)
{
  return set_timeout (c, c->sockin, SO_RCVTIMEO);
}

void
conn_clear_deadline (struct connection *c)
{
  struct timeval tv = { 0 };

  if (c->deadline == 0)
    return;
  c->deadline = 0;
  setsockopt (c->sockin, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (c->is_socket)
    setsockopt (c->sockout, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int
conn_recv (struct connection *c, void *buf, size_t len)
{
  char *p = buf;

  /* First whatever is buffered. */
  if (c->rbuf_end > c->rbuf_start) {
    size_t n = c->rbuf_end - c->rbuf_start;
    if (n > len)
      n = len;
    memcpy (p, c->rbuf + c->rbuf_start, n);
    c->rbuf_start += n;
    p += n;
    len -= n;
  }
  while (len > 0) {
    ssize_t r;
    if (c->deadline && set_read_timeout (c) == -1)
      return -1;
    /* Small reads go through the buffer so several queued requests
     * arrive in one system call; large ones go straight to BUF.
     */
    if (len < RBUF_SIZE / 4) {
      r = c->tls_session ? tls_recv (c, c->rbuf, RBUF_SIZE)
                         : read (c->sockin, c->rbuf, RBUF_SIZE);
      if (r > 0) {
        size_t n = (size_t)r > len ? len : (size_t)r;
        memcpy (p, c->rbuf, n);
        c->rbuf_start = n;
        c->rbuf_end = r;
        p += n;
        len -= n;
        continue;
      }
    } else
      r = c->tls_session ? tls_recv (c, p, len) : read (c->sockin, p, len);
    if (r == 0) {
      errno = 0; /* end of file */
      return -1;
    }
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    len -= r;
  }
  return 0;
}

/* Whether the input buffer already holds the next request whole,
 * payload included, so reading it cannot wait on the client.
 */
bool
conn_request_buffered (struct connection *c)
{
  size_t have = c->rbuf_end - c->rbuf_start;
  const unsigned char *p = c->rbuf + c->rbuf_start;
  uint64_t payload;

  if (c->extended_headers) {
    struct nbd_request_ext h;
    if (have < sizeof h)
      return false;
    memcpy (&h, p, sizeof h);
    payload
        = be16toh (h.flags) & NBD_CMD_FLAG_PAYLOAD_LEN ? be64toh (h.count) : 0;
    have -= sizeof h;
  } else {
    struct nbd_request h;
    if (have < sizeof h)
      return false;
    memcpy (&h, p, sizeof h);
    payload = be16toh (h.type) == NBD_CMD_WRITE ? be32toh (h.count) : 0;
    have -= sizeof h;
  }
  return payload <= have;
}

bool
conn_input_pending (struct connection *c)
{
  struct pollfd pfd = { .fd = c->sockin, .events = POLLIN };

  if (c->rbuf_end > c->rbuf_start)
    return true;
  if (c->tls_session && tls_pending (c))
    return true;
  return poll (&pfd, 1, 0) == 1;
}

/* Step *IOV (*IOVCNT entries) past the N bytes that were sent. */
static void
iov_advance (struct iovec **iov, int *iovcnt, size_t n)
{
  while (*iovcnt > 0 && n >= (*iov)->iov_len) {
    n -= (*iov)->iov_len;
    (*iov)++;
    (*iovcnt)--;
  }
  if (*iovcnt > 0) {
    (*iov)->iov_base = (char *)(*iov)->iov_base + n;
    (*iov)->iov_len -= n;
  }
}

int
conn_sendv (struct connection *c, struct iovec *iov, int iovcnt)
{
  if (c->deadline && c->is_socket
      && set_timeout (c, c->sockout, SO_SNDTIMEO) == -1)
    return -1;
  if (c->tls_session)
    return tls_sendv (c, iov, iovcnt, false) == -1 ? -1 : 0;
  while (iovcnt > 0) {
    ssize_t r;
    if (c->deadline && c->is_socket
        && set_timeout (c, c->sockout, SO_SNDTIMEO) == -1)
      return -1;
    if (c->is_socket) {
      struct msghdr msg = { .msg_iov = iov, .msg_iovlen = iovcnt };
      r = sendmsg (c->sockout, &msg, MSG_NOSIGNAL);
    } else
      r = writev (c->sockout, iov, iovcnt);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      /* The socket blocks: EAGAIN means the handshake's time ran out. */
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        errno = ETIMEDOUT;
      return -1;
    }
    iov_advance (&iov, &iovcnt, r);
  }
  return 0;
}

ssize_t
conn_sendv_nowait (struct connection *c, struct iovec *iov, int iovcnt)
{
  size_t done = 0;

  if (c->tls_session)
    return tls_sendv (c, iov, iovcnt, true);
  while (iovcnt > 0) {
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = iovcnt };
    ssize_t r = sendmsg (c->sockout, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      return -1;
    }
    done += r;
    iov_advance (&iov, &iovcnt, r);
  }
  return done;
}

int
conn_send (struct connection *c, const void *buf, size_t len)
{
  struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
  return conn_sendv (c, &iov, 1);
}

/* ---- interned strings ---- */

void
conn_intern_free (struct connection *c)
{
  for (size_t i = 0; i < c->ninterned; i++)
    free (c->interned[i]);
  free (c->interned);
  c->interned = NULL;
  c->ninterned = c->interned_alloc = 0;
}

/* ---- threads ---- */

static void *worker (void *arg);

/* Called with c->lock held: make sure someone will read the next
 * request, waking an idle thread or starting a new one.
 */
static void
find_reader (struct connection *c)
{
  if (c->nidle > 0) {
    pthread_cond_signal (&c->cond);
    return;
  }
  if (c->nthreads >= c->max_threads)
    return;
  c->nthreads++;
  if (pool_run (c->server, worker, c) == -1) {
    c->nthreads--;
    /* Fewer threads is not fatal: the current ones go on serving. */
  }
}

/* Free a connection whose threads are all gone (nthreads is 0, or
 * transmission never started).  Once no completion is left, the
 * connection is unlinked first, so
 * that neither the watchdog nor server_request_quit, which walk the
 * list under s->lock, can reach it while its sockets close (their
 * numbers may be reused at once) or its locks are destroyed.  The
 * caller says the connection is gone (connection_gone) only after
 * this, as the very last thing it does with the server.
 */
static void
connection_free (struct connection *c)
{
  struct server *s = c->server;

  thread_ctx_set (s, c, s->plugin->name);
  /* Completions still to come use the connection and the layers.
   * Their replies may wait for a client that stopped reading: still
   * on the list, the connection has its sockets shut down when the
   * server stops (drain_connections), and the wait ends.
   */
  async_wait_all (c);

  pthread_mutex_lock (&s->lock);
  for (struct connection **pp = &s->connections; *pp; pp = &(*pp)->next_live)
    if (*pp == c) {
      *pp = c->next_live;
      break;
    }
  pthread_mutex_unlock (&s->lock);

  if (c->top)
    backend_close (c->top);
  async_conn_free (c);
  tls_close (c);
  if (c->sockin >= 0)
    close (c->sockin);
  if (c->sockout >= 0 && c->sockout != c->sockin)
    close (c->sockout);
  conn_intern_free (c);
  free (c->rbuf);
  free (c->exportname);
  free (c->requested_name);
  free (c->meta_export);
  exports_default_forget (c);
  pthread_mutex_destroy (&c->lock);
  pthread_mutex_destroy (&c->send_lock);
  pthread_cond_destroy (&c->cond);
  free (c);
  thread_ctx_set (s, NULL, NULL);
}

/* One connection fewer: drain_connections may go on once it sees 0,
 * and then tear the server down, so the caller must not touch the
 * server after this (its pool thread only goes back to the pool,
 * which pool_stop joins).
 */
static void
connection_gone (struct server *s)
{
  pthread_mutex_lock (&s->lock);
  s->nconnections--;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
}

/* The transmission phase: every thread of the connection runs this,
 * taking turns to read a request, then serving the one it read.
 */
static void *
worker (void *arg)
{
  struct connection *c = arg;

  thread_ctx_set (c->server, c, c->server->plugin->name);
  transmission_loop (c);

  /* The connection's first thread frees it once all others are gone. */
  pthread_mutex_lock (&c->lock);
  c->nthreads--;
  pthread_cond_broadcast (&c->cond);
  pthread_mutex_unlock (&c->lock);
  return NULL;
}

void
connection_find_reader (struct connection *c)
{
  find_reader (c);
}

/* ---- the watchdog ----
 *
 * A request read when no other is waiting is served on the thread that
 * read it, without waking another thread to read the next one: at
 * queue depth 1 that hand-over is most of the cost.  If the request
 * turns out slow and the client sends more meanwhile, the watchdog
 * notices the unattended connection within a millisecond or two and
 * finds it a reader, so slow requests still overlap.
 */
#define WATCH_NS 1000000

uint64_t
monotonic_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *
watchdog (void *arg)
{
  struct server *s = arg;
  /* On one CPU a second thread helps only a request that waits (on a
   * disk, a network, a timer), and waking one for a request that is
   * merely busy costs the busy one: be slower to step in.
   */
  uint64_t after = s->ncpus > 1 ? WATCH_NS : 10 * WATCH_NS;
  struct timespec tick = { .tv_nsec = s->ncpus > 1 ? WATCH_NS : 5 * WATCH_NS };

  pthread_mutex_lock (&s->lock);
  while (!atomic_load (&s->quit)) {
    if (s->nwatched == 0) {
      pthread_cond_wait (&s->watch_cond, &s->lock);
      continue;
    }
    pthread_mutex_unlock (&s->lock);
    nanosleep (&tick, NULL);
    pthread_mutex_lock (&s->lock);
    uint64_t now = monotonic_ns ();
    for (struct connection *c = s->connections; c; c = c->next_live) {
      uint64_t since = atomic_load (&c->unattended_since);
      if (since == 0 || now - since < after)
        continue;
      pthread_mutex_lock (&c->lock);
      /* Only for a request that waits: a new reader for a client that
       * sent nothing would just sleep in read, and take the next
       * request from the thread that is about to be free.
       */
      if (!c->reader_busy && atomic_load (&c->unattended_since)
          && atomic_load (&c->status) > CONN_STOPPING
          && conn_input_pending (c)) {
        atomic_store (&c->unattended_since, 0);
        find_reader (c);
      }
      pthread_mutex_unlock (&c->lock);
    }
  }
  pthread_mutex_unlock (&s->lock);
  return NULL;
}

void
watchdog_start (struct server *s)
{
  if (pthread_create (&s->watchdog, NULL, watchdog, s) == 0)
    s->watchdog_started = true;
}

void
watchdog_stop (struct server *s)
{
  if (!s->watchdog_started)
    return;
  pthread_mutex_lock (&s->lock);
  pthread_cond_broadcast (&s->watch_cond);
  pthread_mutex_unlock (&s->lock);
  pthread_join (s->watchdog, NULL);
  s->watchdog_started = false;
}

static void
watch (struct connection *c, bool on)
{
  struct server *s = c->server;

  pthread_mutex_lock (&s->lock);
  if (on && s->nwatched++ == 0)
    pthread_cond_signal (&s->watch_cond);
  if (!on)
    s->nwatched--;
  pthread_mutex_unlock (&s->lock);
}

/* The first thread of a connection: handshake, then transmission. */
static void *
connection_main (void *arg)
{
  struct connection *c = arg;
  struct server *s = c->server;
  bool serialize = s->thread_model == TM_SERIALIZE_CONNECTIONS;

  /* serialize_connections: one connection's whole life at a time,
   * handshake included; the contexts its filters open count as its own.
   * Each call into the plugin is serialized besides (backend.c), which
   * also holds a filter's threads to one call at a time.
   */
  if (serialize)
    pthread_mutex_lock (&s->connections_lock);
  thread_ctx_set (s, c, s->plugin->name);
  log_debug (s, "new connection");

  /* Each layer may refuse the client before the handshake. */
  if (backend_preconnect (s->top, s->opt.readonly) == -1) {
    log_debug (s, "client refused by preconnect");
  } else if ((s->opt.transmission_only ? handshake_finish_export (
                  c, s->opt.exportname ? s->opt.exportname : "")
              : s->opt.oldstyle ? handshake_oldstyle (c)
                                : handshake (c))
             == 0) {
    pthread_mutex_lock (&c->lock);
    c->nthreads = 1;
    pthread_mutex_unlock (&c->lock);
    if (c->max_threads > 1)
      watch (c, true);
    async_prepare (c);
    transmission_loop (c);
    pthread_mutex_lock (&c->lock);
    c->nthreads--;
    pthread_cond_broadcast (&c->cond);
    /* Wait for the other threads: the first one out frees nothing. */
    while (c->nthreads > 0)
      pthread_cond_wait (&c->cond, &c->lock);
    pthread_mutex_unlock (&c->lock);
    if (c->max_threads > 1)
      watch (c, false);
  }
  log_debug (s, "connection closed");
  connection_free (c);
  if (serialize)
    pthread_mutex_unlock (&s->connections_lock);
  connection_gone (s);
  return NULL;
}

void
connection_start (struct server *s, int sockin, int sockout, bool detached)
{
  struct connection *c = calloc (1, sizeof *c);
  int type = 0;
  socklen_t tlen = sizeof type;

  /* A good moment to join pool threads that have left: no lock held. */
  pool_reap (s);
  if (c == NULL || (c->rbuf = malloc (RBUF_SIZE)) == NULL) {
    log_error (s, "malloc: %m");
    free (c);
    close (sockin);
    if (sockout != sockin)
      close (sockout);
    return;
  }
  c->server = s;
  c->sockin = sockin;
  c->sockout = sockout;
  c->is_socket = getsockopt (sockout, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0;
  c->peerlen = sizeof c->peer;
  if (getpeername (sockin, (struct sockaddr *)&c->peer, &c->peerlen) == -1)
    c->peerlen = 0;
  c->is_unix = c->peerlen > 0 && c->peer.ss_family == AF_UNIX;
  c->readonly = s->opt.readonly;
  c->max_threads = 1;
  if (s->thread_model >= TM_SERIALIZE_RETIREMENT)
    c->max_threads = s->opt.threads ? s->opt.threads : 16;
  atomic_init (&c->status, CONN_LIVE);
  atomic_init (&c->soft_disconnect, false);
  pthread_mutex_init (&c->lock, NULL);
  pthread_mutex_init (&c->send_lock, NULL);
  pthread_cond_init (&c->cond, NULL);

  pthread_mutex_lock (&s->lock);
  c->id = ++s->next_conn_id;
  c->next_live = s->connections;
  s->connections = c;
  s->nconnections++;
  pthread_mutex_unlock (&s->lock);

  if (!detached) {
    connection_main (c);
    return;
  }
  if (pool_run (s, connection_main, c) == -1) {
    log_error (s, "cannot start a thread for a new connection");
    connection_free (c);
    connection_gone (s);
  }
}
