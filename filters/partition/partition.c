/* partition.c: the partition filter, which serves one partition of a
 * partitioned disk.
 *
 *   nbdkit --filter=partition PLUGIN partition=N
 *
 * The partition table is read when each connection opens: GPT (if the
 * MBR holds a protective entry of type 0xEE), otherwise MBR, where
 * 1-4 are the primary partitions and 5 onwards the logical ones in
 * the extended partition, in the order of its chain.  Sectors are 512
 * bytes.  Every request is then shifted to the partition.
 */

#include <endian.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

#include "range.h"

#define SECTOR 512

static int64_t partnum = -1;

static const struct nbdkit_param partition_params[]
    = { { .name = "partition",
          .type = NBDKIT_PARAM_INT,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "the partition to serve, counting from 1 (MBR: 5 onwards are"
                 " logical)",
          .dest = &partnum },
        { .name = NULL } };

/* Per connection: where the partition is. */
struct handle {
  uint64_t offset, range;
};

static const char *
partition_config_help (void)
{
  return "Serves partition N of an MBR or GPT partitioned disk.";
}

static int
partition_config_complete (void)
{
  if (partnum < 1 || partnum > INT32_MAX) {
    nbdkit_error ("partition=%" PRId64 ": partitions count from 1", partnum);
    return -1;
  }
  return 0;
}

static void *
partition_open (nbdkit_context *ctx, int readonly, const char *exportname,
                int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL)
    nbdkit_error ("calloc: %m");
  return h;
}

static void
partition_close (void *handle)
{
  free (handle);
}

static uint32_t
le32 (const unsigned char *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return le32toh (v);
}

static uint64_t
le64 (const unsigned char *p)
{
  uint64_t v;
  memcpy (&v, p, 8);
  return le64toh (v);
}

static int
read_sector (nbdkit_next *next, int64_t size, uint64_t lba, unsigned char *buf)
{
  int err;

  if (lba > (uint64_t)size / SECTOR - 1 || size < SECTOR) {
    nbdkit_error ("partition table: sector %" PRIu64 " is beyond the end"
                  " of the disk",
                  lba);
    return -1;
  }
  return nbdkit_next_pread (next, buf, SECTOR, lba * SECTOR, 0, NULL, &err);
}

/* Check and keep the partition found at [START, START+LEN) sectors. */
static int
found (struct handle *h, int64_t size, uint64_t start, uint64_t len)
{
  if (len == 0) {
    nbdkit_error ("partition %" PRId64 " is empty or unused", partnum);
    return -1;
  }
  if (start > (uint64_t)size / SECTOR
      || len > (uint64_t)size / SECTOR - start) {
    nbdkit_error ("partition %" PRId64 " (sectors %" PRIu64 "+%" PRIu64
                  ") is beyond the end of the disk (%" PRId64 " bytes)",
                  partnum, start, len, size);
    return -1;
  }
  h->offset = start * SECTOR;
  h->range = len * SECTOR;
  return 0;
}

static int
is_extended (unsigned type)
{
  return type == 0x05 || type == 0x0f || type == 0x85;
}

static int
find_gpt (nbdkit_next *next, struct handle *h, int64_t size)
{
  unsigned char hdr[SECTOR], ent[SECTOR];
  uint64_t table;
  uint32_t n, esize;
  uint64_t i = partnum - 1;

  if (read_sector (next, size, 1, hdr) == -1)
    return -1;
  if (memcmp (hdr, "EFI PART", 8) != 0) {
    nbdkit_error ("the MBR says GPT but sector 1 has no GPT header");
    return -1;
  }
  table = le64 (hdr + 72);
  n = le32 (hdr + 80);
  esize = le32 (hdr + 84);
  if (esize < 128 || esize > SECTOR || SECTOR % esize) {
    nbdkit_error ("GPT: unsupported partition entry size %" PRIu32, esize);
    return -1;
  }
  if (i >= n) {
    nbdkit_error ("GPT partition %" PRId64
                  " not found: the GPT has only %" PRIu32 " entries",
                  partnum, n);
    return -1;
  }
  if (read_sector (next, size, table + i * esize / SECTOR, ent) == -1)
    return -1;
  const unsigned char *e = ent + (i * esize) % SECTOR;
  static const unsigned char unused[16];
  if (memcmp (e, unused, 16) == 0) {
    nbdkit_error ("GPT partition %" PRId64 " not found: it is unused", partnum);
    return -1;
  }
  uint64_t first = le64 (e + 32), last = le64 (e + 40);
  if (last < first) {
    nbdkit_error ("partition %" PRId64 ": the GPT entry ends before it"
                  " starts",
                  partnum);
    return -1;
  }
  return found (h, size, first, last - first + 1);
}

