/* values.h: the limits every language host checks a script's answers
 * against, so that the same value is refused alike in each host, with
 * a message naming the script and the callback.
 */

#ifndef LANGS_VALUES_H
#define LANGS_VALUES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The longest string (export name, description, context name) the
 * NBD protocol carries.
 */
#define HOST_MAX_STRING 4096

/* Why string S of LEN bytes cannot go to a client as it is, or NULL:
 * C strings end at the first NUL, and the protocol caps the length.
 */
static inline const char *
host_string_problem (const char *s, size_t len)
{
  if (len > HOST_MAX_STRING)
    return "is longer than the 4096 bytes an NBD string may hold";
  if (memchr (s, 0, len))
    return "contains a NUL byte";
  return NULL;
}

/* An export description: "" means none, in every host (the only way
 * for an OCaml script, whose callback returns a string, and for a
 * filter, where None/nil means the layer below's).
 */
static inline const char *
host_description (const char *d)
{
  return d && *d ? d : NULL;
}

/* Whether V fits in the 32-bit fields of struct nbdkit_block_size. */
static inline int
host_block_size_ok (int64_t v)
{
  return v >= 0 && v <= UINT32_MAX;
}

/* What the server assumes of a plugin that lacks capability callback
 * can_X, given which of its data callbacks exist (HAS (name), defined
 * by the host): also the answer of a filter script that lacks can_X
 * and opened nothing below (open_none), so that such a filter answers
 * like a plugin with its callbacks.
 */
#define HOST_DEFAULT_can_write (HAS (pwrite))
#define HOST_DEFAULT_can_flush (HAS (flush))
#define HOST_DEFAULT_is_rotational 0
#define HOST_DEFAULT_can_trim (HAS (trim))
#define HOST_DEFAULT_can_zero                                                  \
  (HAS (zero) ? NBDKIT_ZERO_NATIVE : NBDKIT_ZERO_EMULATE)
/* nbdkit's rule: fast zeroes unless zeroing is native; the host
 * defines HOST_CAN_ZERO as the layer's own can_zero answer.
 */
#define HOST_DEFAULT_can_fast_zero                                             \
  ((HOST_CAN_ZERO) >= 0 && (HOST_CAN_ZERO) != NBDKIT_ZERO_NATIVE)
#define HOST_DEFAULT_can_fua                                                   \
  (HAS (flush) ? NBDKIT_FUA_EMULATE : NBDKIT_FUA_NONE)
#define HOST_DEFAULT_can_multi_conn 0
#define HOST_DEFAULT_can_extents                                               \
  (HAS (extents) ? NBDKIT_EXTENTS_NATIVE : NBDKIT_EXTENTS_EMULATE)
#define HOST_DEFAULT_can_cache                                                 \
  (HAS (cache) ? NBDKIT_CACHE_NATIVE : NBDKIT_CACHE_NONE)

#endif /* LANGS_VALUES_H */
