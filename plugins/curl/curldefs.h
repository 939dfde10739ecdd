/* curldefs.h: what the files of the curl plugin share.
 *
 * curl.c holds the parameters and the plugin callbacks; request.c the
 * pool of libcurl easy handles and the requests made on them (probe,
 * range read, range write); scripts.c the headers and cookie made by
 * header-script= and cookie-script=; async.c the thread that runs reads
 * and writes on a curl multi handle for the asynchronous callbacks.
 */

#ifndef CURLDEFS_H
#define CURLDEFS_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

/* The configuration, set once before the first connection. */
struct curl_config {
  const char *url;
  const char *shown_url; /* url without a password, for messages */
  struct curl_slist *headers;
  const char *cookie, *cookiefile, *cookiejar;
  const char *user, *password;
  const char *proxy, *proxy_user, *proxy_password;
  const char *cainfo, *capath;
  const char *ssl_cipher_list, *tls13_ciphers;
  long ssl_version;  /* CURL_SSLVERSION_* */
  long http_version; /* CURL_HTTP_VERSION_* */
  const char *user_agent;
  const char *protocols;
  const char *unix_socket_path;
  bool sslverify, followlocation, tcp_keepalive, tcp_nodelay;
  bool verbose;
  int64_t timeout;
  int64_t connections;
  const char *header_script, *cookie_script;
  int64_t header_script_renew, cookie_script_renew; /* seconds, 0: never */
  bool async;                /* reads and writes through async.c's drivers */
  unsigned transfer_threads; /* async.c's drivers */
};
extern struct curl_config cfg;

/* One pooled easy handle and the request it is running.  The fields
 * below the handle describe one request and are reset for each: they
 * are what a completion (curl_easy_perform returning now, a curl multi
 * message later) needs to finish the request.
 */
struct chandle {
  CURL *c;
  unsigned index; /* 0, 1, ... in the order the handles were made */
  char errbuf[CURL_ERROR_SIZE];

  /* The request. */
  char *rbuf;       /* read: where the body goes */
  const char *wbuf; /* write: where the body comes from */
  uint64_t count, offset, done;
  char what[96];                  /* "GET bytes A-B", for messages */
  struct curl_slist *put_headers; /* a PUT's own, until write_end */

  /* What the headers of the last response said. */
  long status; /* 0 until an HTTP status line arrived */
  char reason[64];
  bool accept_ranges;
  int64_t range_start; /* from Content-Range, -1 if none */
  int64_t range_total; /* from Content-Range, -1 if none or '*' */

  /* Why the body was refused (the transfer then fails). */
  enum { BODY_OK, BODY_NO_RANGE, BODY_WRONG_RANGE, BODY_TOO_LONG } refused;
  bool body_checked;

  /* The script values the handle was given (scripts.c). */
  struct script_values *values;
};

/* The pool: CONNECTIONS handles at most, made on first use, shared by
 * every client connection.  Those who wait for a handle are served
 * first come, first served: pool_get waits in the calling thread;
 * pool_take, for a caller that must not wait, queues W instead and
 * calls W->given once pool_put hands it a handle (in W->ch).
 */
struct pool_waiter {
  struct pool_waiter *next;
  struct chandle *ch;
  void (*given) (struct pool_waiter *w); /* NULL: waits in pool_get */
};
extern int pool_init (void);
extern void pool_free (void);
extern struct chandle *pool_get (void);
/* 1: a handle is in W->ch now; 0: W is queued; -1: error (logged). */
extern int pool_take (struct pool_waiter *w);
extern void pool_put (struct chandle *ch);

/* What probe learns about the URL. */
struct url_info {
  int64_t size;
  bool is_http; /* the scheme after redirects is http or https */
};

struct nbdkit_read;
struct nbdkit_completion;

/* Each logs its error, naming the URL, sets errno, returns -1.  A
 * range read that fails after some bytes arrived tells RD (if not
 * NULL) where the error starts: those bytes are the range's own.
 */
extern int probe (struct chandle *ch, struct url_info *info);
extern int range_read (struct chandle *ch, void *buf, uint64_t count,
                       uint64_t offset, struct nbdkit_read *rd);
extern int range_write (struct chandle *ch, const void *buf, uint64_t count,
                        uint64_t offset, int64_t size);

/* header-script= and cookie-script= (scripts.c).  scripts_apply, at
 * the setup of every request, runs a script when it is due and gives
 * the handle the current headers and cookie; -1 (logged, errno set)
 * when a script failed.  request_headers is the header list the handle
 * was given: header= and header-script's together.
 */
extern int scripts_config_complete (void);
extern int scripts_apply (struct chandle *ch);
/* Run a script that is due, without touching a handle: async.c calls
 * it on the client connection's thread before queueing a transfer.
 */
extern int scripts_refresh (void);
extern struct curl_slist *request_headers (const struct chandle *ch);
extern void scripts_free (void);

/* The two halves of range_read and range_write around the transfer,
 * for a caller that runs it elsewhere (async.c, on a multi handle).
 * *_begin sets up the handle (COUNT > 0); *_end, given the outcome of
 * the transfer, does every check and leaves the handle ready for the
 * next request.
 */
extern int read_begin (struct chandle *ch, void *buf, uint64_t count,
                       uint64_t offset);
extern int read_end (struct chandle *ch, CURLcode r, struct nbdkit_read *rd);
extern int write_begin (struct chandle *ch, const void *buf, uint64_t count,
                        uint64_t offset, int64_t size);
extern int write_end (struct chandle *ch, CURLcode r);

/* async.c: the driver threads, started after the server forked.
 * async_read and async_write return at once (0), or -1 with the error
 * logged; the driver completes C later, when the transfer is over.
 */
extern int driver_start (void);
extern void driver_stop (void);
extern int async_read (void *buf, uint64_t count, uint64_t offset,
                       struct nbdkit_read *rd, struct nbdkit_completion *c);
extern int async_write (const void *buf, uint64_t count, uint64_t offset,
                        int64_t size, struct nbdkit_completion *c);

#endif /* CURLDEFS_H */
