/* checkwrite.c: the checkwrite filter, which checks that writes would
 * change nothing.
 *
 *   nbdkit --filter=checkwrite PLUGIN
 *
 * The plugin is opened read-only and never written.  A write succeeds
 * if the disk already holds the same bytes; trim and zero succeed if
 * the range already reads as zeroes; anything else fails with EIO.
 * Useful to check that a copy (e.g. nbdcopy or qemu-img convert) left
 * the destination as the source.  Flush does nothing.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

/* Ranges are read back in pieces of this size. */
#define CHUNK (4 * 1024 * 1024)

static const char *
checkwrite_config_help (void)
{
  return "Writes must match the plugin's data (which is never written),"
         " or fail with EIO.";
}

static void *
checkwrite_open (nbdkit_context *ctx, int readonly, const char *exportname,
                 int is_tls)
{
  if (nbdkit_next_open (ctx, 1, exportname) == -1)
    return NULL;
  return ctx;
}

static int
checkwrite_can_write (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
checkwrite_can_flush (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
checkwrite_can_trim (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
checkwrite_can_zero (nbdkit_next *next, void *handle)
{
  return NBDKIT_ZERO_NATIVE;
}

static int
checkwrite_can_fast_zero (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
checkwrite_can_fua (nbdkit_next *next, void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
checkwrite_can_multi_conn (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
mismatch (const char *what, uint64_t offset, int *err)
{
  nbdkit_error ("%s: the data at offset %" PRIu64 " differs", what, offset);
  *err = EIO;
  return -1;
}

/* The first byte of P[0..N) that is not zero, or N. */
static uint64_t
first_nonzero (const char *p, uint64_t n)
{
  uint64_t i;
  for (i = 0; i < n; i++)
    if (p[i])
      break;
  return i;
}

static int
checkwrite_pwrite (nbdkit_next *next, void *handle, const void *buf,
                   uint64_t count, uint64_t offset, uint32_t flags, int *err)
{
  char *tmp = malloc (count < CHUNK ? count : CHUNK);

  if (tmp == NULL) {
    *err = ENOMEM;
    return -1;
  }
  while (count > 0) {
    uint64_t n = count < CHUNK ? count : CHUNK;
    if (nbdkit_next_pread (next, tmp, n, offset, 0, NULL, err) == -1) {
      free (tmp);
      return -1;
    }
    if (memcmp (tmp, buf, n) != 0) {
      uint64_t i = 0;
      while (tmp[i] == ((const char *)buf)[i])
        i++;
      free (tmp);
      return mismatch ("write", offset + i, err);
    }
    buf = (const char *)buf + n;
    offset += n;
    count -= n;
  }
  free (tmp);
  return 0;
}

/* The range must read as zeroes: skip what the plugin says are zero
 * extents, read the rest.
 */
static int
check_zero (nbdkit_next *next, const char *what, uint64_t count,
            uint64_t offset, int *err)
{
  uint64_t end = offset + count;
  char *tmp = NULL;
  int extents = nbdkit_next_can_extents (next) == NBDKIT_EXTENTS_NATIVE;

  while (offset < end) {
    uint64_t n = end - offset < CHUNK ? end - offset : CHUNK;
    bool zero = false;

    if (extents) {
      struct nbdkit_extents *e = nbdkit_extents_new (offset, offset + n);
      if (e == NULL) {
        *err = ENOMEM;
        goto fail;
      }
      if (nbdkit_next_extents (next, n, offset, 0, e, err) == -1) {
        nbdkit_extents_free (e);
        goto fail;
      }
      if (nbdkit_extents_count (e) > 0) {
        struct nbdkit_extent x = nbdkit_get_extent (e, 0);
        n = x.offset + x.length - offset;
        zero = (x.type & NBDKIT_EXTENT_ZERO) != 0;
      }
      nbdkit_extents_free (e);
    }
    if (!zero) {
      uint64_t i;
      if (tmp == NULL && (tmp = malloc (CHUNK)) == NULL) {
        *err = ENOMEM;
        goto fail;
      }
      if (nbdkit_next_pread (next, tmp, n, offset, 0, NULL, err) == -1)
        goto fail;
      i = first_nonzero (tmp, n);
      if (i < n) {
        free (tmp);
        return mismatch (what, offset + i, err);
      }
    }
    offset += n;
  }
  free (tmp);
  return 0;
fail:
  free (tmp);
  return -1;
}

static int
checkwrite_trim (nbdkit_next *next, void *handle, uint64_t count,
                 uint64_t offset, uint32_t flags, int *err)
{
  return check_zero (next, "trim", count, offset, err);
}

static int
checkwrite_zero (nbdkit_next *next, void *handle, uint64_t count,
                 uint64_t offset, uint32_t flags, int *err)
{
  return check_zero (next, "zero", count, offset, err);
}

static int
checkwrite_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  return 0;
}

static struct nbdkit_filter filter = {
  .name = "checkwrite",
  .longname = "nbdkit checkwrite filter",
  .description = "check that writes match what the plugin holds",
  .config_help = checkwrite_config_help,
  .open = checkwrite_open,
  .can_write = checkwrite_can_write,
  .can_flush = checkwrite_can_flush,
  .can_trim = checkwrite_can_trim,
  .can_zero = checkwrite_can_zero,
  .can_fast_zero = checkwrite_can_fast_zero,
  .can_fua = checkwrite_can_fua,
  .can_multi_conn = checkwrite_can_multi_conn,
  .pwrite = checkwrite_pwrite,
  .flush = checkwrite_flush,
  .trim = checkwrite_trim,
  .zero = checkwrite_zero,
};

NBDKIT_REGISTER_FILTER (filter)
