/* methods.c: the v3 callbacks of the sh and eval plugins.
 *
 * Each callback runs the script method of the same name (call.c) with
 * the arguments nbdkit's sh plugin passes, in the same order (e.g.
 * "pread HANDLE COUNT OFFSET FLAGS"), and parses what it prints.
 * Booleans are exit codes (0 true, 3 false); the tri-state can_zero,
 * can_fua, can_cache and can_extents print none, emulate or native.
 * What a missing method (exit 2) means is said at each callback.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "methods.h"

struct sh_handle {
  char *h; /* what open printed, given back as $2 */
  /* can_flush's answer + 1 (0: not asked yet): can_fua without a
   * can_fua method depends on it, and the script is asked only once.
   */
  int can_flush;
};

static const char *
tf (int b)
{
  return b ? "true" : "false";
}

/* FLAGS as the comma-separated words scripts see. */
static void
flag_words (uint32_t flags, char *s, size_t n)
{
  snprintf (s, n, "%s%s%s%s", flags & NBDKIT_FLAG_FUA ? "fua," : "",
            flags & NBDKIT_FLAG_MAY_TRIM ? "may_trim," : "",
            flags & NBDKIT_FLAG_FAST_ZERO ? "fast," : "",
            flags & NBDKIT_FLAG_REQ_ONE ? "req_one," : "");
  size_t l = strlen (s);
  if (l > 0)
    s[l - 1] = '\0';
}

/* Fail a callback whose method the script does not have. */
static int
missing (const char *method, int err)
{
  nbdkit_error ("%s: the script has no %s method (exit code 2)", script_name (),
                method);
  nbdkit_set_error (err);
  return -1;
}

/* Run METHOD with no argument or with one, for its side effect only;
 * a missing method is fine.
 */
static int
simple (const char *method, const char *arg)
{
  const char *args[] = { arg, NULL };
  return call (method, args, NULL, 0, NULL) == CALL_ERROR ? -1 : 0;
}

int
sh_config (const char *key, const char *value)
{
  const char *args[] = { key, value, NULL };

  switch (call ("config", args, NULL, 0, NULL)) {
    case CALL_OK:
    case CALL_FALSE:
      return 0;
    case CALL_MISSING:
      nbdkit_error ("%s: unknown parameter '%s': the script has no config "
                    "method to take it",
                    script_name (), key);
      return -1;
    default:
      return -1;
  }
}

int
sh_config_complete (void)
{
  return simple ("config_complete", NULL);
}

void
sh_dump_plugin (void)
{
  char *s;

  printf ("max_known_status=%d\n", CALL_MAX_KNOWN_STATUS);
  fflush (stdout);
  if (call_text ("dump_plugin", NULL, &s) == CALL_OK) {
    if (*s)
      printf ("%s\n", s);
    fflush (stdout);
    free (s);
  }
}

int
sh_thread_model (void)
{
  static const struct {
    const char *name;
    int model;
  } models[] = {
    { "serialize_connections", NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS },
    { "serialize_all_requests", NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS },
    { "serialize_requests", NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS },
    { "serialize_retirement", NBDKIT_THREAD_MODEL_SERIALIZE_RETIREMENT },
    { "parallel", NBDKIT_THREAD_MODEL_PARALLEL },
  };
  int r = NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;
  char *s;

  /* No script (yet): no limit of ours, as nbdkit's sh plugin. */
  if (!have_script ())
    return NBDKIT_THREAD_MODEL_PARALLEL;
  switch (call_text ("thread_model", NULL, &s)) {
    case CALL_OK:
      for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        if (strcmp (s, models[i].name) == 0)
          r = models[i].model;
      if (r == NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS
          && strcmp (s, "serialize_all_requests") != 0)
        nbdkit_debug ("%s: unknown thread model '%s' ignored", script_name (),
                      s);
      free (s);
      return r;
    case CALL_ERROR:
      return -1;
    default:
      return r;
  }
}

int
sh_get_ready (int thread_model)
{
  const char *name
      = thread_model == NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS
            ? "serialize_connections"
        : thread_model == NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS
            ? "serialize_all_requests"
        : thread_model == NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS
            ? "serialize_requests"
        : thread_model == NBDKIT_THREAD_MODEL_SERIALIZE_RETIREMENT
            ? "serialize_retirement"
            : "parallel";
  return simple ("get_ready", name);
}

