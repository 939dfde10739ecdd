/* data.c: the data plugin, a disk given on the command line.
 *
 *   nbdkit data [data=]'0 1 2 3 @0x1fe 0x55 0xaa' [size=SIZE] [VAR=...]
 *   nbdkit data base64=aGVsbG8= [size=SIZE]
 *   nbdkit data raw='bytes' [size=SIZE]
 *
 * The language is in format.c.  Any key other than data, base64, raw,
 * size and allocator is a variable the data can use ($VAR, or as a
 * number), so the plugin declares no typed parameters and takes every
 * key in config; variables not given as keys come from the
 * environment.  The disk is a sparse store (store.c), writable, kept
 * in memory until the server exits.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 3
#include <nbdkit-plugin.h>

#include "format.h"
#include "store.h"

/* Block status replies stop after this many extents. */
#define MAX_EXTENTS 65536

static const char *data_text, *base64_text, *raw_text;
static int64_t size = -1;

/* The other keys: variables.  Later ones win, as the last value of a
 * repeated key does.
 */
static const char **var_keys, **var_values;
static size_t nvars;

static struct store disk;
static uint64_t disk_size;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *
lookup_var (void *opaque, const char *name)
{
  for (size_t i = nvars; i-- > 0;)
    if (strcmp (var_keys[i], name) == 0)
      return var_values[i];
  return getenv (name);
}

