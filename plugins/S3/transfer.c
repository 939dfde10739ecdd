/* transfer.c: the thread that runs every S3 request through one
 * libcurl multi handle.
 *
 * Callers queue requests (struct xfer) under `lock` and wake the thread
 * with curl_multi_wakeup; the thread starts as many as there are free
 * connections, runs libcurl until they complete, and counts each one
 * down in its batch, whose caller waits on the batch's condition (or,
 * for xfer_submit, whose callback runs on this thread).  The
 * easy handles belong to this thread alone, and libcurl keeps their
 * connections alive in the multi handle's cache between requests.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* TCP_QUICKACK */
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <curl/curl.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "transfer.h"
#include "xml.h"

/* The most of an error body kept for the message. */
#define ERROR_BODY_MAX 4096

struct xfer_batch {
  pthread_mutex_t lock;
  pthread_cond_t done;
  size_t left;
  /* xfer_submit: called instead of signalling, then the batch freed. */
  void (*cb) (void *opaque);
  void *opaque;
};

static const struct xfer_config *conf;
static CURLM *multi;
static pthread_t thread;
static bool running;

/* Under lock: the requests not yet started, and whether to stop. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct xfer *queue_head, **queue_tail = &queue_head;
static bool stopping;

/* The thread's own: idle easy handles and how many are in use. */
static CURL **idle;
static size_t n_idle;
static unsigned active;

static size_t
write_cb (char *data, size_t size, size_t nmemb, void *opaque)
{
  struct xfer *x = opaque;
  size_t len = size * nmemb;
  long status = 0;

  curl_easy_getinfo (x->easy, CURLINFO_RESPONSE_CODE, &status);
  if (x->dst && status >= 200 && status < 300) {
    uint64_t room = x->dst_len - x->got;

    if (len > room) {
      x->overflow = true;
      return 0; /* stops the transfer with CURLE_WRITE_ERROR */
    }
    memcpy ((char *)x->dst + x->got, data, len);
    x->got += len;
    return len;
  }

  /* An error body (kept short), or a body wanted whole. */
  size_t keep = len;
  if (x->dst || (status < 200 || status >= 300)) {
    if (x->body_len >= ERROR_BODY_MAX)
      return len;
    if (keep > ERROR_BODY_MAX - x->body_len)
      keep = ERROR_BODY_MAX - x->body_len;
  }
  char *p = realloc (x->body, x->body_len + keep + 1);
  if (p == NULL)
    return 0;
  memcpy (p + x->body_len, data, keep);
  x->body = p;
  x->body_len += keep;
  p[x->body_len] = '\0';
  return len;
}

/* The sockets of the connections libcurl opened, with their local
 * ports (0: not looked up yet), for header_cb.
 */
struct sock {
  curl_socket_t fd;
  long port;
};
static struct sock *socks;
static size_t n_socks;

static int
sockopt_cb (void *opaque, curl_socket_t fd, curlsocktype purpose)
{
  struct sock *p = realloc (socks, (n_socks + 1) * sizeof *p);

  (void)opaque;
  (void)purpose;
  if (p) {
    socks = p;
    socks[n_socks++] = (struct sock){ .fd = fd };
  }
  return CURL_SOCKOPT_OK;
}

static int
closesocket_cb (void *opaque, curl_socket_t fd)
{
  (void)opaque;
  for (size_t i = 0; i < n_socks; i++)
    if (socks[i].fd == fd) {
      socks[i] = socks[--n_socks];
      break;
    }
  return close (fd);
}

