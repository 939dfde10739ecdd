/* extentlist.c: the extentlist filter, which answers block status from
 * a list of extents given in a file.
 *
 *   nbdkit [-r] --filter=extentlist PLUGIN extentlist=FILE
 *
 * FILE is either text, one extent a line ("OFFSET LENGTH [TYPE]",
 * sizes as nbdkit_parse_size takes them, TYPE a number or a comma list
 * of "hole" and "zero", missing = 0 = data), in any order but not
 * overlapping; or the JSON that `qemu-img map --output=json` prints
 * (an array of objects with start, length, data and zero).  What the
 * list leaves out is a hole that reads as zeroes.
 *
 * The list is the server's, shared by all clients.  Writes, trims and
 * zeroes that succeed change it (data; hole; zero, or hole+zero when
 * the zero may trim), so a writable export keeps telling the truth
 * about what it was told and what was written since.
 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-filter.h>

/* -D extentlist.lookup=1: log every lookup. */
NBDKIT_DLL_PUBLIC int extentlist_debug_lookup = 0;

static const char *listfile;

static const struct nbdkit_param params[]
    = { { .name = "extentlist",
          .type = NBDKIT_PARAM_FILE,
          .flags = NBDKIT_PARAM_REQUIRED,
          .doc = "file of extents: OFFSET LENGTH [TYPE] lines, or the "
                 "output of qemu-img map --output=json",
          .dest = &listfile },
        { .name = NULL } };

#define GAP (NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO)

/* The extents, sorted, contiguous, covering [0, 2^64-1), adjacent ones
 * of different types.  Guarded by LOCK once the server runs.
 */
static struct nbdkit_extent *list;
static size_t nlist;
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;

/* What the file gave, before gaps are filled. */
static struct nbdkit_extent *given;
static size_t ngiven, agiven;

static int
add_given (uint64_t offset, uint64_t length, uint32_t type)
{
  if (length == 0)
    return 0;
  if (offset + length < offset) {
    nbdkit_error ("%s: extent at %" PRIu64 " runs past 2^64", listfile, offset);
    return -1;
  }
  if (ngiven == agiven) {
    struct nbdkit_extent *n;
    agiven = agiven ? agiven * 2 : 64;
    n = realloc (given, agiven * sizeof *n);
    if (n == NULL) {
      nbdkit_error ("realloc: %m");
      return -1;
    }
    given = n;
  }
  given[ngiven++] = (struct nbdkit_extent){ offset, length, type };
  return 0;
}

/* ---- the text format ---- */

static int
parse_type (const char *s, uint32_t *type, size_t lineno)
{
  char *end;

  *type = 0;
  if (*s == '\0')
    return 0;
  if (isdigit ((unsigned char)*s)) {
    unsigned long v;
    errno = 0;
    v = strtoul (s, &end, 0);
    if (errno == 0 && *end == '\0' && v <= UINT32_MAX) {
      *type = v;
      return 0;
    }
  } else {
    char *copy = strdup (s), *save = NULL, *w;
    if (copy == NULL) {
      nbdkit_error ("strdup: %m");
      return -1;
    }
    for (w = strtok_r (copy, ",", &save); w; w = strtok_r (NULL, ",", &save)) {
      if (strcmp (w, "hole") == 0)
        *type |= NBDKIT_EXTENT_HOLE;
      else if (strcmp (w, "zero") == 0)
        *type |= NBDKIT_EXTENT_ZERO;
      else
        break;
    }
    free (copy);
    if (w == NULL)
      return 0;
  }
  nbdkit_error ("%s:%zu: type '%s': expected a number or a comma list of "
                "hole and zero",
                listfile, lineno, s);
  return -1;
}