int
sh_after_fork (void)
{
  return simple ("after_fork", NULL);
}

/* Errors from unload cannot go anywhere. */
void
sh_unload (void)
{
  call ("unload", NULL, NULL, 0, NULL);
  tmpdir_remove ();
}

int
sh_preconnect (int readonly)
{
  return simple ("preconnect", tf (readonly));
}

/* Split S into lines in place; returns how many, *LINES malloc'd. */
static size_t
split_lines (char *s, char ***lines)
{
  size_t n = 0;
  char **v = NULL;

  while (*s) {
    char *nl = strchr (s, '\n');
    char **nv = realloc (v, (n + 1) * sizeof *v);
    if (nv == NULL)
      break;
    v = nv;
    v[n++] = s;
    if (nl == NULL)
      break;
    *nl = '\0';
    s = nl + 1;
  }
  *lines = v;
  return n;
}

/* The list forms of list_exports: NAMES, INTERLEAVED and
 * NAMES+DESCRIPTIONS; a first line that is none of these is a name.
 */
static int
parse_exports (char *s, struct nbdkit_exports *exports, const char **first)
{
  char **l;
  size_t n = split_lines (s, &l), i = 0;
  int r = 0;

  *first = NULL;
  if (n > 0 && strcmp (l[0], "INTERLEAVED") == 0) {
    for (i = 1; i < n && r == 0; i += 2) {
      if (!*first)
        *first = l[i];
      if (exports)
        r = nbdkit_add_export (exports, l[i], i + 1 < n ? l[i + 1] : NULL);
    }
  } else if (n > 0 && strcmp (l[0], "NAMES+DESCRIPTIONS") == 0) {
    /* The first half are names, the rest descriptions: with an odd
     * count the last name has none.
     */
    size_t names = n / 2, descs = (n - 1) - names;
    for (i = 0; i < names && r == 0; i++) {
      if (!*first)
        *first = l[1 + i];
      if (exports)
        r = nbdkit_add_export (exports, l[1 + i],
                               i < descs ? l[1 + names + i] : NULL);
    }
  } else {
    i = n > 0 && strcmp (l[0], "NAMES") == 0 ? 1 : 0;
    for (; i < n && r == 0; i++) {
      if (!*first)
        *first = l[i];
      if (exports)
        r = nbdkit_add_export (exports, l[i], NULL);
    }
  }
  free (l);
  return r;
}

int
sh_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  const char *args[] = { tf (readonly), tf (is_tls), NULL };
  const char *first;
  char *s;
  int r;

  switch (call_text_lines ("list_exports", args, &s)) {
    case CALL_OK:
      r = parse_exports (s, exports, &first);
      free (s);
      return r;
    case CALL_MISSING:
      return nbdkit_use_default_export (exports);
    default:
      return -1;
  }
}

const char *
sh_default_export (int readonly, int is_tls)
{
  const char *args[] = { tf (readonly), tf (is_tls), NULL };
  const char *first, *r;
  char *s;

  switch (call_text ("default_export", args, &s)) {
    case CALL_OK:
      parse_exports (s, NULL, &first);
      r = nbdkit_strdup_intern (first ? first : "");
      free (s);
      return r;
    case CALL_MISSING:
      return "";
    default:
      return NULL;
  }
}

void *
sh_open (int readonly, const char *exportname, int is_tls)
{
  const char *args[] = { tf (readonly), exportname, tf (is_tls), NULL };
  struct sh_handle *h = calloc (1, sizeof *h);
  char *s = NULL;

  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  switch (call_text_verbatim ("open", args, &s)) {
    case CALL_OK:
      h->h = s;
      return h;
    case CALL_MISSING:
      h->h = strdup ("");
      if (h->h)
        return h;
      nbdkit_error ("strdup: %m");
      /* fallthrough */
    default:
      free (h);
      return NULL;
  }
}

void
sh_close (void *handle)
{
  struct sh_handle *h = handle;

  simple ("close", h->h);
  free (h->h);
  free (h);
}