static curl_socket_t
socket_of_port (long port)
{
  for (size_t i = 0; i < n_socks; i++) {
    if (socks[i].port == 0) {
      struct sockaddr_storage ss;
      socklen_t len = sizeof ss;
      if (getsockname (socks[i].fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
          socks[i].port = ntohs (((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
          socks[i].port = ntohs (((struct sockaddr_in6 *)&ss)->sin6_port);
      }
    }
    if (socks[i].port == port)
      return socks[i].fd;
  }
  return CURL_SOCKET_BAD;
}

/* At the end of a response's headers, acknowledge them at once.  A
 * server that writes the headers and a short body separately (radosgw
 * does, for ranged and error answers) holds the body back (Nagle)
 * until the headers are acknowledged, and a delayed ACK would cost
 * 40 ms a request on a kept-alive connection.  libcurl does not tell
 * the socket during a transfer, but tells the local port.
 */
static size_t
header_cb (char *data, size_t size, size_t nmemb, void *opaque)
{
  struct xfer *x = opaque;
  size_t len = size * nmemb;
  long port = 0;

  if (len == 2 && data[0] == '\r' && data[1] == '\n'
      && curl_easy_getinfo (x->easy, CURLINFO_LOCAL_PORT, &port) == CURLE_OK
      && port > 0) {
    curl_socket_t fd = socket_of_port (port);
    int one = 1;
    if (fd != CURL_SOCKET_BAD)
      setsockopt (fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
  }
  return len;
}

static size_t
read_cb (char *data, size_t size, size_t nmemb, void *opaque)
{
  struct xfer *x = opaque;
  size_t len = size * nmemb;
  uint64_t done = x->got; /* for PUT, got counts the bytes sent */
  uint64_t left = x->src_len - done;

  if (len > left)
    len = left;
  memcpy (data, (const char *)x->src + done, len);
  x->got += len;
  return len;
}

static CURL *
get_easy (void)
{
  if (n_idle > 0)
    return idle[--n_idle];
  return curl_easy_init ();
}

/* Set up X on an easy handle and add it to the multi handle.  On
 * failure X is completed at once with a curl error.
 */
static int
start (struct xfer *x)
{
  CURL *c = get_easy ();
  struct curl_slist *h = NULL, *h2;
  char buf[512];

  x->easy = c;
  x->got = 0;
  x->content_length = -1;
  if (c == NULL)
    goto nomem;

  curl_easy_setopt (c, CURLOPT_URL, x->url);
  curl_easy_setopt (c, CURLOPT_PRIVATE, x);
  curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c, CURLOPT_ERRORBUFFER, x->curl_err);
  curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT, conf->connect_timeout);
  curl_easy_setopt (c, CURLOPT_TIMEOUT, conf->timeout);
  curl_easy_setopt (c, CURLOPT_SSL_VERIFYPEER, conf->sslverify ? 1L : 0L);
  curl_easy_setopt (c, CURLOPT_SSL_VERIFYHOST, conf->sslverify ? 2L : 0L);
  curl_easy_setopt (c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt (c, CURLOPT_WRITEDATA, x);
  curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt (c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt (c, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
  curl_easy_setopt (c, CURLOPT_CLOSESOCKETFUNCTION, closesocket_cb);

  /* The payload is not hashed (S3 allows that for every request):
   * libcurl signs this header's value instead of hashing the body.
   */
  h2 = curl_slist_append (h, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  if (h2 == NULL)
    goto nomem;
  h = h2;
  if (conf->session_token) {
    snprintf (buf, sizeof buf, "x-amz-security-token: %s", conf->session_token);
    if ((h2 = curl_slist_append (h, buf)) == NULL)
      goto nomem;
    h = h2;
  }
  if (x->method == XFER_GET && x->range_len > 0) {
    snprintf (buf, sizeof buf, "Range: bytes=%" PRIu64 "-%" PRIu64,
              x->range_start, x->range_start + x->range_len - 1);
    if ((h2 = curl_slist_append (h, buf)) == NULL)
      goto nomem;
    h = h2;
  }
  x->headers = h;
  curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);

  if (conf->access_key) {
    snprintf (buf, sizeof buf, "aws:amz:%s:s3", conf->region);
    curl_easy_setopt (c, CURLOPT_AWS_SIGV4, buf);
    curl_easy_setopt (c, CURLOPT_USERNAME, conf->access_key);
    curl_easy_setopt (c, CURLOPT_PASSWORD, conf->secret_key);
  }

  switch (x->method) {
    case XFER_GET:
      curl_easy_setopt (c, CURLOPT_HTTPGET, 1L);
      break;
    case XFER_HEAD:
      curl_easy_setopt (c, CURLOPT_NOBODY, 1L);
      break;
    case XFER_PUT:
      curl_easy_setopt (c, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt (c, CURLOPT_READFUNCTION, read_cb);
      curl_easy_setopt (c, CURLOPT_READDATA, x);
      curl_easy_setopt (c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->src_len);
      /* Send the body at once rather than wait for 100 Continue: an
       * "Expect:" header to suppress it would be signed by libcurl but
       * not sent, and the signature would not match.
       */
      curl_easy_setopt (c, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
      break;
    case XFER_DELETE:
      curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, "DELETE");
      break;
  }

  if (curl_multi_add_handle (multi, c) != CURLM_OK)
    goto nomem;
  active++;
  return 0;

nomem:
  curl_slist_free_all (h);
  x->headers = NULL;
  if (c)
    idle[n_idle++] = c;
  x->easy = NULL;
  x->curl_code = CURLE_OUT_OF_MEMORY;
  snprintf (x->curl_err, sizeof x->curl_err, "cannot set up the request");
  return -1;
}

static void
complete (struct xfer *x)
{
  struct xfer_batch *b = x->batch;

  if (b->cb) {
    /* Only this thread counts an asynchronous batch down. */
    if (--b->left == 0) {
      b->cb (b->opaque);
      free (b);
    }
    return;
  }
  pthread_mutex_lock (&b->lock);
  if (--b->left == 0)
    pthread_cond_signal (&b->done);
  pthread_mutex_unlock (&b->lock);
}

static void
finish (CURL *c, CURLcode code)
{
  struct xfer *x;
  curl_off_t cl = -1;

  curl_easy_getinfo (c, CURLINFO_PRIVATE, (char **)&x);
  curl_multi_remove_handle (multi, c);
  active--;
  x->curl_code = code;
  curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &x->status);
  if (curl_easy_getinfo (c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl)
      == CURLE_OK)
    x->content_length = cl;
  if (x->method == XFER_PUT)
    x->got = 0;
  curl_slist_free_all (x->headers);
  x->headers = NULL;
  x->easy = NULL;
  /* Make the handle clean for its next request; its connection stays
   * in the multi handle's cache.
   */
  curl_easy_reset (c);
  idle[n_idle++] = c;
  complete (x);
}

static void *
run (void *arg)
{
  (void)arg;
  for (;;) {
    struct xfer *start_list = NULL;
    CURLMsg *msg;
    int still, left;

    pthread_mutex_lock (&lock);
    if (stopping && active == 0 && queue_head == NULL) {
      pthread_mutex_unlock (&lock);
      break;
    }
    /* Take as many as there are free connections, oldest first. */
    struct xfer **tail = &start_list;
    unsigned room = conf->connections - active;
    while (room > 0 && queue_head) {
      struct xfer *x = queue_head;
      queue_head = x->next;
      x->next = NULL;
      *tail = x;
      tail = &x->next;
      room--;
    }
    if (queue_head == NULL)
      queue_tail = &queue_head;
    pthread_mutex_unlock (&lock);

    while (start_list) {
      struct xfer *x = start_list;
      start_list = x->next;
      if (start (x) == -1)
        complete (x);
    }

    curl_multi_perform (multi, &still);
    while ((msg = curl_multi_info_read (multi, &left)))
      if (msg->msg == CURLMSG_DONE)
        finish (msg->easy_handle, msg->data.result);
    curl_multi_poll (multi, NULL, 0, 1000, NULL);
  }
  return NULL;
}

int
xfer_start (const struct xfer_config *config)
{
  int err;

  conf = config;
  idle = calloc (config->connections, sizeof *idle);
  multi = curl_multi_init ();
  if (idle == NULL || multi == NULL) {
    nbdkit_error ("S3: cannot create the libcurl multi handle");
    return -1;
  }
  curl_multi_setopt (multi, CURLMOPT_MAXCONNECTS, (long)config->connections);
  stopping = false;
  err = pthread_create (&thread, NULL, run, NULL);
  if (err) {
    errno = err;
    nbdkit_error ("S3: pthread_create: %m");
    return -1;
  }
  running = true;
  return 0;
}

void
xfer_stop (void)
{
  if (running) {
    pthread_mutex_lock (&lock);
    stopping = true;
    pthread_mutex_unlock (&lock);
    curl_multi_wakeup (multi);
    pthread_join (thread, NULL);
    running = false;
  }
  while (n_idle > 0)
    curl_easy_cleanup (idle[--n_idle]);
  free (idle);
  idle = NULL;
  if (multi)
    curl_multi_cleanup (multi);
  multi = NULL;
  free (socks);
  socks = NULL;
  n_socks = 0;
}

/* Reset the results of XS and queue them for the thread. */
static void
enqueue (struct xfer *xs, size_t n, struct xfer_batch *b)
{
  for (size_t i = 0; i < n; i++) {
    struct xfer *x = &xs[i];
    x->batch = b;
    x->next = NULL;
    x->curl_code = 0;
    x->status = 0;
    x->overflow = false;
    x->curl_err[0] = '\0';
    free (x->body);
    x->body = NULL;
    x->body_len = 0;
  }
  pthread_mutex_lock (&lock);
  for (size_t i = 0; i < n; i++) {
    *queue_tail = &xs[i];
    queue_tail = &xs[i].next;
  }
  pthread_mutex_unlock (&lock);
  curl_multi_wakeup (multi);
}

int
xfer_submit (struct xfer *xs, size_t n, void (*done) (void *opaque),
             void *opaque)
{
  struct xfer_batch *b;

  if (!running) {
    nbdkit_error ("S3: the transfer thread is not running");
    return -1;
  }
  if (n == 0) {
    done (opaque);
    return 0;
  }
  b = calloc (1, sizeof *b);
  if (b == NULL) {
    nbdkit_error ("S3: out of memory");
    return -1;
  }
  b->left = n;
  b->cb = done;
  b->opaque = opaque;
  enqueue (xs, n, b);
  return 0;
}

int
xfer_run (struct xfer *xs, size_t n)
{
  struct xfer_batch b = { .left = n };

  if (n == 0)
    return 0;
  if (!running) {
    nbdkit_error ("S3: the transfer thread is not running");
    return -1;
  }
  pthread_mutex_init (&b.lock, NULL);
  pthread_cond_init (&b.done, NULL);
  enqueue (xs, n, &b);

  pthread_mutex_lock (&b.lock);
  while (b.left > 0)
    pthread_cond_wait (&b.done, &b.lock);
  pthread_mutex_unlock (&b.lock);
  pthread_cond_destroy (&b.done);
  pthread_mutex_destroy (&b.lock);
  return 0;
}

void
xfer_clear (struct xfer *x)
{
  free (x->url);
  x->url = NULL;
  free (x->what);
  x->what = NULL;
  free (x->body);
  x->body = NULL;
  x->body_len = 0;
}

bool
xfer_ok (const struct xfer *x)
{
  return x->curl_code == CURLE_OK && x->status >= 200 && x->status < 300;
}

const char *
xfer_error_code (const struct xfer *x, char *buf, size_t len)
{
  buf[0] = '\0';
  if (x->body)
    xml_text (x->body, "Code", buf, len);
  return buf;
}

static const char *
method_name (enum xfer_method m)
{
  switch (m) {
    case XFER_GET:
      return "GET";
    case XFER_HEAD:
      return "HEAD";
    case XFER_PUT:
      return "PUT";
    case XFER_DELETE:
      return "DELETE";
  }
  return "?";
}

int
xfer_report (const struct xfer *x)
{
  const char *m = method_name (x->method);
  char code[128], text[512];

  if (x->overflow) {
    nbdkit_error ("S3: %s %s (%s): the server sent more than the %" PRIu64
                  " bytes asked for",
                  m, x->what, x->url, x->dst_len);
    return EIO;
  }
  if (x->curl_code != CURLE_OK) {
    nbdkit_error ("S3: %s %s (%s): %s%s%s", m, x->what, x->url,
                  curl_easy_strerror (x->curl_code), x->curl_err[0] ? ": " : "",
                  x->curl_err);
    return x->curl_code == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : EIO;
  }
  xfer_error_code (x, code, sizeof code);
  text[0] = '\0';
  if (x->body)
    xml_text (x->body, "Message", text, sizeof text);
  if (code[0] == '\0' && x->method == XFER_HEAD) {
    /* HEAD has no body: say what the status usually means. */
    if (x->status == 403)
      snprintf (code, sizeof code, "Forbidden (wrong credentials?)");
    else if (x->status == 404)
      snprintf (code, sizeof code, "Not Found (no such object)");
  }
  /* RGW and S3 often send no message: say what usually causes these. */
  if (text[0] == '\0') {
    if (strcmp (code, "SignatureDoesNotMatch") == 0)
      snprintf (text, sizeof text, "wrong secret-key?");
    else if (strcmp (code, "InvalidAccessKeyId") == 0)
      snprintf (text, sizeof text, "unknown access-key");
    else if (strcmp (code, "NoSuchBucket") == 0)
      snprintf (text, sizeof text, "the bucket does not exist");
  }
  nbdkit_error ("S3: %s %s (%s): HTTP %ld%s%s%s%s", m, x->what, x->url,
                x->status, code[0] ? " " : "", code, text[0] ? ": " : "", text);
  if (x->status == 403)
    return EPERM;
  if (x->status == 404)
    return ENOENT;
  return EIO;
}
