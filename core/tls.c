/* tls.c: TLS with GnuTLS: the server's credentials (X.509 certificates
 * from a directory, or a PSK file), and each connection's session once
 * the client asks for it with NBD_OPT_STARTTLS.
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "internal.h"

struct tls_server {
  gnutls_certificate_credentials_t x509;
  gnutls_psk_server_credentials_t psk;
  gnutls_priority_t priority;
};

static bool
exists (const char *dir, const char *name, char **path)
{
  if (asprintf (path, "%s/%s", dir, name) == -1) {
    *path = NULL;
    return false;
  }
  if (access (*path, R_OK) == 0)
    return true;
  free (*path);
  *path = NULL;
  return false;
}

/* Where certificates are looked for without --tls-certificates. */
static char *
default_cert_dir (void)
{
  char *dir = NULL;
  const char *home = getenv ("HOME");

  if (geteuid () != 0 && home && *home) {
    if (asprintf (&dir, "%s/.pki/nbdkit", home) == -1)
      return NULL;
    return dir;
  }
  return strdup ("/etc/pki/nbdkit");
}

static int
load_x509 (struct server *s, struct tls_server *t)
{
  char *dir = s->opt.tls_certificates ? strdup (s->opt.tls_certificates)
                                      : default_cert_dir ();
  char *ca = NULL, *crl = NULL, *cert = NULL, *key = NULL;
  int r, ret = -1;

  if (dir == NULL)
    return -1;
  if (!exists (dir, "server-cert.pem", &cert)
      || !exists (dir, "server-key.pem", &key)) {
    /* --tls=on without certificates serves without TLS, as nbdkit. */
    if (s->opt.tls == TLS_ON) {
      log_warning (s,
                   "TLS disabled: no server-cert.pem and server-key.pem"
                   " readable in %s",
                   dir);
      ret = -2;
      goto out;
    }
    log_error (s,
               "--tls: no server-cert.pem and server-key.pem readable in"
               " %s (give the directory with --tls-certificates, or use"
               " --tls-psk)",
               dir);
    goto out;
  }
  r = gnutls_certificate_allocate_credentials (&t->x509);
  if (r != GNUTLS_E_SUCCESS) {
    log_error (s, "gnutls: %s", gnutls_strerror (r));
    goto out;
  }
  if (exists (dir, "ca-cert.pem", &ca)) {
    r = gnutls_certificate_set_x509_trust_file (t->x509, ca,
                                                GNUTLS_X509_FMT_PEM);
    if (r < 0) {
      log_error (s, "%s: %s", ca, gnutls_strerror (r));
      goto out;
    }
  } else if (s->opt.tls_verify_peer) {
    log_error (s,
               "--tls-verify-peer: no ca-cert.pem in %s to check client"
               " certificates against",
               dir);
    goto out;
  }
  if (exists (dir, "ca-crl.pem", &crl)) {
    r = gnutls_certificate_set_x509_crl_file (t->x509, crl,
                                              GNUTLS_X509_FMT_PEM);
    if (r < 0) {
      log_error (s, "%s: %s", crl, gnutls_strerror (r));
      goto out;
    }
  }
  r = gnutls_certificate_set_x509_key_file (t->x509, cert, key,
                                            GNUTLS_X509_FMT_PEM);
  if (r < 0) {
    log_error (s, "%s, %s: %s", cert, key, gnutls_strerror (r));
    goto out;
  }
  log_debug (s, "TLS: certificates from %s", dir);
  ret = 0;
out:
  free (dir);
  free (ca);
  free (crl);
  free (cert);
  free (key);
  return ret;
}

/* -D nbdkit.tls.log=N: GnuTLS's own messages, through our log. */
static void
gnutls_log (int level, const char *msg)
{
  nbdkit_debug ("gnutls: %d: %s", level, msg);
}

int
tls_init (struct server *s)
{
  struct tls_server *t;
  const char *prio;
  int r;

  if (s->opt.tls == TLS_OFF)
    return 0;
  if (s->debug_tls_log > 0) {
    gnutls_global_set_log_function (gnutls_log);
    gnutls_global_set_log_level (s->debug_tls_log);
  }
  t = calloc (1, sizeof *t);
  if (t == NULL) {
    log_error (s, "calloc: %m");
    return -1;
  }
  s->tls = t;
  if (s->opt.tls_psk) {
    if (access (s->opt.tls_psk, R_OK) == -1) {
      log_error (s, "--tls-psk=%s: %m", s->opt.tls_psk);
      return -1;
    }
    r = gnutls_psk_allocate_server_credentials (&t->psk);
    if (r == GNUTLS_E_SUCCESS)
      r = gnutls_psk_set_server_credentials_file (t->psk, s->opt.tls_psk);
    if (r != GNUTLS_E_SUCCESS) {
      log_error (s, "--tls-psk=%s: %s", s->opt.tls_psk, gnutls_strerror (r));
      return -1;
    }
    prio = "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK";
  } else {
    r = load_x509 (s, t);
    if (r == -2) {
      s->tls = NULL;
      s->opt.tls = TLS_OFF;
      free (t);
      return 0;
    }
    if (r == -1)
      return -1;
    prio = "NORMAL";
  }
  r = gnutls_priority_init (&t->priority, prio, NULL);
  if (r != GNUTLS_E_SUCCESS) {
    log_error (s, "gnutls priority %s: %s", prio, gnutls_strerror (r));
    return -1;
  }
  return 0;
}