/* Skip blanks; parse one size word at *P with nbdkit_parse_size. */
static int64_t
next_size (const char **p)
{
  const char *s = *p, *e;
  char word[64];

  while (*s == ' ' || *s == '\t' || *s == '\n')
    s++;
  for (e = s; *e && *e != ' ' && *e != '\t' && *e != '\n'; e++)
    ;
  *p = e;
  if (e == s || (size_t)(e - s) >= sizeof word)
    return -2;
  memcpy (word, s, e - s);
  word[e - s] = '\0';
  return nbdkit_parse_size (word);
}

int64_t
sh_get_size (void *handle)
{
  struct sh_handle *h = handle;
  const char *args[] = { h->h, NULL };
  const char *p;
  int64_t r;
  char *s;

  switch (call_text ("get_size", args, &s)) {
    case CALL_OK:
      p = s;
      r = next_size (&p);
      if (r == -2)
        nbdkit_error ("%s: get_size: expected a size, got '%s'", script_name (),
                      s);
      free (s);
      if (r < 0) {
        nbdkit_set_error (EIO);
        return -1;
      }
      return r;
    case CALL_MISSING:
      return missing ("get_size", EIO);
    default:
      return -1;
  }
}

const char *
sh_export_description (void *handle)
{
  struct sh_handle *h = handle;
  const char *args[] = { h->h, NULL };
  const char *r = NULL;
  char *s;

  if (call_text ("export_description", args, &s) == CALL_OK) {
    r = nbdkit_strdup_intern (s);
    free (s);
  }
  return r;
}

/* "MINIMUM PREFERRED MAXIMUM [MAXIMUM_VIRTUAL]". */
int
sh_block_size (void *handle, struct nbdkit_block_size *bs)
{
  struct sh_handle *h = handle;
  const char *args[] = { h->h, NULL };
  int64_t v[4] = { 0, 0, 0, 0 };
  const char *p;
  char *s;
  int n;

  switch (call_text ("block_size", args, &s)) {
    case CALL_OK:
      p = s;
      for (n = 0; n < 4; n++) {
        v[n] = next_size (&p);
        if (v[n] < 0)
          break;
      }
      if (n < 3 || (n == 3 && v[3] != -2) || v[2] > UINT32_MAX) {
        nbdkit_error ("%s: block_size: expected 'MINIMUM PREFERRED MAXIMUM'"
                      " (and optionally MAXIMUM_VIRTUAL), got '%s'",
                      script_name (), s);
        free (s);
        nbdkit_set_error (EIO);
        return -1;
      }
      free (s);
      bs->minimum = v[0];
      bs->preferred = v[1];
      bs->maximum = v[2];
      bs->maximum_virtual = n == 4 ? (uint64_t)v[3] : 0;
      return 0;
    case CALL_MISSING:
      return 0;
    default:
      return -1;
  }
}

/* A boolean can_*: exit 0 true, 3 false, 2 IF_MISSING. */
static int
boolean (void *handle, const char *method, int if_missing)
{
  struct sh_handle *h = handle;
  const char *args[] = { h->h, NULL };

  switch (call (method, args, NULL, 0, NULL)) {
    case CALL_OK:
      return 1;
    case CALL_FALSE:
      return 0;
    case CALL_MISSING:
      return if_missing;
    default:
      return -1;
  }
}

/* A tri-state can_*: prints none, emulate or native (0, 1, 2 in every
 * family); exit 0 printing nothing is IF_TRUE, exit 3 IF_FALSE.
 */
static int
tristate (void *handle, const char *method, int if_true, int if_false,
          int if_missing)
{
  static const char *words[] = { "none", "emulate", "native" };
  struct sh_handle *h = handle;
  const char *args[] = { h->h, NULL };
  char *s;

  switch (call_text (method, args, &s)) {
    case CALL_OK:
      if (*s == '\0') {
        free (s);
        return if_true;
      }
      for (int i = 0; i < 3; i++)
        if (strcmp (s, words[i]) == 0) {
          free (s);
          return i;
        }
      nbdkit_error ("%s: %s: expected none, emulate or native, got '%s'",
                    script_name (), method, s);
      free (s);
      nbdkit_set_error (EIO);
      return -1;
    case CALL_FALSE:
      return if_false;
    case CALL_MISSING:
      return if_missing;
    default:
      return -1;
  }
}

