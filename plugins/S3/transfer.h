/* transfer.h: HTTP requests to an S3 endpoint, run in parallel.
 *
 * One thread drives a libcurl multi handle for the whole server.  A
 * caller fills an array of struct xfer, gives it to xfer_run, and waits
 * until every one has completed; at most `connections` requests are on
 * the wire at once, each on a reused easy handle (and its kept-alive
 * connection).  Requests are signed with libcurl's AWS SigV4.
 *
 * xfer_run is the only place a caller waits; xfer_submit hands the
 * same array over with a callback run when the last one completes.
 */

#ifndef S3_TRANSFER_H
#define S3_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum xfer_method { XFER_GET, XFER_HEAD, XFER_PUT, XFER_DELETE };

struct xfer_batch;

struct xfer {
  /* Set by the caller. */
  enum xfer_method method;
  char *url;            /* freed by xfer_clear */
  char *what;           /* the object or bucket, for messages; freed too */
  uint64_t range_start; /* GET: with range_len, a Range request */
  uint64_t range_len;
  void *dst;        /* GET: the body goes here, at most dst_len bytes */
  uint64_t dst_len; /* (dst NULL: the body is collected in body) */
  const void *src;  /* PUT: the body */
  uint64_t src_len;

  /* Results. */
  int curl_code;          /* CURLcode; 0: the HTTP exchange happened */
  long status;            /* HTTP status */
  uint64_t got;           /* GET: body bytes stored into dst */
  bool overflow;          /* GET: the body was longer than dst_len */
  int64_t content_length; /* HEAD: Content-Length, or -1 */
  char *body;             /* error body, or the whole body if !dst */
  size_t body_len;
  char curl_err[256];

  /* Private to transfer.c. */
  struct xfer_batch *batch;
  struct xfer *next;
  void *easy;
  void *headers;
};

struct xfer_config {
  const char *access_key; /* NULL: requests are not signed */
  const char *secret_key;
  const char *session_token; /* NULL: none */
  const char *region;
  unsigned connections;
  long connect_timeout; /* seconds */
  long timeout;         /* seconds, a whole request */
  bool sslverify;
};

/* Start the thread; CONFIG must live until xfer_stop. */
extern int xfer_start (const struct xfer_config *config);
extern void xfer_stop (void);

/* Run the N requests of XS in parallel and return when all completed.
 * Returns -1 only if they could not be started (logged); the outcome
 * of each is in its result fields.
 */
extern int xfer_run (struct xfer *xs, size_t n);

/* Start the N requests of XS and return at once; DONE (OPAQUE) runs
 * on the transfer thread once every one has completed (the outcome of
 * each is in its result fields).  DONE must not wait for anything a
 * transfer needs.  Returns -1, without calling DONE, if they could
 * not be started (logged).
 */
extern int xfer_submit (struct xfer *xs, size_t n, void (*done) (void *opaque),
                        void *opaque);

/* Free what a request holds (url, body), keeping the struct. */
extern void xfer_clear (struct xfer *x);

/* Whether the request succeeded with a 2xx status. */
extern bool xfer_ok (const struct xfer *x);

/* The S3 error code of a failed request ("NoSuchKey", ...), or "". */
extern const char *xfer_error_code (const struct xfer *x, char *buf,
                                    size_t len);

/* Log the failure of X: method, what, URL, HTTP status or curl error,
 * S3 error code and message.  Returns the errno the client should see.
 */
extern int xfer_report (const struct xfer *x);

#endif /* S3_TRANSFER_H */