static int
parse_text (FILE *fp)
{
  char *line = NULL;
  size_t cap = 0, lineno = 0;
  int ret = -1;

  while (getline (&line, &cap, fp) != -1) {
    char *f[4] = { 0 };
    char *save = NULL;
    int n = 0;
    int64_t off, len;
    uint32_t type;

    lineno++;
    for (char *w = strtok_r (line, " \t\r\n", &save); w && n < 4;
         w = strtok_r (NULL, " \t\r\n", &save))
      f[n++] = w;
    if (n == 0 || f[0][0] == '#')
      continue;
    if (n < 2 || n > 3) {
      nbdkit_error ("%s:%zu: expected OFFSET LENGTH [TYPE]", listfile, lineno);
      goto out;
    }
    off = nbdkit_parse_size (f[0]);
    len = nbdkit_parse_size (f[1]);
    if (off == -1 || len == -1) {
      nbdkit_error ("%s:%zu: bad offset or length", listfile, lineno);
      goto out;
    }
    if (parse_type (n == 3 ? f[2] : "", &type, lineno) == -1
        || add_given (off, len, type) == -1)
      goto out;
  }
  ret = 0;
out:
  free (line);
  return ret;
}

/* ---- qemu-img map --output=json ---- */

struct json {
  const char *p;
};

static void
skip_ws (struct json *j)
{
  while (isspace ((unsigned char)*j->p))
    j->p++;
}

/* A string (no escapes needed for qemu-img's keys and file names, but
 * they are skipped correctly); its contents in KEY if not NULL.
 */
static int
json_string (struct json *j, char *key, size_t keylen)
{
  size_t n = 0;

  if (*j->p != '"')
    return -1;
  j->p++;
  while (*j->p && *j->p != '"') {
    if (*j->p == '\\' && j->p[1])
      j->p++;
    if (key && n + 1 < keylen)
      key[n++] = *j->p;
    j->p++;
  }
  if (*j->p != '"')
    return -1;
  j->p++;
  if (key)
    key[n] = '\0';
  return 0;
}

/* One value: a number into *NUM, true/false into *B; other kinds
 * (null, strings, nested objects) are skipped.
 */
static int
json_value (struct json *j, uint64_t *num, int *b)
{
  *b = -1;
  skip_ws (j);
  if (isdigit ((unsigned char)*j->p) || *j->p == '-') {
    char *end;
    errno = 0;
    *num = strtoull (j->p, &end, 10);
    if (errno || *j->p == '-')
      return -1;
    j->p = end;
    /* "offset" may be followed by a fraction or exponent: not here. */
    return 0;
  }
  if (strncmp (j->p, "true", 4) == 0) {
    *b = 1;
    j->p += 4;
    return 0;
  }
  if (strncmp (j->p, "false", 5) == 0) {
    *b = 0;
    j->p += 5;
    return 0;
  }
  if (strncmp (j->p, "null", 4) == 0) {
    j->p += 4;
    return 0;
  }
  if (*j->p == '"')
    return json_string (j, NULL, 0);
  if (*j->p == '{' || *j->p == '[') {
    int depth = 0;
    do {
      if (*j->p == '"') {
        if (json_string (j, NULL, 0) == -1)
          return -1;
        continue;
      }
      if (*j->p == '{' || *j->p == '[')
        depth++;
      else if (*j->p == '}' || *j->p == ']')
        depth--;
      else if (*j->p == '\0')
        return -1;
      j->p++;
    } while (depth > 0);
    return 0;
  }
  return -1;
}

static int
parse_json (const char *text)
{
  struct json j = { text };

  skip_ws (&j);
  if (*j.p++ != '[')
    goto bad;
  skip_ws (&j);
  if (*j.p == ']')
    return 0;
  for (;;) {
    uint64_t start = 0, length = 0;
    int have_start = 0, have_length = 0, data = 1, zero = 0;

    skip_ws (&j);
    if (*j.p++ != '{')
      goto bad;
    skip_ws (&j);
    while (*j.p != '}') {
      char key[32];
      uint64_t num = 0;
      int b;

      if (json_string (&j, key, sizeof key) == -1)
        goto bad;
      skip_ws (&j);
      if (*j.p++ != ':' || json_value (&j, &num, &b) == -1)
        goto bad;
      if (strcmp (key, "start") == 0)
        start = num, have_start = 1;
      else if (strcmp (key, "length") == 0)
        length = num, have_length = 1;
      else if (strcmp (key, "data") == 0 && b >= 0)
        data = b;
      else if (strcmp (key, "zero") == 0 && b >= 0)
        zero = b;
      skip_ws (&j);
      if (*j.p == ',') {
        j.p++;
        skip_ws (&j);
      } else if (*j.p != '}')
        goto bad;
    }
    j.p++;
    if (!have_start || !have_length) {
      nbdkit_error ("%s: a map entry lacks start or length", listfile);
      return -1;
    }
    if (add_given (start, length,
                   (data ? 0 : NBDKIT_EXTENT_HOLE)
                       | (zero ? NBDKIT_EXTENT_ZERO : 0))
        == -1)
      return -1;
    skip_ws (&j);
    if (*j.p == ',') {
      j.p++;
      continue;
    }
    if (*j.p++ != ']')
      goto bad;
    skip_ws (&j);
    if (*j.p != '\0')
      goto bad;
    return 0;
  }
bad:
  nbdkit_error ("%s: not the JSON of qemu-img map --output=json "
                "(at byte %td)",
                listfile, j.p - text);
  return -1;
}