void
tls_free (struct server *s)
{
  struct tls_server *t = s->tls;

  if (t == NULL)
    return;
  if (t->x509)
    gnutls_certificate_free_credentials (t->x509);
  if (t->psk)
    gnutls_psk_free_server_credentials (t->psk);
  if (t->priority)
    gnutls_priority_deinit (t->priority);
  free (t);
  s->tls = NULL;
}

/* Check the client's certificate against our CA (--tls-verify-peer). */
static int
verify_peer (struct connection *c, gnutls_session_t session)
{
  unsigned status;
  int r = gnutls_certificate_verify_peers2 (session, &status);

  if (r < 0) {
    log_error (c->server, "TLS: verifying the client certificate: %s",
               gnutls_strerror (r));
    return -1;
  }
  if (status != 0) {
    gnutls_datum_t out;
    if (gnutls_certificate_verification_status_print (status, GNUTLS_CRT_X509,
                                                      &out, 0)
        == 0) {
      log_error (c->server, "TLS: client certificate refused: %s", out.data);
      gnutls_free (out.data);
    } else
      log_error (c->server, "TLS: client certificate refused");
    return -1;
  }
  return 0;
}

/* Whether this thread's sends must not wait for the client: set by
 * tls_sendv for a thread that completed a request (core/async.c),
 * which may serve every connection.  Per thread, because the push
 * function knows only the socket, and another thread of the same
 * connection may be receiving meanwhile.
 */
static _Thread_local bool push_nowait;

/* GnuTLS's push function: sendmsg, with MSG_DONTWAIT for a thread
 * that must not wait (GnuTLS turns its EAGAIN into GNUTLS_E_AGAIN and
 * keeps the rest of the record).
 */
static ssize_t
tls_push (gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
  struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };

  return sendmsg ((int)(intptr_t)ptr, &msg,
                  MSG_NOSIGNAL | (push_nowait ? MSG_DONTWAIT : 0));
}

