/* nofilter.c: the nofilter filter, which changes nothing.
 *
 *   nbdkit --filter=nofilter PLUGIN ...
 *
 * Every callback is left out, so every call goes straight to the layer
 * below.  Useful to test the filter machinery itself, and as the
 * smallest filter there is.
 */

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

static struct nbdkit_filter filter = {
  .name = "nofilter",
  .longname = "nbdkit nofilter filter",
  .description = "pass every request through unchanged",
  .pread_fills_buffer = 1, /* pread passes through */
};

NBDKIT_REGISTER_FILTER (filter)