int
sh_can_write (void *handle)
{
  return boolean (handle, "can_write", script_defined ("pwrite"));
}

int
sh_can_flush (void *handle)
{
  struct sh_handle *h = handle;

  if (h->can_flush == 0)
    h->can_flush = boolean (handle, "can_flush", script_defined ("flush")) + 1;
  return h->can_flush - 1;
}

int
sh_is_rotational (void *handle)
{
  return boolean (handle, "is_rotational", 0);
}

int
sh_can_trim (void *handle)
{
  return boolean (handle, "can_trim", script_defined ("trim"));
}

/* false: the server writes zeroes instead (as nbdkit does). */
int
sh_can_zero (void *handle)
{
  return tristate (handle, "can_zero", NBDKIT_ZERO_NATIVE, NBDKIT_ZERO_EMULATE,
                   script_defined ("zero") ? NBDKIT_ZERO_NATIVE
                                           : NBDKIT_ZERO_EMULATE);
}

/* Missing: true when the server emulates zero (a fast zero then fails
 * at once without writing), false when the script's zero would be
 * asked to be fast without having said it can, as nbdkit does.
 */
int
sh_can_fast_zero (void *handle)
{
  return boolean (handle, "can_fast_zero", !script_defined ("zero"));
}

/* Missing: emulated by flushing if the script can flush. */
int
sh_can_fua (void *handle)
{
  int f;

  switch (
      tristate (handle, "can_fua", NBDKIT_FUA_NATIVE, NBDKIT_FUA_NONE, -2)) {
    case -2:
      f = sh_can_flush (handle);
      return f == -1 ? -1 : f ? NBDKIT_FUA_EMULATE : NBDKIT_FUA_NONE;
    case -1:
      return -1;
    case 0:
      return NBDKIT_FUA_NONE;
    case 1:
      return NBDKIT_FUA_EMULATE;
    default:
      return NBDKIT_FUA_NATIVE;
  }
}

int
sh_can_multi_conn (void *handle)
{
  return boolean (handle, "can_multi_conn", 0);
}

/* false: base:allocation is still offered, all data (as nbdkit). */
int
sh_can_extents (void *handle)
{
  return tristate (handle, "can_extents", NBDKIT_EXTENTS_NATIVE,
                   NBDKIT_EXTENTS_EMULATE,
                   script_defined ("extents") ? NBDKIT_EXTENTS_NATIVE
                                              : NBDKIT_EXTENTS_EMULATE);
}

int
sh_can_cache (void *handle)
{
  return tristate (handle, "can_cache", NBDKIT_CACHE_NATIVE, NBDKIT_CACHE_NONE,
                   script_defined ("cache") ? NBDKIT_CACHE_NATIVE
                                            : NBDKIT_CACHE_NONE);
}

/* The arguments of the data methods: HANDLE COUNT OFFSET FLAGS. */
struct data_args {
  char count[24], offset[24], flags[64];
  const char *argv[5];
};

static const char *const *
data_args (struct data_args *a, struct sh_handle *h, uint64_t count,
           uint64_t offset, uint32_t flags)
{
  snprintf (a->count, sizeof a->count, "%" PRIu64, count);
  snprintf (a->offset, sizeof a->offset, "%" PRIu64, offset);
  flag_words (flags, a->flags, sizeof a->flags);
  a->argv[0] = h->h;
  a->argv[1] = a->count;
  a->argv[2] = a->offset;
  a->argv[3] = a->flags;
  a->argv[4] = NULL;
  return a->argv;
}

int
sh_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
          uint32_t flags, struct nbdkit_read *rd)
{
  struct data_args a;
  struct call_buf out = { .data = buf, .cap = count, .fixed = true };

  switch (call ("pread", data_args (&a, handle, count, offset, flags), NULL, 0,
                &out)) {
    case CALL_OK:
      if (out.len == count && !out.overflow)
        return 0;
      nbdkit_error ("%s: pread: the script printed %s%zu bytes, expected "
                    "%" PRIu64 " (count %" PRIu64 " at offset %" PRIu64 ")",
                    script_name (), out.overflow ? "more than " : "", out.len,
                    count, count, offset);
      nbdkit_set_error (EIO);
      return -1;
    case CALL_MISSING:
      return missing ("pread", EIO);
    default:
      return -1;
  }
}

