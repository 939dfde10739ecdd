/* swab.c: the swab filter, which swaps the bytes of each 16, 32 or
 * 64-bit word between the client and the plugin.
 *
 *   nbdkit --filter=swab PLUGIN [swab-bits=8|16|32|64]
 *
 * Requests must be aligned to the word: the filter announces the word
 * size as the minimum block size, and the size of the disk is rounded
 * down to whole words.  swab-bits=8 changes nothing.
 */

#include <byteswap.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

#include "aligned.h"

static const char *bits_text = "16";
static unsigned bytes = 2;

static const struct nbdkit_param swab_params[]
    = { { .name = "swab-bits",
          .type = NBDKIT_PARAM_ENUM,
          .default_value = "16",
          .choices = "8|16|32|64",
          .doc = "size of the words whose bytes are swapped",
          .dest = &bits_text },
        { .name = NULL } };

/* Writes are swapped into a buffer of this size at a time. */
#define CHUNK (1024 * 1024)

static const char *
swab_config_help (void)
{
  return "Swaps the bytes of each word (swab-bits=16: pairs of bytes).";
}

static int
swab_config_complete (void)
{
  bytes = (unsigned)atoi (bits_text) / 8;
  return 0;
}

/* Swap COUNT bytes (a multiple of the word) from SRC into DST, which
 * may be the same buffer.
 */
static void
swap (void *dst, const void *src, uint64_t count)
{
  uint64_t i;

  switch (bytes) {
    case 2:
      for (i = 0; i < count; i += 2) {
        uint16_t w;
        memcpy (&w, (const char *)src + i, 2);
        w = bswap_16 (w);
        memcpy ((char *)dst + i, &w, 2);
      }
      break;
    case 4:
      for (i = 0; i < count; i += 4) {
        uint32_t w;
        memcpy (&w, (const char *)src + i, 4);
        w = bswap_32 (w);
        memcpy ((char *)dst + i, &w, 4);
      }
      break;
    case 8:
      for (i = 0; i < count; i += 8) {
        uint64_t w;
        memcpy (&w, (const char *)src + i, 8);
        w = bswap_64 (w);
        memcpy ((char *)dst + i, &w, 8);
      }
      break;
    default:
      if (dst != src)
        memmove (dst, src, count);
  }
}

static int
aligned (uint64_t count, uint64_t offset, int *err)
{
  if ((count | offset) % bytes) {
    nbdkit_error ("request at %" PRIu64 " for %" PRIu64 " bytes is not"
                  " aligned to swab-bits=%s",
                  offset, count, bits_text);
    *err = EINVAL;
    return 0;
  }
  return 1;
}

static int64_t
swab_get_size (nbdkit_next *next, void *handle)
{
  int64_t size = nbdkit_next_get_size (next);
  return size == -1 ? -1 : size - size % bytes;
}

static int
swab_block_size (nbdkit_next *next, void *handle, struct nbdkit_block_size *bs)
{
  if (nbdkit_next_block_size (next, bs) == -1)
    return -1;
  if (bs->minimum == 0) {
    bs->minimum = bytes;
    bs->preferred = 4096;
    bs->maximum = 0xffffffff;
  } else if (bs->minimum < bytes) {
    bs->minimum = bytes;
    if (bs->preferred < bytes)
      bs->preferred = bytes;
  }
  bs->maximum -= bs->maximum % bs->minimum;
  return 0;
}

static int
swab_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
            uint64_t offset, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  if (!aligned (count, offset, err))
    return -1;
  if (bytes == 1)
    return nbdkit_next_pread (next, buf, count, offset, flags, rd, err);
  if (nbdkit_next_pread (next, buf, count, offset, flags, NULL, err) == -1)
    return -1;
  swap (buf, buf, count);
  return 0;
}

static int
swab_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
             uint64_t offset, uint32_t flags, int *err)
{
  char *tmp;

  if (!aligned (count, offset, err))
    return -1;
  if (bytes == 1)
    return nbdkit_next_pwrite (next, buf, count, offset, flags, err);
  tmp = malloc (count < CHUNK ? count : CHUNK);
  if (tmp == NULL) {
    *err = ENOMEM;
    return -1;
  }
  while (count > 0) {
    uint64_t n = count < CHUNK ? count : CHUNK;
    swap (tmp, buf, n);
    /* FUA only with the last piece: it covers the pieces before. */
    if (nbdkit_next_pwrite (next, tmp, n, offset,
                            n == count ? flags : flags & ~NBDKIT_FLAG_FUA, err)
        == -1) {
      free (tmp);
      return -1;
    }
    buf = (const char *)buf + n;
    offset += n;
    count -= n;
  }
  free (tmp);
  return 0;
}

static int
swab_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  if (!aligned (count, offset, err))
    return -1;
  return nbdkit_next_trim (next, count, offset, flags, err);
}

static int
swab_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  if (!aligned (count, offset, err))
    return -1;
  return nbdkit_next_zero (next, count, offset, flags, err);
}

/* Extents in whole words: a word is data unless all of it is not. */
static int
swab_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_extents *e, int *err)
{
  if (!aligned (count, offset, err))
    return -1;
  return aligned_extents (next, count, offset, flags, bytes, e, err);
}

static struct nbdkit_filter filter = {
  .name = "swab",
  .longname = "nbdkit byte-swapping filter",
  .description = "swap the bytes of each word",
  .params = swab_params,
  .config_complete = swab_config_complete,
  .config_help = swab_config_help,
  .get_size = swab_get_size,
  .block_size = swab_block_size,
  .pread = swab_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = swab_pwrite,
  .trim = swab_trim,
  .zero = swab_zero,
  .extents = swab_extents,
};

NBDKIT_REGISTER_FILTER (filter)
