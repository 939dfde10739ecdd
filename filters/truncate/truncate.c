/* truncate.c: the truncate filter, which changes the size of the plugin.
 *
 *   nbdkit --filter=truncate PLUGIN [truncate=SIZE] [round-up=N]
 *                                   [round-down=N]
 *
 * The size is TRUNCATE (or the plugin's), then rounded up or down to a
 * multiple of N.  Past the plugin's end the disk reads as zeroes (sent
 * as holes), takes writes of zeroes and refuses any other data with
 * EIO; trim and zero there do nothing.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

static int64_t truncate_size = -1;
static int64_t round_up = 0, round_down = 0;

static const struct nbdkit_param truncate_params[]
    = { { .name = "truncate",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "size of the disk (default: the plugin's)",
          .dest = &truncate_size },
        { .name = "round-up",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "round the size up to a multiple of N",
          .dest = &round_up },
        { .name = "round-down",
          .type = NBDKIT_PARAM_SIZE,
          .doc = "round the size down to a multiple of N",
          .dest = &round_down },
        { .name = NULL } };

/* Per connection: the plugin's size and ours. */
struct handle {
  uint64_t real_size;
  uint64_t size;
};

static const char *
truncate_config_help (void)
{
  return "Grows or shrinks the disk; past the plugin's end it reads as"
         " zeroes.";
}

static int
truncate_config_complete (void)
{
  if (round_up < 0 || round_down < 0) {
    nbdkit_error ("round-up and round-down must not be negative");
    return -1;
  }
  return 0;
}

static void *
truncate_open (nbdkit_context *ctx, int readonly, const char *exportname,
               int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL)
    nbdkit_error ("calloc: %m");
  return h;
}

static void
truncate_close (void *handle)
{
  free (handle);
}

static int
truncate_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  int64_t real = nbdkit_next_get_size (next);
  uint64_t size;

  if (real == -1)
    return -1;
  size = truncate_size >= 0 ? (uint64_t)truncate_size : (uint64_t)real;
  if (round_up > 0) {
    uint64_t n = (uint64_t)round_up;
    if (size % n && size + (n - size % n) > (uint64_t)INT64_MAX) {
      nbdkit_error ("round-up=%" PRId64 ": the size would overflow", round_up);
      return -1;
    }
    if (size % n)
      size += n - size % n;
  }
  if (round_down > 0)
    size -= size % (uint64_t)round_down;
  h->real_size = real;
  h->size = size;
  return 0;
}

static int64_t
truncate_get_size (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;
  return h->size;
}

/* The part of [OFFSET, OFFSET+COUNT) that the plugin has. */
static uint64_t
inside (const struct handle *h, uint64_t count, uint64_t offset)
{
  if (offset >= h->real_size)
    return 0;
  return count < h->real_size - offset ? count : h->real_size - offset;
}

static int
truncate_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
                uint64_t offset, uint32_t flags, struct nbdkit_read *rd,
                int *err)
{
  struct handle *h = handle;
  uint64_t n = inside (h, count, offset);

  if (n == count)
    return nbdkit_next_pread (next, buf, count, offset, flags, rd, err);
  if (n > 0 && nbdkit_next_pread (next, buf, n, offset, flags, NULL, err) == -1)
    return -1;
  if (rd && nbdkit_read_hole (rd, offset + n, count - n) == 0)
    return 0;
  memset ((char *)buf + n, 0, count - n);
  return 0;
}

static bool
is_zero (const char *p, uint64_t n)
{
  /* Compare with itself shifted by one byte once the first is zero. */
  return n == 0 || (p[0] == 0 && memcmp (p, p + 1, n - 1) == 0);
}

static int
truncate_pwrite (nbdkit_next *next, void *handle, const void *buf,
                 uint64_t count, uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  uint64_t n = inside (h, count, offset);

  if (!is_zero ((const char *)buf + n, count - n)) {
    nbdkit_error ("write of non-zero data beyond the end of the plugin"
                  " (%" PRIu64 " bytes)",
                  h->real_size);
    *err = EIO;
    return -1;
  }
  if (n == 0)
    return 0;
  return nbdkit_next_pwrite (next, buf, n, offset, flags, err);
}

static int
truncate_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  uint64_t n = inside (handle, count, offset);
  return n ? nbdkit_next_trim (next, n, offset, flags, err) : 0;
}

static int
truncate_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  uint64_t n = inside (handle, count, offset);
  return n ? nbdkit_next_zero (next, n, offset, flags, err) : 0;
}

static int
truncate_cache (nbdkit_next *next, void *handle, uint64_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  uint64_t n = inside (handle, count, offset);
  return n ? nbdkit_next_cache (next, n, offset, flags, err) : 0;
}

static int
truncate_extents (nbdkit_next *next, void *handle, uint64_t count,
                  uint64_t offset, uint32_t flags, struct nbdkit_extents *e,
                  int *err)
{
  struct handle *h = handle;
  uint64_t n = inside (h, count, offset);

  if (n > 0) {
    if (nbdkit_next_extents (next, n, offset, flags, e, err) == -1)
      return -1;
    /* The plugin may answer for less than asked; the client asks again. */
    if (n < count && (flags & NBDKIT_FLAG_REQ_ONE))
      return 0;
    if (n < count && nbdkit_extents_count (e) > 0) {
      struct nbdkit_extent x
          = nbdkit_get_extent (e, nbdkit_extents_count (e) - 1);
      if (x.offset + x.length < offset + n)
        return 0;
    }
  }
  if (n < count
      && nbdkit_add_extent (e, offset + n, count - n,
                            NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO)
             == -1) {
    *err = errno;
    return -1;
  }
  return 0;
}

static struct nbdkit_filter filter = {
  .name = "truncate",
  .longname = "nbdkit truncate filter",
  .description = "change the size of the plugin",
  .params = truncate_params,
  .config_complete = truncate_config_complete,
  .config_help = truncate_config_help,
  .open = truncate_open,
  .close = truncate_close,
  .prepare = truncate_prepare,
  .get_size = truncate_get_size,
  .pread = truncate_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = truncate_pwrite,
  .trim = truncate_trim,
  .zero = truncate_zero,
  .cache = truncate_cache,
  .extents = truncate_extents,
};

NBDKIT_REGISTER_FILTER (filter)
