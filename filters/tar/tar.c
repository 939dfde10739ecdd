/* tar.c: serve one member of an uncompressed tar file, read and write
 * in place (the member's size is fixed).
 *
 * At prepare the headers are walked from the start of the file: 512-byte
 * ustar/GNU headers (sizes in octal or GNU base-256), GNU 'L' entries
 * carrying the next member's long name, pax 'x' headers carrying its
 * path= and size= records.  The first member whose name is exactly
 * tar-entry= is served: requests are moved by its data offset.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-filter.h>

#include "range.h"

#define BLK 512
#define MAX_META (16 * 1024 * 1024) /* largest L or x entry read */

static const char *entry;
static int64_t limit = 0;
static const char *tar_prog;

static const struct nbdkit_param tar_params[]
    = { { .name = "tar-entry",
          .type = NBDKIT_PARAM_STRING,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "name of the member to serve, exactly as tar tf lists it",
          .dest = &entry },
        { .name = "tar-limit",
          .type = NBDKIT_PARAM_SIZE,
          .default_value = "0",
          .doc = "read at most this many bytes looking for the member"
                 " (0: no limit)",
          .dest = &limit },
        { .name = "tar",
          .type = NBDKIT_PARAM_STRING,
          .doc = "accepted for compatibility and ignored (no tar program is"
                 " run)",
          .dest = &tar_prog },
        { .name = NULL } };

static const char *
tar_config_help (void)
{
  return "Serves the member tar-entry= of a tar file, read and write.";
}

static int
tar_config_complete (void)
{
  if (limit < 0) {
    nbdkit_error ("tar-limit must not be negative");
    return -1;
  }
  if (*entry == '\0') {
    nbdkit_error ("tar-entry must not be empty");
    return -1;
  }
  if (tar_prog)
    nbdkit_debug ("tar: tar=%s ignored: tar files are read directly", tar_prog);
  return 0;
}

struct handle {
  uint64_t off;  /* of the member's data in the tar file */
  uint64_t size; /* of the member */
};

static void *
tar_open (nbdkit_context *ctx, int readonly, const char *exportname, int is_tls)
{
  struct handle *h;

  if (nbdkit_next_open (ctx, readonly, exportname) == -1)
    return NULL;
  h = calloc (1, sizeof *h);
  if (h == NULL)
    nbdkit_error ("calloc: %m");
  return h;
}

static void
tar_close (void *handle)
{
  free (handle);
}

/* An octal number (or GNU base-256) in a header field.  -1: invalid. */
static int64_t
number (const unsigned char *p, size_t len)
{
  uint64_t v = 0;
  size_t i = 0;

  if (p[0] & 0x80) { /* base-256, big-endian, positive only */
    if (p[0] != 0x80)
      return -1;
    for (i = 1; i < len; i++) {
      if (v >> 55)
        return -1;
      v = v << 8 | p[i];
    }
    return v;
  }
  while (i < len && p[i] == ' ')
    i++;
  if (i == len || p[i] < '0' || p[i] > '7')
    return -1;
  for (; i < len && p[i] >= '0' && p[i] <= '7'; i++) {
    if (v >> 60)
      return -1;
    v = v * 8 + (p[i] - '0');
  }
  for (; i < len; i++)
    if (p[i] != ' ' && p[i] != '\0')
      return -1;
  return v;
}

static bool
checksum_ok (const unsigned char *b)
{
  int64_t want = number (b + 148, 8);
  uint64_t u = 0;
  int64_t s = 0;

  for (int i = 0; i < BLK; i++) {
    unsigned char c = i >= 148 && i < 156 ? ' ' : b[i];
    u += c;
    s += (signed char)c;
  }
  return want >= 0 && ((uint64_t)want == u || want == s);
}

static bool
all_zero (const unsigned char *b)
{
  for (int i = 0; i < BLK; i++)
    if (b[i])
      return false;
  return true;
}

