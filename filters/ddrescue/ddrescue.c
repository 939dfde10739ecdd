/* ddrescue.c: the ddrescue filter, which serves only the parts of a
 * disk image that a GNU ddrescue mapfile says were rescued.
 *
 *   nbdkit --filter=ddrescue PLUGIN ddrescue-mapfile=FILE.map
 *
 * A mapfile is text: '#' comments, then a status line ("POS STATUS
 * [PASS]") and one line per block ("POS SIZE STATUS"), numbers in
 * decimal or 0x hex.  Blocks marked '+' (finished) read normally; a
 * read touching any other byte (non-tried '?', non-trimmed '*',
 * non-scraped '/', bad-sector '-', or not in the map at all) fails
 * with EIO, the bytes before the first bad one still going to the
 * client.  The image is served read-only: writing would not make the
 * missing parts rescued.
 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

static const char *mapfile;

static const struct nbdkit_param params[]
    = { { .name = "ddrescue-mapfile",
          .type = NBDKIT_PARAM_FILE,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "GNU ddrescue mapfile: only '+' blocks are readable",
          .dest = &mapfile },
        { .name = NULL } };

/* The rescued ranges, sorted and merged. */
struct range {
  uint64_t start, end; /* [start, end) */
};
static struct range *good;
static size_t ngood;

static int
cmp_range (const void *a, const void *b)
{
  const struct range *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

/* Parse one number (decimal, 0x hex); advance *P.  -1 if none. */
static int
number (char **p, uint64_t *r)
{
  char *end;

  while (isspace ((unsigned char)**p))
    (*p)++;
  if (!isdigit ((unsigned char)**p))
    return -1;
  errno = 0;
  *r = strtoull (*p, &end, 0);
  if (errno || end == *p)
    return -1;
  *p = end;
  return 0;
}

static int
load_map (void)
{
  FILE *fp = fopen (mapfile, "r");
  char *line = NULL;
  size_t cap = 0, lineno = 0, alloc = 0;
  int seen_status = 0, ret = -1;

  if (fp == NULL) {
    nbdkit_error ("ddrescue-mapfile=%s: %m", mapfile);
    return -1;
  }
  while (getline (&line, &cap, fp) != -1) {
    char *p = line, *hash = strchr (line, '#');
    uint64_t pos, size;
    char status;

    lineno++;
    if (hash)
      *hash = '\0';
    while (isspace ((unsigned char)*p))
      p++;
    if (*p == '\0')
      continue;
    if (!seen_status) {
      /* "current_pos current_status [current_pass]": not a block. */
      seen_status = 1;
      if (number (&p, &pos) == -1) {
        nbdkit_error ("%s:%zu: expected the status line "
                      "(position and status)",
                      mapfile, lineno);
        goto out;
      }
      continue;
    }
    if (number (&p, &pos) == -1 || number (&p, &size) == -1) {
      nbdkit_error ("%s:%zu: expected a block: position size status", mapfile,
                    lineno);
      goto out;
    }
    while (isspace ((unsigned char)*p))
      p++;
    status = *p++;
    while (isspace ((unsigned char)*p))
      p++;
    if (strchr ("?*/-+", status) == NULL || status == '\0' || *p != '\0') {
      nbdkit_error ("%s:%zu: block status must be one of ? * / - +", mapfile,
                    lineno);
      goto out;
    }
    if (pos + size < pos) {
      nbdkit_error ("%s:%zu: block runs past 2^64", mapfile, lineno);
      goto out;
    }
    if (status != '+' || size == 0)
      continue;
    if (ngood == alloc) {
      struct range *n;
      alloc = alloc ? alloc * 2 : 64;
      n = realloc (good, alloc * sizeof *good);
      if (n == NULL) {
        nbdkit_error ("realloc: %m");
        goto out;
      }
      good = n;
    }
    good[ngood].start = pos;
    good[ngood].end = pos + size;
    ngood++;
  }
  if (ferror (fp)) {
    nbdkit_error ("ddrescue-mapfile=%s: read: %m", mapfile);
    goto out;
  }

  /* Sort and merge touching or overlapping ranges. */
  if (ngood > 0)
    qsort (good, ngood, sizeof *good, cmp_range);
  size_t j = 0;
  for (size_t i = 0; i < ngood; i++) {
    if (j > 0 && good[i].start <= good[j - 1].end) {
      if (good[i].end > good[j - 1].end)
        good[j - 1].end = good[i].end;
    } else
      good[j++] = good[i];
  }
  ngood = j;
  nbdkit_debug ("ddrescue: %zu rescued ranges in %s", ngood, mapfile);
  ret = 0;
out:
  free (line);
  fclose (fp);
  return ret;
}

static int
ddrescue_config_complete (void)
{
  return load_map ();
}

static void
ddrescue_unload (void)
{
  free (good);
}

static void *
ddrescue_open (nbdkit_context *ctx, int readonly, const char *exportname,
               int is_tls)
{
  if (nbdkit_next_open (ctx, 1, exportname) == -1)
    return NULL;
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int
ddrescue_can_write (nbdkit_next *next, void *handle)
{
  return 0;
}

static int
ddrescue_can_cache (nbdkit_next *next, void *handle)
{
  /* Caching reads what may be unreadable: let the server read. */
  return nbdkit_next_can_cache (next) > NBDKIT_CACHE_NONE ? NBDKIT_CACHE_EMULATE
                                                          : NBDKIT_CACHE_NONE;
}

/* The first byte of [OFFSET, OFFSET+COUNT) not rescued, or
 * OFFSET+COUNT if all of it was.
 */
static uint64_t
first_bad (uint64_t offset, uint64_t count)
{
  size_t lo = 0, hi = ngood;

  /* The last range starting at or before OFFSET. */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (good[mid].start <= offset)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0 || good[lo - 1].end <= offset)
    return offset;
  return good[lo - 1].end < offset + count ? good[lo - 1].end : offset + count;
}

static int
ddrescue_pread (nbdkit_next *next, void *handle, void *buf, uint64_t count,
                uint64_t offset, uint32_t flags, struct nbdkit_read *rd,
                int *err)
{
  uint64_t bad = first_bad (offset, count);

  if (bad == offset + count)
    return nbdkit_next_pread (next, buf, count, offset, flags, rd, err);
  nbdkit_debug ("ddrescue: read at %" PRIu64
                " hits the unrescued byte %" PRIu64,
                offset, bad);
  /* Send the good bytes before the bad one, then the error. */
  if (bad > offset && rd
      && nbdkit_next_pread (next, buf, bad - offset, offset, flags, NULL, err)
             == 0)
    nbdkit_read_error_at (rd, bad);
  *err = EIO;
  return -1;
}

static struct nbdkit_filter filter = {
  .name = "ddrescue",
  .longname = "nbdkit ddrescue filter",
  .description = "serve only the blocks a ddrescue mapfile says were rescued",
  .params = params,
  .config_complete = ddrescue_config_complete,
  .unload = ddrescue_unload,
  .open = ddrescue_open,
  .can_write = ddrescue_can_write,
  .can_cache = ddrescue_can_cache,
  .pread = ddrescue_pread,
  .pread_fills_buffer = 1, /* passes through when it succeeds */
};

NBDKIT_REGISTER_FILTER (filter)
