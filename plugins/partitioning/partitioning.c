/* partitioning.c: the partitioning plugin, files as the partitions of
 * a virtual MBR or GPT disk.
 *
 *   nbdkit partitioning [file=]P1 [file=]P2 ... [partition-type=mbr|gpt]
 *                       [mbr-id=0xN|default] [type-guid=GUID|default]
 *                       [alignment=N]
 *
 * mbr-id, type-guid and alignment apply to the files that follow
 * them.  The disk is a list of regions: the files (read-write), the
 * synthesized tables (MBR, EBRs, GPT headers and entry arrays) and
 * zero padding.  Writes to anything but a file fail with EIO.  The
 * sector size is 512.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#define SECTOR 512
#define DEFAULT_MBR_ID 0x83
#define DEFAULT_ALIGNMENT (1024 * 1024)
#define MBR_MAX_SECTORS UINT64_C (0xffffffff)
#define GPT_MIN_ENTRIES 128
#define GPT_ENTRY_SIZE 128

static const char default_guid[] = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

struct file {
  char *path;
  int fd;
  uint64_t size;       /* of the file */
  uint64_t start, len; /* the partition, bytes; len rounded to SECTOR */
  uint64_t alignment;
  uint8_t mbr_id;
  uint8_t type_guid[16];
};

enum kind { R_FILE, R_DATA, R_ZERO };

struct region {
  uint64_t start, len;
  enum kind kind;
  struct file *file;   /* R_FILE */
  const uint8_t *data; /* R_DATA */
};

static struct file *files;
static size_t nfiles;
static const char *partition_type; /* NULL: chosen from the files */
static bool gpt;
static bool readonly_files;
static uint64_t total;

/* The current settings applying to the next files. */
static uint8_t cur_mbr_id = DEFAULT_MBR_ID;
static uint8_t cur_guid[16];
static uint64_t cur_alignment = DEFAULT_ALIGNMENT;

static struct region *regions;
static size_t nregions;
static uint8_t **buffers; /* table buffers, freed at unload */
static size_t nbuffers;

/* Parse GUID text into its on-disk form (the first three fields little
 * endian, the rest as written).
 */
static int
parse_guid (const char *s, uint8_t out[16])
{
  static const int pos[16]
      = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
  uint8_t raw[16];
  size_t n = 0;

  if (strlen (s) != 36)
    return -1;
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return -1;
      i++;
      continue;
    }
    unsigned v;
    char hex[3] = { s[i], s[i + 1], 0 };
    char *end;
    if (!isxdigit ((unsigned char)s[i]) || !isxdigit ((unsigned char)s[i + 1])
        || n >= 16)
      return -1;
    v = strtoul (hex, &end, 16);
    if (*end)
      return -1;
    raw[n++] = v;
    i += 2;
  }
  if (n != 16)
    return -1;
  for (size_t i = 0; i < 16; i++)
    out[pos[i]] = raw[i];
  return 0;
}

static int
partitioning_config (const char *key, const char *value)
{
  if (strcmp (key, "file") == 0) {
    struct file *f = realloc (files, (nfiles + 1) * sizeof *f);
    if (f == NULL) {
      nbdkit_error ("realloc: %m");
      return -1;
    }
    files = f;
    f = &files[nfiles];
    *f = (struct file){ .path = strdup (value),
                        .fd = -1,
                        .alignment = cur_alignment,
                        .mbr_id = cur_mbr_id };
    memcpy (f->type_guid, cur_guid, 16);
    if (f->path == NULL) {
      nbdkit_error ("strdup: %m");
      return -1;
    }
    nfiles++;
  } else if (strcmp (key, "mbr-id") == 0) {
    char *end;
    unsigned long v;
    if (strcmp (value, "default") == 0) {
      cur_mbr_id = DEFAULT_MBR_ID;
      return 0;
    }
    errno = 0;
    v = strtoul (value, &end, 0);
    if (errno || end == value || *end || v == 0 || v > 0xff) {
      nbdkit_error ("mbr-id=%s: expected a byte such as 0x83, or default",
                    value);
      return -1;
    }
    cur_mbr_id = v;
  } else if (strcmp (key, "type-guid") == 0) {
    if (strcmp (value, "default") == 0)
      return parse_guid (default_guid, cur_guid);
    if (parse_guid (value, cur_guid) == -1) {
      nbdkit_error ("type-guid=%s: expected a GUID such as %s, or default",
                    value, default_guid);
      return -1;
    }
  } else if (strcmp (key, "alignment") == 0) {
    int64_t a = strtoll (value, NULL, 10);
    if (a < SECTOR || a % SECTOR != 0) {
      nbdkit_error ("alignment=%s: must be a multiple of %d", value, SECTOR);
      return -1;
    }
    cur_alignment = a;
  }
  return 0;
}

