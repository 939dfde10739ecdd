/* s3.h: what the S3 plugin's files share.
 *
 * objects.c names objects and builds requests and listings; s3.c has
 * the callbacks and reads; write.c the
 * writes, zeroes and trims; extents.c block status.
 */

#ifndef S3_S3_H
#define S3_S3_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "transfer.h"

/* objects.c */

/* The name of object I, or of the one object in single-object mode
 * (I == UINT64_MAX); NULL when out of memory.
 */
extern char *object_name (uint64_t i);
/* S percent-encoded for a URL (all but S3's unreserved characters,
 * and '/' if KEEP_SLASH), as SigV4 wants.
 */
extern char *url_encode (const char *s, bool keep_slash);
/* Fill X for METHOD on the object named NAME (taken, even on error). */
extern int set_object (struct xfer *x, enum xfer_method method, char *name);
/* xfer_clear the N requests of XS and free XS. */
extern void clear_all (struct xfer *xs, size_t n);
/* Whether X failed because the object (not the bucket) does not exist. */
extern bool is_missing (const struct xfer *x);
extern int list_prepare (struct xfer *x, const char *prefix,
                         const char *start_after, const char *token,
                         unsigned max_keys);
extern int list_parse (const struct xfer *x, char **token, char ***keys,
                       size_t *nkeys);
extern void free_keys (char **keys, size_t nkeys);
extern int list_page (const char *prefix, const char *start_after, char **token,
                      char ***keys, size_t *nkeys, unsigned max_keys);

/* s3.c */

/* Requests finished on the transfer thread are completed there:
 * nbdkit_complete never waits for the client, so a client that does
 * not read its replies stalls only its own, not the transfers.
 */
struct handle {
  int64_t size;
};

/* A thread waiting for a request run by steps on the transfer thread
 * (the synchronous callbacks: async=false, or when the server does
 * not use the async ones).
 */
struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool finished;
};

extern void waiter_init (struct waiter *w);
extern void waiter_wake (struct waiter *w);
/* Wait for waiter_wake, then free W's mutex and condition. */
extern void waiter_wait (struct waiter *w);

/* write.c */

enum op_kind { OP_WRITE, OP_ZERO, OP_TRIM };

extern void writes_init (void);
/* Run KIND (DATA: the bytes written) over [OFFSET, OFFSET+COUNT) and
 * wait for it; -1 with the error set on failure.
 */
extern int op_run (enum op_kind kind, const char *data, uint64_t count,
                   uint64_t offset);
/* Start it, completing C when done (see nbdkit_complete). */
extern int op_async (struct nbdkit_completion *c, enum op_kind kind,
                     const char *data, uint64_t count, uint64_t offset);

/* extents.c */

extern int extents_run (uint64_t count, uint64_t offset,
                        struct nbdkit_extents *ext);
extern int extents_async (struct nbdkit_completion *c, uint64_t count,
                          uint64_t offset, struct nbdkit_extents *ext);

#endif /* S3_S3_H */