/* Logical partitions: a chain of extended boot records, each giving
 * one partition (relative to itself) and the next record (relative to
 * the extended partition).
 */
static int
find_logical (nbdkit_next *next, struct handle *h, int64_t size,
              uint64_t ext_start)
{
  unsigned char ebr[SECTOR];
  uint64_t lba = ext_start;
  int64_t k;

  for (k = 5;; k++) {
    if (read_sector (next, size, lba, ebr) == -1)
      return -1;
    if (ebr[510] != 0x55 || ebr[511] != 0xaa) {
      nbdkit_error ("extended boot record at sector %" PRIu64 " has no"
                    " signature",
                    lba);
      return -1;
    }
    if (k == partnum)
      return found (h, size, lba + le32 (ebr + 446 + 8), le32 (ebr + 446 + 12));
    const unsigned char *link = ebr + 446 + 16;
    if (!is_extended (link[4]) || le32 (link + 8) == 0 || k > 1000) {
      nbdkit_error ("MBR partition %" PRId64
                    " not found: there are only %" PRId64 " logical partitions",
                    partnum, k - 4);
      return -1;
    }
    lba = ext_start + le32 (link + 8);
  }
}

static int
partition_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  unsigned char mbr[SECTOR];
  int64_t size = nbdkit_next_get_size (next);
  int i;

  if (size == -1 || read_sector (next, size, 0, mbr) == -1)
    return -1;
  if (mbr[510] != 0x55 || mbr[511] != 0xaa) {
    nbdkit_error ("the disk has no MBR or GPT partition table");
    return -1;
  }
  for (i = 0; i < 4; i++)
    if (mbr[446 + 16 * i + 4] == 0xee)
      return find_gpt (next, h, size);
  if (partnum <= 4) {
    const unsigned char *e = mbr + 446 + 16 * (partnum - 1);
    if (e[4] == 0 || is_extended (e[4])) {
      nbdkit_error ("MBR partition %" PRId64 " not found: it is %s", partnum,
                    e[4] ? "the extended partition" : "unused");
      return -1;
    }
    return found (h, size, le32 (e + 8), le32 (e + 12));
  }
  for (i = 0; i < 4; i++)
    if (is_extended (mbr[446 + 16 * i + 4]))
      return find_logical (next, h, size, le32 (mbr + 446 + 16 * i + 8));
  nbdkit_error ("MBR partition %" PRId64 " not found: there is no extended"
                " partition",
                partnum);
  return -1;
}

static int64_t
partition_get_size (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;
  return h->range;
}

static int
partition_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
                 uint64_t offset, uint32_t flags, struct nbdkit_read *rd,
                 int *err)
{
  struct handle *h = handle;
  return nbdkit_next_pread (next, buf, count, offset + h->offset, flags, NULL,
                            err);
}

static int
partition_pwrite (nbdkit_next *next, void *handle, const void *buf,
                  uint64_t count, uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  return nbdkit_next_pwrite (next, buf, count, offset + h->offset, flags, err);
}

static int
partition_trim (nbdkit_next *next, void *handle, uint64_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  return nbdkit_next_trim (next, count, offset + h->offset, flags, err);
}

static int
partition_zero (nbdkit_next *next, void *handle, uint64_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  return nbdkit_next_zero (next, count, offset + h->offset, flags, err);
}

static int
partition_cache (nbdkit_next *next, void *handle, uint64_t count,
                 uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  return nbdkit_next_cache (next, count, offset + h->offset, flags, err);
}

static int
partition_extents (nbdkit_next *next, void *handle, uint64_t count,
                   uint64_t offset, uint32_t flags, struct nbdkit_extents *e,
                   int *err)
{
  struct handle *h = handle;
  return range_extents (next, h->offset, count, offset, flags, e, err);
}

static struct nbdkit_filter filter = {
  .name = "partition",
  .longname = "nbdkit partition filter",
  .description = "serve one partition of a partitioned disk",
  .params = partition_params,
  .config_complete = partition_config_complete,
  .config_help = partition_config_help,
  .open = partition_open,
  .close = partition_close,
  .prepare = partition_prepare,
  .get_size = partition_get_size,
  .pread = partition_pread,
  .pread_fills_buffer = 1, /* or reads it from below */
  .pwrite = partition_pwrite,
  .trim = partition_trim,
  .zero = partition_zero,
  .cache = partition_cache,
  .extents = partition_extents,
};

NBDKIT_REGISTER_FILTER (filter)