static const struct nbdkit_param partitioning_params[]
    = { { .name = "file",
          .type = NBDKIT_PARAM_FILE,
          .flags = NBDKIT_PARAM_REQUIRED | NBDKIT_PARAM_MULTIPLE,
          .doc = "a file holding one partition (repeat in order)" },
        { .name = "partition-type",
          .type = NBDKIT_PARAM_ENUM,
          .choices = "mbr|gpt",
          .dest = &partition_type,
          .doc = "the partition table: mbr or gpt (default: by the files)" },
        { .name = "mbr-id",
          .type = NBDKIT_PARAM_STRING,
          .flags = NBDKIT_PARAM_MULTIPLE,
          .doc = "MBR type byte of the following files, or default (0x83)" },
        { .name = "type-guid",
          .type = NBDKIT_PARAM_STRING,
          .flags = NBDKIT_PARAM_MULTIPLE,
          .doc = "GPT type GUID of the following files, or default" },
        { .name = "alignment",
          .type = NBDKIT_PARAM_SIZE,
          .flags = NBDKIT_PARAM_MULTIPLE,
          .doc = "alignment of the following files (default 1M)" },
        { .name = NULL } };

static void
partitioning_load (void)
{
  parse_guid (default_guid, cur_guid);
}

static uint64_t
align_up (uint64_t v, uint64_t a)
{
  return (v + a - 1) / a * a;
}