int
sh_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
           uint32_t flags)
{
  struct data_args a;

  switch (call ("pwrite", data_args (&a, handle, count, offset, flags), buf,
                count, NULL)) {
    case CALL_OK:
    case CALL_FALSE:
      return 0;
    case CALL_MISSING:
      return missing ("pwrite", EROFS);
    default:
      return -1;
  }
}

/* Missing: there is nothing to make stable. */
int
sh_flush (void *handle, uint32_t flags)
{
  struct sh_handle *h = handle;
  return simple ("flush", h->h);
}

int
sh_trim (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct data_args a;

  switch (call ("trim", data_args (&a, handle, count, offset, flags), NULL, 0,
                NULL)) {
    case CALL_OK:
    case CALL_FALSE:
      return 0;
    case CALL_MISSING:
      return missing ("trim", EOPNOTSUPP);
    default:
      return -1;
  }
}

/* Missing (or ENOTSUP/EOPNOTSUPP on stderr): the server writes
 * zeroes instead, unless the client asked for a fast zero.
 */
int
sh_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct data_args a;

  switch (call ("zero", data_args (&a, handle, count, offset, flags), NULL, 0,
                NULL)) {
    case CALL_OK:
    case CALL_FALSE:
      return 0;
    case CALL_MISSING:
      nbdkit_set_error (EOPNOTSUPP);
      errno = EOPNOTSUPP;
      return -1;
    default:
      return -1;
  }
}

/* "hole,zero", a number, or nothing. */
static int
extent_type (const char *s, uint32_t *type)
{
  char *end;

  *type = 0;
  if (*s == '\0')
    return 0;
  if (*s >= '0' && *s <= '9') {
    unsigned long v = strtoul (s, &end, 0);
    if (*end || v > 3)
      return -1;
    *type = v;
    return 0;
  }
  while (*s) {
    size_t n = strcspn (s, ",");
    if (n == 4 && strncmp (s, "hole", 4) == 0)
      *type |= NBDKIT_EXTENT_HOLE;
    else if (n == 4 && strncmp (s, "zero", 4) == 0)
      *type |= NBDKIT_EXTENT_ZERO;
    else if (n != 4 || strncmp (s, "data", 4) != 0)
      return -1;
    s += n;
    if (*s == ',')
      s++;
  }
  return 0;
}

/* Lines of "OFFSET LENGTH [TYPE]"; offsets and lengths as sizes. */
int
sh_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents *extents)
{
  struct data_args a;
  char **lines;
  size_t n;
  char *s;
  int r = 0;

  switch (
      call_text ("extents", data_args (&a, handle, count, offset, flags), &s)) {
    case CALL_OK:
      break;
    case CALL_MISSING:
      return nbdkit_add_extent (extents, offset, count, 0);
    default:
      return -1;
  }
  n = split_lines (s, &lines);
  for (size_t i = 0; i < n && r == 0; i++) {
    const char *p = lines[i];
    int64_t off, len;
    uint32_t type;
    char word[64] = "";

    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == '\0')
      continue;
    off = next_size (&p);
    len = next_size (&p);
    while (*p == ' ' || *p == '\t')
      p++;
    if (strlen (p) < sizeof word)
      strcpy (word, p);
    for (char *q = word + strlen (word);
         q > word && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\r');)
      *--q = '\0';
    if (off < 0 || len < 0 || extent_type (word, &type) == -1) {
      nbdkit_error ("%s: extents: line %zu: expected 'OFFSET LENGTH "
                    "[TYPE]', got '%s'",
                    script_name (), i + 1, lines[i]);
      nbdkit_set_error (EIO);
      r = -1;
    } else
      r = nbdkit_add_extent (extents, off, len, type);
  }
  free (lines);
  free (s);
  return r;
}

/* Missing: cache is advisory, nothing was asked of the script. */
int
sh_cache (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct data_args a;

  return call ("cache", data_args (&a, handle, count, offset, flags), NULL, 0,
               NULL)
                 == CALL_ERROR
             ? -1
             : 0;
}