/* The pax records in BUF (LEN bytes): keep path= and size=.  */
static int
parse_pax (char *buf, uint64_t len, uint64_t at, char **path, int64_t *size)
{
  uint64_t i = 0;

  while (i < len) {
    char *end, *key, *eq;
    unsigned long long n = strtoull (buf + i, &end, 10);
    if (end == buf + i || *end != ' ' || n < 5 || n > len - i
        || buf[i + n - 1] != '\n')
      goto bad;
    key = end + 1;
    buf[i + n - 1] = '\0';
    eq = strchr (key, '=');
    if (eq == NULL)
      goto bad;
    *eq = '\0';
    if (strcmp (key, "path") == 0) {
      free (*path);
      if ((*path = strdup (eq + 1)) == NULL) {
        nbdkit_error ("strdup: %m");
        return -1;
      }
    } else if (strcmp (key, "size") == 0) {
      char *e;
      unsigned long long v;
      errno = 0;
      v = strtoull (eq + 1, &e, 10);
      if (errno || *e || e == eq + 1 || v > INT64_MAX)
        goto bad;
      *size = v;
    }
    i += n;
  }
  return 0;

bad:
  nbdkit_error ("tar: bad pax extended header at offset %" PRIu64, at);
  return -1;
}

/* Walk the headers looking for ENTRY. */
static int
find_entry (nbdkit_next *next, struct handle *h)
{
  int64_t fsize = nbdkit_next_get_size (next);
  uint64_t pos = 0;
  char *longname = NULL, *paxpath = NULL;
  int64_t paxsize = -1;
  unsigned char b[BLK];
  int err, r = -1;

  if (fsize == -1)
    return -1;
  for (;;) {
    char name[257];
    int64_t size;
    unsigned char type;
    const char *n;

    if (limit > 0 && pos + BLK > (uint64_t)limit) {
      nbdkit_error ("tar: %s not found in the first %" PRId64 " bytes"
                    " (tar-limit)",
                    entry, limit);
      goto out;
    }
    if (pos + BLK > (uint64_t)fsize) {
      nbdkit_error ("tar: %s not found: the tar file ends at %" PRIu64
                    " without an end marker (truncated?)",
                    entry, pos);
      goto out;
    }
    if (nbdkit_next_pread (next, b, BLK, pos, 0, NULL, &err) == -1)
      goto out;
    if (all_zero (b)) {
      nbdkit_error ("tar: %s not found in the tar file", entry);
      goto out;
    }
    if (!checksum_ok (b)) {
      nbdkit_error (
          "tar: not a tar file, or a corrupt header at offset %" PRIu64
          " (bad checksum)",
          pos);
      goto out;
    }
    size = number (b + 124, 12);
    type = b[156];
    if (size < 0) {
      nbdkit_error ("tar: bad size field in the header at offset %" PRIu64,
                    pos);
      goto out;
    }

    if (type == 'L' || type == 'x') {
      char *buf;
      if (size > MAX_META || pos + BLK + size > (uint64_t)fsize) {
        nbdkit_error ("tar: bad %s entry at offset %" PRIu64,
                      type == 'L' ? "long name" : "pax", pos);
        goto out;
      }
      buf = malloc (size + 1);
      if (buf == NULL) {
        nbdkit_error ("malloc: %m");
        goto out;
      }
      if (nbdkit_next_pread (next, buf, size, pos + BLK, 0, NULL, &err) == -1) {
        free (buf);
        goto out;
      }
      buf[size] = '\0';
      if (type == 'L') {
        free (longname);
        longname = buf;
      } else {
        int pr = parse_pax (buf, size, pos, &paxpath, &paxsize);
        free (buf);
        if (pr == -1)
          goto out;
      }
      pos += BLK + (size + BLK - 1) / BLK * BLK;
      continue;
    }
    if (type == 'K') { /* the next member's long link target: not needed */
      pos += BLK + ((uint64_t)size + BLK - 1) / BLK * BLK;
      continue;
    }

    /* An ordinary header: its name. */
    if (memcmp (b + 257, "ustar\0", 6) == 0 && b[345]) {
      /* POSIX ustar: prefix "/" name. */
      snprintf (name, sizeof name, "%.155s/%.100s", (char *)b + 345, (char *)b);
    } else
      snprintf (name, sizeof name, "%.100s", (char *)b);
    n = paxpath ? paxpath : longname ? longname : name;
    if (paxsize >= 0)
      size = paxsize;
    /* Hard links, symlinks, devices, directories and fifos have no data. */
    if (type == '1' || type == '2' || type == '3' || type == '4' || type == '5'
        || type == '6')
      size = type == '5' ? size : 0;

    if (strcmp (n, entry) == 0 && type != 'g') {
      if (!(type == '0' || type == '\0' || type == '7')) {
        nbdkit_error ("tar: %s is not a regular file (type '%c') or is a"
                      " GNU sparse file, which cannot be served",
                      entry, type ? type : '0');
        goto out;
      }
      if (pos + BLK + size > (uint64_t)fsize) {
        nbdkit_error ("tar: %s is truncated: %" PRId64
                      " bytes from offset %" PRIu64
                      " go past the end of the tar file",
                      entry, size, pos + BLK);
        goto out;
      }
      h->off = pos + BLK;
      h->size = size;
      nbdkit_debug ("tar: %s: %" PRIu64 " bytes at offset %" PRIu64, entry,
                    h->size, h->off);
      r = 0;
      goto out;
    }
    if (type != 'g') {
      free (longname);
      free (paxpath);
      longname = paxpath = NULL;
      paxsize = -1;
    }
    pos += BLK + ((uint64_t)size + BLK - 1) / BLK * BLK;
  }

out:
  free (longname);
  free (paxpath);
  return r;
}

