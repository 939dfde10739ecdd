/* offset.c: the offset filter, a window onto part of the plugin.
 *
 *   nbdkit --filter=offset PLUGIN [offset=OFFSET] [range=LENGTH]
 *
 * Every request is shifted by OFFSET; the disk is RANGE bytes long (by
 * default, up to the end of the plugin).  A window reaching beyond the
 * end of the plugin is an error when the connection opens, as in
 * nbdkit: use the truncate filter to grow a plugin.
 */

#include <inttypes.h>
#include <stdint.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

#include "range.h"

static int64_t offset = 0;
static int64_t range = -1;

static const struct nbdkit_param offset_params[]
    = { { .name = "offset",
          .type = NBDKIT_PARAM_SIZE,
          .default_value = "0",
          .doc = "start of the window in the plugin",
          .dest = &offset },
        { .name = "range",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "length of the window (default: up to the plugin's end)",
          .dest = &range },
        { .name = NULL } };

static const char *
offset_config_help (void)
{
  return "Serves RANGE bytes of the plugin starting at OFFSET.";
}

static int64_t
offset_get_size (nbdkit_next *next, void *handle)
{
  int64_t real = nbdkit_next_get_size (next);

  if (real == -1)
    return -1;
  if (offset > real) {
    nbdkit_error ("offset=%" PRId64 " is beyond the end of the plugin"
                  " (%" PRId64 " bytes)",
                  offset, real);
    return -1;
  }
  if (range == -1)
    return real - offset;
  if (range > real - offset) {
    nbdkit_error ("offset=%" PRId64 " + range=%" PRId64 " is beyond the end"
                  " of the plugin (%" PRId64 " bytes)",
                  offset, range, real);
    return -1;
  }
  return range;
}

/* Check the window when the connection opens, not at the first read. */
static int
offset_prepare (nbdkit_next *next, void *handle, int readonly)
{
  return offset_get_size (next, handle) == -1 ? -1 : 0;
}

/* Loans and holes describe the plugin's offsets, which are not ours:
 * the data is read into BUF.
 */
static int
offset_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
              uint64_t offs, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  return nbdkit_next_pread (next, buf, count, offs + offset, flags, NULL, err);
}

static int
offset_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
               uint64_t offs, uint32_t flags, int *err)
{
  return nbdkit_next_pwrite (next, buf, count, offs + offset, flags, err);
}

static int
offset_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offs,
             uint32_t flags, int *err)
{
  return nbdkit_next_trim (next, count, offs + offset, flags, err);
}

static int
offset_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offs,
             uint32_t flags, int *err)
{
  return nbdkit_next_zero (next, count, offs + offset, flags, err);
}

static int
offset_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offs,
              uint32_t flags, int *err)
{
  return nbdkit_next_cache (next, count, offs + offset, flags, err);
}

static int
offset_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offs,
                uint32_t flags, struct nbdkit_extents *e, int *err)
{
  return range_extents (next, offset, count, offs, flags, e, err);
}

static struct nbdkit_filter filter = {
  .name = "offset",
  .longname = "nbdkit offset filter",
  .description = "serve part of the plugin",
  .params = offset_params,
  .config_help = offset_config_help,
  .prepare = offset_prepare,
  .get_size = offset_get_size,
  .pread = offset_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = offset_pwrite,
  .trim = offset_trim,
  .zero = offset_zero,
  .cache = offset_cache,
  .extents = offset_extents,
};

NBDKIT_REGISTER_FILTER (filter)