/* ---- the list ---- */

static int
cmp_extent (const void *a, const void *b)
{
  const struct nbdkit_extent *x = a, *y = b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Append to LIST, merging with the last extent if of the same type. */
static void
push (struct nbdkit_extent *out, size_t *n, uint64_t offset, uint64_t length,
      uint32_t type)
{
  if (length == 0)
    return;
  if (*n > 0 && out[*n - 1].type == type)
    out[*n - 1].length += length;
  else
    out[(*n)++] = (struct nbdkit_extent){ offset, length, type };
}

static int
build_list (void)
{
  uint64_t pos = 0;

  if (ngiven > 0)
    qsort (given, ngiven, sizeof *given, cmp_extent);
  list = malloc ((2 * ngiven + 1) * sizeof *list);
  if (list == NULL) {
    nbdkit_error ("malloc: %m");
    return -1;
  }
  for (size_t i = 0; i < ngiven; i++) {
    if (given[i].offset < pos) {
      nbdkit_error ("%s: the extents at %" PRIu64 " and %" PRIu64 " overlap",
                    listfile, given[i - 1].offset, given[i].offset);
      return -1;
    }
    push (list, &nlist, pos, given[i].offset - pos, GAP);
    push (list, &nlist, given[i].offset, given[i].length, given[i].type);
    pos = given[i].offset + given[i].length;
  }
  push (list, &nlist, pos, UINT64_MAX - pos, GAP);
  free (given);
  given = NULL;
  nbdkit_debug ("extentlist: %zu extents from %s", nlist, listfile);
  return 0;
}

static int
extentlist_config_complete (void)
{
  FILE *fp = fopen (listfile, "r");
  char *text = NULL;
  size_t len = 0;
  int r;

  if (fp == NULL) {
    nbdkit_error ("extentlist=%s: %m", listfile);
    return -1;
  }
  /* JSON starts with '[': read it whole; else line by line. */
  int c;
  while ((c = getc (fp)) != EOF && isspace (c))
    ;
  if (c == '[') {
    FILE *mem = open_memstream (&text, &len);
    if (mem == NULL) {
      nbdkit_error ("open_memstream: %m");
      fclose (fp);
      return -1;
    }
    putc (c, mem);
    while ((c = getc (fp)) != EOF)
      putc (c, mem);
    fclose (mem);
    r = parse_json (text);
    free (text);
  } else {
    rewind (fp);
    r = parse_text (fp);
  }
  if (r == 0 && ferror (fp)) {
    nbdkit_error ("extentlist=%s: read: %m", listfile);
    r = -1;
  }
  fclose (fp);
  return r == -1 ? -1 : build_list ();
}

static void
extentlist_unload (void)
{
  free (list);
  free (given);
}

/* The index of the extent holding OFFSET. */
static size_t
find (uint64_t offset)
{
  size_t lo = 0, hi = nlist;

  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (list[mid].offset <= offset)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

/* Set [OFFSET, OFFSET+COUNT) to TYPE.  Called with the write lock. */
static int
set_range (uint64_t offset, uint64_t count, uint32_t type)
{
  uint64_t end = offset + count;
  size_t i = find (offset), j = find (end - 1);
  struct nbdkit_extent *out;
  size_t n = 0;

  out = malloc ((nlist + 2) * sizeof *out);
  if (out == NULL)
    return -1;
  for (size_t k = 0; k < i; k++)
    push (out, &n, list[k].offset, list[k].length, list[k].type);
  push (out, &n, list[i].offset, offset - list[i].offset, list[i].type);
  push (out, &n, offset, count, type);
  push (out, &n, end, list[j].offset + list[j].length - end, list[j].type);
  for (size_t k = j + 1; k < nlist; k++)
    push (out, &n, list[k].offset, list[k].length, list[k].type);
  free (list);
  list = out;
  nlist = n;
  return 0;
}

static void
update (uint64_t offset, uint64_t count, uint32_t type)
{
  if (count == 0)
    return;
  pthread_rwlock_wrlock (&lock);
  if (set_range (offset, count, type) == -1)
    /* Keep the old list: block status may then be stale. */
    nbdkit_error ("extentlist: cannot record the change at %" PRIu64 ": %m",
                  offset);
  pthread_rwlock_unlock (&lock);
}

static int
extentlist_can_extents (nbdkit_next *next, void *handle)
{
  return NBDKIT_EXTENTS_NATIVE;
}

static int
extentlist_extents (nbdkit_next *next, void *handle, uint64_t count,
                    uint64_t offset, uint32_t flags, struct nbdkit_extents *e,
                    int *err)
{
  int64_t size = nbdkit_next_get_size (next);
  uint64_t end;
  int ret = 0;

  if (size == -1) {
    *err = EIO;
    return -1;
  }
  end = offset + count;
  pthread_rwlock_rdlock (&lock);
  for (size_t i = find (offset); i < nlist; i++) {
    uint64_t s = list[i].offset, l = list[i].length;
    if (s + l > (uint64_t)size)
      l = (uint64_t)size - s;
    if (extentlist_debug_lookup)
      nbdkit_debug ("extentlist: lookup %" PRIu64 "+%" PRIu64
                    ": extent %" PRIu64 "+%" PRIu64 " type %" PRIu32,
                    offset, count, s, l, list[i].type);
    if (nbdkit_add_extent (e, s, l, list[i].type) == -1) {
      *err = errno;
      ret = -1;
      break;
    }
    if ((flags & NBDKIT_FLAG_REQ_ONE) || s + l >= end
        || s + l >= (uint64_t)size)
      break;
  }
  pthread_rwlock_unlock (&lock);
  return ret;
}

static int
extentlist_pwrite (nbdkit_next *next, void *handle, const void *buf,
                   uint64_t count, uint64_t offset, uint32_t flags, int *err)
{
  if (nbdkit_next_pwrite (next, buf, count, offset, flags, err) == -1)
    return -1;
  update (offset, count, 0);
  return 0;
}

static int
extentlist_trim (nbdkit_next *next, void *handle, uint64_t count,
                 uint64_t offset, uint32_t flags, int *err)
{
  if (nbdkit_next_trim (next, count, offset, flags, err) == -1)
    return -1;
  /* Trimmed bytes read as anything: a hole, not known to be zero. */
  update (offset, count, NBDKIT_EXTENT_HOLE);
  return 0;
}

static int
extentlist_zero (nbdkit_next *next, void *handle, uint64_t count,
                 uint64_t offset, uint32_t flags, int *err)
{
  if (nbdkit_next_zero (next, count, offset, flags, err) == -1)
    return -1;
  update (offset, count,
          (flags & NBDKIT_FLAG_MAY_TRIM) ? GAP : NBDKIT_EXTENT_ZERO);
  return 0;
}

static struct nbdkit_filter filter = {
  .name = "extentlist",
  .longname = "nbdkit extentlist filter",
  .description = "block status from a list of extents in a file",
  .params = params,
  .config_complete = extentlist_config_complete,
  .unload = extentlist_unload,
  .can_extents = extentlist_can_extents,
  .extents = extentlist_extents,
  .pwrite = extentlist_pwrite,
  .trim = extentlist_trim,
  .zero = extentlist_zero,
  .pread_fills_buffer = 1, /* pread passes through */
};

NBDKIT_REGISTER_FILTER (filter)