int
tls_handshake (struct connection *c)
{
  struct server *s = c->server;
  struct tls_server *t = s->tls;
  gnutls_session_t session;
  int r;

  r = gnutls_init (&session, GNUTLS_SERVER);
  if (r != GNUTLS_E_SUCCESS) {
    log_error (s, "gnutls_init: %s", gnutls_strerror (r));
    return -1;
  }
  r = gnutls_priority_set (session, t->priority);
  if (r == GNUTLS_E_SUCCESS)
    r = t->psk
            ? gnutls_credentials_set (session, GNUTLS_CRD_PSK, t->psk)
            : gnutls_credentials_set (session, GNUTLS_CRD_CERTIFICATE, t->x509);
  if (r != GNUTLS_E_SUCCESS) {
    log_error (s, "gnutls: %s", gnutls_strerror (r));
    gnutls_deinit (session);
    return -1;
  }
  if (t->x509 && s->opt.tls_verify_peer)
    gnutls_certificate_server_set_request (session, GNUTLS_CERT_REQUIRE);
  gnutls_transport_set_int2 (session, c->sockin, c->sockout);
  if (c->is_socket)
    gnutls_transport_set_vec_push_function (session, tls_push);
  /* Within what is left of the --timeout deadline, if any. */
  unsigned ms = GNUTLS_DEFAULT_HANDSHAKE_TIMEOUT;
  if (c->deadline) {
    uint64_t now = monotonic_ns ();
    ms = now >= c->deadline ? 1 : (c->deadline - now) / 1000000 + 1;
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000 };
    setsockopt (c->sockin, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  gnutls_handshake_set_timeout (session, ms);
  do
    r = gnutls_handshake (session);
  while (r < 0 && !gnutls_error_is_fatal (r));
  if (r < 0) {
    log_error (s, "TLS handshake failed: %s", gnutls_strerror (r));
    gnutls_deinit (session);
    return -1;
  }
  if (t->x509 && s->opt.tls_verify_peer && verify_peer (c, session) == -1) {
    gnutls_deinit (session);
    return -1;
  }
  c->tls_session = session;
  c->is_tls = true;
  log_debug (s, "TLS: %s negotiated",
             gnutls_protocol_get_name (gnutls_protocol_get_version (session)));
  if (s->debug_tls_session) {
    char *desc = gnutls_session_get_desc (session);
    if (desc) {
      log_debug (s, "TLS session: %s", desc);
      gnutls_free (desc);
    }
  }
  return 0;
}

ssize_t
tls_recv (struct connection *c, void *buf, size_t len)
{
  ssize_t r;

  do
    r = gnutls_record_recv (c->tls_session, buf, len);
  while (r == GNUTLS_E_INTERRUPTED);
  /* The socket blocks: AGAIN means the handshake's time ran out. */
  if (r == GNUTLS_E_AGAIN) {
    log_debug (c->server, "TLS read: timed out");
    errno = ETIMEDOUT;
    return -1;
  }
  if (r < 0) {
    log_debug (c->server, "TLS read: %s", gnutls_strerror (r));
    errno = EIO;
    return -1;
  }
  return r;
}

/* A failed gnutls_record_send (R < 0, not INTERRUPTED): -1 with errno
 * as send_records (below) says.
 */
static int
record_send_failed (struct connection *c, ssize_t r)
{
  if (r == GNUTLS_E_AGAIN) {
    c->tls_held = true;
    if (push_nowait) {
      errno = EAGAIN;
      return -1;
    }
    /* The socket blocks: AGAIN means the --timeout ran out. */
    log_debug (c->server, "TLS write: timed out");
    errno = ETIMEDOUT;
    return -1;
  }
  log_debug (c->server, "TLS write: %s", gnutls_strerror (r));
  errno = EIO;
  return -1;
}

/* Send N bytes at P, one record after another, counting in *DONE the
 * bytes GnuTLS took.  0, or -1 with errno: EAGAIN (push_nowait and
 * the socket is full), ETIMEDOUT, EIO.  On GNUTLS_E_AGAIN the record
 * is kept by GnuTLS, half sent, and not counted: c->tls_held says the
 * next send must finish it first (finish_held).
 */
static int
send_records (struct connection *c, const char *p, size_t n, size_t *done)
{
  while (n > 0) {
    ssize_t r = gnutls_record_send (c->tls_session, p, n);
    if (r == GNUTLS_E_INTERRUPTED)
      continue;
    if (r < 0)
      return record_send_failed (c, r);
    p += r;
    n -= r;
    *done += r;
  }
  return 0;
}

/* Finish the record cut short by an earlier send.  GnuTLS requires the
 * call to be repeated before any other; with no data it sends the same
 * record again, and returns how many bytes of the first call's data it
 * holds: the number returned, or -1 with errno as send_records.
 */
static ssize_t
finish_held (struct connection *c)
{
  ssize_t r;

  do
    r = gnutls_record_send (c->tls_session, NULL, 0);
  while (r == GNUTLS_E_INTERRUPTED);
  if (r < 0)
    return record_send_failed (c, r);
  c->tls_held = false;
  return r;
}

/* Small pieces (reply headers) are gathered into one record; large
 * ones (data) are encrypted straight from where they are, without the
 * extra copy corking would make.
 */
#define TLS_GATHER 16384

static int
sendv_records (struct connection *c, struct iovec *iov, int iovcnt,
               size_t *done)
{
  char stage[TLS_GATHER];
  size_t used = 0, skip = 0, total = 0;

  /* A record cut short holds the first bytes of IOV: the caller sends
   * again the same bytes from where the counted ones stopped (in
   * core/async.c the replies in a->partial, gathered again).  The
   * record may reach into later sends: those bytes, having left, are
   * skipped there (c->tls_ahead).
   */
  if (c->tls_held) {
    ssize_t k = finish_held (c);
    if (k == -1)
      return -1;
    c->tls_ahead += k;
  }
  if (c->tls_ahead > 0) {
    for (int i = 0; i < iovcnt; i++)
      total += iov[i].iov_len;
    skip = c->tls_ahead < total ? c->tls_ahead : total;
    c->tls_ahead -= skip;
    *done += skip;
  }
  for (int i = 0; i < iovcnt; i++) {
    const char *p = iov[i].iov_base;
    size_t n = iov[i].iov_len;
    if (skip >= n) {
      skip -= n;
      continue;
    }
    p += skip;
    n -= skip;
    skip = 0;
    if (n <= sizeof stage - used) {
      memcpy (stage + used, p, n);
      used += n;
      continue;
    }
    if (used > 0 && send_records (c, stage, used, done) == -1)
      return -1;
    used = 0;
    if (n < sizeof stage) {
      memcpy (stage, p, n);
      used = n;
    } else if (send_records (c, p, n, done) == -1)
      return -1;
  }
  if (used > 0)
    return send_records (c, stage, used, done);
  return 0;
}

ssize_t
tls_sendv (struct connection *c, struct iovec *iov, int iovcnt, bool nowait)
{
  size_t done = 0;
  int r;

  push_nowait = nowait;
  r = sendv_records (c, iov, iovcnt, &done);
  push_nowait = false;
  if (r == -1 && !(nowait && errno == EAGAIN))
    return -1;
  return done;
}

bool
tls_pending (struct connection *c)
{
  return gnutls_record_check_pending (c->tls_session) > 0;
}

void
tls_close (struct connection *c)
{
  if (c->tls_session == NULL)
    return;
  gnutls_bye (c->tls_session, GNUTLS_SHUT_WR);
  gnutls_deinit (c->tls_session);
  c->tls_session = NULL;
}
