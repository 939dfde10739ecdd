/* stub_server.h: what the unit tests' server stub remembers.
 *
 * stub_server.c stands in for the parts of the server that core files
 * such as request.c and reply.c call: log_debug (dropped) and
 * conn_sendv, whose bytes are appended to a capture buffer so tests
 * can decode exactly what would have gone on the wire.
 */

#ifndef STUB_SERVER_H
#define STUB_SERVER_H

#include <stddef.h>
#include <stdint.h>

/* Everything conn_sendv was given since the last reset, in order. */
extern const unsigned char *stub_sent (void);
extern size_t stub_sent_len (void);

/* How many times conn_sendv was called, and the most iovecs passed in
 * any one call.
 */
extern unsigned stub_sendv_calls (void);
extern int stub_sendv_max_iovcnt (void);

/* Make conn_sendv call N+1 (0-based from the last reset) and every
 * later one fail with -1, capturing nothing; -1 never fails.
 */
extern void stub_sendv_fail_from (int n);

/* conn_sendv_nowait takes at most N more bytes (SIZE_MAX: all). */
extern void stub_nowait_budget (size_t n);

/* Empty the capture, zero the counters, stop failing. */
extern void stub_sent_reset (void);

#endif /* STUB_SERVER_H */
