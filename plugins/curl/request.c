/* request.c: the curl plugin's pool of easy handles and the requests
 * made on them.
 *
 * Every read and write has three steps: begin (options of the easy
 * handle and the fields of struct chandle that the callbacks fill),
 * the transfer, and end (checking what arrived and reporting errors).
 * range_read and range_write run the transfer with curl_easy_perform,
 * which blocks the calling thread; async.c runs it on a curl multi
 * handle and calls the same end from its completion, so both paths
 * make the same checks and give the same messages.
 *
 * A range read must never hand back bytes of another range: a server
 * that ignores the Range header answers 200 with the whole body, which
 * the write callback refuses before copying anything.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr */
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "curldefs.h"

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static struct chandle **pool_free_list; /* cfg.connections slots */
static size_t pool_nfree, pool_nmade;
/* Those waiting for a handle, oldest first: only while none is free. */
static struct pool_waiter *pool_wait_head, **pool_wait_tail = &pool_wait_head;

/* The Content-Range header: "bytes START-END/TOTAL", "bytes START-END/x"
 * or "bytes x/TOTAL" (RFC 9110, 14.4).
 */
static void
parse_content_range (struct chandle *ch, const char *v)
{
  char *end;

  while (*v == ' ' || *v == '\t')
    v++;
  if (strncasecmp (v, "bytes", 5) != 0)
    return;
  v += 5;
  while (*v == ' ' || *v == '\t')
    v++;
  if (*v >= '0' && *v <= '9') {
    errno = 0;
    long long s = strtoll (v, &end, 10);
    if (errno || *end != '-')
      return;
    ch->range_start = s;
    v = strchr (end, '/');
    if (v == NULL)
      return;
  } else if (*v == '*')
    v++;
  if (*v != '/')
    return;
  v++;
  if (*v >= '0' && *v <= '9') {
    errno = 0;
    long long t = strtoll (v, &end, 10);
    if (errno == 0)
      ch->range_total = t;
  }
}

/* Called once per header line of every response, including the
 * responses to redirects and to authentication challenges: a status
 * line starts the record of a new response.
 */
static size_t
header_cb (char *data, size_t size, size_t n, void *opaque)
{
  struct chandle *ch = opaque;
  size_t len = size * n;
  char line[256];
  size_t l = len < sizeof line - 1 ? len : sizeof line - 1;

  memcpy (line, data, l);
  line[l] = '\0';
  while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == '\n'))
    line[--l] = '\0';

  if (strncasecmp (line, "HTTP/", 5) == 0) {
    const char *p = strchr (line, ' ');
    ch->status = p ? strtol (p + 1, NULL, 10) : 0;
    ch->reason[0] = '\0';
    if (p && (p = strchr (p + 1, ' ')) != NULL)
      snprintf (ch->reason, sizeof ch->reason, "%s", p + 1);
    ch->accept_ranges = false;
    ch->range_start = ch->range_total = -1;
  } else if (strncasecmp (line, "accept-ranges:", 14) == 0) {
    if (strcasestr (line + 14, "bytes"))
      ch->accept_ranges = true;
  } else if (strncasecmp (line, "content-range:", 14) == 0)
    parse_content_range (ch, line + 14);
  return len;
}

/* Whether the response whose body starts now answers the range asked
 * for.  Over HTTP that is a 206 starting at our offset, or a 200 whose
 * body is exactly the range (a request for the whole file).
 */
