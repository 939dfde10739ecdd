/* nocache.c: change the support for NBD_CMD_CACHE a client sees.
 *
 *   nbdkit --filter=nocache PLUGIN [cachemode=none|emulate|nop]
 *
 * none (the default): cache is not offered.  emulate: offered, and the
 * server reads the range and discards it, whatever the plugin does.
 * nop: offered, and every request succeeds at once without reaching
 * the plugin.  For measuring what caching is worth.
 */

#include <string.h>

#include <nbdkit-filter.h>

static const char *cachemode = "none";

static const struct nbdkit_param params[]
    = { { .name = "cachemode",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "none",
          .choices = "none|emulate|nop",
          .doc = "none: not offered; emulate: by reading; nop: ignored",
          .dest = &cachemode },
        { .name = NULL } };

static int
nocache_can_cache (nbdkit_next *next, void *handle)
{
  switch (cachemode[0]) {
    case 'e':
      return NBDKIT_CACHE_EMULATE;
    case 'n':
      return strcmp (cachemode, "nop") == 0 ? NBDKIT_CACHE_NATIVE
                                            : NBDKIT_CACHE_NONE;
    default:
      return NBDKIT_CACHE_NONE;
  }
}

/* Reached only with cachemode=nop (NATIVE). */
static int
nocache_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  return 0;
}

static struct nbdkit_filter filter = {
  .name = "nocache",
  .longname = "nbdkit nocache filter",
  .description = "disable, emulate or ignore cache requests",
  .params = params,
  .can_cache = nocache_can_cache,
  .cache = nocache_cache,
};

NBDKIT_REGISTER_FILTER (filter)