static uint8_t *
new_buffer (size_t len)
{
  uint8_t **b = realloc (buffers, (nbuffers + 1) * sizeof *b);
  if (b == NULL) {
    nbdkit_error ("realloc: %m");
    return NULL;
  }
  buffers = b;
  buffers[nbuffers] = calloc (1, len);
  if (buffers[nbuffers] == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  return buffers[nbuffers++];
}

/* Append a region at the end of the disk (TOTAL grows); a gap before
 * START is padded with zeroes.
 */
static int
add_region (uint64_t start, uint64_t len, enum kind kind, struct file *f,
            const uint8_t *data)
{
  if (start > total) {
    if (add_region (total, start - total, R_ZERO, NULL, NULL) == -1)
      return -1;
  }
  if (len == 0)
    return 0;
  struct region *r = realloc (regions, (nregions + 1) * sizeof *r);
  if (r == NULL) {
    nbdkit_error ("realloc: %m");
    return -1;
  }
  regions = r;
  regions[nregions++] = (struct region){
    .start = start, .len = len, .kind = kind, .file = f, .data = data
  };
  total = start + len;
  return 0;
}

static void
put_le16 (uint8_t *p, uint16_t v)
{
  p[0] = v;
  p[1] = v >> 8;
}

static void
put_le32 (uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = v >> (8 * i);
}

static void
put_le64 (uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = v >> (8 * i);
}

static uint32_t
crc32 (const uint8_t *p, size_t len)
{
  uint32_t c = 0xffffffff;
  for (size_t i = 0; i < len; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c;
}

/* One 16-byte MBR partition entry; CHS fields say "use LBA". */
static void
mbr_entry (uint8_t *e, uint8_t type, uint64_t lba, uint64_t sectors)
{
  e[0] = 0;
  e[1] = 0xfe;
  e[2] = 0xff;
  e[3] = 0xff;
  e[4] = type;
  e[5] = 0xfe;
  e[6] = 0xff;
  e[7] = 0xff;
  put_le32 (e + 8, lba);
  put_le32 (e + 12, sectors);
}

static void
random_guid (uint8_t g[16])
{
  if (getrandom (g, 16, 0) != 16) {
    for (int i = 0; i < 16; i++)
      g[i] = rand ();
  }
  g[7] = (g[7] & 0x0f) | 0x40; /* version 4, stored little endian */
  g[8] = (g[8] & 0x3f) | 0x80;
}

static int
layout_mbr (void)
{
  uint8_t *mbr = new_buffer (SECTOR);
  uint32_t id;

  if (mbr == NULL)
    return -1;
  if (getrandom (&id, sizeof id, 0) != sizeof id)
    id = 0x4e42444b;
  put_le32 (mbr + 0x1b8, id);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  if (add_region (0, SECTOR, R_DATA, NULL, mbr) == -1)
    return -1;

  uint64_t ext_start = 0;
  uint8_t *prev_ebr = NULL;
  for (size_t i = 0; i < nfiles; i++) {
    struct file *f = &files[i];
    bool logical = nfiles > 4 && i >= 3;
    uint64_t ebr = 0;

    if (logical) {
      ebr = align_up (total, SECTOR);
      f->start = align_up (ebr + SECTOR, f->alignment);
    } else
      f->start = align_up (total, f->alignment);
    if ((f->start + f->len) / SECTOR > MBR_MAX_SECTORS) {
      nbdkit_error ("%s: beyond the 2T that an MBR partition table can "
                    "address: use partition-type=gpt",
                    f->path);
      return -1;
    }
    if (!logical)
      mbr_entry (mbr + 446 + 16 * i, f->mbr_id, f->start / SECTOR,
                 f->len / SECTOR);
    else {
      uint8_t *b = new_buffer (SECTOR);
      if (b == NULL)
        return -1;
      if (i == 3)
        ext_start = ebr;
      else
        /* The previous EBR links to this one, relative to the
         * extended partition; the link covers this EBR and partition.
         */
        mbr_entry (prev_ebr + 446 + 16, 0x05, (ebr - ext_start) / SECTOR,
                   (f->start + f->len - ebr) / SECTOR);
      mbr_entry (b + 446, f->mbr_id, (f->start - ebr) / SECTOR,
                 f->len / SECTOR);
      b[510] = 0x55;
      b[511] = 0xaa;
      prev_ebr = b;
      if (add_region (ebr, SECTOR, R_DATA, NULL, b) == -1)
        return -1;
    }
    if (add_region (f->start, f->size, R_FILE, f, NULL) == -1
        || add_region (f->start + f->len, 0, R_ZERO, NULL, NULL) == -1)
      return -1;
  }
  if (nfiles > 4)
    mbr_entry (mbr + 446 + 48, 0x0f, ext_start / SECTOR,
               (total - ext_start) / SECTOR);
  return 0;
}

static void
gpt_header (uint8_t *h, uint64_t this_lba, uint64_t other_lba,
            uint64_t first_usable, uint64_t last_usable,
            const uint8_t disk_guid[16], uint64_t entries_lba,
            uint32_t nentries, uint32_t entries_crc)
{
  memcpy (h, "EFI PART", 8);
  put_le32 (h + 8, 0x00010000);
  put_le32 (h + 12, 92);
  put_le64 (h + 24, this_lba);
  put_le64 (h + 32, other_lba);
  put_le64 (h + 40, first_usable);
  put_le64 (h + 48, last_usable);
  memcpy (h + 56, disk_guid, 16);
  put_le64 (h + 72, entries_lba);
  put_le32 (h + 80, nentries);
  put_le32 (h + 84, GPT_ENTRY_SIZE);
  put_le32 (h + 88, entries_crc);
  put_le32 (h + 16, crc32 (h, 92));
}

static int
layout_gpt (void)
{
  uint32_t nentries = nfiles > GPT_MIN_ENTRIES ? nfiles : GPT_MIN_ENTRIES;
  uint64_t entries_bytes
      = align_up ((uint64_t)nentries * GPT_ENTRY_SIZE, SECTOR);
  uint64_t entries_sectors = entries_bytes / SECTOR;
  uint8_t *pmbr = new_buffer (SECTOR);
  uint8_t *hdr = new_buffer (SECTOR);
  uint8_t *entries = new_buffer (entries_bytes);
  uint8_t *bhdr = new_buffer (SECTOR);
  uint8_t disk_guid[16];

  if (!pmbr || !hdr || !entries || !bhdr)
    return -1;
  nentries = entries_bytes / GPT_ENTRY_SIZE;

  if (add_region (0, SECTOR, R_DATA, NULL, pmbr) == -1
      || add_region (SECTOR, SECTOR, R_DATA, NULL, hdr) == -1
      || add_region (2 * SECTOR, entries_bytes, R_DATA, NULL, entries) == -1)
    return -1;
  for (size_t i = 0; i < nfiles; i++) {
    struct file *f = &files[i];
    uint8_t *e = entries + i * GPT_ENTRY_SIZE;
    char name[32];

    f->start = align_up (total, f->alignment);
    if (add_region (f->start, f->size, R_FILE, f, NULL) == -1
        || add_region (f->start + f->len, 0, R_ZERO, NULL, NULL) == -1)
      return -1;
    memcpy (e, f->type_guid, 16);
    random_guid (e + 16);
    put_le64 (e + 32, f->start / SECTOR);
    put_le64 (e + 40, (f->start + f->len) / SECTOR - 1);
    snprintf (name, sizeof name, "p%zu", i + 1);
    for (size_t k = 0; name[k]; k++)
      put_le16 (e + 56 + 2 * k, (uint8_t)name[k]);
  }
  uint64_t last_usable = total / SECTOR - 1;
  uint64_t backup_entries = total;
  uint64_t last_lba = (backup_entries + entries_bytes) / SECTOR;
  if (add_region (backup_entries, entries_bytes, R_DATA, NULL, entries) == -1
      || add_region (last_lba * SECTOR, SECTOR, R_DATA, NULL, bhdr) == -1)
    return -1;

  random_guid (disk_guid);
  uint32_t ecrc = crc32 (entries, entries_bytes);
  gpt_header (hdr, 1, last_lba, 2 + entries_sectors, last_usable, disk_guid, 2,
              nentries, ecrc);
  gpt_header (bhdr, last_lba, 1, 2 + entries_sectors, last_usable, disk_guid,
              backup_entries / SECTOR, nentries, ecrc);

  /* The protective MBR covers the whole disk after itself. */
  uint64_t n = last_lba < MBR_MAX_SECTORS ? last_lba : MBR_MAX_SECTORS;
  mbr_entry (pmbr + 446, 0xee, 1, n);
  pmbr[447] = 0;
  pmbr[448] = 2;
  pmbr[449] = 0; /* CHS 0/0/2 */
  pmbr[510] = 0x55;
  pmbr[511] = 0xaa;
  return 0;
}

static int
partitioning_config_complete (void)
{
  uint64_t sum = 0;

  for (size_t i = 0; i < nfiles; i++) {
    struct file *f = &files[i];
    struct stat st;

    f->fd = open (f->path, O_RDWR | O_CLOEXEC);
    if (f->fd == -1 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
      f->fd = open (f->path, O_RDONLY | O_CLOEXEC);
      readonly_files = true;
    }
    if (f->fd == -1 || fstat (f->fd, &st) == -1) {
      nbdkit_error ("file=%s: %m", f->path);
      return -1;
    }
    if (S_ISBLK (st.st_mode)) {
      off_t end = lseek (f->fd, 0, SEEK_END);
      if (end == -1) {
        nbdkit_error ("file=%s: lseek: %m", f->path);
        return -1;
      }
      f->size = end;
    } else if (S_ISREG (st.st_mode))
      f->size = st.st_size;
    else {
      nbdkit_error ("file=%s: not a regular file or block device", f->path);
      return -1;
    }
    if (f->size == 0) {
      nbdkit_error ("file=%s: zero-length partitions are not allowed", f->path);
      return -1;
    }
    f->len = align_up (f->size, SECTOR);
    sum += f->len + f->alignment;
  }

  if (partition_type)
    gpt = strcmp (partition_type, "gpt") == 0;
  else
    gpt = nfiles > 4 || sum / SECTOR + 2048 > MBR_MAX_SECTORS;
  return gpt ? layout_gpt () : layout_mbr ();
}

static void
partitioning_unload (void)
{
  for (size_t i = 0; i < nfiles; i++) {
    if (files[i].fd >= 0)
      close (files[i].fd);
    free (files[i].path);
  }
  free (files);
  for (size_t i = 0; i < nbuffers; i++)
    free (buffers[i]);
  free (buffers);
  free (regions);
}

static int
partitioning_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static void *
partitioning_open (int readonly, const char *exportname, int is_tls)
{
  return &files;
}

static int64_t
partitioning_get_size (void *handle)
{
  return total;
}

static int
partitioning_can_write (void *handle)
{
  return !readonly_files;
}

static int
partitioning_true (void *handle)
{
  return 1;
}

static size_t
find (uint64_t offset)
{
  size_t lo = 0, hi = nregions;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (regions[mid].start + regions[mid].len <= offset)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int
do_io (bool write, uint8_t *buf, uint64_t count, uint64_t offset)
{
  for (size_t i = find (offset); count > 0 && i < nregions; i++) {
    struct region *r = &regions[i];
    uint64_t in = offset - r->start;
    uint64_t n = r->len - in < count ? r->len - in : count;

    if (write && r->kind != R_FILE) {
      nbdkit_error ("write at %" PRIu64 ": the partition table and padding "
                    "cannot be written",
                    offset);
      errno = EIO;
      return -1;
    }
    switch (r->kind) {
      case R_ZERO:
        memset (buf, 0, n);
        break;
      case R_DATA:
        memcpy (buf, r->data + in, n);
        break;
      case R_FILE:
        for (uint64_t done = 0; done < n;) {
          ssize_t k
              = write ? pwrite (r->file->fd, buf + done, n - done, in + done)
                      : pread (r->file->fd, buf + done, n - done, in + done);
          if (k == -1 && errno == EINTR)
            continue;
          if (k <= 0) {
            if (k == 0)
              errno = EIO;
            nbdkit_error ("%s %s at %" PRIu64 ": %m",
                          write ? "pwrite" : "pread", r->file->path, in + done);
            return -1;
          }
          done += k;
        }
        break;
    }
    buf += n;
    offset += n;
    count -= n;
  }
  return 0;
}

static int
partitioning_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
                    uint32_t flags, struct nbdkit_read *rd)
{
  return do_io (false, buf, count, offset);
}

static int
partitioning_flush (void *handle, uint32_t flags)
{
  for (size_t i = 0; i < nfiles; i++)
    if (fdatasync (files[i].fd) == -1) {
      nbdkit_error ("fdatasync %s: %m", files[i].path);
      return -1;
    }
  return 0;
}

static int
partitioning_pwrite (void *handle, const void *buf, uint64_t count,
                     uint64_t offset, uint32_t flags)
{
  if (do_io (true, (uint8_t *)buf, count, offset) == -1)
    return -1;
  return (flags & NBDKIT_FLAG_FUA) ? partitioning_flush (handle, 0) : 0;
}

static int
partitioning_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static struct nbdkit_plugin plugin = {
  .name = "partitioning",
  .longname = "nbdkit partitioning plugin",
  .version = NBDKIT_VERSION,
  .description = "files as the partitions of a virtual MBR or GPT disk",
  .params = partitioning_params,
  .magic_config_key = "file",
  .load = partitioning_load,
  .config = partitioning_config,
  .config_complete = partitioning_config_complete,
  .unload = partitioning_unload,
  .thread_model = partitioning_thread_model,
  .open = partitioning_open,
  .get_size = partitioning_get_size,
  .can_write = partitioning_can_write,
  .can_flush = partitioning_true,
  .can_fua = partitioning_can_fua,
  .can_multi_conn = partitioning_true,
  .pread = partitioning_pread,
  .pread_fills_buffer = 1,
  .pwrite = partitioning_pwrite,
  .flush = partitioning_flush,
};

NBDKIT_REGISTER_PLUGIN (plugin)