static bool
body_matches (struct chandle *ch)
{
  curl_off_t len = -1;

  if (ch->status == 0) /* not HTTP: the protocol honours the range */
    return true;
  if (ch->status == 206) {
    if (ch->range_start != (int64_t)ch->offset) {
      ch->refused = BODY_WRONG_RANGE;
      return false;
    }
    return true;
  }
  curl_easy_getinfo (ch->c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
  if (ch->status == 200 && ch->offset == 0 && len == (curl_off_t)ch->count)
    return true;
  ch->refused = BODY_NO_RANGE;
  return false;
}

static size_t
write_cb (char *data, size_t size, size_t n, void *opaque)
{
  struct chandle *ch = opaque;
  size_t len = size * n;

  if (ch->wbuf) /* the answer to a write: not data */
    return len;
  if (!ch->body_checked) {
    ch->body_checked = true;
    if (!body_matches (ch))
      return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
  }
  if (ch->rbuf == NULL || len > ch->count - ch->done) {
    ch->refused = BODY_TOO_LONG;
    return 0;
  }
  memcpy (ch->rbuf + ch->done, data, len);
  ch->done += len;
  return len;
}

static size_t
read_cb (char *data, size_t size, size_t n, void *opaque)
{
  struct chandle *ch = opaque;
  size_t len = size * n;

  if (len > ch->count - ch->done)
    len = ch->count - ch->done;
  memcpy (data, ch->wbuf + ch->done, len);
  ch->done += len;
  return len;
}

/* Every option that stays the same for all requests.  The receive
 * buffer is 1 MiB: fewer, larger reads from the socket (measured: a
 * fifth less CPU per GiB than libcurl's 16 KiB).
 */
static struct chandle *
handle_new (void)
{
  static unsigned handles_made;
  struct chandle *ch = calloc (1, sizeof *ch);
  CURL *c;
  CURLcode r = CURLE_OK;

  if (ch == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  ch->index = __atomic_fetch_add (&handles_made, 1, __ATOMIC_RELAXED);
  c = ch->c = curl_easy_init ();
  if (c == NULL) {
    nbdkit_error ("curl_easy_init failed");
    free (ch);
    errno = ENOMEM;
    return NULL;
  }

#define SET(opt, val)                                                          \
  do {                                                                         \
    if (r == CURLE_OK) {                                                       \
      r = curl_easy_setopt (c, opt, val);                                      \
      if (r != CURLE_OK)                                                       \
        nbdkit_error ("%s: setting %s: %s", cfg.shown_url, #opt,               \
                      curl_easy_strerror (r));                                 \
    }                                                                          \
  } while (0)

  SET (CURLOPT_URL, cfg.url);
  SET (CURLOPT_ERRORBUFFER, ch->errbuf);
  SET (CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
  SET (CURLOPT_FAILONERROR, 1L);
  SET (CURLOPT_VERBOSE, cfg.verbose ? 1L : 0L);
  SET (CURLOPT_HEADERFUNCTION, header_cb);
  SET (CURLOPT_HEADERDATA, ch);
  SET (CURLOPT_WRITEFUNCTION, write_cb);
  SET (CURLOPT_WRITEDATA, ch);
  SET (CURLOPT_READFUNCTION, read_cb);
  SET (CURLOPT_READDATA, ch);
  SET (CURLOPT_BUFFERSIZE, 1024L * 1024);
  SET (CURLOPT_FOLLOWLOCATION, cfg.followlocation ? 1L : 0L);
  SET (CURLOPT_MAXREDIRS, 20L);
  SET (CURLOPT_AUTOREFERER, 1L);
  if (cfg.headers)
    SET (CURLOPT_HTTPHEADER, cfg.headers);
  if (cfg.cookie)
    SET (CURLOPT_COOKIE, cfg.cookie);
  if (cfg.cookiefile)
    SET (CURLOPT_COOKIEFILE, cfg.cookiefile);
  if (cfg.cookiejar)
    SET (CURLOPT_COOKIEJAR, cfg.cookiejar);
  if (cfg.user)
    SET (CURLOPT_USERNAME, cfg.user);
  if (cfg.password)
    SET (CURLOPT_PASSWORD, cfg.password);
  if (cfg.proxy)
    SET (CURLOPT_PROXY, cfg.proxy);
  if (cfg.proxy_user)
    SET (CURLOPT_PROXYUSERNAME, cfg.proxy_user);
  if (cfg.proxy_password)
    SET (CURLOPT_PROXYPASSWORD, cfg.proxy_password);
  if (!cfg.sslverify) {
    SET (CURLOPT_SSL_VERIFYPEER, 0L);
    SET (CURLOPT_SSL_VERIFYHOST, 0L);
  }
  /* An empty cainfo= means no CA bundle at all, not the default one. */
  if (cfg.cainfo)
    SET (CURLOPT_CAINFO, *cfg.cainfo ? cfg.cainfo : NULL);
  if (cfg.capath)
    SET (CURLOPT_CAPATH, cfg.capath);
  if (cfg.ssl_version != CURL_SSLVERSION_DEFAULT)
    SET (CURLOPT_SSLVERSION, cfg.ssl_version);
  if (cfg.ssl_cipher_list)
    SET (CURLOPT_SSL_CIPHER_LIST, cfg.ssl_cipher_list);
  if (cfg.tls13_ciphers)
    SET (CURLOPT_TLS13_CIPHERS, cfg.tls13_ciphers);
  if (cfg.http_version != CURL_HTTP_VERSION_NONE)
    SET (CURLOPT_HTTP_VERSION, cfg.http_version);
  if (cfg.user_agent)
    SET (CURLOPT_USERAGENT, cfg.user_agent);
  if (cfg.protocols) {
    SET (CURLOPT_PROTOCOLS_STR, cfg.protocols);
    SET (CURLOPT_REDIR_PROTOCOLS_STR, cfg.protocols);
  }
  if (cfg.unix_socket_path)
    SET (CURLOPT_UNIX_SOCKET_PATH, cfg.unix_socket_path);
  SET (CURLOPT_TCP_KEEPALIVE, cfg.tcp_keepalive ? 1L : 0L);
  SET (CURLOPT_TCP_NODELAY, cfg.tcp_nodelay ? 1L : 0L);
  if (cfg.timeout > 0)
    SET (CURLOPT_TIMEOUT, (long)cfg.timeout);
#undef SET

  if (r != CURLE_OK) {
    curl_easy_cleanup (c);
    free (ch);
    errno = EINVAL;
    return NULL;
  }
  return ch;
}

/* Check the options once, before serving, so that a bad value
 * (an unknown protocol, say) is a start-up error.
 */
int
pool_init (void)
{
  struct chandle *ch;

  pool_free_list = calloc (cfg.connections, sizeof *pool_free_list);
  if (pool_free_list == NULL) {
    nbdkit_error ("calloc: %m");
    return -1;
  }
  ch = handle_new ();
  if (ch == NULL)
    return -1;
  pool_free_list[pool_nfree++] = ch;
  pool_nmade = 1;
  return 0;
}

void
pool_free (void)
{
  for (size_t i = 0; i < pool_nfree; i++) {
    curl_easy_cleanup (pool_free_list[i]->c);
    free (pool_free_list[i]);
  }
  free (pool_free_list);
  pool_free_list = NULL;
  pool_nfree = pool_nmade = 0;
}

/* With pool_lock held: a free handle, or NULL and *MAKE set if the
 * caller may make a new one, or NULL if it must queue.  Nobody jumps
 * the queue: a handle goes to the oldest waiter first.
 */
static struct chandle *
pool_take_locked (bool *make)
{
  *make = false;
  if (pool_wait_head)
    return NULL;
  if (pool_nfree > 0)
    return pool_free_list[--pool_nfree];
  if (pool_nmade < (size_t)cfg.connections) {
    pool_nmade++;
    *make = true;
  }
  return NULL;
}

static void
pool_enqueue_locked (struct pool_waiter *w)
{
  w->next = NULL;
  w->ch = NULL;
  *pool_wait_tail = w;
  pool_wait_tail = &w->next;
}

/* A handle counted in pool_nmade, made outside the lock. */
static struct chandle *
pool_make (void)
{
  struct chandle *ch = handle_new ();

  if (ch == NULL) {
    pthread_mutex_lock (&pool_lock);
    pool_nmade--;
    pthread_mutex_unlock (&pool_lock);
  }
  return ch;
}

struct chandle *
pool_get (void)
{
  struct pool_waiter w = { .given = NULL };
  struct chandle *ch;
  bool make;

  pthread_mutex_lock (&pool_lock);
  ch = pool_take_locked (&make);
  if (ch == NULL && !make) {
    pool_enqueue_locked (&w);
    while (w.ch == NULL)
      pthread_cond_wait (&pool_cond, &pool_lock);
    ch = w.ch;
  }
  pthread_mutex_unlock (&pool_lock);
  return make ? pool_make () : ch;
}

int
pool_take (struct pool_waiter *w)
{
  struct chandle *ch;
  bool make;

  pthread_mutex_lock (&pool_lock);
  ch = pool_take_locked (&make);
  if (ch == NULL && !make) {
    pool_enqueue_locked (w);
    pthread_mutex_unlock (&pool_lock);
    return 0;
  }
  pthread_mutex_unlock (&pool_lock);
  if (make && (ch = pool_make ()) == NULL)
    return -1;
  w->ch = ch;
  return 1;
}

/* Hand CH to the oldest waiter, or keep it.  An asynchronous waiter's
 * given runs here, without the lock.
 */
void
pool_put (struct chandle *ch)
{
  struct pool_waiter *w;

  pthread_mutex_lock (&pool_lock);
  w = pool_wait_head;
  if (w == NULL) {
    pool_free_list[pool_nfree++] = ch;
    pthread_mutex_unlock (&pool_lock);
    return;
  }
  pool_wait_head = w->next;
  if (pool_wait_head == NULL)
    pool_wait_tail = &pool_wait_head;
  w->ch = ch;
  if (w->given == NULL) {
    pthread_cond_broadcast (&pool_cond);
    pthread_mutex_unlock (&pool_lock);
    return;
  }
  pthread_mutex_unlock (&pool_lock);
  w->given (w);
}

/* Set up the per-request state, and the headers and cookie of
 * header-script= and cookie-script= (which may run them first).
 */
static int
setup (struct chandle *ch, void *rbuf, const void *wbuf, uint64_t count,
       uint64_t offset)
{
  ch->rbuf = rbuf;
  ch->wbuf = wbuf;
  ch->count = count;
  ch->offset = offset;
  ch->done = 0;
  ch->status = 0;
  ch->reason[0] = '\0';
  ch->accept_ranges = false;
  ch->range_start = ch->range_total = -1;
  ch->refused = BODY_OK;
  ch->body_checked = false;
  ch->errbuf[0] = '\0';
  return scripts_apply (ch);
}

static int
errno_of_status (long status)
{
  switch (status) {
    case 401:
    case 403:
      return EACCES;
    case 404:
    case 410:
      return ENOENT;
    case 405:
    case 501:
      return EROFS; /* a write the server does not take */
    case 416:
      return EINVAL;
    default:
      return EIO;
  }
}

/* Log why request WHAT failed with R, naming the URL; sets errno. */
static int
report (struct chandle *ch, const char *what, CURLcode r)
{
  const char *eff = NULL;
  char where[1024] = "";
  long status = 0, redirects = 0;
  int err = EIO;

  /* Name where redirects led, without a password it may carry. */
  curl_easy_getinfo (ch->c, CURLINFO_REDIRECT_COUNT, &redirects);
  curl_easy_getinfo (ch->c, CURLINFO_EFFECTIVE_URL, &eff);
  if (redirects > 0 && eff) {
    CURLU *u = curl_url ();
    char *shown = NULL;

    if (u && curl_url_set (u, CURLUPART_URL, eff, CURLU_NON_SUPPORT_SCHEME) == 0
        && curl_url_set (u, CURLUPART_PASSWORD, NULL, 0) == 0
        && curl_url_get (u, CURLUPART_URL, &shown, 0) == 0)
      snprintf (where, sizeof where, " (redirected to %s)", shown);
    curl_free (shown);
    curl_url_cleanup (u);
  }

  if (r == CURLE_WRITE_ERROR && ch->refused == BODY_NO_RANGE)
    nbdkit_error ("%s: %s%s: the server does not support byte ranges: it "
                  "answered a Range request with status %ld and the whole "
                  "body",
                  cfg.shown_url, what, where, ch->status);
  else if (r == CURLE_WRITE_ERROR && ch->refused == BODY_WRONG_RANGE)
    nbdkit_error ("%s: %s%s: the server answered with another range "
                  "(starting at %" PRIi64 ")",
                  cfg.shown_url, what, where, ch->range_start);
  else if (r == CURLE_WRITE_ERROR && ch->refused == BODY_TOO_LONG)
    nbdkit_error ("%s: %s%s: the server sent more than the %" PRIu64
                  " bytes asked for",
                  cfg.shown_url, what, where, ch->count);
  else if (r == CURLE_HTTP_RETURNED_ERROR) {
    curl_easy_getinfo (ch->c, CURLINFO_RESPONSE_CODE, &status);
    nbdkit_error ("%s: %s%s: HTTP status %ld%s%s", cfg.shown_url, what, where,
                  status, ch->status == status && ch->reason[0] ? " " : "",
                  ch->status == status ? ch->reason : "");
    err = errno_of_status (status);
  } else {
    /* libcurl's own message says more than its code's when it has one. */
    nbdkit_error ("%s: %s%s: %s", cfg.shown_url, what, where,
                  ch->errbuf[0] ? ch->errbuf : curl_easy_strerror (r));
    if (r == CURLE_OPERATION_TIMEDOUT)
      err = ETIMEDOUT;
    else if (r == CURLE_OUT_OF_MEMORY)
      err = ENOMEM;
    else if (r == CURLE_LOGIN_DENIED || r == CURLE_REMOTE_ACCESS_DENIED)
      err = EACCES;
    else if (r == CURLE_REMOTE_FILE_NOT_FOUND)
      err = ENOENT;
  }
  errno = err;
  return -1;
}

static int
range_probe (struct chandle *ch, struct url_info *info)
{
  char byte;
  CURLcode r;

  if (setup (ch, &byte, NULL, 1, 0) == -1)
    return -1;
  curl_easy_setopt (ch->c, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt (ch->c, CURLOPT_RANGE, "0-0");
  r = curl_easy_perform (ch->c);
  curl_easy_setopt (ch->c, CURLOPT_RANGE, NULL);
  if (r != CURLE_OK)
    return report (ch, "GET bytes 0-0", r);
  if (ch->status == 200) { /* a one-byte file, sent whole */
    info->size = ch->done;
    return 0;
  }
  if (ch->status != 206 || ch->range_total < 0) {
    nbdkit_error ("%s: GET bytes 0-0: the server does not tell the size "
                  "(status %ld, no Content-Length or Content-Range total)",
                  cfg.shown_url, ch->status);
    errno = EIO;
    return -1;
  }
  info->size = ch->range_total;
  return 0;
}

/* The size, and whether ranges work.  A HEAD request says both when
 * the server sends Content-Length and "Accept-Ranges: bytes";
 * otherwise a one-byte range request decides.
 */
int
probe (struct chandle *ch, struct url_info *info)
{
  curl_off_t len = -1;
  const char *scheme = NULL;
  long status = 0;
  CURLcode r;

  if (setup (ch, NULL, NULL, 0, 0) == -1)
    return -1;
  curl_easy_setopt (ch->c, CURLOPT_RANGE, NULL);
  curl_easy_setopt (ch->c, CURLOPT_NOBODY, 1L);
  r = curl_easy_perform (ch->c);
  curl_easy_getinfo (ch->c, CURLINFO_SCHEME, &scheme);
  info->is_http = scheme && strncasecmp (scheme, "http", 4) == 0;
  if (r == CURLE_HTTP_RETURNED_ERROR && info->is_http) {
    /* Some servers (signed URLs, say) take GET but not HEAD. */
    curl_easy_getinfo (ch->c, CURLINFO_RESPONSE_CODE, &status);
    if (status == 405 || status == 501 || status == 403)
      return range_probe (ch, info) == -1 ? -1 : 0;
  }
  if (r != CURLE_OK)
    return report (ch, "HEAD", r);
  curl_easy_getinfo (ch->c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);

  if (!info->is_http) {
    if (len < 0) {
      nbdkit_error ("%s: the size of the file is unknown", cfg.shown_url);
      errno = EIO;
      return -1;
    }
    info->size = len;
    return 0;
  }

  if (ch->status < 200 || ch->status > 299) {
    nbdkit_error ("%s: HEAD: HTTP status %ld%s%s%s", cfg.shown_url, ch->status,
                  ch->reason[0] ? " " : "", ch->reason,
                  ch->status >= 300 && ch->status <= 399
                      ? " (a redirect, and followlocation=false)"
                      : "");
    errno = EIO;
    return -1;
  }
  if (len == 0) {
    info->size = 0;
    return 0;
  }
  if (len > 0 && ch->accept_ranges) {
    info->size = len;
    return 0;
  }
  return range_probe (ch, info);
}

int
read_begin (struct chandle *ch, void *buf, uint64_t count, uint64_t offset)
{
  char range[64];

  if (setup (ch, buf, NULL, count, offset) == -1)
    return -1;
  snprintf (range, sizeof range, "%" PRIu64 "-%" PRIu64, offset,
            offset + count - 1);
  snprintf (ch->what, sizeof ch->what, "GET bytes %s", range);
  curl_easy_setopt (ch->c, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt (ch->c, CURLOPT_RANGE, range);
  return 0;
}

int
read_end (struct chandle *ch, CURLcode r, struct nbdkit_read *rd)
{
  int err;

  if (r != CURLE_OK)
    report (ch, ch->what, r);
  else if (ch->done != ch->count) {
    nbdkit_error ("%s: %s: short read: %" PRIu64 " of %" PRIu64 " bytes",
                  cfg.shown_url, ch->what, ch->done, ch->count);
    errno = EIO;
  } else
    return 0;
  err = errno;
  /* The bytes that arrived before a failure are the range's own (the
   * write callback checked the response first): they reach the client.
   */
  if (rd && ch->done > 0 && ch->done < ch->count)
    nbdkit_read_error_at (rd, ch->offset + ch->done);
  errno = err;
  return -1;
}

int
range_read (struct chandle *ch, void *buf, uint64_t count, uint64_t offset,
            struct nbdkit_read *rd)
{
  if (count == 0)
    return 0;
  if (read_begin (ch, buf, count, offset) == -1)
    return -1;
  return read_end (ch, curl_easy_perform (ch->c), rd);
}

/* An HTTP PUT of one range, with "Content-Range: bytes A-B/SIZE". */
int
write_begin (struct chandle *ch, const void *buf, uint64_t count,
             uint64_t offset, int64_t size)
{
  struct curl_slist *h = NULL, *l;
  char cr[128];

  if (setup (ch, NULL, buf, count, offset) == -1)
    return -1;
  for (l = request_headers (ch); l; l = l->next)
    if ((h = curl_slist_append (h, l->data)) == NULL)
      goto nomem;
  snprintf (cr, sizeof cr,
            "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIi64, offset,
            offset + count - 1, size);
  if ((l = curl_slist_append (h, cr)) == NULL)
    goto nomem;
  h = l;
  /* No "Expect: 100-continue" round trip before the body. */
  if ((l = curl_slist_append (h, "Expect:")) == NULL)
    goto nomem;
  h = l;

  snprintf (ch->what, sizeof ch->what, "PUT bytes %" PRIu64 "-%" PRIu64, offset,
            offset + count - 1);
  ch->put_headers = h;
  curl_easy_setopt (ch->c, CURLOPT_RANGE, NULL);
  curl_easy_setopt (ch->c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt (ch->c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)count);
  curl_easy_setopt (ch->c, CURLOPT_HTTPHEADER, h);
  return 0;

nomem:
  curl_slist_free_all (h);
  nbdkit_error ("curl_slist_append: %m");
  errno = ENOMEM;
  return -1;
}

int
write_end (struct chandle *ch, CURLcode r)
{
  curl_easy_setopt (ch->c, CURLOPT_HTTPHEADER, request_headers (ch));
  curl_easy_setopt (ch->c, CURLOPT_UPLOAD, 0L);
  curl_slist_free_all (ch->put_headers);
  ch->put_headers = NULL;
  if (r != CURLE_OK)
    return report (ch, ch->what, r);
  if (ch->status != 0 && (ch->status < 200 || ch->status > 299)) {
    nbdkit_error ("%s: %s: HTTP status %ld%s%s", cfg.shown_url, ch->what,
                  ch->status, ch->reason[0] ? " " : "", ch->reason);
    errno = EIO;
    return -1;
  }
  if (ch->done != ch->count) {
    nbdkit_error ("%s: %s: the server took %" PRIu64 " of %" PRIu64 " bytes",
                  cfg.shown_url, ch->what, ch->done, ch->count);
    errno = EIO;
    return -1;
  }
  return 0;
}

int
range_write (struct chandle *ch, const void *buf, uint64_t count,
             uint64_t offset, int64_t size)
{
  if (count == 0)
    return 0;
  if (write_begin (ch, buf, count, offset, size) == -1)
    return -1;
  return write_end (ch, curl_easy_perform (ch->c));
}
