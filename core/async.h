/* async.h: requests a plugin completes later (async.c), as the
 * transmission phase sees them.
 */

#ifndef NBDKIT_ASYNC_H
#define NBDKIT_ASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "request.h"

/* Before the first request: which requests of connection C may go to
 * the plugin asynchronously (the thread model, the filters, the
 * plugin's callbacks and capabilities decide).  Asks the layers'
 * capabilities, so call it with no lock held.
 */
extern void async_prepare (struct connection *c);

/* Whether any request of C may go asynchronously. */
extern bool async_used (const struct connection *c);

/* Whether R would go asynchronously: then serving it takes only the
 * time to start it.
 */
extern bool async_would_start (const struct connection *c,
                               const struct request *r);

/* Start R (checked, not refused; FLAGS are its NBDKIT_FLAG_*s)
 * asynchronously if it may go so: true when it was taken, and its
 * completion will reply.  A write's payload is taken from *WBUF, which
 * is given another buffer in exchange.
 */
extern bool async_execute (struct connection *c, const struct request *r,
                           uint32_t flags, char **wbuf, size_t *wbuf_size);

/* serialize-retirement: the reply in turn has left (or was dropped);
 * let the next go, and send the completed replies now in turn.
 */
extern void async_retire_next (struct connection *c);

/* With C's send lock held, on a thread that may wait for the client:
 * the rest of a completion's reply cut short goes first.
 */
extern void async_send_partial (struct connection *c);

/* Wait until no request of C is outstanding; then free what async
 * requests kept.  Before the layers are closed.
 */
extern void async_wait_all (struct connection *c);
extern void async_conn_free (struct connection *c);

#endif /* NBDKIT_ASYNC_H */