static int
data_config (const char *key, const char *value)
{
  if (strcmp (key, "data") == 0 || strcmp (key, "base64") == 0
      || strcmp (key, "raw") == 0) {
    if (data_text || base64_text || raw_text) {
      nbdkit_error ("%s=: give only one of data=, base64= and raw=", key);
      return -1;
    }
    if (key[0] == 'd')
      data_text = value;
    else if (key[0] == 'b')
      base64_text = value;
    else
      raw_text = value;
    return 0;
  }
  if (strcmp (key, "size") == 0) {
    size = nbdkit_parse_size (value);
    return size == -1 ? -1 : 0;
  }
  /* Accepted for nbdkit's command lines; the store is always sparse. */
  if (strcmp (key, "allocator") == 0)
    return 0;
  const char **k = realloc (var_keys, (nvars + 1) * sizeof *k);
  if (k == NULL) {
    nbdkit_error ("realloc: %m");
    return -1;
  }
  var_keys = k;
  const char **v = realloc (var_values, (nvars + 1) * sizeof *v);
  if (v == NULL) {
    nbdkit_error ("realloc: %m");
    return -1;
  }
  var_values = v;
  /* The core frees the key after config; values stay (argv). */
  var_keys[nvars] = strdup (key);
  if (var_keys[nvars] == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  var_values[nvars++] = value;
  return 0;
}

static int
data_config_complete (void)
{
  struct data_env env = { .lookup = lookup_var };
  struct data_error err;
  size_t bad;
  int64_t n;

  /* Variables mean something only to data=: elsewhere they are a
   * mistake (a misspelt key), as in nbdkit.
   */
  if (!data_text && nvars > 0) {
    nbdkit_error ("unknown parameter %s=: variables are used only with "
                  "data=",
                  var_keys[0]);
    return -1;
  }
  if (data_text) {
    if (data_eval (data_text, &env, &disk, &disk_size, &err) == -1) {
      nbdkit_error ("%s", err.msg);
      return -1;
    }
  } else if (base64_text) {
    n = data_base64 (base64_text, strlen (base64_text), &disk, &bad);
    if (n == -1) {
      nbdkit_error ("base64: invalid character at offset %zu", bad);
      return -1;
    }
    disk_size = n;
  } else if (raw_text) {
    disk_size = strlen (raw_text);
    if (store_write (&disk, 0, raw_text, disk_size) == -1) {
      nbdkit_error ("raw: %m");
      return -1;
    }
  } else {
    nbdkit_error ("give one of data=, base64= or raw= "
                  "(see nbdkit data --help)");
    return -1;
  }
  if (size >= 0) {
    if ((uint64_t)size < disk_size)
      store_zero (&disk, size, disk_size - size);
    disk_size = size;
  }
  nbdkit_debug ("data: size %" PRIu64 ", %" PRIu64 " bytes allocated",
                disk_size, store_allocated (&disk));
  return 0;
}

static void
data_unload (void)
{
  store_free (&disk);
  for (size_t i = 0; i < nvars; i++)
    free ((char *)var_keys[i]);
  free (var_keys);
  free (var_values);
}

static const char *
data_config_help (void)
{
  return "[data=]DATA     the disk in the data language (magic key)\n"
         "base64=BASE64   the disk as base64\n"
         "raw=BYTES       the disk as the bytes given\n"
         "size=SIZE       truncate or extend the disk to SIZE\n"
         "VAR=VALUE       a variable for $VAR, raw:$VAR, base64:$VAR or a "
         "number";
}

static void
data_dump_plugin (void)
{
  printf ("data_base64=yes\n");
  printf ("data_expressions=yes\n");
}

static int
data_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

static void *
data_open (int readonly, const char *exportname, int is_tls)
{
  return &disk;
}

static int64_t
data_get_size (void *handle)
{
  return disk_size;
}

static int
data_true (void *handle)
{
  return 1;
}

static int
data_can_native (void *handle)
{
  return 2; /* NBDKIT_ZERO_NATIVE, _FUA_NATIVE, _EXTENTS_NATIVE, ... */
}

/* Unallocated ranges are holes (the buffer is zeroed if the server
 * does not take them).
 */
static int
data_pread (void *handle, void *buf, uint64_t count, uint64_t offset,
            uint32_t flags, struct nbdkit_read *rd)
{
  const uint64_t end = offset + count;
  uint8_t *p = buf;
  uint64_t at = offset;

  pthread_mutex_lock (&lock);
  for (size_t i = store_find (&disk, offset); i < disk.n && at < end; i++) {
    const struct run *r = &disk.runs[i];
    if (r->off >= end)
      break;
    if (r->off > at) {
      if (nbdkit_read_hole (rd, at, r->off - at) == -1)
        memset (p + (at - offset), 0, r->off - at);
      at = r->off;
    }
    uint64_t b = r->off + r->len < end ? r->off + r->len : end;
    memcpy (p + (at - offset), r->data + (at - r->off), b - at);
    at = b;
  }
  pthread_mutex_unlock (&lock);
  if (at < end && nbdkit_read_hole (rd, at, end - at) == -1)
    memset (p + (at - offset), 0, end - at);
  return 0;
}

static int
data_pwrite (void *handle, const void *buf, uint64_t count, uint64_t offset,
             uint32_t flags)
{
  int r;

  pthread_mutex_lock (&lock);
  r = store_write (&disk, offset, buf, count);
  pthread_mutex_unlock (&lock);
  if (r == -1) {
    nbdkit_set_error (ENOMEM);
    nbdkit_error ("write of %" PRIu64 " bytes at %" PRIu64 ": %m", count,
                  offset);
  }
  return r;
}

static int
data_flush (void *handle, uint32_t flags)
{
  return 0;
}

static int
data_zero (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  int r;

  pthread_mutex_lock (&lock);
  r = store_zero (&disk, offset, count);
  pthread_mutex_unlock (&lock);
  if (r == -1) {
    nbdkit_set_error (ENOMEM);
    nbdkit_error ("zero: %m");
  }
  return r;
}

/* Extents are reported by 32K page, as nbdkit's data plugin does: a
 * page no byte was written to is a hole, one holding only zeroes
 * reads as zeroes but is allocated, any other page is data.
 */
#define EXTENT_PAGE 32768

/* The type of the page starting at PAGE, which run I (or a later one)
 * may cover.
 */
static uint32_t
page_type (size_t i, uint64_t page)
{
  const uint64_t pend = page + EXTENT_PAGE;
  bool allocated = false;

  for (; i < disk.n && disk.runs[i].off < pend; i++) {
    const struct run *run = &disk.runs[i];
    uint64_t a = run->off > page ? run->off : page;
    uint64_t b = run->off + run->len < pend ? run->off + run->len : pend;

    if (b <= a)
      continue;
    allocated = true;
    const uint8_t *d = run->data + (a - run->off);
    if (d[0] != 0 || memcmp (d, d + 1, b - a - 1) != 0)
      return 0;
  }
  return allocated ? NBDKIT_EXTENT_ZERO
                   : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
}

static int
data_extents (void *handle, uint64_t count, uint64_t offset, uint32_t flags,
              struct nbdkit_extents *extents)
{
  const uint64_t end = offset + count;
  const uint32_t hole = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
  uint64_t at = offset;
  unsigned n = 0;
  int r = 0;

  pthread_mutex_lock (&lock);
  while (at < end && r == 0 && n < MAX_EXTENTS) {
    const uint64_t page = at - at % EXTENT_PAGE;
    const size_t i = store_find (&disk, page);
    uint64_t next;
    uint32_t type;

    if (i >= disk.n || disk.runs[i].off >= page + EXTENT_PAGE) {
      /* A hole up to the page of the next run. */
      type = hole;
      next = i < disk.n ? disk.runs[i].off - disk.runs[i].off % EXTENT_PAGE
                        : end;
    } else {
      type = page_type (i, page);
      next = page + EXTENT_PAGE;
    }
    if (next > end || next < at)
      next = end;
    r = nbdkit_add_extent (extents, at, next - at, type);
    at = next;
    n++;
    if ((flags & NBDKIT_FLAG_REQ_ONE) && n > 0)
      break;
  }
  pthread_mutex_unlock (&lock);
  return r;
}

static int
data_cache (void *handle, uint64_t count, uint64_t offset, uint32_t flags)
{
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "data",
  .longname = "nbdkit data plugin",
  .version = NBDKIT_VERSION,
  .description = "a disk whose contents are given on the command line",
  .magic_config_key = "data",
  .config = data_config,
  .config_complete = data_config_complete,
  .config_help = data_config_help,
  .unload = data_unload,
  .dump_plugin = data_dump_plugin,
  .thread_model = data_thread_model,
  .open = data_open,
  .get_size = data_get_size,
  .can_write = data_true,
  .can_flush = data_true,
  .can_trim = data_true,
  .can_zero = data_can_native,
  .can_fast_zero = data_true,
  .can_fua = data_can_native,
  .can_multi_conn = data_true,
  .can_extents = data_can_native,
  .can_cache = data_can_native,
  .pread = data_pread,
  .pwrite = data_pwrite,
  .flush = data_flush,
  .trim = data_zero,
  .zero = data_zero,
  .extents = data_extents,
  .cache = data_cache,
};

NBDKIT_REGISTER_PLUGIN (plugin)