static int
tar_prepare (nbdkit_next *next, void *handle, int readonly)
{
  return find_entry (next, handle);
}

static int64_t
tar_get_size (nbdkit_next *next, void *handle)
{
  return ((struct handle *)handle)->size;
}

static int
tar_can_fast_zero (nbdkit_next *next, void *handle)
{
  return nbdkit_next_can_fast_zero (next);
}

static int
tar_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
           uint64_t offs, uint32_t flags, struct nbdkit_read *rd, int *err)
{
  struct handle *h = handle;
  return nbdkit_next_pread (next, buf, count, offs + h->off, flags, NULL, err);
}

static int
tar_pwrite (nbdkit_next *next, void *handle, const void *buf, uint64_t count,
            uint64_t offs, uint32_t flags, int *err)
{
  struct handle *h = handle;
  return nbdkit_next_pwrite (next, buf, count, offs + h->off, flags, err);
}

static int
tar_trim (nbdkit_next *next, void *handle, uint64_t count, uint64_t offs,
          uint32_t flags, int *err)
{
  struct handle *h = handle;
  return nbdkit_next_trim (next, count, offs + h->off, flags, err);
}

static int
tar_zero (nbdkit_next *next, void *handle, uint64_t count, uint64_t offs,
          uint32_t flags, int *err)
{
  struct handle *h = handle;
  return nbdkit_next_zero (next, count, offs + h->off, flags, err);
}

static int
tar_cache (nbdkit_next *next, void *handle, uint64_t count, uint64_t offs,
           uint32_t flags, int *err)
{
  struct handle *h = handle;
  return nbdkit_next_cache (next, count, offs + h->off, flags, err);
}

static int
tar_extents (nbdkit_next *next, void *handle, uint64_t count, uint64_t offs,
             uint32_t flags, struct nbdkit_extents *e, int *err)
{
  struct handle *h = handle;
  return range_extents (next, h->off, count, offs, flags, e, err);
}

static struct nbdkit_filter filter = {
  .name = "tar",
  .longname = "nbdkit tar filter",
  .description = "serve a member of a tar file",
  .params = tar_params,
  .config_help = tar_config_help,
  .config_complete = tar_config_complete,
  .open = tar_open,
  .close = tar_close,
  .prepare = tar_prepare,
  .get_size = tar_get_size,
  .can_fast_zero = tar_can_fast_zero,
  .pread = tar_pread,
  .pread_fills_buffer = 1, /* reads into BUF from below */
  .pwrite = tar_pwrite,
  .trim = tar_trim,
  .zero = tar_zero,
  .cache = tar_cache,
  .extents = tar_extents,
};

NBDKIT_REGISTER_FILTER (filter)
