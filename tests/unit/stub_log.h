/* stub_log.h: what the unit tests' logging stub remembers.
 *
 * stub_log.c stands in for core/log.c: nbdkit_error records the last
 * message (without a trailing newline) so tests can assert on it.
 */

#ifndef STUB_LOG_H
#define STUB_LOG_H

/* The last message nbdkit_error formatted, "" if none since reset. */
extern const char *stub_last_error (void);

/* How many errors were logged since the last reset. */
extern unsigned stub_error_count (void);

/* Forget the last error and zero the count. */
extern void stub_reset (void);

#endif /* STUB_LOG_H */
